"""Dense masked oracles written from the definition (numpy, float64), with a model's or layer's own weights.

`dense_attention` is one Longformer self-attention layer; `dense_model` the whole encoder (embeddings, every
layer, LayerNorms, feed-forward): what the blocked band + global slots of the library must equal.
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf)


def dense_attention(layer, hidden, mask, head_mask=None):
    """Longformer self-attention, output projection included, for an int mask (0 pad, 1 local, 2 global).

    Local query i: its band `|i - j| <= w` of LOCAL keys plus every global key of the row, one softmax, local
    projections. Global query: every non-padded key, global projections. Padded query: nothing (0).
    """
    w = layer.attention_window // 2
    h = np.asarray(hidden, np.float64)
    heads, dim = layer.num_heads, layer.head_dim

    def proj(p):
        return np.einsum("bld,dhk->blhk", h, np.asarray(p.kernel.numpy(), np.float64)) + p.bias.numpy()

    q, k, v = proj(layer.query) / np.sqrt(dim), proj(layer.key), proj(layer.value)
    qg, kg, vg = proj(layer.query_global) / np.sqrt(dim), proj(layer.key_global), proj(layer.value_global)
    batch, length = mask.shape
    out = np.zeros((batch, length, heads, dim))
    hm = np.ones(heads) if head_mask is None else np.asarray(head_mask, np.float64)
    for b in range(batch):
        for i in range(length):
            if mask[b, i] == 0:
                continue
            if mask[b, i] == 2:
                keys = [j for j in range(length) if mask[b, j] != 0]
                s = np.einsum("hd,jhd->hj", qg[b, i], kg[b, keys])
                vals = vg[b, keys]
            else:
                keys = [j for j in range(length) if (mask[b, j] == 1 and abs(i - j) <= w) or mask[b, j] == 2]
                s = np.einsum("hd,jhd->hj", q[b, i], k[b, keys])
                vals = v[b, keys]
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            p *= hm[:, None]
            out[b, i] = np.einsum("hj,jhd->hd", p, vals)
    kernel = np.asarray(layer.output_dense.kernel.numpy(), np.float64)
    return np.einsum("blhd,hdc->blc", out, kernel) + layer.output_dense.bias.numpy()


def layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * norm.gamma.numpy() + norm.beta.numpy()


def dense(x, layer):
    return x @ np.asarray(layer.kernel.numpy(), np.float64) + layer.bias.numpy()


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def roberta_positions(ids, pad):
    real = (ids != pad).astype(np.int64)
    return np.cumsum(real, axis=1) * real + pad


def dense_model(model, input_ids, attention_mask=None, global_attention_mask=None):
    """`last_hidden_state` of a Longformer (hidden_act "gelu"), dense and in float64, from its weights."""
    c = model.config
    assert c.hidden_act == "gelu", "the oracle implements the exact (erf) gelu only"
    ids = np.asarray(input_ids)
    am = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
    gm = np.zeros_like(ids) if global_attention_mask is None else np.asarray(global_attention_mask)
    merged = am * (gm + 1)
    e = model.embeddings
    x = (np.asarray(e.word_embeddings.embeddings.numpy(), np.float64)[ids]
         + e.position_embeddings.embeddings.numpy()[roberta_positions(ids, c.pad_token_id)]
         + e.token_type_embeddings.embeddings.numpy()[np.zeros_like(ids)])
    x = layer_norm(x, e.layer_norm)
    for layer in model.encoder.layers:
        a = layer_norm(x + dense_attention(layer.attention, x, merged), layer.attention_layer_norm)
        x = layer_norm(a + dense(gelu(dense(a, layer.intermediate_dense)), layer.output_dense), layer.output_layer_norm)
    return x


def random_mask(rng, batch, length):
    """An int mask (0 pad, 1 local, 2 global): each row padded at a random point, up to 20 random global tokens."""
    mask = np.ones((batch, length), np.int32)
    for b in range(batch):
        real = int(rng.integers(1, length + 1))
        mask[b, real:] = 0
        n_glob = int(rng.integers(0, min(real, 20) + 1))
        mask[b, rng.choice(length, n_glob, replace=False)] *= 2
    return mask
