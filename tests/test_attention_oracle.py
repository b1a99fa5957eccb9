"""The blocked band + global attention equals a dense attention with an explicit band + global mask."""

import numpy as np
import pytest
import tensorflow as tf

from oracle import dense_attention as dense_oracle
from oracle import random_mask
from tf_longformer.layers.attention import LongformerSelfAttention, band_mask, global_slots, three_blocks


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
