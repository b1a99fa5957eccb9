"""Longformer self-attention: a sliding window computed in non-overlapping blocks, plus global attention.

The maths lives in small functions that tests call directly; `LongformerSelfAttention` is a thin Keras
layer around them.

Layout conventions (all functions):
- `q, k, v`: `(batch, length, heads, head_dim)`; `length` is a multiple of the one-sided window `w`.
- `mask`: int `(batch, length)`, 0 = padding, 1 = local, 2 = global (the merged Longformer mask).

The band: queries are cut into blocks of `w`; each block attends to the previous, its own and the next key
block (`3w` keys), masked to the exact window `|i - j| <= w`. The global tokens of a row are gathered into
`G` "slots" (a STATIC number, chosen among a few buckets by the batch's largest global count), so no shape
ever depends on the data: graph mode, XLA and SavedModel see one code path.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer.layers.utils import clone_initializer, serializable

# Global-slot buckets: the attention is run with the smallest bucket that holds every row's global tokens;
# the last resort is the (padded) length itself, which always fits.
DEFAULT_GLOBAL_BUCKETS = (16, 128, 512)
_NEG = -1e30  # masked scores, in float32 (the softmax always runs in float32)


# ----------------------------------------------------------------------------------------------------- helpers
def pad_axis(x, multiple, axis=1, value=0):
    """Right-pads `x` along `axis` to a multiple of `multiple` (a pad of 0 when already aligned)."""
    length = tf.shape(x)[axis]
    extra = (-length) % multiple
    paddings = [[0, 0]] * len(x.shape)
    paddings[axis] = [0, extra]
    return tf.pad(x, paddings, constant_values=tf.cast(value, x.dtype))


def band_mask(w):
    """Static `(w, 3w)` boolean mask: query `r` of a block may see key `c` of its 3-block key window.

    Key `c` sits at relative offset `c - w - r` from the query; the window keeps offsets in `[-w, w]`.
    """
    r = tf.range(w)[:, None]
    c = tf.range(3 * w)[None, :]
    d = c - r
    return (d >= 0) & (d <= 2 * w)


def three_blocks(x, w, pad_value=0):
    """`(batch, n*w, ...)` -> `(batch, n, 3w, ...)`: for block `i`, blocks `i-1`, `i`, `i+1` side by side."""
    rest = tf.shape(x)[2:]
    paddings = [[0, 0], [w, w]] + [[0, 0]] * (len(x.shape) - 2)
    xp = tf.pad(x, paddings, constant_values=tf.cast(pad_value, x.dtype))
    batch = tf.shape(x)[0]
    blocks = tf.reshape(xp, tf.concat([[batch, -1, w], rest], 0))
    return tf.concat([blocks[:, :-2], blocks[:, 1:-1], blocks[:, 2:]], axis=2)


def global_slots(is_global, num_slots):
    """Positions of each row's global tokens, in order, in `num_slots` static slots.

    Returns `(index, slot_ok)`: `index` `(batch, num_slots)` int32 positions (arbitrary where the slot is
    empty) and `slot_ok` `(batch, num_slots)` bool.
    """
    length = tf.shape(is_global)[1]
    pos = tf.range(length)
    # Global positions first (ascending), then the others (ascending): top_k of a strictly ordered key.
    key = tf.where(is_global, pos, pos + length)
    index = tf.math.top_k(-tf.cast(key, tf.float32), k=num_slots, sorted=True).indices
    count = tf.reduce_sum(tf.cast(is_global, tf.int32), axis=1)
    slot_ok = tf.range(num_slots)[None, :] < count[:, None]
    return index, slot_ok


def masked_softmax(scores, mask):
    """Softmax over the last axis in float32; masked entries get exactly 0 (all-masked rows: all 0)."""
    scores = tf.cast(scores, tf.float32)
    probs = tf.nn.softmax(tf.where(mask, scores, _NEG), axis=-1)
    return tf.where(mask, probs, 0.0)


def local_attention(q, k, v, mask, w, index, slot_ok, head_mask=None, dropout=None, return_probs=False):
    """Attention of every local query: its band (local keys only) and the row's global keys, one softmax.

    `q` must already be scaled; `index, slot_ok` come from `global_slots`. Returns
    `out (batch, length, heads, head_dim)` and, if asked, the float32 probs
    `(batch, n_blocks, heads, w, slots + 3w)` (global slots first).
    """
    batch, length = tf.shape(q)[0], tf.shape(q)[1]
    heads, dim = q.shape[2], q.shape[3]
    n = length // w
    num_slots = tf.shape(index)[1]
    local_key = tf.equal(mask, 1)  # global keys reach local queries through the global slots instead

    qb = tf.reshape(q, [batch, n, w, heads, dim])
    kb = three_blocks(k, w)
    vb = three_blocks(v, w)
    band_scores = tf.einsum("bnqhd,bnkhd->bnhqk", qb, kb)
    kg = tf.gather(k, index, batch_dims=1)
    vg = tf.gather(v, index, batch_dims=1)
    glob_scores = tf.einsum("bnqhd,bghd->bnhqg", qb, kg)

    key_ok = three_blocks(local_key, w, pad_value=False)  # (b, n, 3w)
    band_ok = band_mask(w)[None, None, None] & key_ok[:, :, None, None, :]
    glob_ok = tf.broadcast_to(slot_ok[:, None, None, None, :], [batch, n, 1, w, num_slots])
    ok = tf.concat([glob_ok, band_ok], axis=-1)
    query_ok = tf.reshape(tf.equal(mask, 1), [batch, n, 1, w, 1])
    ok = ok & query_ok  # padded and global query rows: all 0 (global rows are recomputed elsewhere)

    probs = masked_softmax(tf.concat([glob_scores, band_scores], axis=-1), ok)
    if head_mask is not None:
        probs = probs * tf.cast(head_mask, tf.float32)[None, None, :, None, None]
    used = probs if dropout is None else dropout(probs)
    used = tf.cast(used, v.dtype)
    used_glob, used_band = used[..., :num_slots], used[..., num_slots:]
    out = tf.einsum("bnhqg,bghd->bnqhd", used_glob, vg) + tf.einsum("bnhqk,bnkhd->bnqhd", used_band, vb)
    out = tf.reshape(out, [batch, length, heads, dim])
    if return_probs:
        return out, probs
    return out


def global_attention(qg, kg, vg, mask, slot_ok, head_mask=None, dropout=None):
    """Attention of the global tokens (already gathered into slots) to every non-padded token of the row.

    `qg`: `(batch, slots, heads, dim)` (scaled), `kg`, `vg`: `(batch, length, heads, dim)`.
    Returns `out (batch, slots, heads, dim)` and probs `(batch, heads, slots, length)` (0 for empty slots).
    """
    scores = tf.einsum("bghd,blhd->bhgl", qg, kg)
    ok = tf.not_equal(mask, 0)[:, None, None, :] & slot_ok[:, None, :, None]
    probs = masked_softmax(scores, ok)
    if head_mask is not None:
        probs = probs * tf.cast(head_mask, tf.float32)[None, :, None, None]
    used = probs if dropout is None else dropout(probs)
    out = tf.einsum("bhgl,blhd->bghd", tf.cast(used, vg.dtype), vg)
    return out, probs


def scatter_slots(values, is_global, local_out):
    """Puts the slot outputs `(batch, slots, ...)` back at their global positions of `local_out`."""
    slot = tf.maximum(tf.cumsum(tf.cast(is_global, tf.int32), axis=1) - 1, 0)
    slot = tf.minimum(slot, tf.shape(values)[1] - 1)
    placed = tf.gather(values, slot, batch_dims=1)
    cond = tf.reshape(is_global, tf.concat([tf.shape(is_global), tf.ones([len(local_out.shape) - 2], tf.int32)], 0))
    return tf.where(cond, placed, local_out)


def band_to_relative(probs_band, w):
    """`(batch, n, heads, w, 3w)` block-layout band probs -> `(batch, heads, n*w, 2w+1)` by relative offset."""
    idx = tf.range(w)[:, None] + tf.range(2 * w + 1)[None, :]  # query r, offset j-w  ->  key column r + j
    by_query = tf.transpose(probs_band, [3, 4, 0, 1, 2])  # (w, 3w, b, n, h)
    rel = tf.gather(by_query, idx, axis=1, batch_dims=1)  # (w, 2w+1, b, n, h)
    rel = tf.transpose(rel, [2, 4, 3, 0, 1])  # (b, h, n, w, 2w+1)
    shape = tf.shape(rel)
    return tf.reshape(rel, [shape[0], shape[1], shape[2] * w, 2 * w + 1])


# ------------------------------------------------------------------------------------------------------ layer
@serializable
class LongformerSelfAttention(keras.layers.Layer):
    """Longformer attention block: sliding window + global attention, heads merged and projected.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head.
        attention_window: the FULL window (even); each token sees `attention_window // 2` on each side.
        dropout: dropout rate on the attention probabilities (local and global).
        global_buckets: static global-slot counts tried before falling back to the full length.
        kernel_initializer, bias_initializer: for the eight projections.

    Call arguments:
        hidden_states: `(batch, length, hidden)`, any length (padded to the window internally).
        attention_mask: int `(batch, length)`: 0 padding, 1 local, 2 global.
        head_mask: optional `(num_heads,)` multiplier of the attention probabilities.
        return_attention_scores: also return `(attentions, global_attentions)` in the Hugging Face layout
            (`(batch, heads, length, x + window + 1)` and `(batch, heads, length, x)`, x = the batch's
            largest global count).

    Example (functional model):

    >>> import keras
    >>> ids = keras.Input((None, 32)); m = keras.Input((None,), dtype="int32")
    >>> y = LongformerSelfAttention(num_heads=4, head_dim=8, attention_window=4)(ids, m)
    >>> tuple(y.shape)
    (None, None, 32)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        attention_window,
        dropout=0.0,
        global_buckets=DEFAULT_GLOBAL_BUCKETS,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(attention_window, int) or attention_window <= 0 or attention_window % 2:
            raise ValueError(f"`attention_window` must be a positive even integer, got {attention_window!r}.")
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"`num_heads` must be a positive integer, got {num_heads!r}.")
        if not isinstance(head_dim, int) or head_dim <= 0:
            raise ValueError(f"`head_dim` must be a positive integer, got {head_dim!r}.")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.attention_window = attention_window
        self.dropout = dropout
        self.global_buckets = tuple(int(b) for b in global_buckets)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = False

    @property
    def one_sided_window(self):
        return self.attention_window // 2

    def _projection(self, name):
        return keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, self.num_heads, self.head_dim),
            bias_axes="de",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, hidden_states_shape, attention_mask_shape=None):
        hidden_shape = hidden_states_shape
        hidden = hidden_shape[-1]
        names = ("query", "key", "value", "query_global", "key_global", "value_global")
        for name in names:
            layer = self._projection(name)
            layer.build(hidden_shape)
            setattr(self, name, layer)
        self.output_dense = keras.layers.EinsumDense(
            "abde,dec->abc",
            output_shape=(None, hidden),
            bias_axes="c",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.probs_dropout = keras.layers.Dropout(self.dropout, dtype="float32", name="probs_dropout")
        self.global_probs_dropout = keras.layers.Dropout(self.dropout, dtype="float32", name="global_probs_dropout")
        self.built = True

    def call(self, hidden_states, attention_mask, head_mask=None, training=None, return_attention_scores=False):
        w = self.one_sided_window
        length = tf.shape(hidden_states)[1]
        mask = tf.cast(attention_mask, tf.int32)
        hidden = pad_axis(hidden_states, w)
        mask = pad_axis(mask, w)
        padded = tf.shape(hidden)[1]
        scale = tf.cast(1.0 / (self.head_dim**0.5), self.compute_dtype)

        q = self.query(hidden) * scale
        k = self.key(hidden)
        v = self.value(hidden)
        kg_all = self.key_global(hidden)
        vg_all = self.value_global(hidden)
        is_global = tf.equal(mask, 2)
        max_count = tf.reduce_max(tf.reduce_sum(tf.cast(is_global, tf.int32), axis=1))

        def drop(layer):
            return lambda p: layer(p, training=training)

        def attend(num_slots, return_probs=False):
            index, slot_ok = global_slots(is_global, num_slots)
            local = local_attention(
                q, k, v, mask, w, index, slot_ok, head_mask, drop(self.probs_dropout), return_probs=return_probs
            )
            local_out, probs = local if return_probs else (local, None)
            hg = tf.gather(hidden, index, batch_dims=1)
            qg = self.query_global(hg) * scale
            gout, gprobs = global_attention(
                qg, kg_all, vg_all, mask, slot_ok, head_mask, drop(self.global_probs_dropout)
            )
            out = scatter_slots(gout, is_global, local_out)
            return (out, probs, gprobs) if return_probs else out

        if return_attention_scores:
            # Inspection path: every position is a possible slot, so the width x is cut from one layout.
            out, probs, gprobs = attend(padded, return_probs=True)
            attentions, global_attentions = self._hf_layout(probs, gprobs, mask, max_count, length)
        else:
            out = self._bucketed(attend, padded, max_count)
        out = self.output_dense(out)[:, :length]
        if return_attention_scores:
            return out, attentions, global_attentions
        return out

    def _bucketed(self, attend, padded, max_count):
        static_len = tf.get_static_value(padded)
        buckets = [b for b in self.global_buckets if static_len is None or b < static_len]
        sizes = [tf.minimum(b, padded) for b in buckets] + [padded]
        if not buckets:
            return attend(padded)
        branch = tf.reduce_sum(tf.cast(max_count > tf.constant(buckets, tf.int32), tf.int32))
        return tf.switch_case(branch, [lambda s=s: attend(s) for s in sizes])

    def _hf_layout(self, probs, gprobs, mask, max_count, length):
        w = self.one_sided_window
        slots = tf.shape(gprobs)[2]
        glob = probs[..., :slots]  # (b, n, h, w, slots)
        shape = tf.shape(glob)
        glob = tf.reshape(tf.transpose(glob, [0, 2, 1, 3, 4]), [shape[0], shape[2], shape[1] * w, slots])
        band = band_to_relative(probs[..., slots:], w)
        attentions = tf.concat([glob[..., :max_count], band], axis=-1)[:, :, :length]
        global_attentions = tf.transpose(gprobs[:, :, :max_count, :length], [0, 1, 3, 2])
        return attentions, global_attentions

    def compute_output_shape(self, hidden_states_shape, attention_mask_shape=None):
        hidden_shape = hidden_states_shape
        return hidden_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            attention_window=self.attention_window,
            dropout=self.dropout,
            global_buckets=list(self.global_buckets),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
