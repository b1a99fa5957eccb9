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


def _op_types(fn, *args):
    """The op types a call of the traced `fn` ran (TensorFlow's profiler: the ops after Grappler's rewrites)."""
    import glob
    import tempfile

    from tf_longformer.apps import op_profile

    fn(*args)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    try:
        fn(*args)
    finally:
        tf.profiler.experimental.stop()
    trace = sorted(glob.glob(logdir + "/**/*.xplane.pb", recursive=True))[-1]
    return {op_type for _, op_type, _ in op_profile.op_events(trace)}


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_a_graph_runs_one_onednn_kernel_with_keras_numbers(dtype):
    """In a graph (not eager, not XLA) with oneDNN on, the forward is the pattern Grappler rewrites into one
    `_MklLayerNorm` (no Mean, Square, Rsqrt left); values and gradients are still Keras' (float32: to 2e-6;
    bfloat16: the kernel takes gamma and beta in bfloat16, a few roundings of 2**-8 apart), for a known shape, an
    unknown batch and length, rank 2 and an empty batch."""
    from tf_longformer.layers import utils

    rng = np.random.default_rng(5)
    ours, theirs = _pair(rng, 48, dtype=dtype)
    compute = tf.bfloat16 if dtype == "mixed_bfloat16" else tf.float32
    x = tf.cast(rng.normal(size=(2, 33, 48)).astype(np.float32) * 3 + 1, compute)
    weights = tf.constant(rng.normal(size=(2, 33, 48)).astype(np.float32))
    forward = tf.function(lambda x: ours(x))
    types = _op_types(forward, x)
    if utils.onednn_enabled() and not tf.config.list_logical_devices("GPU"):
        assert "_MklLayerNorm" in types and not types & {"Mean", "Square", "Rsqrt", "FusedBatchNormV3"}, types
    else:
        assert "_MklLayerNorm" not in types
    assert not utils.onednn_layer_norm_applies(x, compute)  # eager: Keras' own pattern is not rewritten there
    tol = {"float32": dict(rtol=1e-5, atol=2e-6), "mixed_bfloat16": dict(rtol=2**-6, atol=3e-2)}[dtype]
    np.testing.assert_allclose(tf.cast(forward(x), tf.float32).numpy(), tf.cast(theirs(x), tf.float32).numpy(), **tol)
    a, b = _values_and_grads(ours, x, weights, tf.function), _values_and_grads(theirs, x, weights)
    np.testing.assert_allclose(a[0], b[0], **tol)
    for ga, gb in zip(a[1:], b[1:]):
        if dtype == "float32":
            np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=2e-6 * np.abs(gb).max())
        else:
            np.testing.assert_allclose(ga, gb, rtol=2e-2, atol=2e-2 * np.abs(gb).max())
    unknown = tf.function(lambda x: ours(x), input_signature=[tf.TensorSpec([None, None, 48], compute)])
    np.testing.assert_allclose(tf.cast(unknown(x[:, :7]), tf.float32).numpy(),
                               tf.cast(theirs(x[:, :7]), tf.float32).numpy(), **tol)
    assert unknown(tf.zeros([0, 5, 48], compute)).shape == (0, 5, 48)
    flat = tf.reshape(x, [-1, 48])
    np.testing.assert_allclose(tf.cast(tf.function(lambda x: ours(x))(flat), tf.float32).numpy(),
                               tf.cast(theirs(flat), tf.float32).numpy(), **tol)


def test_xla_and_the_onnx_trace_keep_the_plain_pattern():
    """Under XLA and while the ONNX export traces (`onnx_export.single_global_path`, which sets
    `utils.ONNX_TRACE`), `layer_norm` builds the plain ops (no batch norm), which XLA fuses on its own and ONNX
    converters map one by one."""
    from tf_longformer import onnx_export
    from tf_longformer.layers import utils

    x = tf.ones([2, 3, 8])
    seen = []
    tf.function(lambda x: seen.append(utils.onednn_layer_norm_applies(x, tf.float32)) or x, jit_compile=True)(x)
    with onnx_export.single_global_path():
        tf.function(lambda x: seen.append(utils.onednn_layer_norm_applies(x, tf.float32)) or x)(x)
    assert not utils.ONNX_TRACE
    tf.function(lambda x: seen.append(utils.onednn_layer_norm_applies(x, tf.float32)) or x)(x)
    assert seen == [False, False, utils.onednn_enabled() and not tf.config.list_logical_devices("GPU")]
