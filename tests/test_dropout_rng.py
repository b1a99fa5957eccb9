"""Dropout's random numbers: Philox named, the mask decided on the raw bits (`layers/utils.py`: `RNG_ALG`,
`stateless_keep`, `Dropout`, `generator_seed`).

Why: under XLA (TF 2.21, CPU) `auto_select`, what `tf.random.stateless_*` and Keras' dropout use when no
algorithm is given, took 5.2 s to draw one layer's band of attention probabilities at 4096 tokens, against 61-65
ms for Philox named: three quarters of an XLA training step. And XLA makes the same Philox bits as TensorFlow's
kernels but other floats of them, so masks decided on the bits are the same eagerly, in graphs and under XLA: the
XLA training step with dropout now equals the graph step (last test). Not timed here (the bench measures)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from helpers import tiny_config_dict
from tf_longformer.layers import attention
from tf_longformer.layers.utils import Dropout, generator_seed, keep_threshold, stateless_keep


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_keep_masks_are_the_same_eagerly_in_graphs_and_under_xla(rate):
    shape, seed = (3, 50, 70), tf.constant([11, -5], tf.int32)
    eager = stateless_keep(shape, seed, rate).numpy()
    graph = tf.function(lambda s: stateless_keep(shape, s, rate))(seed).numpy()
    xla = tf.function(lambda s: stateless_keep(shape, s, rate), jit_compile=True)(seed).numpy()
    np.testing.assert_array_equal(graph, eager)
    np.testing.assert_array_equal(xla, eager)
    n = eager.size
    assert abs(eager.mean() - (1 - rate)) <= 5 * math.sqrt(rate * (1 - rate) / n) + 1e-12, eager.mean()
    other = stateless_keep(shape, tf.constant([12, -5], tf.int32), rate).numpy()
    assert rate == 0.0 or not np.array_equal(other, eager)  # another seed, another mask


def test_keep_threshold_is_exact_at_the_ends_and_rejects_bad_rates():
    assert keep_threshold(0.0) == -(2**31)  # every int32 is kept
    assert keep_threshold(0.5) == 0
    assert keep_threshold(0.25) == -(2**30)
    for bad in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\), got"):
            keep_threshold(bad)


def _rewinder(layers):
    generators = []
    for layer in layers:
        for sub in layer._flatten_layers(include_self=True):
            generators.extend(g for g in getattr(sub, "_seed_generators", ()) if g not in generators)
    states = [tf.identity(g.state.value) for g in generators]
    assert generators

    def rewind():
        for g, s in zip(generators, states):
            g.state.assign(s)

    return rewind


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_layer_scales_what_it_keeps_and_draws_the_same_masks_under_xla(dtype):
    layer = Dropout(0.3, seed=7, dtype=dtype)
    x = tf.cast(tf.reshape(tf.range(1, 1 + 4 * 33 * 16, dtype=tf.float32), (4, 33, 16)) / 100.0, dtype)
    rewind = _rewinder([layer])
    eager = layer(x, training=True)
    rewind()
    xla = tf.function(lambda x: layer(x, training=True), jit_compile=True)(x)
    np.testing.assert_array_equal(xla.numpy(), eager.numpy())
    kept = eager.numpy() != 0
    expected = (x * tf.cast(1 / 0.7, dtype)).numpy()
    np.testing.assert_array_equal(eager.numpy()[kept], expected[kept])
    assert abs(kept.mean() - 0.7) < 0.03
    second = layer(x, training=True)  # the generator moved on: another mask
    assert not np.array_equal(second.numpy() != 0, kept)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(Dropout(1.0)(x, training=True).numpy(), np.zeros(x.shape))  # Keras' own


def test_generator_seed_is_the_same_under_xla():
    gen = keras.random.SeedGenerator(3)
    state = tf.identity(gen.state.value)
    eager = generator_seed(gen).numpy()
    gen.state.assign(state)
    xla = tf.function(lambda: generator_seed(gen), jit_compile=True)().numpy()
    np.testing.assert_array_equal(xla, eager)
    assert eager.dtype == np.int32 and eager.shape == (2,)
    assert not np.array_equal(generator_seed(gen).numpy(), eager)


def _random_op_types(graph):
    types = [op.type for op in graph.get_operations()]
    for fn in graph.as_graph_def().library.function:
        types += [node.op for node in fn.node_def]
    return types


def test_no_mask_is_drawn_by_auto_select():
    """In a traced XLA training step with dropout (the attention's band and global paths, the hidden dropouts),
    every random op gets its algorithm named: no `StatelessRandomGetKeyCounterAlg` (what `auto_select` traces to).
    Fails with the masks of Keras' dropout or `tf.random.stateless_uniform` without `alg`."""
    cfg = T.LongformerConfig(**tiny_config_dict(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2,
                                                global_buckets=[2]))
    model = T.TFLongformerForSequenceClassification(cfg)
    ids = tf.constant(np.random.default_rng(0).integers(5, 60, size=(2, 24)), tf.int32)
    glob = tf.constant(np.eye(2, 24, dtype=np.int32))
    model(ids[:, :8], global_attention_mask=glob[:, :8])

    @tf.function(jit_compile=True)
    def step(ids, glob):
        with tf.GradientTape() as tape:
            loss = model(ids, global_attention_mask=glob, labels=tf.constant([0, 1]), training=True).loss
        return tape.gradient(loss, model.trainable_variables)

    types = _random_op_types(step.get_concrete_function(ids, glob).graph)
    assert types.count("StatelessRandomUniformFullIntV2") >= 3, sorted(set(types))
    assert "StatelessRandomGetKeyCounterAlg" not in types


@pytest.mark.parametrize("checkpointing", [False, True])
def test_xla_training_step_with_dropout_equals_the_graph_step(checkpointing, monkeypatch):
    """A masked-LM step with dropout everywhere (hidden, attention band, global keys and rows), a global token
    and padding: loss and every gradient under XLA equal the graph step's. The graph step runs the static slot
    paths XLA runs (`STATIC_SLOTS_EVERYWHERE`): with the batch's own slot count the global masks have another
    shape, hence other numbers."""
    monkeypatch.setattr(attention, "STATIC_SLOTS_EVERYWHERE", True)
    cfg = T.LongformerConfig(**tiny_config_dict(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2,
                                                global_buckets=[2], gradient_checkpointing=checkpointing))
    model = T.TFLongformerForMaskedLM(cfg)
    rng = np.random.default_rng(5)
    ids = rng.integers(5, 60, size=(2, 40)).astype(np.int32)
    ids[1, 33:] = cfg.pad_token_id
    attn = (ids != cfg.pad_token_id).astype(np.int32)
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, 17] = 1
    labels = np.where(rng.random(ids.shape) < 0.3, ids, -100).astype(np.int32)
    labels[1, 33:] = -100
    args = [tf.constant(x) for x in (ids, attn, glob, labels)]
    model(args[0][:, :8], global_attention_mask=args[2][:, :8])
    rewind = _rewinder([model])

    def step(ids, attn, glob, labels):
        rewind()
        with tf.GradientTape() as tape:
            loss = model(ids, attention_mask=attn, global_attention_mask=glob, labels=labels, training=True).loss
        return [loss] + tape.gradient(loss, model.trainable_variables)

    graph = tf.function(step)(*args)
    xla = tf.function(step, jit_compile=True)(*args)
    no_dropout = tf.function(lambda *a: model(a[0], attention_mask=a[1], global_attention_mask=a[2],
                                              labels=a[3], training=False).loss)(*args)
    assert abs(float(graph[0]) - float(no_dropout)) > 2e-5  # dropout did run (float32 error: about 1e-6)
    for name, a, b in zip(["loss"] + [v.path for v in model.trainable_variables], xla, graph):
        a, b = (0.0 if t is None else tf.convert_to_tensor(t).numpy() for t in (a, b))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=name)
