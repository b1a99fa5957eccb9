"""The blocked band + global attention equals a dense attention with an explicit band + global mask."""

import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers.attention import LongformerSelfAttention, band_mask, global_slots, three_blocks


def dense_oracle(layer, hidden, mask, head_mask=None):
    """Dense masked attention written from the definition (numpy, float64), with the layer's own weights."""
    w = layer.attention_window // 2
    h = hidden.astype(np.float64)
    heads, dim = layer.num_heads, layer.head_dim

    def proj(p):
        return np.einsum("bld,dhk->blhk", h, p.kernel.numpy()) + p.bias.numpy()

    q, k, v = proj(layer.query) / np.sqrt(dim), proj(layer.key), proj(layer.value)
    qg, kg, vg = proj(layer.query_global) / np.sqrt(dim), proj(layer.key_global), proj(layer.value_global)
    batch, length = mask.shape
    out = np.zeros((batch, length, heads, dim))
    hm = np.ones(heads) if head_mask is None else head_mask
    for b in range(batch):
        for i in range(length):
            if mask[b, i] == 0:
                continue
            if mask[b, i] == 2:  # global query: every non-padded key, global projections
                keys = [j for j in range(length) if mask[b, j] != 0]
                s = np.einsum("hd,jhd->hj", qg[b, i], kg[b, keys])
                vals = vg[b, keys]
            else:  # local query: its band of local keys, and every global key, local projections
                keys = [j for j in range(length) if (mask[b, j] == 1 and abs(i - j) <= w) or mask[b, j] == 2]
                s = np.einsum("hd,jhd->hj", q[b, i], k[b, keys])
                vals = v[b, keys]
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            p *= hm[:, None]
            out[b, i] = np.einsum("hj,jhd->hd", p, vals)
    return np.einsum("blhd,hdc->blc", out, layer.output_dense.kernel.numpy()) + layer.output_dense.bias.numpy()


def random_mask(rng, batch, length):
    mask = np.ones((batch, length), np.int32)
    for b in range(batch):
        real = int(rng.integers(1, length + 1))
        mask[b, real:] = 0
        n_glob = int(rng.integers(0, min(real, 20) + 1))
        mask[b, rng.choice(length, n_glob, replace=False)] *= 2
    return mask


@pytest.mark.parametrize("seed", range(8))
def test_layer_equals_dense_oracle(seed):
    rng = np.random.default_rng(seed)
    window = int(rng.choice([2, 4, 6, 10, 16]))
    heads = int(rng.choice([1, 2, 3]))
    dim = int(rng.choice([4, 8]))
    batch, length = int(rng.integers(1, 4)), int(rng.integers(1, 60))
    layer = LongformerSelfAttention(num_heads=heads, head_dim=dim, attention_window=window,
                                    kernel_initializer="glorot_normal", bias_initializer="random_normal")
    hidden = rng.normal(size=(batch, length, heads * dim)).astype(np.float32)
    mask = random_mask(rng, batch, length)
    head_mask = rng.random(heads).astype(np.float32) if seed % 2 else None
    ours = layer(hidden, mask, head_mask=head_mask).numpy()
    want = dense_oracle(layer, hidden, mask, head_mask)
    real = mask != 0
    np.testing.assert_allclose(ours[real], want[real], atol=2e-5, rtol=1e-4)
    # a padded query sees nothing: its attention output is 0, so the output is the projection bias
    np.testing.assert_allclose(ours[~real], np.broadcast_to(layer.output_dense.bias.numpy(), ours[~real].shape),
                               atol=1e-6)


def test_band_mask_is_the_exact_window():
    w = 3
    m = band_mask(w).numpy()
    for r in range(w):
        for c in range(3 * w):
            assert m[r, c] == (abs((c - w) - r) <= w)


def test_three_blocks_layout():
    x = tf.reshape(tf.range(1, 7), [1, 6])
    blocks = three_blocks(x, 2).numpy()
    np.testing.assert_array_equal(blocks[0], [[0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 0, 0]])


def test_global_slots_in_position_order():
    is_global = tf.constant([[False, True, False, True, True], [False] * 5])
    index, ok = global_slots(is_global, 4)
    np.testing.assert_array_equal(index.numpy()[0, :3], [1, 3, 4])
    np.testing.assert_array_equal(ok.numpy(), [[True, True, True, False], [False] * 4])


def test_shapes_do_not_depend_on_the_data():
    """One graph serves batches with no, one and many global tokens (no retrace, same static shapes)."""
    layer = LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=4)
    hidden = tf.random.normal([2, 12, 8])
    layer(hidden, tf.ones([2, 12], tf.int32))
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, 8]), tf.TensorSpec([None, None], tf.int32)])
    def run(h, m):
        traces.append(1)
        return layer(h, m)

    for n_glob in (0, 1, 12):
        m = np.ones((2, 12), np.int32)
        m[:, :n_glob] = 2
        eager = layer(hidden, m)
        np.testing.assert_allclose(run(hidden, m).numpy(), eager.numpy(), atol=1e-6)
    assert len(traces) == 1
