"""The encoder layer's feed-forward block as two fused 2-D products (`LongformerEncoderLayer._feed_forward`).

It must give the numbers of calling the two `Dense` layers (Keras' own path), forward and backward, in every
precision, under XLA, with LoRA, and fall back to the layers when they are quantized. The fused ops must really be
the ones in the graph (2-D `MatMul` + `BiasAdd`), or the change would be for nothing.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers.encoder import LongformerEncoderLayer


def _layer(rng, hidden=16, inner=40, act="gelu", dtype=None):
    layer = LongformerEncoderLayer(num_heads=2, intermediate_size=inner, attention_window=4, hidden_act=act,
                                   dtype=dtype)
    layer.build((None, None, hidden))
    for dense in (layer.intermediate_dense, layer.output_dense):
        dense.kernel.assign(rng.normal(0, 0.3, size=dense.kernel.shape).astype(np.float32))
        dense.bias.assign(rng.normal(0, 0.3, size=dense.bias.shape).astype(np.float32))
    return layer


def _keras_path(layer, x):
    return layer.output_dense(layer._act(layer.intermediate_dense(x)))


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_equals_the_dense_layers_forward_and_backward(act):
    rng = np.random.default_rng(0)
    layer = _layer(rng, act=act)
    x = tf.constant(rng.normal(size=(3, 11, 16)).astype(np.float32))
    weights = [layer.intermediate_dense.kernel, layer.intermediate_dense.bias, layer.output_dense.kernel,
               layer.output_dense.bias]
    probe = tf.constant(rng.normal(size=(3, 11, 16)).astype(np.float32))
    results = []
    for fn in (layer._feed_forward, lambda t: _keras_path(layer, t)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * probe)
        grads = tape.gradient(loss, [x] + [w.value for w in weights])
        results.append([y.numpy()] + [g.numpy() for g in grads])
    assert results[0][0].shape == (3, 11, 16)
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_keeps_the_static_shape_and_runs_under_xla():
    rng = np.random.default_rng(1)
    layer = _layer(rng)
    x = rng.normal(size=(2, 9, 16)).astype(np.float32)
    spec = tf.TensorSpec([None, None, 16], tf.float32)
    traced = tf.function(layer._feed_forward, input_signature=[spec])
    assert traced.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 16]
    xla = tf.function(layer._feed_forward, jit_compile=True)
    np.testing.assert_allclose(xla(x).numpy(), _keras_path(layer, x).numpy(), rtol=1e-5, atol=1e-5)


def test_the_graph_has_2d_products_with_bias_adds():
    layer = _layer(np.random.default_rng(2))
    graph = tf.function(layer._feed_forward).get_concrete_function(
        tf.TensorSpec([None, None, 16], tf.float32)).graph
    ops = [op for op in graph.get_operations()]
    products = [op for op in ops if op.type == "MatMul"]
    assert len(products) == 2 and all(op.outputs[0].shape.rank == 2 for op in products)
    assert sum(op.type == "BiasAdd" for op in ops) == 2
    assert not any(op.type == "BatchMatMulV2" for op in ops)
    # the profiles attribute the products to their layer's name
    assert {"intermediate_dense", "output_dense"} <= {op.name.split("/")[0] for op in products}


def test_bfloat16_policy_matches_the_dense_layers():
    rng = np.random.default_rng(3)
    layer = _layer(rng, dtype="mixed_bfloat16")
    x = tf.constant(rng.normal(size=(2, 13, 16)).astype(np.float32))
    ours = layer._feed_forward(tf.cast(x, "bfloat16"))
    theirs = _keras_path(layer, tf.cast(x, "bfloat16"))
    assert ours.dtype == tf.bfloat16
    ref = _layer(np.random.default_rng(3))._feed_forward(x).numpy()  # the same weights in float32
    # bf16 rounding only: both within bf16's error of float32, and close to each other
    scale = np.abs(ref).max()
    assert np.abs(ours.numpy().astype(np.float32) - ref).max() < 0.03 * scale
    assert np.abs(ours.numpy().astype(np.float32) - theirs.numpy().astype(np.float32)).max() < 0.03 * scale


def test_lora_applies():
    rng = np.random.default_rng(4)
    layer = _layer(rng)
    x = tf.constant(rng.normal(size=(2, 7, 16)).astype(np.float32))
    before = layer._feed_forward(x).numpy()
    for dense in (layer.intermediate_dense, layer.output_dense):
        dense.enable_lora(2)
        dense.lora_kernel_b.assign(rng.normal(size=dense.lora_kernel_b.shape).astype(np.float32))
    after = layer._feed_forward(x).numpy()
    np.testing.assert_allclose(after, _keras_path(layer, x).numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(after - before).max() > 0.1


def test_quantized_layers_are_called():
    rng = np.random.default_rng(5)
    layer = _layer(rng)
    x = tf.constant(rng.normal(size=(2, 7, 16)).astype(np.float32))
    plain = layer._feed_forward(x).numpy()
    for dense in (layer.intermediate_dense, layer.output_dense):
        dense.quantize("int8")
    ours = layer._feed_forward(x).numpy()
    np.testing.assert_allclose(ours, _keras_path(layer, x).numpy(), rtol=1e-6, atol=1e-6)
    assert 0 < np.abs(ours - plain).max() < 0.2 * np.abs(plain).max()  # int8 rounding, not int8 values as floats


def test_the_layer_uses_it():
    """The whole encoder layer's output equals one computed with the Dense layers called as layers."""
    rng = np.random.default_rng(6)
    layer = _layer(rng)
    x = tf.constant(rng.normal(size=(2, 12, 16)).astype(np.float32))
    mask = np.ones((2, 12), np.int32)
    mask[0, 0] = 2
    mask[1, 9:] = 0
    ours = layer(x, mask).numpy()
    fused = layer._feed_forward
    layer._feed_forward = lambda t, residual=None: _keras_path(layer, t) + (0.0 if residual is None else residual)
    try:
        theirs = layer(x, mask).numpy()
    finally:
        layer._feed_forward = fused
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert isinstance(layer.intermediate_dense, keras.layers.Dense)


def test_the_residual_joins_the_products_pattern():
    """Not training, each residual is added to its product's 2-D output right after the `BiasAdd` (the pattern
    TensorFlow's rewriter fuses into the oneDNN product), not on the 3-D result."""
    layer = _layer(np.random.default_rng(8))
    graph = tf.function(lambda x: layer._feed_forward(x, residual=x)).get_concrete_function(
        tf.TensorSpec([None, None, 16], tf.float32)).graph
    adds = [op for op in graph.get_operations() if op.type == "AddV2"]
    assert any(op.inputs[0].op.type == "BiasAdd" and op.outputs[0].shape.rank == 2 for op in adds)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_inference_equals_training_without_dropout(dtype):
    """The inference-only paths together (residuals fused into the products, q/k/v from per-head products, the
    global keys inside the band, the own-key normaliser, bf16 softmax): the training path's numbers when dropout
    is 0 (float32: 1e-5; bfloat16: within its rounding)."""
    rng = np.random.default_rng(9)
    layer = LongformerEncoderLayer(num_heads=2, intermediate_size=40, attention_window=4, dropout=0.0,
                                   attention_dropout=0.0, dtype=dtype)
    layer.build((None, None, 16))
    layer.attention.dense_max_length = 0  # the blocked band at this length
    for var in layer.weights:
        var.assign(rng.normal(0, 0.3, size=var.shape).astype(np.float32) + (1.0 if "gamma" in var.path else 0.0))
    x = tf.constant(rng.normal(size=(2, 40, 16)).astype(np.float32))
    mask = np.ones((2, 40), np.int32)
    mask[0, [0, 17]] = 2
    mask[1, 31:] = 0
    inference = tf.function(lambda: layer(x, mask, training=False))().numpy().astype(np.float32)
    training = tf.function(lambda: layer(x, mask, training=True))().numpy().astype(np.float32)
    keep = (mask != 0)[..., None]
    if dtype == "float32":
        np.testing.assert_allclose(inference * keep, training * keep, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(inference * keep, training * keep, atol=0.06)


# ------------------------------------------------------------- the training form keeps the pre-activation only
def _grads(fn, layer, x, probe):
    weights = [layer.intermediate_dense.kernel, layer.intermediate_dense.bias, layer.output_dense.kernel,
               layer.output_dense.bias]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * probe)
    return [y] + tape.gradient(loss, [x] + weights)


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu", "tanh"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_activation_product_gradients_equal_autodiff(act, mode):
    """`activation_product` (the training form of `_feed_forward`: the backward pass recomputes the activation)
    against autodiff of the Dense layers: output and every gradient (input, both kernels and biases), float32."""
    rng = np.random.default_rng(7)
    layer = _layer(rng, act=act)
    x = tf.constant(rng.normal(size=(3, 10, 16)).astype(np.float32))
    probe = tf.constant(rng.normal(size=(3, 10, 16)).astype(np.float32))

    def run(fn):
        call = lambda: _grads(fn, layer, x, probe)  # noqa: E731
        if mode != "eager":
            call = tf.function(call, jit_compile=mode == "xla")
        return [t.numpy() for t in call()]

    ours, theirs = run(layer._feed_forward), run(lambda t: _keras_path(layer, t))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_activation_product_gradients_in_bfloat16():
    """Mixed bf16: the gradients reach the float32 variables (through the casts), within bf16 rounding of the
    Dense layers' autodiff."""
    rng = np.random.default_rng(8)
    layer = _layer(rng, dtype="mixed_bfloat16")
    x = tf.cast(tf.constant(rng.normal(size=(2, 9, 16)).astype(np.float32)), tf.bfloat16)
    probe = tf.constant(rng.normal(size=(2, 9, 16)).astype(np.float32))
    ours = _grads(layer._feed_forward, layer, x, probe)
    theirs = _grads(lambda t: _keras_path(layer, t), layer, x, probe)
    assert ours[0].dtype == tf.bfloat16 and ours[1].dtype == tf.bfloat16
    assert all(g.dtype == tf.float32 for g in ours[2:])
    for a, b in zip(ours, theirs):
        a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
        assert np.abs(a - b).max() <= 0.03 * np.abs(b).max() + 1e-6


def test_the_training_form_keeps_one_intermediate_tensor():
    """What the gradient keeps (the memory profile's rule): ONE `(tokens, intermediate)` tensor, the
    pre-activation, where autodiff of the Dense layers keeps two (the pre-activation and the activation)."""
    from tf_longformer.apps import memory_profile

    layer = _layer(np.random.default_rng(9), inner=40)
    x = tf.constant(np.random.default_rng(9).normal(size=(2, 12, 16)).astype(np.float32))
    variables = layer.intermediate_dense.trainable_variables + layer.output_dense.trainable_variables

    def kept_wide(fn):
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(fn(x) ** 2)
            return loss, tape.gradient(loss, [x] + variables)

        graph = step.get_concrete_function(x).graph
        rows = memory_profile.kept_tensors(graph, graph.outputs[0])
        return [r for r in rows if r[1] is not None and r[1][-1:] == (40,) and np.prod(r[1]) == 24 * 40]

    ours, theirs = kept_wide(layer._feed_forward), kept_wide(lambda t: _keras_path(layer, t))
    assert len(ours) == 1 and len(theirs) == 2, (ours, theirs)


def test_lora_gradients_use_autodiff():
    """With LoRA enabled the training form is not used (the kernel is a sum of variables): the gradients reach
    the LoRA factors as autodiff of the Dense layers gives them."""
    rng = np.random.default_rng(10)
    layer = _layer(rng)
    for dense in (layer.intermediate_dense, layer.output_dense):
        dense.enable_lora(2)
        dense.lora_kernel_b.assign(rng.normal(size=dense.lora_kernel_b.shape).astype(np.float32))
    x = tf.constant(rng.normal(size=(2, 7, 16)).astype(np.float32))
    variables = layer.intermediate_dense.trainable_variables + layer.output_dense.trainable_variables
    assert len(variables) == 6  # per layer: bias and the two LoRA factors (the kernel is frozen)
    results = []
    for fn in (layer._feed_forward, lambda t: _keras_path(layer, t)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn(x) ** 2)
        results.append(tape.gradient(loss, variables))
    assert all(g is not None for g in results[0])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
