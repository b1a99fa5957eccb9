"""`LayerNorm` (`tf_longformer.layers.utils.layer_norm`): Keras' `LayerNormalization`'s numbers and gradients with
fewer passes and a custom gradient; Keras' own for the settings it does not cover."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from tf_longformer.layers.utils import LayerNorm


def _pair(rng, width, dtype="float32", **kwargs):
    ours, theirs = LayerNorm(epsilon=1e-5, dtype=dtype, **kwargs), keras.layers.LayerNormalization(
        epsilon=1e-5, dtype=dtype, **kwargs)
    for layer in (ours, theirs):
        layer.build((None, None, width))
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.normal(size=a.shape).astype(np.float32)
        a.assign(value)
        b.assign(value)
    return ours, theirs


def _values_and_grads(layer, x, weights, fn=None):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        return [tf.cast(y, tf.float32)] + [tf.cast(g, tf.float32) for g in tape.gradient(loss, [x] + layer.weights)]

    return [t.numpy() for t in (fn(run) if fn else run)(x)]


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_values_and_gradients_are_keras_layer_normalization(mode):
    rng = np.random.default_rng(0)
    ours, theirs = _pair(rng, 24)
    x = tf.constant(rng.normal(size=(2, 9, 24)).astype(np.float32) * 4 + 2)
    weights = tf.constant(rng.normal(size=(2, 9, 24)).astype(np.float32))
    wrap = {"eager": None, "graph": tf.function,
            "xla": lambda f: tf.function(f, jit_compile=True)}[mode]
    for a, b in zip(_values_and_grads(ours, x, weights, wrap), _values_and_grads(theirs, x, weights, wrap)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_unknown_length_and_batch_and_rank_two():
    rng = np.random.default_rng(1)
    ours, theirs = _pair(rng, 8)
    f = tf.function(lambda x: ours(x), input_signature=[tf.TensorSpec([None, None, 8], tf.float32)])
    x = rng.normal(size=(3, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(f(x).numpy(), theirs(x).numpy(), rtol=1e-5, atol=1e-6)
    x2 = rng.normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_allclose(ours(x2).numpy(), theirs(x2).numpy(), rtol=1e-5, atol=1e-6)
    assert ours(np.zeros((0, 3, 8), np.float32)).shape == (0, 3, 8)


def test_mixed_bfloat16_computes_in_float32_and_returns_bfloat16():
    rng = np.random.default_rng(2)
    ours, theirs = _pair(rng, 32, dtype="mixed_bfloat16")
    x = tf.cast(rng.normal(size=(2, 6, 32)).astype(np.float32) * 3, tf.bfloat16)
    weights = tf.constant(rng.normal(size=(2, 6, 32)).astype(np.float32))
    y = ours(x)
    assert y.dtype == tf.bfloat16
    a, b = _values_and_grads(ours, x, weights), _values_and_grads(theirs, x, weights)
    # the same float32 numbers, each rounded to bfloat16 once (one rounding apart at most: 2**-8 relative)
    np.testing.assert_allclose(a[0], b[0], rtol=2**-7, atol=1e-2)
    for ga, gb in zip(a[1:], b[1:]):
        np.testing.assert_allclose(ga, gb, rtol=2e-2, atol=2e-2 * np.abs(gb).max())


def test_other_settings_run_keras_own():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 6)).astype(np.float32)
    for kwargs in ({"axis": 1}, {"center": False}, {"scale": False}):
        ours, theirs = LayerNorm(epsilon=1e-5, **kwargs), keras.layers.LayerNormalization(epsilon=1e-5, **kwargs)
        ours.build(x.shape)
        theirs.build(x.shape)
        for a, b in zip(ours.weights, theirs.weights):
            value = rng.normal(size=a.shape).astype(np.float32)
            a.assign(value)
            b.assign(value)
        np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), rtol=1e-5, atol=1e-6, err_msg=str(kwargs))


def test_the_gradient_keeps_no_more_than_keras_own():
    """What the backward pass keeps (`memory_profile.kept_tensors` of a traced gradient): at most the input's size
    twice (the normalised input, float32, and what the loss's own gradient reads), as Keras' own."""
    from tf_longformer.apps import memory_profile

    rng = np.random.default_rng(4)
    ours, theirs = _pair(rng, 16)
    x = tf.constant(rng.normal(size=(1, 64, 16)).astype(np.float32))

    def kept(layer):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) ** 2)
            return loss, tape.gradient(loss, x)

        graph = step.get_concrete_function().graph
        loss = [t for t in graph.outputs if t.shape.rank == 0][0]
        rows = memory_profile.kept_tensors(graph, loss)
        return sum(size for _, shape, _, size in rows if size and shape == (1, 64, 16))

    ours_kept, theirs_kept = kept(ours), kept(theirs)
    assert ours_kept <= theirs_kept <= 64 * 16 * 4 * 2, (ours_kept, theirs_kept)
