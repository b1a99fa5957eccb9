"""Longformer self-attention: a sliding window (the band) plus global attention, as one Keras layer.

Two paths compute it, with the same numbers (the tests check the fast one against a dense masked oracle, and
both against the PyTorch reference):
- The fast path (`LongformerSelfAttention.call`), heads in front, `(batch, heads, length, head_dim)`. The band
  has ONE entry point, `band_attention`, which picks at trace time between `dense_band_attention` (one masked
  product, padded lengths up to `dense_max_length`) and `blocked_band_attention` (queries in blocks of `block`, a
  divisor of the one-sided window `w`, each block against the `2s+1` key blocks, `s = w // block`, that cover
  its exact window `|i - j| <= w`; every key block a slice of the keys (a view); a chunk of queries per loop
  step so the scores stay in the CPU cache; a recomputing backward pass). Local queries also attend to the
  row's global keys (`add_global_keys`: the band's softmax widened to them through its log-normaliser); global
  queries attend to every token with their own projections.
- The inspection path (`_call_inspect`, used only with `return_attention_scores=True`, i.e. `output_attentions`),
  `(batch, length, heads, head_dim)`: `inspect_local_attention` (blocks of `w` against three key blocks,
  `three_blocks`) and `inspect_global_attention` keep the probabilities, returned in the Hugging Face layout.
  It is written for clarity, not speed.

Both paths call the projection layers themselves (`self.query(hidden)`, ...), so what Keras does inside them
(LoRA, quantization) applies; the one exception, the folded global key/value projections, is explained at
`LongformerSelfAttention._folds_global_projections`.

`mask` everywhere: int `(batch, length)`, 0 = padding, 1 = local, 2 = global. The global tokens of a row are
gathered into `G` slots. Under XLA, `G` is a STATIC number chosen among a few buckets by the batch's largest global
count (a chain of `tf.cond`), so no shape depends on the data. Elsewhere (eager, graph mode, SavedModel) `G` is the
batch's own largest global count, and the buckets only say where the global rows switch between folded and
unfolded projections: one path per switch, not one per bucket (see `LongformerSelfAttention._bucketed`). Either
way one trace serves every length and global count.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tf_longformer.layers.utils import (RNG_ALG, Dropout, after_gradient, clone_initializer, dense_product,
                                        generator_seed, onednn_enabled, serializable, stateless_keep, xla_context)

# Global-slot buckets: under XLA the attention is run with the smallest bucket that holds every row's global
# tokens (static shapes); the last resort is the (padded) length itself, which always fits. Outside XLA the slots
# are the batch's own count, and the buckets only mark where folding the global projections stops paying.
DEFAULT_GLOBAL_BUCKETS = (16, 128, 512)
# Tests set this to True to run the static bucket chain (XLA's) in eager and graph mode too.
STATIC_SLOTS_EVERYWHERE = False
# Which global-token paths recompute their intermediates in the backward pass (see `_recomputed`): "static" (the
# static paths, XLA's: their `tf.cond` gradients would carry every branch's intermediates), "always" or "never"
# (tests compare with plain autodiff).
RECOMPUTE_GLOBAL_PATHS = "static"
# The ONNX export (tf_longformer/onnx_export.py) sets this while it traces: `_bucketed` then runs ONE path, the
# batch's own global count (at least one slot, empty ones masked out), unfolded, with no `tf.cond`.
SINGLE_GLOBAL_PATH = False
# Fast-path tuning, measured on a 2-core AVX-512 CPU (see `tf-longformer bench` and README "Performance").
DEFAULT_CHUNK_QUERIES = 2048  # queries of one (batch, head) per loop step: a few MB of scores, cache-resident
DEFAULT_DENSE_MAX_LENGTH = 768  # padded lengths up to this use one dense masked product (faster there, measured)
_NEG = -1e30  # masked scores, in float32 (the softmax always runs in float32)
# Branch and loop bodies hold no Python control flow on tensors: converting them with AutoGraph only costs
# tracing time (several seconds per layer).
_no_autograph = tf.autograph.experimental.do_not_convert


# ----------------------------------------------------------------------------------------------------- helpers
def pad_axis(x, multiple, axis=1, value=0):
    """Right-pads `x` along `axis` to a multiple of `multiple` (a pad of 0 when already aligned)."""
    length = x.shape[axis]
    if length is None:
        length = tf.shape(x)[axis]
    # A static length gives a Python pad, so the result keeps a static shape (Python-time path choices).
    extra = (-length) % multiple
    paddings = [[0, 0]] * len(x.shape)
    paddings[axis] = [0, extra]
    return tf.pad(x, paddings, constant_values=tf.cast(value, x.dtype))


def global_slots(is_global, num_slots):
    """Positions of each row's global tokens, in order, in `num_slots` static slots.

    Returns `(index, slot_ok)`: `index` `(batch, num_slots)` int32 positions (arbitrary where the slot is
    empty) and `slot_ok` `(batch, num_slots)` bool. `num_slots` may exceed the length (the extra slots are empty).
    """
    length = tf.shape(is_global)[1]
    # slots beyond the length stay empty: pad the row so top_k always has num_slots candidates
    padded = tf.pad(is_global, [[0, 0], [0, tf.maximum(num_slots - length, 0)]])
    pos = tf.range(tf.shape(padded)[1])
    # Global positions first (ascending), then the others (ascending): top_k of a strictly ordered key.
    key = tf.where(padded, pos, pos + tf.shape(padded)[1])
    index = tf.math.top_k(-tf.cast(key, tf.float32), k=num_slots, sorted=True).indices
    index = tf.minimum(index, length - 1)
    count = tf.reduce_sum(tf.cast(is_global, tf.int32), axis=1)
    slot_ok = tf.range(num_slots)[None, :] < count[:, None]
    return index, slot_ok


def scatter_slots(values, is_global, local_out):
    """Puts the slot outputs `(batch, slots, ...)` back at their global positions of `local_out`."""
    slot = tf.maximum(tf.cumsum(tf.cast(is_global, tf.int32), axis=1) - 1, 0)
    slot = tf.minimum(slot, tf.shape(values)[1] - 1)
    placed = tf.gather(values, slot, batch_dims=1)
    cond = tf.reshape(is_global, tf.concat([tf.shape(is_global), tf.ones([len(local_out.shape) - 2], tf.int32)], 0))
    return tf.where(cond, placed, local_out)


# --------------------------------------------------------------------------------- fast path: softmax pieces
# The fast path keeps heads in front, `(batch, heads, length, dim)`, so every product below is a plain batched
# matmul with no transpose. The band (local keys) is computed as `(out, log-normaliser)`, which
# `add_global_keys` widens exactly to the global keys.

# The dropout streams of one attention call. Every stateless mask is drawn with a seed that `stream_seed` derives
# from the call's seed; offsets added to the seed collided (`seed + [1, 0]` was both the global keys' seed and the
# band's first piece's seed in the first chunk), folding cannot.
DROPOUT_STREAMS = {"band": 1, "global_keys": 2, "global_rows": 3}


def stream_seed(seed, stream):
    """The int32 `(2,)` seed of the dropout stream `stream` (a `DROPOUT_STREAMS` name): the call's `seed` folded
    with the stream's number by TensorFlow's stateless hash (`stateless_fold_in`). A stream drawn piece by piece
    (the blocked band) folds that seed once more per piece: `piece_seed`."""
    return tf.random.experimental.stateless_fold_in(seed, DROPOUT_STREAMS[stream], alg=RNG_ALG)


def piece_seed(seed, piece):
    """The seed of piece `piece` (an int or a scalar tensor) of a stream whose seed is `seed`. Different pieces give
    independent masks; the same piece the same mask (the recomputing backward pass redraws it)."""
    return tf.random.experimental.stateless_fold_in(seed, piece, alg=RNG_ALG)


def _stateless_dropout(p, rate, seed):
    return tf.where(stateless_keep(tf.shape(p), seed, rate), p * (1.0 / (1.0 - rate)), 0.0)


def _softmax_parts(scores, values, dropout_rate=0.0, seed=None):
    """`softmax(scores) @ values` and the log of the softmax's normaliser (float32, `scores[..., 0]`'s shape).

    The normaliser lets the caller widen this to other keys (the global slots) exactly: `add_global_keys`.
    Dropout (on the probabilities) is applied before the product.
    """
    m = tf.stop_gradient(tf.reduce_max(scores, axis=-1, keepdims=True))  # any shift is exact; this one is safe
    e = tf.exp(scores - m)
    total = tf.reduce_sum(e, axis=-1, keepdims=True)
    if dropout_rate:
        e = _stateless_dropout(e, dropout_rate, seed)
    # times the reciprocal, not a division: a division's gradient for `total` (`-x / total / total`, full size)
    # reads forward tensors only, so TensorFlow's executor would run it during the forward pass and hold it
    out = tf.cast(tf.matmul(tf.cast(e, values.dtype), values), tf.float32) * tf.math.reciprocal(total)
    # a query without any key: output 0 and normaliser "-inf" (it weighs nothing when merged)
    found = m > 0.5 * _NEG
    out = tf.cast(tf.where(found, out, 0.0), values.dtype)
    return out, tf.where(found, m + tf.math.log(total), _NEG)[..., 0]


def add_global_keys(band_out, band_lse, q, kg, vg, slot_ok, dropout_rate=0.0, seed=None):
    """The band's attention `(band_out, band_lse)` widened to the row's global keys (slots) too: the softmax over
    the union of the keys, `(batch, heads, length, dim)`.

    With `lse` the union's log-normaliser (from the band's and the slots' scores, `(batch, heads, length)`), the
    band's share of each query is `alpha = exp(band_lse - lse)` and slot `g`'s probability `beta_g =
    exp(score_g - lse)`: the output is `band_out * alpha + beta @ vg`. Every step before the last two is on
    `(batch, heads, length, slots)` tensors; the full-size ones see one product with the slots' values, one
    multiply and one add, in the compute dtype (merging two softmax halves instead, each `(out, lse)`, made the
    slots' full-size output first, then cast, weighted and added both in float32: twelve passes in bfloat16).
    The backward pass keeps nothing of full size but the band's output, which it keeps anyway. Dropout drops
    the slots' probabilities (`global_keys` stream, one stateless draw of their shape).
    A query without any key (padding) gets numbers the caller drops; a local query always has its own key.
    """
    dtype = band_out.dtype
    scores = tf.cast(tf.matmul(q, kg, transpose_b=True), tf.float32)
    scores = scores + tf.where(slot_ok, 0.0, _NEG)[:, None, None, :]  # (b, h, n, slots)
    top = tf.stop_gradient(tf.maximum(band_lse, tf.reduce_max(scores, axis=-1)))  # any shift is exact
    band_w = tf.exp(band_lse - top)
    slot_w = tf.exp(scores - top[..., None])
    total = band_w + tf.reduce_sum(slot_w, axis=-1)
    alpha = band_w / total
    beta = slot_w / total[..., None]
    if dropout_rate:
        beta = _stateless_dropout(beta, dropout_rate, seed)
    return band_out * tf.cast(alpha, dtype)[..., None] + tf.matmul(tf.cast(beta, dtype), vg)


def _recomputed(fn, tensors, variables=()):
    """`fn(*tensors)`, whose backward pass runs `fn` again instead of keeping its intermediates. The gradient
    reaches `tensors` and `variables` (the Keras variables `fn` reads); anything else `fn` captures is taken as a
    constant (masks, indices, dropout seeds: `fn` must draw the same numbers when run again). Those must be
    tensors of the graph being built, not eager ones captured from outside (the same TensorFlow failure).

    The variables enter as tensors (their values, mapped back onto them by a `keras.StatelessScope` while `fn`
    runs), so neither pass reads a variable itself: a gradient function that reads one inside a `tf.cond` branch
    fails to build (TF 2.21, `tf.recompute_grad` too: "Tensor.graph is undefined when eager execution is
    enabled"). Layers called inside `fn` behave as usual (LoRA, quantization): only where their weights come
    from changes."""
    variables = list(variables)
    values = [v.value for v in variables]
    n = len(tensors)

    def call(inputs):
        with keras.StatelessScope(state_mapping=list(zip(variables, inputs[n:]))):
            return fn(*inputs[:n])

    @tf.custom_gradient
    def run(*inputs):
        def grad(d_out):
            again = after_gradient(d_out, *inputs)  # recomputed in the backward pass, not during the forward
            floats = [x for x in again if x.dtype.is_floating]
            with tf.GradientTape() as tape:
                tape.watch(floats)
                out = call(again)
            found = iter(tape.gradient(out, floats, output_gradients=d_out))
            return [next(found) if x.dtype.is_floating else None for x in again]

        return call(inputs), grad

    return run(*tensors, *values)


# ------------------------------------------------------------- static paths: large global paths, row by row
# Under XLA (static slots) every bucket's path is compiled, and XLA sizes its memory for all of them: the
# last-resort path has as many slots as tokens, so its global rows and the local queries' global keys are
# `(length, length)` per head (at 16,384 tokens, base size, 12.9 GB per such tensor in float32; XLA asked for
# 103.76 GiB), and the 512-slot bucket's are `(length, 512)`. Where such a product has more than this many
# elements per (batch, head) row, it goes in loop steps of row chunks (`chunked_rows`) that stay under it.
GLOBAL_CHUNK_ELEMENTS = 2**21  # 8 MiB of float32 scores per loop step


def row_chunk(rows, other):
    """Rows per loop step of `chunked_rows` for a `(rows, other)` product per (batch, head) row: the largest divisor
    of `rows` with at most `GLOBAL_CHUNK_ELEMENTS` elements in a step; None where one step holds all the rows (or
    a size is unknown)."""
    if not isinstance(rows, int) or not isinstance(other, int):
        return None
    limit = max(1, GLOBAL_CHUNK_ELEMENTS // other)
    if rows <= limit:
        return None
    return next(c for c in range(limit, 0, -1) if rows % c == 0)


def chunked_rows(fn, rows, shared, chunk, out_dim, out_dtype):
    """`fn(step, *row_chunks, *shared_rows)` over every `(batch*heads)` row and chunk of `chunk` rows, one loop step
    each: `(batch*heads, R, dim)`, what `fn` over all `R` rows at once would give, without its `(R, ...)` temporaries
    (`fn` is row-wise: each output row depends on its own rows of `rows` only, and on the whole `shared`).

    `rows`: tensors `(batch*heads, R, ...)`, `R` static and a multiple of `chunk`; `shared`: tensors `(batch*heads,
    ...)`, each step gets its row's. `fn` gets the chunks (`(chunk, ...)`) and returns `(chunk, out_dim)` of
    `out_dtype`; `step` (a scalar tensor, the same in the forward and the backward pass) seeds its dropout.

    The gradient is a second loop, over the `batch*heads` rows and, inside, their chunks: each chunk is recomputed
    under a tape (nothing of `fn` is kept between the passes), its rows' gradients written out, the shared tensors'
    ones summed over the chunks. Gradients reach the floating-point inputs (None for the others: masks)."""
    n_rows = len(rows)
    length = rows[0].shape[1]
    if length is None or length % chunk:
        raise ValueError(f"chunked_rows needs a static number of rows that `chunk` divides, got {length} and {chunk}.")
    n = length // chunk

    def pieces(r, c, rows, shared):
        return ([tf.reshape(_rows(x[r], c * chunk, chunk), [chunk] + x.shape[2:].as_list()) for x in rows]
                + [x[r] for x in shared])

    @tf.custom_gradient
    def run(*inputs_):
        inputs = inputs_
        bh = tf.shape(inputs[0])[0]

        def step(i):
            return fn(i, *pieces(i // n, i % n, inputs[:n_rows], inputs[n_rows:]))

        out = tf.map_fn(_no_autograph(step), tf.range(bh * n),
                        fn_output_signature=tf.TensorSpec([chunk, out_dim], out_dtype))
        out = tf.reshape(out, [bh, length, out_dim])

        def grad(d_out):
            inputs = after_gradient(d_out, *inputs_)  # the chunks recomputed in the backward pass only
            floats = [j for j, x in enumerate(inputs) if x.dtype.is_floating]

            def per_row(r):
                d_row = d_out[r]
                acc = [tf.zeros_like(inputs[j][r]) for j in floats if j >= n_rows]
                arrays = [tf.TensorArray(inputs[j].dtype, size=n, element_shape=[chunk] + inputs[j].shape[2:].as_list())
                          for j in floats if j < n_rows]

                def body(c, acc, arrays):
                    xs = pieces(r, c, inputs[:n_rows], inputs[n_rows:])
                    watched = [xs[j] for j in floats]
                    with tf.GradientTape() as tape:
                        tape.watch(watched)
                        y = fn(r * n + c, *xs)
                    gs = tape.gradient(y, watched, output_gradients=_rows(d_row, c * chunk, chunk))
                    gs = [tf.zeros_like(x) if g is None else g for x, g in zip(watched, gs)]
                    g_rows = [g for j, g in zip(floats, gs) if j < n_rows]
                    g_shared = [g for j, g in zip(floats, gs) if j >= n_rows]
                    return (c + 1, [a + g for a, g in zip(acc, g_shared)],
                            [t.write(c, g) for t, g in zip(arrays, g_rows)])

                _, acc, arrays = tf.while_loop(lambda c, *_: c < n, _no_autograph(body), (tf.constant(0), acc, arrays),
                                               maximum_iterations=n)
                return tuple(tf.reshape(t.stack(), [length] + t.element_shape[1:].as_list()) for t in arrays) + tuple(acc)

            specs = tuple(tf.TensorSpec([length] + inputs[j].shape[2:].as_list(), inputs[j].dtype)
                          for j in floats if j < n_rows)
            specs += tuple(tf.TensorSpec(inputs[j].shape[1:], inputs[j].dtype) for j in floats if j >= n_rows)
            found = tf.map_fn(_no_autograph(per_row), tf.range(bh), fn_output_signature=specs)
            # `found` holds the rows' gradients, then the shared tensors': back in the inputs' order
            by_index = dict(zip([j for j in floats if j < n_rows] + [j for j in floats if j >= n_rows], found))
            return [by_index.get(j) for j in range(len(inputs))]

        return out, grad

    return run(*rows, *shared)


def _flat_heads(x):
    """`(batch, heads, rows, ...)` -> `(batch * heads, rows, ...)`, the static sizes after the first kept."""
    return tf.reshape(x, [-1] + x.shape[2:].as_list())


def _chunked_global_keys(band_out, band_lse, q, kg, vg, slot_ok, dropout_rate=0.0, seed=None, chunk=None):
    """`add_global_keys` in row chunks of `chunk` queries (`chunked_rows`): no `(length, slots)` tensor. Dropout: the
    `global_keys` stream folded once more per loop step (`piece_seed`)."""
    batch, heads, dim, slots = tf.shape(q)[0], q.shape[1], q.shape[3], kg.shape[2]
    slot_rows = tf.reshape(tf.broadcast_to(slot_ok[:, None, :], [batch, heads, slots]), [-1, slots])

    def rows(i, bo, bl, qc, kr, vr, ok):
        one = add_global_keys(bo[None, None], bl[None, None], qc[None, None], kr[None, None], vr[None, None],
                              ok[None], dropout_rate, None if seed is None else piece_seed(seed, i))
        return one[0, 0]

    out = chunked_rows(rows, [_flat_heads(band_out), _flat_heads(band_lse), _flat_heads(q)],
                       [_flat_heads(kg), _flat_heads(vg), slot_rows], chunk, dim, band_out.dtype)
    return tf.reshape(out, [batch, heads, q.shape[2], dim])


# ------------------------------------------------------------------------------------------ fast path: the band
@_no_autograph
def band_attention(q, k, v, mask, w, *, dense_max_length=DEFAULT_DENSE_MAX_LENGTH, block=None,
                   chunk=DEFAULT_CHUNK_QUERIES, dropout_rate=0.0, seed=None, inference=False):
    """The band of the fast path: attention of every query to the LOCAL keys (`mask == 1`) with `|i - j| <= w`.

    `q, k, v`: `(batch, heads, length, dim)`, `q` already scaled, `length` a multiple of `w`. `mask`: int
    `(batch, length)`. Returns `out (batch, heads, length, dim)` and the float32 log-normaliser
    `(batch, heads, length)`, which `add_global_keys` widens to the global keys. A query with no key gets
    output 0 and normaliser `_NEG` (the caller zeroes or replaces the rows of queries that are not local).
    `seed`: int32 `(2,)`, needed when `dropout_rate > 0`.

    The implementation is a trace-time choice on the static length: up to `dense_max_length`,
    `dense_band_attention` (one masked product: faster there, measured); beyond it or with an unknown length,
    `blocked_band_attention` (any length, memory linear in it). `inference=True` (no training, no dropout) lets
    the blocked band run its softmax in bfloat16 where that is as exact as bfloat16 allows
    (`band_softmax_dtype`) and take each query's normaliser from its own key (`_forward_chunk`): the rows of
    queries that are not local then get 0 (the caller replaces or zeroes them anyway).
    """
    static_len = q.shape[2]
    if static_len is not None and static_len <= dense_max_length:
        return dense_band_attention(q, k, v, mask, w, dropout_rate, seed)
    inference = inference and not dropout_rate
    softmax_dtype = band_softmax_dtype(q.dtype) if inference else tf.float32
    # the own-key normaliser's `tf.cond` is kept out of XLA (static shapes: both ways would be compiled) and ONNX
    own_key_lse = inference and not xla_context() and not SINGLE_GLOBAL_PATH
    return blocked_band_attention(q, k, v, mask, w, block, _chunk_for(chunk, softmax_dtype), dropout_rate, seed,
                                  softmax_dtype=softmax_dtype, own_key_lse=own_key_lse)


BIAS_COLUMNS = 32  # the ones column and its zero padding: keeps the inner size a multiple of 32 (AMX's bf16 tile)


def _with_bias_column(x, kernels, biases):
    """`x W + b` as one product for each `(W, b)`: `[x, 1, 0...] [W; b; 0...]`. Returns `x` `(..., tokens,
    hidden + BIAS_COLUMNS)` and the kernels `(hidden + BIAS_COLUMNS, width)`. The bias is added in the product's
    float32 accumulator, so a half-precision output is rounded once (a product, then a broadcast add of the bias,
    rounds twice), and no pass over the output is spent on it. The inner size grows by `BIAS_COLUMNS` (4% at base
    size); the padding keeps it a multiple of 32, the size of an AMX bfloat16 tile."""
    ones = tf.ones(tf.concat([tf.shape(x)[:-1], [1]], 0), x.dtype)
    zeros = tf.zeros(tf.concat([tf.shape(x)[:-1], [BIAS_COLUMNS - 1]], 0), x.dtype)
    x = tf.concat([x, ones, zeros], axis=-1)
    kernels = [tf.concat([kernel, bias[None], tf.zeros([BIAS_COLUMNS - 1, kernel.shape[-1]], kernel.dtype)], 0)
               for kernel, bias in zip(kernels, biases)]
    return x, kernels


def _chunk_for(chunk, softmax_dtype):
    """The default chunk is sized for float32 scores: as many bytes of bfloat16 scores hold twice the queries
    (measured at 4096 tokens, base size, Intel Xeon with AMX: 1.61-1.63 s against 1.67-1.68 s a forward)."""
    if chunk == DEFAULT_CHUNK_QUERIES and tf.as_dtype(softmax_dtype).size == 2:
        return 2 * DEFAULT_CHUNK_QUERIES
    return chunk


def fuses_global_keys(length, training, dense_max_length):
    """Whether a layer's local queries take the row's global keys inside the band's loop
    (`band_with_global_keys`): in inference outside XLA and the ONNX trace, where the band is the blocked one
    (`length`: the padded static length, or None)."""
    return (not training and not xla_context() and not SINGLE_GLOBAL_PATH
            and (length is None or length > dense_max_length))


def band_with_global_keys(q, k, v, mask, w, kg, vg, slot_ok, *, block=None, chunk=DEFAULT_CHUNK_QUERIES):
    """Inference: every local query's attention over its band AND its row's global keys `kg, vg` `(batch, heads,
    G, dim)` (`slot_ok` `(batch, G)`), one softmax per loop step (`blocked_band_attention` with `global_keys`:
    the slots' keys after the band's in each step's product): `(batch, heads, length, dim)`, the rows of queries
    that are not local 0. What `band_attention` and `add_global_keys` compute, without the merge's passes over
    full-size tensors (a product with `K = G` and its output, a multiply, an add).

    A gradient is rarely asked at inference (saliency); when it is, it is theirs: the custom gradient recomputes
    `band_attention` + `add_global_keys` under a tape (non-local rows pass none, as their forward output is 0).
    """
    softmax_dtype = band_softmax_dtype(q.dtype)
    chunk = _chunk_for(chunk, softmax_dtype)
    local = tf.equal(mask, 1)[:, None, :, None]

    @tf.custom_gradient
    def run(q, k, v, kg, vg):
        out, _ = blocked_band_attention(q, k, v, mask, w, block, chunk, recompute=False, softmax_dtype=softmax_dtype,
                                        own_key_lse=True, global_keys=(kg, vg, slot_ok))

        def grad(d_out):
            again = after_gradient(d_out, q, k, v, kg, vg)
            with tf.GradientTape() as tape:
                tape.watch(again)
                q_, k_, v_, kg_, vg_ = again
                band_out, band_lse = band_attention(q_, k_, v_, mask, w, dense_max_length=0, block=block, chunk=chunk)
                union = add_global_keys(band_out, band_lse, q_, kg_, vg_, slot_ok)
            return tape.gradient(union, list(again),
                                 output_gradients=tf.where(local, d_out, tf.zeros([], d_out.dtype)))

        return out, grad

    return run(q, k, v, kg, vg)


def band_softmax_dtype(dtype):
    """The dtype the blocked band's inference softmax runs in for queries of `dtype`: `dtype` itself when it is
    bfloat16 and the softmax is oneDNN's CPU kernel (`_MklSoftmax`), which computes in float32 inside and rounds
    its output once (measured: within bfloat16's rounding, 0.4%; the product after it takes bfloat16 anyway), so
    the scores are never cast to float32 and back (two passes over them; on an AMX CPU the casts took longer
    than the band's products). float32 everywhere else: float32 queries; oneDNN off (Eigen's bfloat16 softmax
    was 8% off, measured); a GPU visible (its kernel was not measured); under XLA; and in training (the
    recomputing backward pass needs the float32 log-normaliser)."""
    dtype = tf.as_dtype(dtype)
    if dtype != tf.bfloat16 or xla_context() or not onednn_enabled() or tf.config.list_logical_devices("GPU"):
        return tf.float32
    return dtype


def dense_band_attention(q, k, v, mask, w, dropout_rate=0.0, seed=None):
    """`band_attention` as one dense masked `(length, length)` product: faster for short inputs."""
    length = tf.shape(q)[2]
    pos = tf.range(length)
    near = tf.abs(pos[:, None] - pos[None, :]) <= w
    ok = near[None] & tf.equal(mask, 1)[:, None, :]
    scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) + tf.where(ok, 0.0, _NEG)[:, None]
    return _softmax_parts(scores, v, dropout_rate, seed)


# The blocked band, memory-bound on a CPU: each pass over the score tensor costs about as much as the matmul that
# made it, so the scores are produced, masked, normalised and consumed one chunk at a time (a few MB,
# cache-resident) instead of as one tensor per layer. Queries, keys and values are cut into ONE flat list of
# blocks each (`_flat_blocks`); a loop step (one chunk of `nc` query blocks of one (batch, head) row) reads its
# `nc` query blocks and, for each of the `2s+1` pieces `j`, the key blocks `[j, j + nc)` as a dim-0 slice
# (`_rows`: a view), put side by side (`_side_by_side`, a small copy) so that one product, one mask and one softmax
# cover every piece: the fewest passes over the scores, and the fewest ops (each costs a fixed overhead).
class BandLayout(NamedTuple):
    """Where things sit in one call of the blocked band (`lay` below; Python ints where static, else tensors).

    `batch, heads, dim, length`: of the queries. `w`: the one-sided window. `block`: queries per block; `s`: key
    blocks on each side of a query block (`w // block`), so `2s + 1` pieces. `nc`: query blocks per chunk,
    `size = nc * block` queries. `full`: the length, at least one chunk. `num_chunks`, `starts` `(num_chunks,)`:
    each chunk's first query (the last chunk is moved back to end at `full`: it may overlap the one before
    instead of running past the end, so no length pays for a partial chunk). `nq`, `nb`: query and key blocks
    per (batch, head) row (the keys padded by `w` on both sides). `owner`, `pick` `(full,)`: the chunk whose
    output a position takes, and that output's row among the stacked chunk outputs. `overlap`: whether `pick`
    is needed (the last chunk may overlap).
    """

    batch: object
    heads: int
    dim: int
    length: object
    w: int
    block: int
    s: int
    nc: int
    size: int
    full: object
    num_chunks: object
    starts: tf.Tensor
    nq: object
    nb: object
    owner: tf.Tensor
    pick: tf.Tensor
    overlap: object
    nc_max: int

    @property
    def cap(self):
        """Queries a loop step's output is laid out for: `size`, or its static bound when `size` is a run-time
        value (the loop's stacked outputs need a static shape: an empty batch stacks nothing)."""
        return self.nc_max * self.block

    @property
    def pieces(self):
        return 2 * self.s + 1

    @property
    def steps(self):
        """Loop steps: one per chunk of every (batch, head) row."""
        return self.batch * self.heads * self.num_chunks


def band_layout(q, w, block, chunk):
    """The `BandLayout` of queries `q` `(batch, heads, length, dim)`, blocks of `block`, `chunk` queries a step."""
    static_len = q.shape[2]
    if static_len is None:
        # The chunk is cut to the length at run time, as it is at trace time for a known length: a fixed chunk of
        # `chunk` queries would make a row shorter than it pay for the whole chunk (a 512-token batch of unknown
        # length, as `padded_batch` and a serving signature give, did 4x the work: measured).
        length = tf.shape(q)[2]
        nc = tf.maximum(1, tf.minimum(chunk // block, length // block))
        size = nc * block
        full = tf.maximum(length, size)
    else:
        nc = max(1, min(chunk // block, static_len // block))
        size = nc * block
        length = static_len
        full = max(length, size)
    num_chunks = (full + size - 1) // size
    starts = tf.minimum(tf.range(num_chunks) * size, full - size)
    pos = tf.range(full)
    owner = tf.minimum(pos // size, num_chunks - 1)
    return BandLayout(
        batch=tf.shape(q)[0], heads=q.shape[1], dim=q.shape[3], length=length, w=w, block=block, s=w // block,
        nc=nc, size=size, full=full, num_chunks=num_chunks, starts=starts, nq=full // block,
        nb=(full + 2 * w) // block, owner=owner, pick=owner * size + pos - tf.gather(starts, owner),
        overlap=static_len is None or full % size != 0, nc_max=nc if static_len is not None else max(1, chunk // block),
    )


def _to_cap(x, rows, cap):
    """A loop step's output `x` (`rows` on its first axis) padded with zeros to `cap` rows where `rows` is a
    run-time size; unchanged where it is static (then `rows == cap`)."""
    if isinstance(rows, int):
        return x
    return tf.pad(x, tf.concat([[[0, cap - rows]], tf.zeros([len(x.shape) - 1, 2], tf.int32)], 0))


def _from_cap(x, rows):
    """The stacked loop outputs `(steps, cap, ...)` cut back to `(steps, rows, ...)` (see `_to_cap`)."""
    return x if isinstance(rows, int) else x[:, :rows]


def _rows(x, start, count):
    """`x[start:start + count]`, a dim-0 slice (a view): `count` a Python int (a static size, static under XLA)
    or, for a length unknown at trace time, a run-time one."""
    if isinstance(count, int):
        # Every size static where the shape is (always under XLA): a `-1` size with a run-time start is a
        # run-time size to XLA, which it handles by padding the operand by its own size in every dimension (a
        # copy 2**rank times its size, made before the loop and kept as long as the loop runs: the band's key
        # and value blocks in the forward and backward loops, 1.3 GB per layer at 4096 tokens, base size).
        rest = [-1 if d is None else d for d in x.shape[1:]]
        return tf.slice(x, tf.concat([[start], tf.zeros([len(x.shape) - 1], tf.int32)], 0), [count] + rest)
    # a run-time count (a length unknown at trace time): every size explicit, no -1 (ONNX converters and XLA
    # read an explicit size; XLA folds it to a constant from the input's shape)
    rest = tf.shape(x)[1:]
    return tf.slice(x, tf.concat([[start], tf.zeros_like(rest)], 0), tf.concat([[count], rest], 0))


def _flat_blocks(x, lay, before, after):
    """`(batch, heads, length, dim)` -> `(blocks, block, dim)`: each row padded to `before + full + after`."""
    x = tf.reshape(x, [lay.batch * lay.heads, lay.length, lay.dim])
    x = tf.pad(x, [[0, 0], [before, after + lay.full - lay.length], [0, 0]])
    return tf.reshape(x, [-1, lay.block, lay.dim])


def _key_ok_blocks(mask, lay):
    """Whether each key is a local key, in the key blocks' layout (per batch row, not per head): `(-1, block)`."""
    ok = tf.pad(tf.equal(mask, 1), [[0, 0], [lay.w, lay.w + lay.full - lay.length]])
    return tf.reshape(ok, [-1, lay.block])


def band_edges(block, s):
    """The additive masks `(block, block)` of the band's two end pieces: `{0: ..., 2s: ...}` (triangles).

    Piece `j` holds the keys at offsets `(j - s) * block + c - r` from query `r` of a block; the first and the
    last piece are cut at offsets `-w` and `w`; the pieces between are entirely inside the window.
    """
    r = tf.range(block)[:, None]
    c = tf.range(block)[None, :]
    return {0: tf.where(c >= r, 0.0, _NEG), 2 * s: tf.where(c <= r, 0.0, _NEG)}


def _chunk_bases(lay, i):
    """Loop step `i`: where its chunk starts in the flat query and key block lists and in the query blocks' window
    masks (`_window_masks`, one list per batch row, not per head)."""
    row, chunk = i // lay.num_chunks, i % lay.num_chunks
    first = lay.starts[chunk] // lay.block
    return row * lay.nq + first, row * lay.nb + first, (row // lay.heads) * lay.nq + first


def _window_masks(okblocks, window, lay, slot_ok=None):
    """Every query block's mask over its `2s+1` key blocks side by side: `(batch * nq, block, pieces * block)`
    bool, the key mask (`okblocks`, local keys) and the window's triangles (`window`). Made once per call of the
    band (one gather, one `LogicalAnd`) instead of once per loop step: about 0.3 MB per query block (base size),
    held only while its loop runs (the backward loop makes its own). `slot_ok` `(batch, slots)`: the row's global
    keys' columns appended (`_forward_chunk` with `slots`)."""
    ids = (tf.range(lay.batch)[:, None, None] * lay.nb + tf.range(lay.nq)[None, :, None]
           + tf.range(lay.pieces)[None, None, :])
    keys_ok = tf.reshape(tf.gather(okblocks, tf.reshape(ids, [-1])), [-1, lay.pieces * lay.block])
    masks = keys_ok[:, None, :] & window[None]
    if slot_ok is None:
        return masks
    # the row's global keys after the band's (`_forward_chunk` with `slots`): the same for every query block
    slots = tf.repeat(slot_ok, lay.nq, axis=0)[:, None, :]  # (batch * nq, 1, slots)
    return tf.concat([masks, tf.broadcast_to(slots, tf.concat([tf.shape(masks)[:2], tf.shape(slots)[2:]], 0))], 2)


def _piece_keep(seed, piece, rate, lay):
    """The scaled dropout mask (`0` or `1 / (1 - rate)`) of one piece of one loop step, from `piece_seed`."""
    keep = stateless_keep([lay.nc, lay.block, lay.block], piece_seed(seed, piece), rate)
    return tf.cast(keep, tf.float32) * (1.0 / (1.0 - rate))


def band_window(block, s):
    """The static `(block, (2s+1) * block)` bool mask of a query block's window over its `2s+1` key blocks side by
    side (`_side_by_side`): `band_edges`' two triangles at the ends, everything between inside the window."""
    edges = band_edges(block, s)
    inside = tf.ones([block, block], tf.bool)
    return tf.concat([tf.equal(edges[j], 0.0) if j in edges else inside for j in range(2 * s + 1)], axis=1)


def _side_by_side(blocks, base, lay, after=None):
    """For each of a chunk's `nc` query blocks, its `2s+1` key blocks side by side along axis 1: blocks
    `(n, block, ...)` -> `(nc, (2s+1) * block, ...)`. Piece `j` is the dim-0 slice `[base + j, base + j + nc)`;
    the concatenation copies the keys (about 1 MB a step at base size), so that ONE product, mask and softmax cover
    every piece: each element-wise op is one pass over the chunk's scores instead of `2s+1` ops, and the
    softmax is TensorFlow's own (one oneDNN kernel) instead of five (max, subtract, exp, sum, divide). `after`
    `(nc, G, ...)`: put after the pieces in the same copy (the global keys, `_forward_chunk` with `slots`)."""
    pieces = [_rows(blocks, base + j, lay.nc) for j in range(lay.pieces)]
    return tf.concat(pieces + ([after] if after is not None else []), axis=1)


def _own_key(x, lay, extra=0):
    """Each query's entry for its own key in a step's side-by-side layout `(nc, block, pieces * block)`: query `r` of
    a block sits at column `s * block + r` (piece `s`, the block's own). Returns `(nc, block)` (a gather, no copy of
    the scores). `extra`: columns after the band's (the global keys, `_forward_chunk` with `slots`)."""
    width = lay.pieces * lay.block + extra
    r = tf.range(lay.block)
    return tf.gather(tf.reshape(x, [lay.nc, lay.block * width]), r * width + lay.s * lay.block + r, axis=1)


def _forward_chunk(i, qblocks, kblocks, vblocks, masks, lay, rate, seed, softmax_dtype=tf.float32,
                   own_key_lse=False, slots=None):
    """Loop step `i` of the forward pass: `(out (size, dim), log-normaliser (size,))` of its chunk.

    The scores of the chunk's queries against their `2s+1` key blocks side by side (`_side_by_side`), masked by
    the key mask and the window's triangles (`masks`, `_window_masks`), in `softmax_dtype` (float32, or the queries'
    bfloat16 where `band_softmax_dtype` allows it); `tf.nn.softmax`. The log-normaliser `lse`, since `p_j =
    exp(s_j - lse)`, is `s_j - log(p_j)` for any key `j` whose probability is not 0:
    - by default the row's largest score `m` (its probability `>= 1 / keys` never underflows): two reductions;
    - `own_key_lse=True` (inference outside XLA and ONNX): the query's own key (`_own_key`), which is a local key
      exactly when the query is local, with no pass over the scores; a step where a local query's own probability
      is below `2**-100` (its score more than 69 below the row's largest) takes the first way instead (a
      `tf.cond`). The rows of queries that are not local then get output 0 and normaliser "-inf" (the layer
      replaces or zeroes them: global rows have their own attention, padding is cut).

    `slots` (inference only, `band_with_global_keys`): `(kg, vg)`, `(batch * heads, G, dim)`, the row's global keys
    and values, put after the band's keys in the same product and softmax (their mask columns in `masks`): the
    output is then the attention over the union of the keys, with no second softmax to merge.
    """
    qbase, kbase, okbase = _chunk_bases(lay, i)
    ok = _rows(masks, okbase, lay.nc)  # (nc, block, pieces * block)
    tiled, extra = (None, None), 0
    if slots is not None:  # the row's global keys and values, after the band's in the same copy
        row = i // lay.num_chunks
        extra = tf.shape(slots[0])[1]
        tiled = [tf.broadcast_to(x[row][None], tf.stack([lay.nc, extra, lay.dim])) for x in slots]
    keys = _side_by_side(kblocks, kbase, lay, after=tiled[0])
    scores = tf.matmul(_rows(qblocks, qbase, lay.nc), keys, transpose_b=True)
    scores = tf.where(ok, tf.cast(scores, softmax_dtype), tf.constant(_NEG, softmax_dtype))
    p = tf.nn.softmax(scores, axis=-1)

    def by_largest():
        m = tf.cast(tf.reduce_max(scores, axis=-1), tf.float32)
        lse = m - tf.math.log(tf.cast(tf.reduce_max(p, axis=-1), tf.float32))
        return m > 0.5 * _NEG, lse  # a query without any key (padding at the end): no normaliser

    if own_key_lse:
        local = _own_key(ok, lay, extra)
        own_p = tf.cast(_own_key(p, lay, extra), tf.float32)
        usable = own_p >= 2.0**-100
        found, lse = tf.cond(tf.reduce_any(local & ~usable), by_largest,
                             lambda: (local, tf.cast(_own_key(scores, lay, extra), tf.float32)
                                      - tf.math.log(tf.where(usable, own_p, 1.0))))
    else:
        found, lse = by_largest()
    if rate:
        p = p * tf.cast(tf.concat([_piece_keep(seed, i * lay.pieces + j, rate, lay) for j in range(lay.pieces)],
                                  axis=2), p.dtype)
    out = tf.matmul(tf.cast(p, qblocks.dtype), _side_by_side(vblocks, kbase, lay, after=tiled[1]))
    # rows without a normaliser: output 0, normaliser "-inf", no gradient
    out = tf.where(found[..., None], out, tf.zeros([], out.dtype))
    lse = tf.where(found, lse, _NEG)
    return (_to_cap(tf.reshape(out, [lay.size, lay.dim]), lay.size, lay.cap),
            _to_cap(tf.reshape(lse, [lay.size]), lay.size, lay.cap))


def _band_forward(qblocks, kblocks, vblocks, okblocks, window, lay, rate, seed, parallel_iterations,
                  softmax_dtype=tf.float32, own_key_lse=False, slots=None):
    """Every loop step of the forward pass: `out (batch*heads, full, dim)`, `lse (batch*heads, full)`."""
    dtype = qblocks.dtype
    masks = _window_masks(okblocks, window, lay, None if slots is None else slots[2])
    step = _no_autograph(lambda i: _forward_chunk(i, qblocks, kblocks, vblocks, masks, lay, rate, seed,
                                                  softmax_dtype, own_key_lse, None if slots is None else slots[:2]))
    out, lse = tf.map_fn(step, tf.range(lay.steps), parallel_iterations=parallel_iterations,
                         fn_output_signature=(tf.TensorSpec([lay.cap, lay.dim], dtype),
                                              tf.TensorSpec([lay.cap], tf.float32)))
    out, lse = _from_cap(out, lay.size), _from_cap(lse, lay.size)
    out = tf.reshape(out, [lay.batch * lay.heads, lay.num_chunks * lay.size, lay.dim])
    lse = tf.reshape(lse, [lay.batch * lay.heads, lay.num_chunks * lay.size])
    if lay.overlap:
        out, lse = tf.gather(out, lay.pick, axis=1), tf.gather(lse, lay.pick, axis=1)
    return out, lse


def _per_chunk(x, lay):
    """`(batch*heads, full, ...)` -> `(steps, size, ...)`: each loop step's rows. Only the owner of a position
    gets it: the overlapped rows of the last chunk get 0 (so no output gradient is counted twice)."""
    idx = lay.starts[:, None] + tf.range(lay.size)[None, :]  # (chunks, size)
    own = tf.equal(tf.gather(lay.owner, idx), tf.range(lay.num_chunks)[:, None])
    x = tf.gather(x, idx, axis=1)  # (batch*heads, chunks, size, ...)
    own = tf.reshape(own, [1, lay.num_chunks, lay.size] + [1] * (len(x.shape) - 3))
    x = x * tf.cast(own, x.dtype)
    return tf.reshape(x, tf.concat([[lay.steps], tf.shape(x)[2:]], 0))


def _backward_chunk(i, qblocks, kblocks, vblocks, masks, d_out_c, lse_c, corr_c, lay, rate, seed):
    """Loop step `i` of the backward pass, the probabilities recomputed from the saved log-normaliser, every piece
    at once as in the forward step (`_side_by_side`).

    Returns `dq (size, dim)` and `dk, dv (nc + 2s, block, dim)`: the gradients of the chunk's key blocks
    (piece `j` covers its key blocks `[j, j + nc)`).
    """
    dtype = qblocks.dtype
    qbase, kbase, okbase = _chunk_bases(lay, i)
    qc = _rows(qblocks, qbase, lay.nc)
    keys, values = _side_by_side(kblocks, kbase, lay), _side_by_side(vblocks, kbase, lay)
    ok = _rows(masks, okbase, lay.nc)
    lse_i = tf.reshape(lse_c[i], [lay.nc, lay.block, 1])
    found = lse_i > 0.5 * _NEG  # rows without keys pass no gradient (and their probabilities are all 0)
    lse_i = tf.where(found, lse_i, 0.0)
    do = tf.reshape(d_out_c[i], [lay.nc, lay.block, lay.dim]) * tf.cast(found, dtype)
    corr_i = tf.reshape(corr_c[i], [lay.nc, lay.block, 1]) * tf.cast(found, tf.float32)
    scores = tf.cast(tf.matmul(qc, keys, transpose_b=True), tf.float32)
    p = tf.exp(tf.where(ok, scores, _NEG) - lse_i)  # the normalised probabilities, recomputed
    dp = tf.cast(tf.matmul(do, values, transpose_b=True), tf.float32)
    pd = p
    if rate:
        keep = tf.concat([_piece_keep(seed, i * lay.pieces + j, rate, lay) for j in range(lay.pieces)], axis=2)
        pd = p * keep
        dp = dp * keep
    dv = tf.matmul(tf.cast(pd, dtype), do, transpose_a=True)  # (nc, pieces * block, dim)
    ds = tf.cast(p * (dp - corr_i), dtype)
    dq = tf.matmul(ds, keys)
    dk = tf.matmul(ds, qc, transpose_a=True)
    s = lay.s

    def per_key_block(x):  # piece j of each query block -> its key block: rows [j, j + nc) of nc + 2s
        x = tf.reshape(x, [lay.nc, lay.pieces, lay.block, lay.dim])
        return sum(tf.pad(x[:, j], [[j, 2 * s - j], [0, 0], [0, 0]]) for j in range(lay.pieces))

    kb_rows, kb_cap = lay.nc + 2 * s, lay.nc_max + 2 * s
    return (_to_cap(tf.reshape(dq, [lay.size, lay.dim]), lay.size, lay.cap),
            _to_cap(per_key_block(dk), kb_rows, kb_cap), _to_cap(per_key_block(dv), kb_rows, kb_cap))


def _sum_key_block_grads(x, lay):
    """The loop steps' key-block gradients `(steps, nc + 2s, block, dim)` summed per key block (a key block gets
    gradients from the 2s+1 query blocks around it, maybe in two chunks): `(batch*heads, length, dim)`."""
    every = tf.range(lay.steps)
    kbases = (every // lay.num_chunks) * lay.nb + tf.gather(lay.starts, every % lay.num_chunks) // lay.block
    ids = tf.reshape(kbases[:, None] + tf.range(lay.nc + 2 * lay.s)[None, :], [-1])
    x = tf.math.unsorted_segment_sum(tf.reshape(x, [-1, lay.block, lay.dim]), ids, lay.batch * lay.heads * lay.nb)
    return tf.reshape(x, [lay.batch * lay.heads, lay.nb * lay.block, lay.dim])[:, lay.w:lay.w + lay.length]


def _band_backward(qblocks, kblocks, vblocks, okblocks, window, out, lse, d_out, d_lse, lay, rate, seed,
                   parallel_iterations):
    """Gradients of `_band_forward` (`d_out, d_lse` padded to `full`): `dq, dk, dv (batch*heads, length, dim)`."""
    # D = rowsum(dO * O): the softmax gradient's correction term, per query (minus the normaliser's gradient)
    corr = tf.reduce_sum(tf.cast(d_out, tf.float32) * tf.cast(out, tf.float32), axis=-1)
    d_out_c, lse_c, corr_c, d_lse_c = (_per_chunk(x, lay) for x in (d_out, lse, corr, d_lse))
    corr_c = corr_c - d_lse_c
    # the loop and its masks wait for the incoming gradient: else the steps' gradient-free ops (dropout masks)
    # run ahead during the forward pass, `parallel_iterations` steps per layer, and are held until then
    steps, okblocks = after_gradient(corr, tf.range(lay.steps), okblocks)
    masks = _window_masks(okblocks, window, lay)
    step = _no_autograph(lambda i: _backward_chunk(i, qblocks, kblocks, vblocks, masks, d_out_c, lse_c,
                                                   corr_c, lay, rate, seed))
    dtype = qblocks.dtype
    spec = tf.TensorSpec([lay.nc_max + 2 * lay.s, lay.block, lay.dim], dtype)
    dq, dk, dv = tf.map_fn(step, steps, parallel_iterations=parallel_iterations,
                           fn_output_signature=(tf.TensorSpec([lay.cap, lay.dim], dtype), spec, spec))
    dq, dk, dv = _from_cap(dq, lay.size), _from_cap(dk, lay.nc + 2 * lay.s), _from_cap(dv, lay.nc + 2 * lay.s)
    dq = tf.reshape(dq, [lay.batch * lay.heads, lay.num_chunks * lay.size, lay.dim])
    if lay.overlap:
        dq = tf.gather(dq, lay.pick, axis=1)
    return dq[:, :lay.length], _sum_key_block_grads(dk, lay), _sum_key_block_grads(dv, lay)


def blocked_band_attention(q, k, v, mask, w, block=None, chunk=DEFAULT_CHUNK_QUERIES, dropout_rate=0.0, seed=None,
                           parallel_iterations=2, recompute=True, softmax_dtype=tf.float32, own_key_lse=False,
                           global_keys=None):
    """`band_attention` computed chunk by chunk, in blocks (any length; see `BandLayout`).

    Queries go in blocks of `block` (a divisor of `w`; default `w // 2`, or `w` when odd); a block's keys are
    `2s+1` key blocks (`s = w // block`), each a slice (a view) of the keys, each with its own product: no window
    is ever copied. `chunk // block` blocks of one (batch, head) are one loop step, so a step's scores stay in
    the CPU cache. Dropout is stateless, each piece's mask from `piece_seed(seed, piece)`, so the backward pass
    regenerates the same masks.

    `recompute=True`: the gradient is a second chunked loop that recomputes the probabilities from the saved
    log-normaliser (as flash attention does) instead of keeping every layer's probabilities for the backward
    pass: far less memory, and the recomputed scores never leave the cache. `False`: TensorFlow's own
    gradient of the forward loop (kept to check the custom one). `softmax_dtype`: float32 (always, in training),
    or bfloat16 for bfloat16 queries where `band_softmax_dtype` allows it. `own_key_lse` (inference only): the
    log-normaliser from each query's own key (`_forward_chunk`); the rows of queries that are not local get 0.
    `global_keys` `(kg, vg, slot_ok)` (forward only: `band_with_global_keys` gives it its gradient): the row's global
    keys in every step's softmax too.
    """
    if global_keys is not None and recompute:
        raise ValueError("`global_keys` is computed forward only: call it with `recompute=False` "
                         "(`band_with_global_keys` adds the gradient).")
    if tf.executing_eagerly():
        parallel_iterations = None  # eager map_fn runs one step at a time (and warns if asked for more)
    block = block or (w // 2 if w % 2 == 0 else w)
    if w % block:
        raise ValueError(f"`block` must divide the one-sided window {w}, got {block}.")
    if dropout_rate and seed is None:
        raise ValueError("`seed` is required when `dropout_rate` > 0.")
    lay = band_layout(q, w, block, chunk)
    okblocks = _key_ok_blocks(mask, lay)
    window = band_window(block, lay.s)

    def blocks(q, k, v):
        return _flat_blocks(q, lay, 0, 0), _flat_blocks(k, lay, w, w), _flat_blocks(v, lay, w, w)

    slots = None
    if global_keys is not None:
        kg, vg, slot_ok = global_keys
        bh = [lay.batch * lay.heads, -1, lay.dim]
        slots = (tf.reshape(kg, bh), tf.reshape(vg, bh), slot_ok)

    def forward(qb, kb, vb):
        return _band_forward(qb, kb, vb, okblocks, window, lay, dropout_rate, seed, parallel_iterations,
                             softmax_dtype, own_key_lse, slots)

    def shaped(x, last=()):
        return tf.reshape(x[:, :lay.length],
                          tf.concat([[lay.batch, lay.heads, lay.length], tf.constant(last, tf.int32)], 0))

    if not recompute:
        out, lse = forward(*blocks(q, k, v))
        return shaped(out, [lay.dim]), shaped(lse)

    # The backward loop is built where the tape asks for it, outside this layer's name scope: it re-enters the
    # scope, so profiles (`bench --op-profile`, `--memory-profile`) put its ops under the layer's attention.
    scope = tf.get_current_name_scope()

    @tf.custom_gradient
    def run(q, k, v):
        qb, kb, vb = blocks(q, k, v)
        out, lse = forward(qb, kb, vb)

        def grad(d_out, d_lse):
            if tf.executing_eagerly() or not scope:
                return _grad(d_out, d_lse)
            with tf.name_scope(scope + "/band_backward/"):
                return _grad(d_out, d_lse)

        def _grad(d_out, d_lse):
            # The blocks are cut again from q, k, v (kept anyway by the global tokens' paths; the padded key and
            # value blocks are copies), once the incoming gradient exists (`after_gradient`: else the backward
            # loop's gradient-free part runs during the forward pass and is held until the backward reaches it).
            q_, k_, v_, out_, lse_ = after_gradient([d_out, d_lse], q, k, v, out, lse)
            qb_, kb_, vb_ = blocks(q_, k_, v_)
            bh = lay.batch * lay.heads
            d_out = tf.zeros_like(out_[:, :lay.length]) if d_out is None else tf.reshape(d_out, [bh, lay.length,
                                                                                                lay.dim])
            d_lse = tf.zeros_like(lse_[:, :lay.length]) if d_lse is None else tf.reshape(d_lse, [bh, lay.length])
            pad = [[0, 0], [0, lay.full - lay.length]]
            dq, dk, dv = _band_backward(qb_, kb_, vb_, okblocks, window, out_, lse_, tf.pad(d_out, pad + [[0, 0]]),
                                        tf.pad(d_lse, pad), lay, dropout_rate, seed, parallel_iterations)
            shape = [lay.batch, lay.heads, lay.length, lay.dim]
            return tf.reshape(dq, shape), tf.reshape(dk, shape), tf.reshape(dv, shape)

        return (shaped(out, [lay.dim]), shaped(lse)), grad

    return run(q, k, v)


# ------------------------------------------------------------------------------------------- inspection path
# Used only with `return_attention_scores=True`: keeps the probabilities, `(batch, length, heads, dim)`, blocks of
# `w` queries against three key blocks. Not the path that trains or serves; written to be read and checked.
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


def masked_softmax(scores, mask):
    """Softmax over the last axis in float32; masked entries get exactly 0 (all-masked rows: all 0)."""
    scores = tf.cast(scores, tf.float32)
    probs = tf.nn.softmax(tf.where(mask, scores, _NEG), axis=-1)
    return tf.where(mask, probs, 0.0)


def inspect_local_attention(q, k, v, mask, w, index, slot_ok, head_mask, dropout):
    """Inspection path: every local query against its band (local keys only) and the row's global keys, one
    softmax, the probabilities kept.

    `q` must already be scaled; `index, slot_ok` come from `global_slots`; `dropout`: a callable on the
    probabilities. Returns `out (batch, length, heads, head_dim)` and the float32 probs
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
    used = tf.cast(dropout(probs), v.dtype)
    used_glob, used_band = used[..., :num_slots], used[..., num_slots:]
    out = tf.einsum("bnhqg,bghd->bnqhd", used_glob, vg) + tf.einsum("bnhqk,bnkhd->bnqhd", used_band, vb)
    return tf.reshape(out, [batch, length, heads, dim]), probs


def inspect_global_attention(qg, kg, vg, mask, slot_ok, head_mask, dropout):
    """Inspection path: the global tokens (already gathered into slots) against every non-padded token of the row.

    `qg`: `(batch, slots, heads, dim)` (scaled), `kg`, `vg`: `(batch, length, heads, dim)`; `dropout`: a callable
    on the probabilities. Returns `out (batch, slots, heads, dim)` and probs `(batch, heads, slots, length)` (0 for
    empty slots).
    """
    scores = tf.einsum("bghd,blhd->bhgl", qg, kg)
    ok = tf.not_equal(mask, 0)[:, None, None, :] & slot_ok[:, None, :, None]
    probs = masked_softmax(scores, ok)
    if head_mask is not None:
        probs = probs * tf.cast(head_mask, tf.float32)[None, :, None, None]
    out = tf.einsum("bhgl,blhd->bghd", tf.cast(dropout(probs), vg.dtype), vg)
    return out, probs


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
        fold_global_projections: "auto" (default), True or False. Global rows fold the global key/value
            projections into their queries instead of projecting every token (fewer FLOPs when the bucket
            has few slots; "auto" decides per bucket). The numbers are the same up to rounding.
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
        block_queries=None,
        chunk_queries=DEFAULT_CHUNK_QUERIES,
        dense_max_length=DEFAULT_DENSE_MAX_LENGTH,
        fold_global_projections="auto",
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
        w = attention_window // 2
        if block_queries is not None and (not isinstance(block_queries, int) or block_queries <= 0 or w % block_queries):
            raise ValueError(f"`block_queries` must be a positive divisor of attention_window // 2 = {w}, "
                             f"got {block_queries!r}.")
        if not isinstance(chunk_queries, int) or chunk_queries <= 0:
            raise ValueError(f"`chunk_queries` must be a positive integer, got {chunk_queries!r}.")
        if not isinstance(dense_max_length, int) or dense_max_length < 0:
            raise ValueError(f"`dense_max_length` must be an integer >= 0, got {dense_max_length!r}.")
        if fold_global_projections not in ("auto", True, False):
            raise ValueError(f"`fold_global_projections` must be 'auto', True or False, got {fold_global_projections!r}.")
        self.fold_global_projections = fold_global_projections
        self.block_queries = block_queries
        self.chunk_queries = chunk_queries
        self.dense_max_length = dense_max_length
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
        self.probs_dropout = Dropout(self.dropout, dtype="float32", name="probs_dropout")
        self.global_probs_dropout = Dropout(self.dropout, dtype="float32", name="global_probs_dropout")
        self.built = True

    def call(self, hidden_states, attention_mask, head_mask=None, training=None, return_attention_scores=False,
             residual=None):
        """`residual` `(batch, length, hidden)`, optional: added to the output (inside the output product's fused
        kernel: `dense_product`); the encoder layer passes its input when no dropout runs."""
        if return_attention_scores:
            out = self._call_inspect(hidden_states, attention_mask, head_mask, training)
            return out if residual is None else (out[0] + tf.cast(residual, out[0].dtype),) + tuple(out[1:])
        w = self.one_sided_window
        length = tf.shape(hidden_states)[1]
        mask = pad_axis(tf.cast(attention_mask, tf.int32), w)
        hidden = pad_axis(hidden_states, w)
        padded = tf.shape(hidden)[1]
        scale = 1.0 / (self.head_dim**0.5)
        is_global = tf.equal(mask, 2)
        max_count = tf.reduce_max(tf.reduce_sum(tf.cast(is_global, tf.int32), axis=1))
        rate = float(self.dropout) if training else 0.0
        band_seed = global_keys_seed = global_rows_seed = None
        if rate:
            seed = generator_seed(self.probs_dropout.seed_generator)
            band_seed, global_keys_seed = stream_seed(seed, "band"), stream_seed(seed, "global_keys")
            global_rows_seed = stream_seed(seed, "global_rows")
        q, k, v = self._local_projections(hidden, scale, inference=not training)
        static_len = hidden.shape[1]
        static_paths = STATIC_SLOTS_EVERYWHERE or xla_context()
        recompute = RECOMPUTE_GLOBAL_PATHS == "always" or (static_paths and RECOMPUTE_GLOBAL_PATHS == "static")
        # The band does not depend on the global tokens: it is computed once, outside the global-count buckets
        # (the buckets capture it). In inference (outside XLA and ONNX) the local queries' global keys go inside
        # the band's loop (`band_with_global_keys`, the batch's own count of slots); elsewhere the global paths
        # widen the band to them (`add_global_keys`).
        if fuses_global_keys(static_len, training or rate, self.dense_max_length) and not recompute:
            index, slot_ok = global_slots(is_global, tf.maximum(max_count, 1))
            kg, vg = (tf.gather(x, index, axis=2, batch_dims=1) for x in (k, v))
            band_out = band_with_global_keys(q, k, v, mask, w, kg, vg, slot_ok, block=self.block_queries,
                                             chunk=self.chunk_queries)
            band_lse = None
        else:
            band_out, band_lse = band_attention(q, k, v, mask, w, dense_max_length=self.dense_max_length,
                                                block=self.block_queries, chunk=self.chunk_queries,
                                                dropout_rate=rate, seed=band_seed, inference=not training)
        # Non-local query rows zeroed with a select, not a product with a 0/1 mask: a product's gradient keeps
        # its full-size other factor for the mask's (unused) gradient.
        local_query = tf.equal(mask, 1)[:, :, None, None]

        def by_rows(rows, other):
            # static paths (XLA): a large `(rows, other)` product per head goes row chunk by row chunk
            return row_chunk(rows, other) if static_paths else None

        def with_globals(num_slots, fold, q, k, v, band_out, band_lse, hidden):
            index, slot_ok = global_slots(is_global, num_slots)
            if band_lse is None:  # the band took the global keys already (`band_with_global_keys`)
                out = band_out
            else:  # local queries also see the row's global keys (local projections), in the same softmax
                kg = tf.gather(k, index, axis=2, batch_dims=1)
                vg = tf.gather(v, index, axis=2, batch_dims=1)
                chunk = by_rows(q.shape[2], num_slots)
                if chunk:
                    out = _chunked_global_keys(band_out, band_lse, q, kg, vg, slot_ok, rate, global_keys_seed, chunk)
                else:
                    out = add_global_keys(band_out, band_lse, q, kg, vg, slot_ok, rate, global_keys_seed)
            out = tf.where(local_query, tf.transpose(out, [0, 2, 1, 3]), tf.zeros([], out.dtype))
            # global rows: their own projections, against every non-padded token
            qg = self._heads_first(self.query_global, tf.gather(hidden, index, batch_dims=1), scale)
            chunk = None if fold else by_rows(num_slots, hidden.shape[1])
            ok = None if chunk else tf.not_equal(mask, 0)[:, None, None, :] & slot_ok[:, None, :, None]
            if chunk:  # each chunk makes its own rows' mask
                gout = self._chunked_global_rows(qg, hidden, mask, slot_ok, rate, global_rows_seed, chunk)
            elif fold:
                gout = self._folded_global_rows(qg, hidden, ok, rate, global_rows_seed)
            else:
                kg_all = self._heads_first(self.key_global, hidden)
                vg_all = self._heads_first(self.value_global, hidden)
                scores = tf.cast(tf.matmul(qg, kg_all, transpose_b=True), tf.float32)  # (b, h, slots, length)
                probs = self._global_probs(scores, ok, rate, global_rows_seed)
                gout = tf.matmul(tf.cast(probs, vg_all.dtype), vg_all)  # (b, h, slots, dim)
            return scatter_slots(tf.transpose(gout, [0, 2, 1, 3]), is_global, out)

        weights = [v for name in ("query_global", "key_global", "value_global") for v in getattr(self, name).variables]

        def chain(q, k, v, band_out, band_lse, hidden):
            tensors = (q, k, v, band_out, band_lse, hidden)

            def attend(num_slots, fold=False):
                if isinstance(num_slots, int) and num_slots == 0:
                    return tf.where(local_query, tf.transpose(band_out, [0, 2, 1, 3]), tf.zeros([], band_out.dtype))
                if not recompute:
                    return with_globals(num_slots, fold, *tensors)
                # Each branch recomputes its own intermediates in its gradient: the gradient of a `tf.cond`
                # carries every intermediate of EVERY branch (zeros for those not taken), and XLA allocates them
                # all: the full-length path alone holds (batch, heads, length, length) scores per layer (a
                # base-size step at 4096 tokens asked for 62.9 GiB). Its dropout is stateless (`global_keys`,
                # `global_rows` streams), so it redraws the same masks.
                return _recomputed(lambda *t: with_globals(num_slots, fold, *t), tensors, weights)

            return self._bucketed(attend, padded if static_len is None else static_len, max_count)

        tensors = (q, k, v, band_out, band_lse, hidden)
        if recompute:
            # Static paths (XLA): the chain itself is recomputed too. A branch's custom gradient passes its inputs
            # through an `IdentityN`; their gradients are `None`, which TensorFlow's symbolic gradient fills with
            # `zeros_like` of those outputs, and under XLA a `tf.cond` exports every tensor its gradient reads: the
            # traced step's `If` ops had 19 outputs where 1 is the attention's, five of them full size (`q, k, v`,
            # the band's output, `hidden`), per bucket, kept by every layer until its backward pass. With the
            # chain recomputed in the backward pass, the forward chain's gradient is never built (its `If` ops keep
            # their one output); the exports happen in the recomputation, for one layer at a time.
            out = _recomputed(chain, tensors, weights)
        else:
            out = chain(*tensors)
        if head_mask is not None:
            out = out * tf.cast(head_mask, out.dtype)[None, None, :, None]
        return self._output_projection(out, None if residual is None else pad_axis(residual, w))[:, :length]

    def _folds_global_projections(self, num_slots):
        """Whether the global rows of a `num_slots` bucket fold the key/value projections into their queries.

        `q . (x Wk + bk) = (q Wk^T) . x + q . bk` and `sum_j p_j (x_j Wv + bv) = (sum_j p_j x_j) Wv + bv sum_j p_j`:
        the same numbers (up to rounding) without projecting every token's global key and value. That costs
        about `4 n H^2` FLOPs per layer (n tokens, H hidden); the folded products `4 n H heads slots`. So for
        few slots (base size: under 70) folding is cheaper and keeps two `(batch, n, H)` tensors fewer (base size,
        4096 tokens, 16 slots: about 2.4 GFLOPs per layer instead of 9.7).

        The fold is the one place that does not call `key_global` / `value_global`: it reads their `kernel` and
        `bias`. Keras' `kernel` property includes an enabled LoRA update, so LoRA still applies. A quantized
        layer's stored kernel is not the float matrix it multiplies by, so quantized layers are never folded.
        """
        if not isinstance(num_slots, int) or num_slots <= 0:
            return False
        if any(getattr(self, name).quantization_mode is not None for name in ("key_global", "value_global")
               if hasattr(self, name)):
            return False
        if self.fold_global_projections == "auto":
            hidden = self.num_heads * self.head_dim
            return num_slots * (self.num_heads - 1) < hidden
        return bool(self.fold_global_projections)

    def _chunked_global_rows(self, qg, hidden, mask, slot_ok, rate, seed, chunk):
        """The unfolded global rows (`qg` `(batch, heads, slots, dim)` against every non-padded token's global key
        and value) in row chunks of `chunk` slots (`chunked_rows`): no `(slots, length)` tensor. Dropout: the
        `global_rows` stream folded once more per loop step (`piece_seed`)."""
        kg_all = self._heads_first(self.key_global, hidden)
        vg_all = self._heads_first(self.value_global, hidden)
        heads, dim, slots = self.num_heads, self.head_dim, qg.shape[2]
        batch, length = tf.shape(hidden)[0], tf.shape(hidden)[1]
        slot_rows = tf.reshape(tf.broadcast_to(slot_ok[:, None, :], [batch, heads, slots]), [-1, slots])
        key_ok = tf.reshape(tf.broadcast_to(tf.not_equal(mask, 0)[:, None, :], [batch, heads, length]), [batch * heads, -1])

        def rows(qc, sc, kr, vr, kok, i):
            scores = tf.cast(tf.matmul(qc, kr, transpose_b=True), tf.float32)  # (chunk, length)
            probs = self._global_probs(scores, sc[:, None] & kok[None, :], rate,
                                       None if seed is None else piece_seed(seed, i))
            return tf.matmul(tf.cast(probs, vr.dtype), vr)

        out = chunked_rows(lambda i, *x: rows(*x, i), [_flat_heads(qg), slot_rows],
                           [_flat_heads(kg_all), _flat_heads(vg_all), key_ok],
                           chunk, dim, vg_all.dtype)
        return tf.reshape(out, [batch, heads, slots, dim])

    def _global_probs(self, scores, ok, rate, seed):
        """The global rows' probabilities over every non-padded token (float32), with dropout at `rate` (the
        `global_rows` stream's stateless masks; 0 outside training)."""
        probs = tf.nn.softmax(scores + tf.where(ok, 0.0, _NEG), axis=-1)
        return _stateless_dropout(probs, rate, seed) if rate else probs

    def _folded_global_rows(self, qg, hidden, ok, rate, seed):
        """Global rows' attention with the key/value projections folded in: `(batch, heads, slots, dim)`.

        Reads `key_global` / `value_global`'s weights instead of calling them: see `_folds_global_projections`."""
        dtype = self.compute_dtype
        wk, bk = tf.cast(self.key_global.kernel, dtype), tf.cast(self.key_global.bias, dtype)
        wv, bv = tf.cast(self.value_global.kernel, dtype), tf.cast(self.value_global.bias, dtype)
        batch, heads, dim = tf.shape(qg)[0], self.num_heads, self.head_dim
        slots = qg.shape[2] if qg.shape[2] is not None else tf.shape(qg)[2]  # dynamic outside XLA
        size = hidden.shape[-1]
        # each slot's query pulled back to the hidden space: (b, h, slots, H), one matmul per head
        qk = tf.matmul(tf.reshape(tf.transpose(qg, [1, 0, 2, 3]), [heads, -1, dim]),
                       tf.transpose(wk, [1, 2, 0]))  # (h, b*slots, H)
        qk = tf.reshape(tf.transpose(tf.reshape(qk, [heads, batch, slots, size]), [1, 0, 2, 3]),
                        [batch, heads * slots, size])
        scores = tf.matmul(qk, hidden, transpose_b=True)  # (b, h*slots, n): one matmul for every head and slot
        scores = tf.reshape(tf.cast(scores, tf.float32), [batch, heads, slots, -1])
        scores = scores + tf.cast(tf.reduce_sum(qg * bk[None, :, None, :], -1), tf.float32)[..., None]
        probs = tf.cast(self._global_probs(scores, ok, rate, seed), dtype)
        mixed = tf.matmul(tf.reshape(probs, [batch, heads * slots, -1]), hidden)  # (b, h*slots, H)
        mixed = tf.reshape(tf.transpose(tf.reshape(mixed, [batch, heads, slots, size]), [1, 0, 2, 3]),
                           [heads, -1, size])
        out = tf.matmul(mixed, tf.transpose(wv, [1, 0, 2]))  # (h, b*slots, d)
        out = tf.transpose(tf.reshape(out, [heads, batch, slots, dim]), [1, 0, 2, 3])
        return out + tf.reduce_sum(probs, -1, keepdims=True) * bv[None, :, None, :]

    def _unquantized(self, *layers):
        return all(getattr(layer, "quantization_mode", None) is None for layer in layers)

    def _local_projections(self, hidden, scale, inference=False):
        """`q` (times `scale`), `k`, `v` with heads in front, `(batch, heads, length, dim)`: ONE 2-D product of the
        tokens `(batch * length, hidden)` with the three kernels side by side, its bias added by `BiasAdd` (which
        oneDNN fuses into the product, as in the feed-forward: `LongformerEncoderLayer._feed_forward`), and one
        transpose for the three. `scale` is folded into the query's kernel and bias (`1 / sqrt(64)` is a power of
        two: the same numbers). The weights are read through the layers' `kernel` and `bias` (`kernel` includes an
        enabled LoRA update); quantized layers are called as layers (`_heads_first`). The gradient to `hidden`
        leaves through a reshape, as `_heads_first` explains.

        `inference=True` (no gradient): three batched products, `(batch, 1, length, hidden)` times each layer's
        kernel with heads in front `(1, heads, hidden, dim)`, write `q`, `k`, `v` heads-first with no transpose of
        the outputs (the bias a broadcast add). Measured at 4096 tokens, base size, on an Intel Xeon with AMX:
        14.1-14.6 ms a layer against 18.1-18.3 in bfloat16, 50.7 against 51-55 in float32. In half precision the
        bias goes into the product instead (`_with_bias_column`): the broadcast add over `(batch, heads, length,
        dim)` took a quarter of the three products' time (10.7-10.8 ms a layer against 14.2-14.4, same machine).
        Not in training: the gradient of a product broadcast over the heads sums a `(batch, heads, length,
        hidden)` tensor."""
        layers = (self.query, self.key, self.value)
        if not self._unquantized(*layers):
            return tuple(self._heads_first(layer, hidden, sc) for layer, sc in zip(layers, (scale, None, None)))
        dtype = self.compute_dtype
        width = self.num_heads * self.head_dim
        kernels, biases = [], []
        for layer, sc in zip(layers, (scale, None, None)):
            kernel = tf.reshape(tf.cast(layer.kernel, dtype), [-1, width])
            bias = tf.reshape(tf.cast(layer.bias, dtype), [width])
            if sc is not None:
                kernel, bias = kernel * tf.cast(sc, dtype), bias * tf.cast(sc, dtype)
            kernels.append(kernel)
            biases.append(bias)
        if inference:
            x = tf.cast(hidden, dtype)
            heads, dim = self.num_heads, self.head_dim
            if tf.as_dtype(dtype).size == 2:
                # half precision: the bias inside the product (`_with_bias_column`)
                x, kernels = _with_bias_column(x, kernels, biases)
                biases = [None] * 3
            x = x[:, None]
            out = []
            for kernel, bias in zip(kernels, biases):
                y = tf.matmul(x, tf.transpose(tf.reshape(kernel, [-1, heads, dim]), [1, 0, 2])[None])
                out.append(y if bias is None else y + tf.reshape(bias, [1, heads, 1, dim]))
            return tuple(out)
        shape = tf.shape(hidden)
        x = tf.matmul(tf.reshape(tf.cast(hidden, dtype), [-1, hidden.shape[-1]]), tf.concat(kernels, axis=1))
        x = tf.nn.bias_add(x, tf.concat(biases, axis=0))
        x = tf.reshape(x, [shape[0], shape[1], 3, self.num_heads, self.head_dim])
        x = tf.transpose(x, [2, 0, 3, 1, 4])  # (3, batch, heads, length, dim)
        # unstacked, not indexed: the gradient of `x[i]` is a full-size `(3, ...)` tensor per slice, summed by a
        # three-way `AddN` (which Grappler then gives a zeros constant of that size); an unstack's is one stack
        return tuple(tf.unstack(x, num=3, axis=0))

    def _output_projection(self, out, residual=None):
        """`output_dense(out)` (`+ residual`, `(batch, length, hidden)`) for `out` `(batch, length, heads, dim)`: one
        2-D product with the bias and the residual fused in (`dense_product`); a quantized layer is called as a
        layer."""
        layer = self.output_dense
        if not self._unquantized(layer):
            y = layer(out)
            return y if residual is None else y + tf.cast(residual, y.dtype)
        dtype = self.compute_dtype
        width = self.num_heads * self.head_dim
        shape = tf.shape(out)
        rows = None if residual is None else tf.reshape(residual, [-1, residual.shape[-1]])
        y = dense_product(layer, tf.reshape(tf.cast(out, dtype), [-1, width]), dtype, rows)
        # every size explicit: an empty batch leaves a -1 undecided
        return tf.reshape(y, [shape[0], shape[1], layer.kernel.shape[-1]])

    def _heads_first(self, projection, hidden, scale=None):
        """`projection(hidden)` (times `scale`, if given) with heads in front: `(batch, heads, length, dim)`.

        Calls the projection layer itself, so whatever Keras does inside it (LoRA, quantization) applies. The
        tokens go through it as ONE sequence, `(1, batch * length, hidden)` (a projection acts token by token:
        the same numbers), so the gradient to `hidden` leaves through a reshape: XLA (TF 2.21) fails to compile
        the sum of the bucket chain's gradient to `hidden` and an einsum's of unknown batch and length
        ("RET_CHECK failure ... dynamic_padder.cc"), which differentiating an unknown length under XLA hits.
        """
        shape = tf.shape(hidden)
        x = projection(tf.reshape(hidden, [1, -1, hidden.shape[-1]]))
        if scale is not None:
            x = x * scale
        x = tf.reshape(x, [shape[0], shape[1], self.num_heads, self.head_dim])
        return tf.transpose(x, [0, 2, 1, 3])

    def _call_inspect(self, hidden_states, attention_mask, head_mask, training):
        """The inspection path (`return_attention_scores=True` only): every position a possible slot, the
        probabilities kept and returned in the Hugging Face layout. The fast path's numbers, up to rounding."""
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

        index, slot_ok = global_slots(is_global, padded)
        local_out, probs = inspect_local_attention(q, k, v, mask, w, index, slot_ok, head_mask,
                                                   drop(self.probs_dropout))
        hg = tf.gather(hidden, index, batch_dims=1)
        qg = self.query_global(hg) * scale
        gout, gprobs = inspect_global_attention(qg, kg_all, vg_all, mask, slot_ok, head_mask,
                                                drop(self.global_probs_dropout))
        out = scatter_slots(gout, is_global, local_out)
        attentions, global_attentions = self._hf_layout(probs, gprobs, mask, max_count, length)
        out = self.output_dense(out)[:, :length]
        return out, attentions, global_attentions

    def _bucketed(self, attend, padded, max_count):
        """Runs `attend(slots, fold)` for the batch's global tokens (`attend(0)`: none), `fold` the choice of
        `_folds_global_projections`.

        Under XLA, `attend(0)` (no global token: the band alone, a transpose) is computed unconditionally; then a
        FLAT sequence of `tf.cond`, each either computing its path (the selected one) or passing the previous value
        through. Exactly one path beyond `attend(0)` runs.
        - Under XLA (`xla_context()`), shapes must be static: one path per bucket and one for the full length,
          each with its bucket's number of slots; the smallest bucket that holds every row's global tokens runs.
        - Elsewhere the number of slots is the batch's largest global count itself (a dynamic shape): the
          buckets, in order, are grouped into runs with the same fold choice, and each run is ONE path. With the
          default buckets at base size that is two paths (folded up to 16 global tokens, unfolded beyond)
          instead of four, and a batch never pays for empty slots. The numbers are the static paths' (the
          extra slots there are masked out) up to float32 summation order. There the paths and `attend(0)` are
          the branches of ONE `tf.switch_case` (see the comment there), not a chain.

        Each path costs seconds per layer to trace and first run in a training step, which is why there are as
        few as possible. Flat, not nested: in a nested chain every level's gradient carries the intermediates of
        the levels inside it (tiny config, one layer, buckets (4,): trace plus first gradient step 8.5 s nested,
        5.4 s flat). The unconditional `attend(0)` is one transpose and multiply per layer: at 4096 tokens (base
        size) the forward and training step stayed within noise (one back-to-back pair: 1.05 and 1.05).
        Under XLA a chain of `tf.cond`, not one `tf.switch_case`: the gradient of a `Case` corrupted memory under
        XLA (TF 2.21) when a branch combines two captured tensors of unknown batch or length.
        """
        if SINGLE_GLOBAL_PATH:  # no global token: the empty slot weighs exactly 0 (see `add_global_keys`)
            return attend(tf.maximum(max_count, 1))
        static_len = padded if isinstance(padded, int) else None
        buckets = [0] + [b for b in self.global_buckets if b > 0 and (static_len is None or b < static_len)]
        sizes = buckets + [padded]  # static slot counts; only the last resort follows an unknown length
        # The selector is computed here, outside every branch (a bool computed inside a branch becomes an
        # intermediate of the `If` that TF's type inference pairs with a float one, and logs a 20-line warning).
        selected = tf.add_n([tf.cast(max_count > b, tf.int32) for b in buckets])  # the index into `sizes`
        folds = [self._folds_global_projections(size) for size in sizes]
        if STATIC_SLOTS_EVERYWHERE or xla_context():
            paths = [(tf.equal(selected, i), sizes[i], folds[i]) for i in range(1, len(sizes))]
        else:
            runs = []  # [first, last, fold]: consecutive sizes with the same fold choice
            for i in range(1, len(sizes)):
                if runs and runs[-1][2] == folds[i]:
                    runs[-1][1] = i
                else:
                    runs.append([i, i, folds[i]])
            # ONE `tf.switch_case` over "no global token" and the runs: every tensor the paths read has ONE consumer
            # here. With the flat chain each had one per `tf.cond` (plus the band's), and the sum of three or more
            # gradients of one static shape is what Grappler's memory optimizer turns into an accumulator with a
            # zeros initializer, which constant folding then keeps as a constant for the life of the step (five
            # per layer, 60 MiB per layer at 4096 tokens, base size). Not under XLA (see the docstring).
            index = tf.add_n([tf.cast((selected >= first) & (selected <= last), tf.int32) * (k + 1)
                              for k, (first, last, _) in enumerate(runs)])  # runs: at least the full length's
            branches = [_no_autograph(lambda: attend(0))] + [
                _no_autograph(lambda fold=fold: attend(max_count, fold)) for _, _, fold in runs]
            return tf.switch_case(index, branches)
        out = attend(0)
        for pred, slots, fold in paths:
            out = tf.cond(pred, _no_autograph(lambda slots=slots, fold=fold: attend(slots, fold)),
                          _no_autograph(lambda out=out: out))
        return out

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
            block_queries=self.block_queries,
            chunk_queries=self.chunk_queries,
            dense_max_length=self.dense_max_length,
            fold_global_projections=self.fold_global_projections,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
