"""XLA training: each global-bucket path of the attention recomputes its intermediates in the backward pass
(`attention._recomputed`), so the `tf.cond` chain's gradient carries none of them (XLA allocated every branch's,
the full-length one included: a base-size step at 4096 tokens asked for 62.9 GiB).

Checked: `_recomputed` gives autodiff's gradients (inputs and the variables it reads, dropout included) inside a
`tf.cond` under XLA, where `tf.recompute_grad` fails to build; the layer's XLA gradients equal the eager ones on
every bucket path (none, a bucket, the full length); the `tf.cond` gradients carry only small tensors.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers import attention
from tf_longformer.layers.attention import LongformerSelfAttention, _recomputed, _stateless_dropout


def test_recomputed_gives_autodiff_gradients_inside_a_cond_under_xla():
    rng = np.random.default_rng(0)
    layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d")
    layer.build((None, None, 6))
    x = tf.constant(rng.normal(size=(2, 7, 6)).astype(np.float32))
    seed = [3, 4]  # a Python value: an eager tensor captured by the recomputed function would break the cond

    def fn(h):
        return tf.nn.softmax(_stateless_dropout(layer(h) * h[..., :5], 0.3, seed), axis=-1)

    def loss_of(y):
        return tf.reduce_sum(y * tf.range(5, dtype=y.dtype))

    @tf.function(jit_compile=True)
    def plain(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_of(fn(x))
        return loss, tape.gradient(loss, [x] + layer.trainable_variables)

    expected_loss, expected = plain(x)

    @tf.function(jit_compile=True)
    def under_cond(x, take):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cond(take, lambda: _recomputed(fn, (x,), layer.variables), lambda: tf.zeros_like(x[..., :5]))
            loss = loss_of(y)
        return loss, tape.gradient(loss, [x] + layer.trainable_variables)

    loss, got = under_cond(x, tf.constant(True))
    np.testing.assert_allclose(loss.numpy(), expected_loss.numpy(), rtol=1e-6)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    _, untaken = under_cond(x, tf.constant(False))
    assert all(not np.any(g.numpy()) for g in untaken)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_xla_gradients_equal_eager_on_every_bucket_path(dropout, monkeypatch):
    """Buckets (2,) on length 24 (window 4): 0 global tokens, 1 (the bucket), 5 (the full-length path). Without
    dropout XLA equals eager. With dropout (the eager call's global paths have the batch's own number of slots, so
    their masks have another shape: `tests/test_dropout_rng.py` compares XLA with the static paths run in a
    graph), the recomputing paths under XLA equal plain autodiff under XLA."""
    rng = np.random.default_rng(1)
    layer = LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=8, dropout=dropout,
                                    global_buckets=(2,), dense_max_length=0, chunk_queries=8)
    layer(tf.zeros([1, 8, 8]), tf.ones([1, 8], tf.int32))
    hidden = tf.constant(rng.normal(size=(2, 24, 8)).astype(np.float32))
    seed_state = [tf.identity(g.state.value) for g in layer.probs_dropout._seed_generators]

    def step(h, m):
        for g, s in zip(layer.probs_dropout._seed_generators, seed_state):
            g.state.assign(s)  # the same call seed in every run
        with tf.GradientTape() as tape:
            tape.watch(h)
            out = layer(h, m, training=True)
            loss = tf.reduce_sum(out * tf.sin(out))
        return [loss] + tape.gradient(loss, [h] + layer.trainable_weights)

    for n_global in (0, 1, 5):
        mask = np.ones((2, 24), np.int32)
        mask[0, rng.permutation(20)[:n_global]] = 2
        mask[1, 21:] = 0
        mask = tf.constant(mask)
        if dropout:
            monkeypatch.setattr(attention, "RECOMPUTE_GLOBAL_PATHS", "never")
            expected = tf.function(step, jit_compile=True)(hidden, mask)
            monkeypatch.setattr(attention, "RECOMPUTE_GLOBAL_PATHS", "static")
        else:
            expected = step(hidden, mask)
        got = tf.function(step, jit_compile=True)(hidden, mask)
        for a, b in zip(got, expected):  # None (no path read the variable): zeros
            a, b = (0.0 if t is None else t.numpy() for t in (a, b))
            np.testing.assert_allclose(a, np.broadcast_to(b, np.shape(a)), rtol=2e-5, atol=1e-5, err_msg=f"{n_global} global")
        if n_global:
            assert np.any(got[-1].numpy())


def _xla_training_step(layer):
    """The XLA training step of `layer` alone (a `tf.function(jit_compile=True)` of `(hidden, mask)`): the gradient
    of a loss to its input and weights."""
    @tf.function(jit_compile=True)
    def step(h, m):
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = tf.reduce_sum(layer(h, m, training=True) ** 2)
        return tape.gradient(loss, [h] + layer.trainable_weights)

    return step


def _xla_training_graph(layer, length, hidden):
    """The traced (not compiled) `_xla_training_step` of `layer`, one row of `length` tokens."""
    return _xla_training_step(layer).get_concrete_function(tf.TensorSpec([1, length, hidden]), tf.TensorSpec([1, length], tf.int32)).graph


def test_the_bucket_chain_gradient_carries_only_small_tensors():
    """The `If` ops of the XLA training step output what their gradient needs. With recomputing paths that is no
    tensor of the full-length path's size: nothing with `length * length` elements per head (length 64 here)."""
    layer = LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=8, global_buckets=(2,),
                                    dense_max_length=0, chunk_queries=16)
    layer(tf.zeros([1, 8, 8]), tf.ones([1, 8], tf.int32))
    length = 64
    graph = _xla_training_graph(layer, length, 8)
    ifs = [op for op in graph.get_operations() if op.type in ("If", "StatelessIf")]
    assert len(ifs) >= 4  # forward chain (bucket, full length) and its gradient
    largest = max(int(np.prod(t.shape.as_list())) for op in ifs for t in op.outputs if t.shape.is_fully_defined())
    assert largest < length * length, largest


def test_the_forward_bucket_chain_exports_nothing_for_its_gradient():
    """Under XLA the forward pass's bucket chain must not hand tensors out for its gradient: each of its `If` ops
    outputs the attention only (the chain is recomputed as a whole in the backward pass). Recomputed branch by
    branch alone, every `If` exported `q, k, v`, the band's output and `hidden` (19 outputs here): five full-size
    tensors per bucket, per layer, kept until the backward pass."""
    layer = LongformerSelfAttention(num_heads=2, head_dim=8, attention_window=8, name="attn")
    layer(tf.zeros([1, 8, 16]), tf.ones([1, 8], tf.int32))
    graph = _xla_training_graph(layer, 64, 16)
    ifs = [op for op in graph.get_operations() if op.type in ("If", "StatelessIf")]
    forward = [op for op in ifs if op.name.split("/")[0].startswith("attn")]  # the layer's own scope
    assert len(forward) >= 2, [op.name for op in ifs]  # a bucket and the full length
    for op in forward:
        assert len(op.outputs) == 1, (op.name, len(op.outputs))


def test_band_slices_have_static_sizes():
    """`_rows` gives `tf.slice` every size it knows: with a run-time start, a `-1` size is a run-time size to XLA,
    which pads the operand by its own size in every dimension and slices that (the band's key and value blocks,
    copied at 2**3 times their size before the loop and kept while it runs: 1.3 GB per layer at 4096 tokens)."""
    x = tf.zeros([10, 4, 3])

    @tf.function
    def cut(start):
        return attention._rows(x, start, 2)

    graph = cut.get_concrete_function(tf.TensorSpec([], tf.int32)).graph
    (op,) = [op for op in graph.get_operations() if op.type == "Slice"]
    size = tf.get_static_value(op.inputs[2])
    assert size is not None and list(size) == [2, 4, 3]
    np.testing.assert_array_equal(cut(tf.constant(7)).numpy(), x.numpy()[7:9])


def test_the_compiled_band_keeps_no_padded_copy_of_its_blocks():
    """The optimized HLO of a layer's XLA training step: no array shaped like the band's key blocks padded to
    twice their size in every dimension, `(., 2 * block, 2 * head_dim)` (what `-1` slice sizes made)."""
    heads, dim, window = 3, 6, 20
    layer = LongformerSelfAttention(num_heads=heads, head_dim=dim, attention_window=window, global_buckets=(2,),
                                    dense_max_length=0, chunk_queries=16)
    layer(tf.zeros([1, 8, heads * dim]), tf.ones([1, 8], tf.int32))
    step = _xla_training_step(layer)
    h = tf.constant(np.random.default_rng(0).normal(size=(1, 128, heads * dim)).astype(np.float32))
    m = tf.constant(np.eye(1, 128, dtype=np.int32) + 1)
    hlo = step.experimental_get_compiler_ir(h, m)(stage="optimized_hlo")
    block = window // 2 // 2  # half the one-sided window
    shapes = {tuple(int(d) for d in dims.split(",")) for dims in re.findall(r"f32\[([\d,]+)\]", hlo)}
    assert (128 // block + 4, block, dim) in shapes or any(s[-2:] == (block, dim) for s in shapes)  # blocks exist
    doubled = [s for s in shapes if len(s) == 3 and s[1:] == (2 * block, 2 * dim)]
    assert not doubled, doubled
