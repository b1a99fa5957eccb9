"""The static paths' (XLA's) full-length global path in row chunks: `chunked_rows` and where the layer uses it.

Under XLA the last-resort path has one slot per token, so its global rows and the local queries' global keys are
`(length, length)` per head: at 16,384 tokens that asked XLA for 103.76 GiB. `chunked_rows` computes such row-wise
functions chunk by chunk, with a recomputing backward loop."""

import re

import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers import attention
from tf_longformer.layers.attention import LongformerSelfAttention, chunked_rows, piece_seed


def _fn(i, a, b, m, s1, s2):
    """A row-wise function with a per-step dropout draw: `(chunk, 3)`."""
    scores = tf.matmul(a, s1, transpose_b=True) + b[:, None]  # (chunk, keys)
    scores = tf.where(m[:, None], scores, -1e30)
    p = tf.nn.softmax(scores, axis=-1)
    keep = tf.random.stateless_uniform(tf.shape(p), seed=piece_seed(tf.constant([3, 4]), i)) >= 0.25
    return tf.matmul(tf.where(keep, p / 0.75, 0.0), s2)


def _inputs(rng, bh=3, rows=12, keys=7):
    a = tf.constant(rng.normal(size=(bh, rows, 5)).astype(np.float32))
    b = tf.constant(rng.normal(size=(bh, rows)).astype(np.float32))
    m = tf.constant(rng.random((bh, rows)) > 0.3)
    s1 = tf.constant(rng.normal(size=(bh, keys, 5)).astype(np.float32))
    s2 = tf.constant(rng.normal(size=(bh, keys, 3)).astype(np.float32))
    return a, b, m, s1, s2


def _plain(a, b, m, s1, s2, chunk):
    """The same chunks, one after the other in Python, plain autodiff."""
    n = a.shape[1] // chunk
    outs = []
    for r in range(a.shape[0]):
        outs.append(tf.concat([_fn(tf.constant(r * n + c), a[r, c * chunk:(c + 1) * chunk], b[r, c * chunk:(c + 1) * chunk],
                                   m[r, c * chunk:(c + 1) * chunk], s1[r], s2[r]) for c in range(n)], 0))
    return tf.stack(outs)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_chunked_rows_values_and_gradients_equal_plain_autodiff(mode):
    rng = np.random.default_rng(0)
    a, b, m, s1, s2 = _inputs(rng)
    weights = tf.constant(rng.normal(size=(3, 12, 3)).astype(np.float32))

    def loss_and_grads(fn):
        with tf.GradientTape() as tape:
            tape.watch([a, b, s1, s2])
            out = fn()
            loss = tf.reduce_sum(out * weights)
        return [out] + tape.gradient(loss, [a, b, s1, s2])

    def chunked():
        return loss_and_grads(lambda: chunked_rows(_fn, [a, b, m], [s1, s2], 4, 3, tf.float32))

    def plain():
        return loss_and_grads(lambda: _plain(a, b, m, s1, s2, 4))

    # in the same mode: XLA's stateless random numbers are not the eager kernels'
    wrap = {"eager": lambda f: f, "graph": tf.function, "xla": lambda f: tf.function(f, jit_compile=True)}[mode]
    got, expected = wrap(chunked)(), wrap(plain)()
    for x, y in zip(got, expected):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
    assert np.any(got[3].numpy()) and np.any(got[4].numpy())


def test_chunked_rows_needs_a_static_multiple_of_the_chunk():
    a, b, m, s1, s2 = _inputs(np.random.default_rng(0))
    with pytest.raises(ValueError, match="static number of rows that `chunk` divides, got 12 and 5"):
        chunked_rows(_fn, [a, b, m], [s1, s2], 5, 3, tf.float32)


def _layer_step(layer, hidden, mask, jit):
    def step(h, m):
        with tf.GradientTape() as tape:
            tape.watch(h)
            out = layer(h, m, training=True)
            loss = tf.reduce_sum(out * tf.sin(out))
        return [loss] + tape.gradient(loss, [h] + layer.trainable_weights)

    return (tf.function(step, jit_compile=True) if jit else step)(hidden, mask)


@pytest.mark.parametrize("jit", [False, True])
def test_the_full_length_static_path_goes_by_row_chunks_with_the_same_numbers(jit, monkeypatch):
    """Static slots (XLA; `STATIC_SLOTS_EVERYWHERE` in eager): with more global tokens than the largest bucket, the
    full-length path's global rows and global keys go through `chunked_rows` (3 chunks of 8 of the 24 rows here)
    and give the unchunked path's loss and gradients (every weight)."""
    monkeypatch.setattr(attention, "STATIC_SLOTS_EVERYWHERE", True)
    rng = np.random.default_rng(1)
    layer = LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=8, global_buckets=(2,),
                                    dense_max_length=0, chunk_queries=8)
    layer(tf.zeros([1, 8, 8]), tf.ones([1, 8], tf.int32))
    hidden = tf.constant(rng.normal(size=(2, 24, 8)).astype(np.float32))
    mask = np.ones((2, 24), np.int32)
    mask[0, [1, 5, 7, 9, 13]] = 2
    mask[1, 21:] = 0
    mask[1, 3] = 2
    mask = tf.constant(mask)
    expected = _layer_step(layer, hidden, mask, jit)
    calls = []
    real = attention.chunked_rows
    monkeypatch.setattr(attention, "chunked_rows", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    monkeypatch.setattr(attention, "GLOBAL_CHUNK_ELEMENTS", 8 * 24)
    got = _layer_step(layer, hidden, mask, jit)
    # the global keys of the local queries and the global rows, in the forward pass and each recomputation
    assert calls and set(calls) == {8} and len(calls) % 2 == 0, calls
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=1e-5)


def test_no_length_by_length_buffer_in_the_compiled_xla_training_step(monkeypatch):
    """The compiled XLA training step of one layer at 256 tokens (bucket 4, then the full length) holds no array
    of `length * length` elements or more: the full-length path's products are `(chunk, length)` per step. Without
    the chunks it holds several (checked on the same layer with the chunk size raised)."""
    layer = LongformerSelfAttention(num_heads=2, head_dim=8, attention_window=16, global_buckets=(4,),
                                    dense_max_length=0, chunk_queries=32)
    layer(tf.zeros([1, 8, 16]), tf.ones([1, 8], tf.int32))
    length = 256

    def largest(elements):
        monkeypatch.setattr(attention, "GLOBAL_CHUNK_ELEMENTS", elements)

        @tf.function(jit_compile=True)
        def step(h, m):
            with tf.GradientTape() as tape:
                tape.watch(h)
                loss = tf.reduce_sum(layer(h, m, training=True) ** 2)
            return tape.gradient(loss, [h] + layer.trainable_weights)

        h, m = tf.zeros([1, length, 16]), tf.ones([1, length], tf.int32)
        hlo = step.experimental_get_compiler_ir(h, m)(stage="optimized_hlo")
        sizes = [int(np.prod([int(d) for d in dims.split(",") if d])) for dims in re.findall(r"[a-z]+\d*\[([\d,]+)\]", hlo)]
        return max(sizes)

    assert largest(32 * length) < length * length
    assert largest(10**9) >= length * length


def test_row_chunk_sizes():
    """Rows per loop step under the element budget (2**21 per (batch, head) row): at 16,384 tokens the full-length
    path goes 128 rows a step, the 512-slot bucket's local queries 4096 and its global rows 128; at 4096 tokens that
    bucket is one step (no loop); unknown sizes are never chunked."""
    assert attention.GLOBAL_CHUNK_ELEMENTS == 2**21
    assert attention.row_chunk(16384, 16384) == 128
    assert attention.row_chunk(16384, 512) == 4096
    assert attention.row_chunk(512, 16384) == 128
    assert attention.row_chunk(4096, 512) is None and attention.row_chunk(512, 4096) is None
    assert attention.row_chunk(24, 5) is None
    assert attention.row_chunk(6000, 1000) == 2000  # the largest divisor within the budget
    assert attention.row_chunk(None, 512) is None
