"""The ways inputs arrive and outputs leave. (Tensor / list / dict / keyword inputs and the `.keras` round trip
of every head: `harness.py`, run by test_tasks.py.)"""

import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import random_batch, tiny_config


@pytest.fixture(scope="module")
def model():
    return T.TFLongformerForMaskedLM(tiny_config())


def test_output_access(model, rng):
    inputs = random_batch(rng, 2, 9)
    labels = inputs["input_ids"]
    out = model(inputs, labels=labels, output_hidden_states=True)
    assert out.logits is out["logits"] and float(out[0]) == float(out.loss)
    assert list(out.keys()) == ["loss", "logits", "hidden_states"]
    tup = model(inputs, labels=labels, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 2
    np.testing.assert_array_equal(tup[1].numpy(), out.logits.numpy())
    with pytest.raises(AttributeError, match="no field 'pooler_output'"):
        out.pooler_output


def test_outputs_cross_tf_function_and_keras_tree(model, rng):
    inputs = random_batch(rng, 2, 9)

    @tf.function
    def run(x):
        return model(x, output_attentions=True)

    out = run(inputs)
    assert isinstance(out, T.LongformerOutput) and set(out) == {"logits", "attentions", "global_attentions"}
    import keras

    flat = keras.tree.flatten(out)
    again = keras.tree.pack_sequence_as(out, flat)
    assert isinstance(again, T.LongformerOutput) and set(again) == set(out)
    assert isinstance(tf.nest.map_structure(lambda t: t, out), T.LongformerOutput)


@pytest.mark.parametrize("length", [1, 2, 5, 12, 13, 128])
def test_any_length_up_to_the_limit(model, length, rng):
    inputs = random_batch(rng, 1, length, pad_rows=False)
    out = model(inputs, output_attentions=True, output_hidden_states=True)
    assert out.logits.shape == (1, length, 60)
    assert all(h.shape[1] == length for h in out.hidden_states)
    assert [a.shape[2] for a in out.attentions] == [length, length]
    assert [a.shape[-1] for a in out.attentions] == [int(inputs["global_attention_mask"].sum()) + w + 1 for w in (4, 6)]


def test_no_global_token_gives_zero_width_global_attentions(model, rng):
    out = model(random_batch(rng, 2, 9, n_global=(0, 0)), output_attentions=True)
    assert [tuple(g.shape) for g in out.global_attentions] == [(2, 2, 9, 0)] * 2


def test_functional_keras_model_with_the_public_layers(rng):
    """The README example: the attention and encoder layers inside a user's own functional model."""
    import keras

    tokens = keras.Input((None,), dtype="int32", name="ids")
    mask = keras.Input((None,), dtype="int32", name="mask")  # 0 pad, 1 local, 2 global
    x = keras.layers.Embedding(100, 32)(tokens)
    x = T.LongformerEncoderLayer(num_heads=4, intermediate_size=64, attention_window=8)(x, mask)
    x = T.LongformerSelfAttention(num_heads=4, head_dim=8, attention_window=4)(x, mask)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    net = keras.Model([tokens, mask], logits)
    ids = rng.integers(0, 100, (2, 50))
    m = np.ones((2, 50), np.int32)
    m[:, 0] = 2
    m[1, 40:] = 0
    assert net([ids, m]).shape == (2, 3)
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = net.fit([ids, m], np.array([0, 2]), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    clone = keras.Model.from_config(net.get_config())
    assert clone.count_params() == net.count_params()


@pytest.mark.parametrize("cls", [T.LongformerSelfAttention, T.LongformerEncoderLayer])
def test_layer_config_round_trip(cls):
    kwargs = {"num_heads": 2, "attention_window": 6}
    kwargs.update({"head_dim": 4} if cls is T.LongformerSelfAttention else {"intermediate_size": 16})
    layer = cls(**kwargs, name="x")
    again = cls.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


def test_xla_matches_eager_with_global_tokens(model, rng):
    inputs = random_batch(rng, 2, 30, n_global=(1, 20))
    eager = model(inputs).logits.numpy()
    xla = tf.function(lambda x: model(x).logits, jit_compile=True)(inputs).numpy()
    np.testing.assert_allclose(xla, eager, atol=1e-5)
