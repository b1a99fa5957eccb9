"""`LongformerBackbone` on its own, and the config fields that reach it."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import tiny_config
from tf_longformer.layers.attention import DEFAULT_GLOBAL_BUCKETS

ARGS = dict(vocab_size=60, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=24, attention_window=[4, 6],
            max_position_embeddings=130, dropout=0.0, attention_dropout=0.0, global_buckets=(2, 8))


def _ids(rng, batch=2, length=13):
    ids = rng.integers(3, 60, (batch, length)).astype(np.int32)
    ids[:, 0] = 0
    return ids


def test_get_config_holds_plain_arguments_and_rebuilds_the_same_layer():
    backbone = T.LongformerBackbone(**ARGS)
    config = backbone.get_config()
    json.dumps(config)  # plain values only
    assert {k: config[k] for k in ARGS} == {**ARGS, "global_buckets": [2, 8]}
    again = T.LongformerBackbone.from_config(config)
    backbone.build()
    again.build()
    again.set_weights(backbone.get_weights())
    ids = _ids(np.random.default_rng(0))
    np.testing.assert_array_equal(again(input_ids=ids)["last_hidden_state"].numpy(),
                                  backbone(input_ids=ids)["last_hidden_state"].numpy())


def test_a_model_s_backbone_is_the_model_s_encoder():
    model = T.TFLongformerModel(tiny_config())
    ids = _ids(np.random.default_rng(1))
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    ours = model(ids, global_attention_mask=glob)
    alone = model.backbone(input_ids=ids, global_attention_mask=glob)
    np.testing.assert_array_equal(alone["last_hidden_state"].numpy(), ours.last_hidden_state.numpy())
    np.testing.assert_array_equal(alone["pooler_output"].numpy(), ours.pooler_output.numpy())
    assert model.embeddings is model.backbone.embeddings and model.encoder is model.backbone.encoder


def test_backbone_in_a_functional_model_survives_a_keras_file(tmp_path):
    ids_in = keras.Input((None,), dtype="int32")
    out = T.LongformerBackbone(**ARGS)(input_ids=ids_in)
    model = keras.Model(ids_in, keras.layers.Dense(3)(out["pooler_output"]))
    ids = _ids(np.random.default_rng(2))
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(back(ids).numpy(), model(ids).numpy(), atol=1e-6)


def test_config_declares_its_own_fields():
    c = tiny_config(global_buckets=None)  # the tiny test configs set [] (fewer graph branches to trace)
    assert c.gradient_checkpointing is False and c.global_buckets is None
    assert "gradient_checkpointing" not in c.to_dict() and "global_buckets" not in c.to_dict()  # HF-identical
    c = tiny_config(global_buckets=[1, 4], gradient_checkpointing=True)
    assert c.to_dict()["global_buckets"] == [1, 4] and c.to_dict()["gradient_checkpointing"] is True
    assert T.LongformerConfig.from_dict(c.to_dict()) == c
    model = T.TFLongformerForMaskedLM(c)
    model.build()
    assert model.backbone.gradient_checkpointing
    assert all(layer.attention.global_buckets == (1, 4) for layer in model.encoder.layers)
    default = T.TFLongformerForMaskedLM(tiny_config(global_buckets=None))
    default.build()
    assert all(layer.attention.global_buckets == tuple(DEFAULT_GLOBAL_BUCKETS) for layer in default.encoder.layers)
    for bad in ([4, 1], [0, 2], "16", [2, 2]):
        with pytest.raises(ValueError, match="global_buckets"):
            tiny_config(global_buckets=bad)
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        tiny_config(gradient_checkpointing="yes")


@pytest.mark.parametrize("windows, multiple", [([4, 6], 6), ([8, 8], 4), ([6, 10], 15), (512, 256)])
def test_window_multiple_is_the_padding_the_models_use(windows, multiple):
    c = tiny_config(attention_window=windows, num_hidden_layers=2 if isinstance(windows, list) else 2)
    assert c.window_multiple == multiple
    assert T.TFLongformerModel(c).padding_multiple == multiple


def test_global_buckets_do_not_change_the_numbers():
    rng = np.random.default_rng(3)
    ids = _ids(rng, length=17)
    glob = (rng.random(ids.shape) < 0.3).astype(np.int32)
    few = T.TFLongformerModel(tiny_config(global_buckets=[1]))
    many = T.TFLongformerModel(tiny_config(global_buckets=[2, 8, 32]))
    few.build()
    many.build()
    many.set_weights(few.get_weights())
    np.testing.assert_allclose(many(ids, global_attention_mask=glob).last_hidden_state.numpy(),
                               few(ids, global_attention_mask=glob).last_hidden_state.numpy(), atol=2e-6)
    assert tf.reduce_all(tf.math.is_finite(few(ids, global_attention_mask=glob).last_hidden_state))
