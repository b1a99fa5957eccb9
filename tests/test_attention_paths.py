"""Every execution path of the attention (dense, chunked band, each global bucket, graph, XLA, training
dropout) gives the dense oracle's numbers."""

from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.layers import attention
from tf_longformer.layers.utils import stateless_keep
from tf_longformer.layers.attention import (
    add_global_keys,
    LongformerSelfAttention,
    band_attention,
    band_edges,
    band_layout,
    blocked_band_attention,
    dense_band_attention,
    piece_seed,
    stream_seed,
)

from oracle import dense_attention as dense_oracle
from oracle import random_mask

PATHS = {
    # name: constructor overrides
    "dense": dict(dense_max_length=10_000),
    "band": dict(dense_max_length=0),
    "band_small_chunks": dict(dense_max_length=0, chunk_queries=1),  # one block per loop step
    "band_odd_chunks": dict(dense_max_length=0, chunk_queries=5),  # last chunk overlaps the one before
    "band_full_blocks": dict(dense_max_length=0, block_queries=None, chunk_queries=7),
    # global rows with the key/value projections folded into their queries (or not), whatever "auto" picks
    "band_folded": dict(dense_max_length=0, fold_global_projections=True),
    "band_unfolded": dict(dense_max_length=0, fold_global_projections=False),
}


def make_layer(rng, window, heads, dim, **overrides):
    return LongformerSelfAttention(num_heads=heads, head_dim=dim, attention_window=window,
                                   kernel_initializer="glorot_normal", bias_initializer="random_normal",
                                   **overrides)


def check(layer, hidden, mask, head_mask=None, run=None):
    ours = (run or layer)(hidden, mask, head_mask=head_mask) if run is None else run(hidden, mask)
    ours = np.asarray(ours)
    want = dense_oracle(layer, hidden, mask, head_mask)
    real = mask != 0
    np.testing.assert_allclose(ours[real], want[real], atol=3e-5, rtol=1e-4)
    np.testing.assert_allclose(ours[~real], np.broadcast_to(layer.output_dense.bias.numpy(), ours[~real].shape),
                               atol=1e-6)


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("seed", range(4))
def test_each_path_equals_the_dense_oracle(path, seed):
    rng = np.random.default_rng(100 + seed)
    window = int(rng.choice([2, 4, 8, 12]))
    heads, dim = int(rng.choice([1, 2, 3])), 4
    batch, length = int(rng.integers(1, 4)), int(rng.integers(1, 70))
    overrides = dict(PATHS[path])
    if path == "band_full_blocks":
        overrides["block_queries"] = window // 2
    layer = make_layer(rng, window, heads, dim, **overrides)
    hidden = rng.normal(size=(batch, length, heads * dim)).astype(np.float32)
    mask = random_mask(rng, batch, length)
    check(layer, hidden, mask, head_mask=rng.random(heads).astype(np.float32) if seed % 2 else None)


@pytest.mark.parametrize("slots", ["dynamic", "static"])
@pytest.mark.parametrize("n_global", [0, 1, 3, 5, 9, 40])
@pytest.mark.parametrize("path", ["dense", "band", "band_folded", "band_unfolded"])
def test_every_global_bucket(path, n_global, slots, monkeypatch):
    """Buckets (2, 4, 8) and the full-length fallback: each branch is the oracle, with the batch's own number of
    slots (eager and graph mode) and with the static bucket sizes (what XLA runs; forced here in eager mode)."""
    monkeypatch.setattr(attention, "STATIC_SLOTS_EVERYWHERE", slots == "static")
    rng = np.random.default_rng(n_global)
    layer = make_layer(rng, 6, 2, 4, global_buckets=(2, 4, 8), **PATHS[path])
    hidden = rng.normal(size=(2, 45, 8)).astype(np.float32)
    mask = np.ones((2, 45), np.int32)
    mask[1, 40:] = 0
    mask[0, rng.choice(45, n_global, replace=False)] = 2
    check(layer, hidden, mask)


@pytest.mark.parametrize("jit", [False, True])
def test_graph_and_xla_with_unknown_length(jit):
    """One trace with an unknown length (the blocked path) serves every length and global count, under XLA too,
    and differentiates there."""
    rng = np.random.default_rng(7)
    layer = make_layer(rng, 4, 2, 4, dense_max_length=8, chunk_queries=4, global_buckets=(2,))
    layer(tf.zeros([1, 4, 8]), tf.ones([1, 4], tf.int32))
    spec = [tf.TensorSpec([None, None, 8]), tf.TensorSpec([None, None], tf.int32)]
    run = tf.function(lambda h, m: layer(h, m), input_signature=spec, jit_compile=jit)

    @tf.function(input_signature=spec, jit_compile=jit)
    def grad(h, m):
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = tf.reduce_sum(layer(h, m, training=True) ** 2)
        return tape.gradient(loss, h)

    cases = ((8, 1), (23, 0), (30, 7)) if jit else ((5, 0), (8, 1), (23, 0), (30, 2), (30, 7))
    for length, n_global in cases:
        hidden = rng.normal(size=(2, length, 8)).astype(np.float32)
        mask = np.ones((2, length), np.int32)
        mask[0, :n_global] = 2
        mask[1, length - 3:] = 0
        check(layer, hidden, mask, run=run)
        if not jit or n_global:  # XLA compiles the gradient once per shape: the bucket and the full-length cases
            assert np.all(np.isfinite(grad(hidden, mask).numpy()))


def _if_ops(graph_def, ops=("If", "StatelessIf")):
    return sum(n.op in ops for n in graph_def.node) + sum(
        n.op in ops for f in graph_def.library.function for n in f.node_def)


def test_paths_traced_outside_and_under_xla():
    """Outside XLA ONE `tf.switch_case` whose branches are "no global token" and one per run of buckets with the
    same fold choice (base size, default buckets: folded up to 16 global tokens, unfolded beyond: 3 branches),
    and one `tf.cond`, the band's own-key normaliser's fallback in the inference loop step; under XLA one
    `tf.cond` per bucket and one for the full length (4), no `Case`, and none in the band."""
    layer = LongformerSelfAttention(num_heads=12, head_dim=64, attention_window=8)
    layer(tf.zeros([1, 8, 768]), tf.ones([1, 8], tf.int32))
    spec = [tf.TensorSpec([None, None, 768]), tf.TensorSpec([None, None], tf.int32)]
    seen = {}
    for jit in (False, True):
        def probe(h, m, jit=jit):
            seen[jit] = attention.xla_context()
            return layer(h, m)
        graph = tf.function(probe, input_signature=spec, jit_compile=jit).get_concrete_function().graph
        seen[f"ifs-{jit}"] = _if_ops(graph.as_graph_def())
        cases = [n for n in graph.as_graph_def().node if n.op in ("Case", "StatelessCase")]
        seen[f"cases-{jit}"] = [len(n.attr["branches"].list.func) for n in cases]
    assert seen == {False: False, True: True, "ifs-False": 1, "ifs-True": 4, "cases-False": [3], "cases-True": []}
    assert not attention.xla_context()  # eager


def test_dynamic_slots_equal_static_buckets_in_graph_mode_with_gradients(monkeypatch):
    """The batch's own slot count (graph mode) and the static buckets give the same outputs and gradients, for
    every path of buckets (2, 8): none, folded runs, unfolded beyond."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, 4, 3, 4, dense_max_length=0, chunk_queries=4, global_buckets=(2, 8))
    hidden = tf.constant(rng.normal(size=(2, 29, 12)).astype(np.float32))
    spec = [tf.TensorSpec([None, None, 12]), tf.TensorSpec([None, None], tf.int32)]

    def make():
        @tf.function(input_signature=spec)
        def f(h, m):
            with tf.GradientTape() as tape:
                tape.watch(h)
                out = layer(h, m, training=True)
                loss = tf.reduce_sum(out * out)
            return out, tape.gradient(loss, [h] + layer.trainable_weights)
        return f

    masks = {}
    for n_global in (0, 1, 2, 5, 9, 20):
        masks[n_global] = np.ones((2, 29), np.int32)
        masks[n_global][0, rng.permutation(29)[:n_global]] = 2
        masks[n_global][1, 25:] = 0
    results = {}
    for static in (False, True):
        monkeypatch.setattr(attention, "STATIC_SLOTS_EVERYWHERE", static)
        f = make()
        results[static] = {n: f(hidden, tf.constant(mask)) for n, mask in masks.items()}
    for n in masks:
        (out_d, grads_d), (out_s, grads_s) = results[False][n], results[True][n]
        np.testing.assert_allclose(out_d.numpy(), out_s.numpy(), atol=2e-6, rtol=1e-5, err_msg=str(n))
        for a, b in zip(grads_d, grads_s):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, rtol=1e-5, err_msg=str(n))


def test_band_and_dense_functions_agree_and_differentiate():
    """The chunked band and the dense band give the same values, normalisers and gradients; merging the
    global keys' half gives the softmax over the union of the keys."""
    rng = np.random.default_rng(3)
    b, h, length, d, w = 2, 2, 24, 4, 4
    q, k, v = (tf.constant(rng.normal(size=(b, h, length, d)).astype(np.float32)) for _ in range(3))
    mask = np.ones((b, length), np.int32)
    mask[0, 17:] = 0
    mask[1, [2, 20]] = 2
    glob = tf.constant([[0, 0], [2, 20]])
    slot_ok = tf.constant([[False, False], [True, True]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([q, k, v])
        band, band_lse = blocked_band_attention(q, k, v, mask, w, block=2, chunk=6)
        dense, dense_lse = dense_band_attention(q, k, v, mask, w)
        kg, vg = tf.gather(k, glob, axis=2, batch_dims=1), tf.gather(v, glob, axis=2, batch_dims=1)
        merged = add_global_keys(band, band_lse, q, kg, vg, slot_ok)
        local = tf.cast(tf.equal(mask, 1), tf.float32)[:, None, :, None]
        lb, ld = tf.reduce_sum(band * local * v), tf.reduce_sum(dense * local * v)
    np.testing.assert_allclose((band * local).numpy(), (dense * local).numpy(), atol=1e-5)
    np.testing.assert_allclose((band_lse * local[..., 0]).numpy(), (dense_lse * local[..., 0]).numpy(), atol=1e-5)
    for x in (q, k, v):
        np.testing.assert_allclose(tape.gradient(lb, x).numpy(), tape.gradient(ld, x).numpy(), atol=1e-5)
    # the union softmax, written out
    pos = np.arange(length)
    keys = (np.abs(pos[:, None] - pos[None, :]) <= w)[None] & (mask == 1)[:, None, :] | (mask == 2)[:, None, :]
    scores = np.einsum("bhqd,bhkd->bhqk", q.numpy(), k.numpy())
    scores = np.where(keys[:, None], scores, -1e30)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    want = np.einsum("bhqk,bhkd->bhqd", p / p.sum(-1, keepdims=True), v.numpy())
    np.testing.assert_allclose((merged * local).numpy(), want * local.numpy(), atol=1e-5)


@pytest.mark.parametrize("path", ["dense", "band"])
def test_training_dropout_is_random_unbiased_and_off_at_inference(path):
    rng = np.random.default_rng(11)
    layer = make_layer(rng, 4, 2, 4, dropout=0.5, **PATHS[path])
    hidden = rng.normal(size=(1, 20, 8)).astype(np.float32)
    mask = np.ones((1, 20), np.int32)
    mask[0, 3] = 2
    check(layer, hidden, mask)  # training=None: no dropout
    train = tf.function(lambda: layer(hidden, mask, training=True))
    samples = np.stack([train().numpy() for _ in range(200)])
    assert not np.allclose(samples[0], samples[1])
    # unbiased: the mean of 200 draws is within 5 standard errors of the no-dropout output
    err = np.abs(samples.mean(0) - layer(hidden, mask).numpy())
    assert np.all(err <= 5 * samples.std(0) / np.sqrt(len(samples)) + 1e-5)


@pytest.mark.parametrize("rate", [0.0, 0.3])
@pytest.mark.parametrize("length,chunk", [(24, 6), (28, 8), (8, 16)])
def test_recomputing_gradient_equals_autodiff(rate, length, chunk):
    """The custom (recomputing) backward loop gives TensorFlow's own gradients of the forward loop, with
    dropout (the same stateless mask), an overlapping last chunk, padding, and the normaliser's gradient."""
    rng = np.random.default_rng(length + chunk)
    b, h, d, w = 2, 2, 4, 4
    q, k, v = (tf.constant(rng.normal(size=(b, h, length, d)).astype(np.float32)) for _ in range(3))
    mask = np.ones((b, length), np.int32)
    mask[0, length - 5:] = 0
    mask[1, 3] = 2
    seed = tf.constant([5, 7])
    up_out = tf.constant(rng.normal(size=(b, h, length, d)).astype(np.float32))
    up_lse = tf.constant(rng.normal(size=(b, h, length)).astype(np.float32))
    grads = []
    for recompute in (True, False):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out, lse = blocked_band_attention(q, k, v, mask, w, block=2, chunk=chunk, dropout_rate=rate, seed=seed,
                                        recompute=recompute)
            loss = tf.reduce_sum(out * up_out) + tf.reduce_sum(tf.maximum(lse, -50.0) * up_lse)
        grads.append([g.numpy() for g in tape.gradient(loss, [q, k, v])] + [out.numpy()])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_folded_global_projections_equal_the_unfolded_ones_with_gradients(jit):
    """Folding `key_global` / `value_global` into the global queries gives the same outputs and the same
    gradients (inputs and every weight) as projecting every token, in float32, also under XLA."""
    rng = np.random.default_rng(11)
    layers = {}
    for fold in (True, False):
        layers[fold] = make_layer(rng, 6, 3, 4, global_buckets=(4,), fold_global_projections=fold)
        layers[fold](tf.zeros([1, 6, 12]), tf.ones([1, 6], tf.int32))
    layers[False].set_weights(layers[True].get_weights())
    hidden = tf.constant(rng.normal(size=(2, 37, 12)).astype(np.float32))
    mask = np.ones((2, 37), np.int32)
    mask[0, [0, 9, 30]] = 2
    mask[1, 0] = 2
    mask[1, 33:] = 0
    mask = tf.constant(mask)
    target = tf.constant(rng.normal(size=(2, 37, 12)).astype(np.float32))

    def run(layer):
        @tf.function(jit_compile=jit)
        def f():
            with tf.GradientTape() as tape:
                tape.watch(hidden)
                out = layer(hidden, mask)
                loss = tf.reduce_sum((out - target) ** 2)
            return out, tape.gradient(loss, [hidden] + layer.trainable_weights)
        return f()

    (out_f, grads_f), (out_u, grads_u) = run(layers[True]), run(layers[False])
    np.testing.assert_allclose(out_f.numpy(), out_u.numpy(), atol=1e-5)
    for name, a, b in zip(["hidden"] + [w.path for w in layers[True].trainable_weights], grads_f, grads_u):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)
    names = [w.path for w in layers[True].trainable_weights]
    folded = next(i for i, n in enumerate(names) if "key_global" in n and "kernel" in n)
    assert float(np.abs(grads_f[1 + folded].numpy()).max()) > 0  # the folded weights do get gradients


def test_fold_choice_follows_the_flop_count():
    layer = LongformerSelfAttention(num_heads=12, head_dim=64, attention_window=512)
    assert layer._folds_global_projections(16) and not layer._folds_global_projections(128)
    assert not layer._folds_global_projections(0)
    with pytest.raises(ValueError, match="fold_global_projections"):
        LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=4, fold_global_projections="yes")


@pytest.mark.parametrize("path", ["dense", "band", "band_small_chunks"])
def test_every_dropout_mask_of_a_call_has_its_own_seed(monkeypatch, path):
    """One training call draws each stateless dropout mask (every band piece of every chunk, the global keys) with
    its own seed. `stream_seed` folds the call's seed; the old `seed + offset` gave the global keys the seed of the
    band's first piece in the first chunk, so those two masks were the same."""
    drawn = []
    real = tf.random.stateless_uniform

    def recording(shape, seed, *args, **kwargs):
        drawn.append(tuple(int(x) for x in np.asarray(seed)))  # eager: every seed is a value
        return real(shape, seed, *args, **kwargs)

    monkeypatch.setattr(tf.random, "stateless_uniform", recording)
    rng = np.random.default_rng(3)
    layer = make_layer(rng, 8, 2, 4, dropout=0.2, **PATHS[path])
    hidden = tf.constant(rng.normal(size=(2, 40, 8)).astype(np.float32))
    mask = np.ones((2, 40), np.int32)
    mask[0, [0, 17]] = 2
    mask[1, 35:] = 0
    layer(hidden, tf.constant(mask), training=True)
    if path == "dense":
        assert len(drawn) >= 2  # the band, the global keys (and whatever Keras' own dropout draws)
    else:
        assert len(drawn) >= 2 * 2 * 5 + 1  # >= one chunk per (row, head), 5 pieces each, and the global keys
    repeated = {s: n for s, n in Counter(drawn).items() if n > 1}
    assert not repeated, f"{len(repeated)} seeds drawn more than once: {repeated}"


def test_stream_seeds_are_distinct_and_reproducible():
    seed = tf.constant([5, 7], tf.int32)
    band = stream_seed(seed, "band")
    seeds = [tuple(stream_seed(seed, "global_keys").numpy()), tuple(band.numpy())]
    seeds += [tuple(piece_seed(band, p).numpy()) for p in range(200)]
    assert len(set(seeds)) == len(seeds)
    assert tuple(piece_seed(band, tf.constant(7)).numpy()) == seeds[2 + 7]  # a tensor piece: the same seed
    graph = tf.function(lambda s: piece_seed(stream_seed(s, "band"), 7), jit_compile=True)
    assert tuple(graph(seed).numpy()) == seeds[2 + 7]
    with pytest.raises(KeyError):
        stream_seed(seed, "no such stream")


def test_band_attention_picks_dense_or_blocked_by_static_length(monkeypatch):
    """`band_attention` is the band's one entry point: the dense product up to `dense_max_length`, the blocked loop
    beyond it and for an unknown length; both give the same numbers."""
    rng = np.random.default_rng(5)
    b, h, length, d, w = 2, 2, 16, 4, 4
    q, k, v = (tf.constant(rng.normal(size=(b, h, length, d)).astype(np.float32)) for _ in range(3))
    mask = np.ones((b, length), np.int32)
    mask[0, 13:] = 0
    mask[1, 5] = 2
    called = []
    for name in ("dense_band_attention", "blocked_band_attention"):
        real = getattr(attention, name)
        monkeypatch.setattr(attention, name,
                            lambda *a, real=real, name=name, **kw: called.append(name) or real(*a, **kw))
    dense = band_attention(q, k, v, mask, w, dense_max_length=16)
    blocked = band_attention(q, k, v, mask, w, dense_max_length=15, block=2, chunk=6)
    spec = [tf.TensorSpec([b, h, None, d])] * 3
    run = tf.function(lambda q, k, v: band_attention(q, k, v, mask, w, dense_max_length=10**6), input_signature=spec)
    unknown = run(q, k, v)
    assert called == ["dense_band_attention", "blocked_band_attention", "blocked_band_attention"]
    local = np.broadcast_to((mask == 1)[:, None, :], (b, h, length))
    for out, lse in (blocked, unknown):
        np.testing.assert_allclose(out.numpy()[local], dense[0].numpy()[local], atol=1e-5)
        np.testing.assert_allclose(lse.numpy()[local], dense[1].numpy()[local], atol=1e-5)


@pytest.mark.parametrize("length,chunk", [(28, 8), (24, 8), (6, 16), (8, 2)])
def test_band_layout_covers_every_position_once(length, chunk):
    """Every position is owned by exactly one chunk, which contains it; `pick` finds its row in the stacked
    chunk outputs; the last chunk ends at the (padded) length."""
    lay = band_layout(tf.zeros([1, 2, length, 4]), 4, 2, chunk)
    starts, owner, pick = lay.starts.numpy(), lay.owner.numpy(), lay.pick.numpy()
    assert lay.full == max(length, lay.size) and starts[-1] + lay.size == lay.full
    assert lay.overlap == bool(lay.full % lay.size) and len(starts) == lay.num_chunks
    pos = np.arange(lay.full)
    assert np.all((starts[owner] <= pos) & (pos < starts[owner] + lay.size))
    np.testing.assert_array_equal(pick, owner * lay.size + pos - starts[owner])


@pytest.mark.parametrize("length", [8, 24, 28, 64])
def test_band_layout_of_an_unknown_length_is_cut_to_it(length):
    """A length unknown at trace time (`padded_batch`, a serving signature) gets the layout a known length
    gets: the chunk cut to the length at run time, so a row shorter than `chunk` queries does not pay for the
    whole chunk (it did 4x the work at 512 tokens with 2048-query chunks)."""
    chunk = 32
    known = band_layout(tf.zeros([1, 2, length, 4]), 4, 2, chunk)
    seen = {}

    @tf.function(input_signature=[tf.TensorSpec([1, 2, None, 4])])
    def layout(q):
        lay = band_layout(q, 4, 2, chunk)
        assert not isinstance(lay.nc, int)  # a run-time size
        return lay.nc, lay.size, lay.full, lay.num_chunks, lay.starts, lay.pick

    nc, size, full, num_chunks, starts, pick = (x.numpy() for x in layout(tf.zeros([1, 2, length, 4])))
    assert (nc, size, full, num_chunks) == (known.nc, known.size, known.full, int(known.num_chunks))
    assert full == length  # no query computed past the row
    np.testing.assert_array_equal(starts, known.starts.numpy())
    np.testing.assert_array_equal(pick, known.pick.numpy())


@pytest.mark.parametrize("length", [16, 48, 72])
def test_blocked_band_of_an_unknown_length_equals_the_known_one(length):
    """Values and gradients of the blocked band traced with the length unknown (run-time chunk) equal those
    traced with it known, with dropout (the same stateless masks) and masked keys."""
    rng = np.random.default_rng(length)
    b, h, d, w = 2, 2, 4, 8
    q, k, v = (tf.constant(rng.normal(size=(b, h, length, d)), tf.float32) for _ in range(3))
    mask = np.ones((b, length), np.int32)
    mask[1, -5:] = 0
    mask[0, 3] = 2
    mask = tf.constant(mask)
    seed = tf.constant([3, 4], tf.int32)

    def loss_and_grads(q, k, v, m):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out, lse = blocked_band_attention(q, k, v, m, w, block=4, chunk=16, dropout_rate=0.2, seed=seed)
            loss = tf.reduce_sum(out * tf.cos(out)) + tf.reduce_sum(tf.where(lse > -1e29, lse, 0.0) * 0.1)
        return (out, lse, *tape.gradient(loss, [q, k, v]))

    spec = [tf.TensorSpec([b, h, None, d])] * 3 + [tf.TensorSpec([b, None], tf.int32)]
    unknown = tf.function(loss_and_grads, input_signature=spec)(q, k, v, mask)
    known = tf.function(loss_and_grads)(q, k, v, mask)
    for a, e in zip(unknown, known):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("w,block", [(4, 2), (6, 3), (4, 4), (6, 1)])
def test_band_pieces_cover_exactly_the_window(w, block):
    """Piece `j` holds the keys at offsets `(j - s) * block + c - r`; with `band_edges` on the end pieces, the
    pieces let through exactly the offsets in `[-w, w]`, each once."""
    s = w // block
    edges = {j: e.numpy() == 0 for j, e in band_edges(block, s).items()}
    r, c = np.arange(block)[:, None], np.arange(block)[None, :]
    seen = []
    for j in range(2 * s + 1):
        offset = (j - s) * block + c - r
        allowed = edges.get(j, np.ones((block, block), bool))
        np.testing.assert_array_equal(allowed, np.abs(offset) <= w, err_msg=f"piece {j}")
        seen += [(int(q), int(offset[q, key])) for q, key in zip(*np.nonzero(allowed))]
    assert sorted(seen) == sorted({(q, o) for q in range(block) for o in range(-w, w + 1)})


PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")


def _bypass_case(path):
    rng = np.random.default_rng(21)
    layer = make_layer(rng, 4, 2, 4, global_buckets=(4,), **PATHS[path])
    hidden = rng.normal(size=(2, 21, 8)).astype(np.float32)
    mask = np.ones((2, 21), np.int32)
    mask[0, [3, 11]] = 2
    mask[1, 18:] = 0
    return rng, layer, hidden, mask


@pytest.mark.parametrize("path", ["dense", "band_folded", "band_unfolded"])
def test_the_fast_path_applies_lora_of_every_projection(path):
    """LoRA enabled on the projections changes the fast path's output to the merged kernels' (the oracle reads
    `kernel`, which Keras merges LoRA into), folded global projections included."""
    rng, layer, hidden, mask = _bypass_case(path)
    before = layer(hidden, mask).numpy()
    for name in PROJECTIONS:
        proj = getattr(layer, name)
        proj.enable_lora(2)
        proj.lora_kernel_b.assign(rng.normal(size=proj.lora_kernel_b.shape).astype(np.float32))
    check(layer, hidden, mask)
    assert np.abs(layer(hidden, mask).numpy() - before).max() > 0.1


@pytest.mark.parametrize("path", ["dense", "band_folded", "band_unfolded"])
def test_the_fast_path_calls_quantized_projections(path):
    """int8-quantized projections: the fast path gives the inspection path's numbers (which calls the layers), so
    it calls them too instead of multiplying by their stored (int8) kernels."""
    _, layer, hidden, mask = _bypass_case(path)
    plain = layer(hidden, mask).numpy()
    for name in PROJECTIONS:
        getattr(layer, name).quantize("int8")
    fast = layer(hidden, mask).numpy()
    inspect = layer(hidden, mask, return_attention_scores=True)[0].numpy()
    np.testing.assert_allclose(fast, inspect, atol=1e-4, rtol=1e-4)
    assert np.abs(fast - plain).max() < 0.1  # int8 rounding, not int8 values taken as floats


def test_global_keys_widen_the_band_with_the_gradients_of_the_softmax_halves():
    """`add_global_keys` (the band's share and the slots' probabilities from the union's normaliser) and the select
    that zeroes non-local rows give the values and gradients of the previous forms (the slots' own softmax half,
    merged with the band's by their log-normalisers; a product with a 0/1 mask) to 1e-5, with dropout the same
    numbers as dropout on the slots' half; and the global path's `tf.cond` branch keeps two full-size tensors fewer."""
    rng = np.random.default_rng(5)
    b, h, n, d, slots = 2, 3, 40, 8, 3
    band, q = (tf.constant(rng.normal(size=(b, h, n, d)).astype(np.float32)) for _ in range(2))
    kg, vg = (tf.constant(rng.normal(size=(b, h, slots, d)).astype(np.float32)) for _ in range(2))
    band_lse = tf.constant(rng.normal(size=(b, h, n)).astype(np.float32) * 3)
    slot_ok = tf.constant([[True, True, False], [True, False, False]])
    local = tf.constant(rng.random((b, n)) < 0.7)[:, None, :, None]
    weights = tf.constant(rng.normal(size=(b, h, n, d)).astype(np.float32))
    seed = tf.constant([3, 4], tf.int32)

    def previous(band, band_lse, q, kg, vg, rate):
        scores = tf.matmul(q, kg, transpose_b=True) + tf.where(slot_ok, 0.0, -1e30)[:, None, None, :]
        m = tf.reduce_max(scores, -1, keepdims=True)
        e = tf.exp(scores - m)
        total = tf.reduce_sum(e, -1, keepdims=True)
        if rate:
            keep = stateless_keep(tf.shape(e), seed, rate)
            e = tf.where(keep, e / (1 - rate), 0.0)
        glob, glob_lse = tf.matmul(e, vg) / total, (m + tf.math.log(total))[..., 0]
        top = tf.maximum(band_lse, glob_lse)
        wa, wb = tf.exp(band_lse - top)[..., None], tf.exp(glob_lse - top)[..., None]
        return (band * wa + glob * wb) / (wa + wb) * tf.cast(local, tf.float32)

    def current(band, band_lse, q, kg, vg, rate):
        out = add_global_keys(band, band_lse, q, kg, vg, slot_ok, rate, seed if rate else None)
        return tf.where(local, out, tf.zeros([], tf.float32))

    for rate in (0.0, 0.4):
        results = []
        for fn in (previous, current):
            with tf.GradientTape() as tape:
                inputs = [band, band_lse, q, kg, vg]
                tape.watch(inputs)
                y = fn(*inputs, rate)
                loss = tf.reduce_sum(y * weights)
            results.append([y] + tape.gradient(loss, inputs))
        for x, y in zip(*results):
            np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-5)

    # what the taken branch of a global path keeps for the backward pass (its intermediates of static size)
    layer = LongformerSelfAttention(num_heads=2, head_dim=4, attention_window=4, dense_max_length=0)
    hidden = tf.constant(rng.normal(size=(1, 32, 8)).astype(np.float32))
    mask = tf.constant(np.r_[[2], np.ones(31)].astype(np.int32)[None])
    layer(hidden, mask)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(hidden, mask, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    graph = step.get_concrete_function().graph
    full = 0  # kept intermediates of (batch, heads, length, dim) or (batch, length, heads, dim) size
    for op in graph.get_operations():  # the global paths: the branches of one `Case` (outside XLA)
        if op.type in ("Case", "StatelessCase") and not op.name.startswith("gradient_tape"):
            for name in op.get_attr("branches"):
                branch = graph._get_function(name.name).graph
                for t in branch.outputs:
                    if t.op.type == "OptionalFromValue" and t.op.inputs[0].shape.is_fully_defined():
                        full += t.op.inputs[0].shape.as_list() in ([1, 2, 32, 4], [1, 32, 2, 4])
    # 2: the global rows' keys and values of every token (unfolded here: 32 tokens; their products' gradients read
    # them). The band's output, read by the gradient of its share, comes from outside the branch. Before: also the
    # slots' softmax half and its unnormalised product (4), and before that the merged numerator and the unmasked
    # transposed output (6)
    assert full == 2, full
