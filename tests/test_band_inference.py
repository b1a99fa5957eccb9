"""The blocked band's inference step (`attention._forward_chunk` with `own_key_lse`, `softmax_dtype`): the same
numbers as the training step's (normaliser from the largest score, float32 softmax), which the oracle and parity
tests check against the dense masked computation and the reference.

- `own_key_lse=True`: each query's normaliser from its own key. Local rows: the same output and normaliser;
  rows of queries that are not local (global, padding): output 0 and normaliser "-inf" (the layer replaces or
  zeroes them). A local query whose own probability underflows takes the fallback `tf.cond`: still exact.
- `softmax_dtype=bfloat16` (oneDNN's softmax, inference, no GPU, not XLA): within bfloat16's rounding of the
  float32-softmax path on the same bfloat16 inputs, and chosen only where `band_softmax_dtype` says.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers import attention, utils
from tf_longformer.layers.attention import _NEG, band_softmax_dtype, blocked_band_attention

W, BLOCK, CHUNK = 8, 4, 16  # 5 pieces per query block, 4 query blocks per loop step


def _inputs(length=100, dim=16, seed=0, dtype=tf.float32):
    rng = np.random.default_rng(seed)
    q, k, v = (tf.constant(rng.normal(size=(2, 3, length, dim)).astype(np.float32), dtype) for _ in range(3))
    mask = np.ones((2, length), np.int32)
    mask[0, [0, 37]] = 2  # global queries
    mask[1, length - 13:] = 0  # padding
    mask[1, 5] = 2
    return q, k, v, tf.constant(mask)


def _band(q, k, v, mask, **kw):
    # length 100 is no multiple of the chunk: the last loop step overlaps the one before
    fn = tf.function(lambda q, k, v: blocked_band_attention(q, k, v, mask, W, BLOCK, CHUNK, **kw))
    out, lse = fn(q, k, v)
    return out.numpy().astype(np.float32), lse.numpy()


@pytest.mark.parametrize("length", [100, 96])
def test_own_key_normaliser_equals_the_largest_score_one(length):
    q, k, v, mask = _inputs(length)
    want_out, want_lse = _band(q, k, v, mask)
    got_out, got_lse = _band(q, k, v, mask, own_key_lse=True)
    local = (mask.numpy() == 1)[:, None, :]
    np.testing.assert_allclose(got_out[np.broadcast_to(local, got_lse.shape)],
                               want_out[np.broadcast_to(local, got_lse.shape)], atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(got_lse[np.broadcast_to(local, got_lse.shape)],
                               want_lse[np.broadcast_to(local, got_lse.shape)], atol=2e-6, rtol=1e-6)
    other = np.broadcast_to(~local, got_lse.shape)
    assert (got_out[other] == 0).all() and (got_lse[other] == _NEG).all()


def test_own_key_normaliser_falls_back_when_its_probability_underflows():
    """A local query whose own score is 110 below its largest (own probability e^-110 in float32: 0): the step takes
    the largest-score normaliser; the numbers stay exact and finite."""
    q, k, v, mask = _inputs()
    qn, kn = q.numpy(), k.numpy()
    i = 50
    direction = qn[0, 1, i] / np.sum(qn[0, 1, i] ** 2)
    kn[0, 1, i] = -100.0 * direction  # own score -100
    kn[0, 1, i + 3] = 10.0 * direction  # a key in its window at +10
    k = tf.constant(kn)
    want_out, want_lse = _band(q, k, v, mask)
    got_out, got_lse = _band(q, k, v, mask, own_key_lse=True)
    assert np.isfinite(got_out).all() and np.isfinite(got_lse).all()
    np.testing.assert_allclose(got_lse[0, 1, i], want_lse[0, 1, i], rtol=1e-6)
    np.testing.assert_allclose(got_out[0, 1, i], want_out[0, 1, i], atol=1e-5)
    local = np.broadcast_to((mask.numpy() == 1)[:, None, :], got_lse.shape)
    np.testing.assert_allclose(got_out[local], want_out[local], atol=2e-5)


def test_bfloat16_softmax_within_bfloat16_rounding_of_the_float32_one():
    q, k, v, mask = _inputs(dtype=tf.bfloat16)
    want_out, want_lse = _band(q, k, v, mask, own_key_lse=True)  # float32 softmax on the same bf16 inputs
    got_out, got_lse = _band(q, k, v, mask, own_key_lse=True, softmax_dtype=tf.bfloat16)
    local = np.broadcast_to((mask.numpy() == 1)[:, None, :], got_lse.shape)
    # outputs are averages of values of about 1: bfloat16 keeps 8 bits (2^-8 = 3.9e-3 relative)
    assert np.max(np.abs(got_out - want_out)) < 0.05
    assert np.mean(np.abs(got_out - want_out)) < 5e-3
    assert np.max(np.abs(got_lse[local] - want_lse[local])) < 0.05
    assert (got_out[~np.broadcast_to(local[..., None], got_out.shape)] == 0).all()


def test_the_bfloat16_softmax_is_chosen_only_where_it_is_exact(monkeypatch):
    assert band_softmax_dtype(tf.float32) == tf.float32
    assert band_softmax_dtype(tf.float16) == tf.float32
    monkeypatch.setattr(utils, "_ONEDNN", [True])  # `onednn_enabled` (layers/utils.py) reads it
    assert band_softmax_dtype(tf.bfloat16) == (tf.float32 if tf.config.list_logical_devices("GPU") else tf.bfloat16)
    seen = {}

    @tf.function(jit_compile=True)
    def under_xla(x):
        seen["xla"] = band_softmax_dtype(tf.bfloat16)
        return x

    under_xla(tf.zeros([1]))
    assert seen["xla"] == tf.float32
    monkeypatch.setattr(utils, "_ONEDNN", [False])  # Eigen's bfloat16 softmax: 8% off, measured
    assert band_softmax_dtype(tf.bfloat16) == tf.float32


def test_training_keeps_the_float32_normaliser_and_inference_uses_the_fast_one(monkeypatch):
    """The layer asks for the inference step only when not training: the training step's band is the one its
    recomputing backward pass was checked with."""
    calls = []
    real = attention.blocked_band_attention

    def spy(*args, **kwargs):
        calls.append((kwargs.get("softmax_dtype"), kwargs.get("own_key_lse")))
        return real(*args, **kwargs)

    monkeypatch.setattr(attention, "blocked_band_attention", spy)
    layer = attention.LongformerSelfAttention(num_heads=2, head_dim=8, attention_window=8, dense_max_length=0)
    h = tf.random.normal([1, 40, 16])
    m = tf.ones([1, 40], tf.int32)
    layer(h, m, training=False)
    layer(h, m, training=True)
    assert calls == [(tf.float32, True), (tf.float32, False)]


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_inference_projections_are_the_training_ones(dtype):
    """Not training, `q, k, v` come from three products broadcast over the heads (`_local_projections(...,
    inference=True)`); training, from one 2-D product and a transpose: the same numbers (float32: to 1e-6;
    bfloat16: each product rounded once, so within one bfloat16 rounding)."""
    layer = attention.LongformerSelfAttention(num_heads=3, head_dim=8, attention_window=8, dense_max_length=0,
                                              dtype=dtype)
    rng = np.random.default_rng(7)
    hidden = tf.constant(rng.normal(size=(2, 40, 24)).astype(np.float32))
    layer(hidden, tf.ones([2, 40], tf.int32))
    for var in layer.weights:  # biases are zeros at build: give them values
        var.assign(rng.normal(size=var.shape).astype(np.float32) * 0.3)
    h = tf.cast(hidden, layer.compute_dtype)
    fast = [x.numpy().astype(np.float32) for x in layer._local_projections(h, 0.125, inference=True)]
    plain = [x.numpy().astype(np.float32) for x in layer._local_projections(h, 0.125, inference=False)]
    for a, b in zip(fast, plain):
        assert a.shape == b.shape == (2, 3, 40, 8)
        if dtype == "float32":
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_allclose(a, b, rtol=2**-7, atol=2**-7 * np.abs(b).max())


def _layer_inputs(seed, globals_per_row, length=72, dtype="float32"):
    rng = np.random.default_rng(seed)
    layer = attention.LongformerSelfAttention(num_heads=2, head_dim=8, attention_window=8, dense_max_length=0,
                                              block_queries=2, chunk_queries=8, dtype=dtype)
    hidden = tf.constant(rng.normal(size=(len(globals_per_row), length, 16)).astype(np.float32))
    mask = np.ones((len(globals_per_row), length), np.int32)
    for row, count in enumerate(globals_per_row):
        mask[row, rng.choice(length - 10, size=count, replace=False)] = 2
    mask[-1, length - 7:] = 0  # padding
    layer(hidden, tf.constant(mask))
    for var in layer.weights:
        var.assign(rng.normal(size=var.shape).astype(np.float32) * 0.4)
    return layer, hidden, tf.constant(mask)


@pytest.mark.parametrize("globals_per_row", [(0, 0), (1, 0), (3, 5), (1, 1)])
def test_global_keys_inside_the_band_are_the_merged_ones(monkeypatch, globals_per_row):
    """Inference puts the local queries' global keys in the band's own softmax (`band_with_global_keys`); with it
    off, the band's output is widened to them after (`add_global_keys`): the same outputs (to 1e-5), and the same
    gradients (the fused path's gradient recomputes the other under a tape)."""
    layer, hidden, mask = _layer_inputs(3, globals_per_row)
    calls = []
    real = attention.band_with_global_keys
    monkeypatch.setattr(attention, "band_with_global_keys", lambda *a, **k: calls.append(1) or real(*a, **k))
    results = []
    for fused in (True, False):
        monkeypatch.setattr(attention, "fuses_global_keys", lambda *a, fused=fused: fused)

        @tf.function
        def run(hidden):
            with tf.GradientTape() as tape:
                tape.watch(hidden)
                out = layer(hidden, mask, training=False)
                loss = tf.reduce_sum(out * tf.sin(tf.range(16, dtype=tf.float32)))
            return [out] + tape.gradient(loss, [hidden] + layer.trainable_weights)

        results.append([x.numpy() for x in run(hidden)])
    assert calls, "the fused path did not run"
    keep = (mask.numpy() != 0)[..., None]  # padding rows are cut by the model; compare the others
    np.testing.assert_allclose(results[0][0] * keep, results[1][0] * keep, rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_global_keys_inside_the_band_in_bfloat16_and_only_in_inference(monkeypatch):
    layer, hidden, mask = _layer_inputs(4, (2, 1), dtype="mixed_bfloat16")
    seen = []
    real = attention.band_with_global_keys
    monkeypatch.setattr(attention, "band_with_global_keys", lambda *a, **k: seen.append(1) or real(*a, **k))
    fused = layer(hidden, mask, training=False).numpy().astype(np.float32)
    assert len(seen) == 1
    layer(hidden, mask, training=True)
    tf.function(lambda h: layer(h, mask, training=False), jit_compile=True)(hidden)
    assert len(seen) == 1  # not in training, not under XLA
    monkeypatch.setattr(attention, "fuses_global_keys", lambda *a: False)
    merged = layer(hidden, mask, training=False).numpy().astype(np.float32)
    keep = (mask.numpy() != 0)[..., None]
    scale = np.abs(merged).max()
    np.testing.assert_allclose(fused * keep, merged * keep, atol=0.03 * scale)


def test_half_precision_inference_projections_add_the_bias_in_the_product():
    """bfloat16, not training: each of `q, k, v` is ONE product of `[x, 1, 0...]` and `[W; b; 0...]`
    (`_with_bias_column`): no broadcast add over `(batch, heads, length, dim)` in the graph, and each output is
    the exact `x W + b` (of the bfloat16 inputs) rounded once to bfloat16."""
    layer = attention.LongformerSelfAttention(num_heads=3, head_dim=8, attention_window=8, dense_max_length=0,
                                              dtype="mixed_bfloat16")
    rng = np.random.default_rng(11)
    hidden = tf.constant(rng.normal(size=(2, 40, 24)).astype(np.float32))
    layer(hidden, tf.ones([2, 40], tf.int32))
    for var in layer.weights:
        var.assign(rng.normal(size=var.shape).astype(np.float32) * 0.3 + 2.0)  # bias large against x W
    h = tf.cast(hidden, tf.bfloat16)
    fn = tf.function(lambda h: layer._local_projections(h, 0.125, inference=True))
    graph = fn.get_concrete_function(h).graph
    adds = [op for op in graph.get_operations() if op.type in ("AddV2", "Add") and op.outputs[0].shape.rank == 4]
    assert not adds, [op.name for op in adds]
    x64 = tf.cast(h, tf.float64).numpy()
    for out, dense, scale in zip(fn(h), (layer.query, layer.key, layer.value), (0.125, 1.0, 1.0)):
        kernel = tf.cast(tf.cast(dense.kernel, tf.bfloat16), tf.float64).numpy().reshape(24, -1) * scale
        bias = tf.cast(tf.cast(dense.bias, tf.bfloat16), tf.float64).numpy().reshape(-1) * scale
        exact = (x64 @ kernel + bias).reshape(2, 40, 3, 8).transpose(0, 2, 1, 3)
        once = tf.cast(tf.cast(exact, tf.bfloat16), tf.float64).numpy()
        got = tf.cast(out, tf.float64).numpy()
        # rounded once: the nearest bfloat16 but for float32 accumulation order at a rounding boundary
        assert np.mean(got == once) > 0.99
        np.testing.assert_allclose(got, exact, rtol=2**-8, atol=1e-6)
