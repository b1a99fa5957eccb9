"""Small shared pieces of the layers."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

PACKAGE = "tf_longformer"


# The ONNX export (tf_longformer/onnx_export.py) sets this while it traces: `layer_norm` then builds the plain
# ops (converters map TensorFlow's ops one by one), not the pattern Grappler rewrites into one oneDNN kernel.
ONNX_TRACE = False


def xla_context():
    """Whether the graph being built now will be compiled by XLA: a `tf.function(jit_compile=True)` (or a Keras
    model compiled with `jit_compile=True`) being traced, or a TPU replica. False when executing eagerly.

    TensorFlow marks those graphs with an XLA control-flow context (its own ops, e.g. `tf.while_loop`, read it
    the same way); if the module that tells it is ever gone, the answer is True: static shapes, correct
    everywhere, only slower to trace."""
    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops import control_flow_util
        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):  # an internal module or function moved: fall back to the static shapes
        return True


_ONEDNN = []


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on (the default on x86; `TF_ENABLE_ONEDNN_OPTS=0` turns them
    off). False if the internal module that tells it is gone."""
    if not _ONEDNN:
        try:
            from tensorflow.python.util import _pywrap_util_port
            _ONEDNN.append(bool(_pywrap_util_port.IsMklEnabled()))
        except (ImportError, AttributeError):
            _ONEDNN.append(False)
    return _ONEDNN[0]


def serializable(cls):
    """Registers a class for `.keras` saving without `custom_objects`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


# The dropout masks' random numbers: TensorFlow's Philox, named (`auto_select`, what `tf.random.stateless_*` and
# Keras' dropout use when no algorithm is given, is Philox on CPU and GPU; under XLA (TF 2.21, CPU) it becomes
# XLA's default bit generator, which took 5.2 s to draw 12 x 4096 x 513 numbers, one layer's band of attention
# probabilities at 4096 tokens, against 61-65 ms for Philox named, with or without XLA: Intel Xeon with AMX,
# 2 vCPUs). The mask is decided on the raw 32 bits, not on a float made of them: XLA and TensorFlow's kernels
# make the same Philox bits but not the same floats of them, so only the bits give XLA and the graph the same
# masks (`tests/test_dropout_rng.py`).
RNG_ALG = "philox"


def keep_threshold(rate):
    """The int32 threshold `stateless_keep` compares the random bits (read as int32) against: a uniform int32 is
    `>=` it with probability `1 - rate` (to within `2**-32`)."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    return min(-(2**31) + math.ceil(rate * 2**32), 2**31 - 1)


def stateless_keep(shape, seed, rate):
    """Which elements of `shape` dropout keeps at `rate` (a bool tensor): 32 random bits per element from `seed`
    (int32 `(2,)`) by Philox (`RNG_ALG`), kept where, read as an int32, they are `>= keep_threshold(rate)`. The
    same masks eagerly, in graphs and under XLA."""
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg=RNG_ALG)
    return tf.bitcast(bits, tf.int32) >= keep_threshold(rate)


def _int32_seed(state):
    """A Keras `SeedGenerator` state as the int32 `(2,)` seed the stateless ops take (Keras keeps it in int64 on
    TensorFlow: folded into the int32 range as Keras' own random ops fold it)."""
    return state if state.dtype == tf.int32 else tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)


def generator_seed(generator):
    """An int32 `(2,)` seed for stateless ops from a Keras `SeedGenerator` (advancing it): two Philox words of its
    state, bit for bit the same eagerly, in graphs and under XLA (Keras' `random.randint` draws by `auto_select`:
    under XLA other numbers)."""
    bits = tf.random.stateless_uniform((2,), seed=_int32_seed(generator.next()), minval=None, maxval=None,
                                       dtype=tf.uint32, alg=RNG_ALG)
    return tf.bitcast(bits, tf.int32)


@serializable
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with the masks of `stateless_keep`: the same masks eagerly, in graphs and under XLA,
    and under XLA as fast as outside it (see `RNG_ALG`). Seeds come from the layer's `seed_generator` as Keras'
    layer draws them (so `tf.recompute_grad`'s rewound generators redraw the same masks). A `noise_shape` goes to
    Keras' own dropout."""

    def call(self, inputs, training=False):
        if not training or not 0 < self.rate < 1 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        keep = stateless_keep(tf.shape(inputs), _int32_seed(self.seed_generator.next()), self.rate)
        return tf.where(keep, inputs * tf.cast(1.0 / (1.0 - self.rate), inputs.dtype), tf.zeros([], inputs.dtype))


def dense_product(layer, x, dtype, residual=None):
    """`x @ kernel + bias (+ residual)` for tokens as rows, `x` `(tokens, in)` -> `(tokens, out)`, with the Keras
    layer's weights (`Dense` or `EinsumDense`; `kernel` includes an enabled LoRA update) in `dtype`, in the
    layer's name scope (the profiles attribute it there).

    `MatMul` + `BiasAdd` (+ `AddV2` of a `(tokens, out)` `residual`) on 2-D tensors is the pattern TensorFlow's
    graph rewriter fuses into one oneDNN product (`_MklNativeFusedMatMul`): the bias and the residual are added
    while the product's output is written, not in passes of their own. A Keras layer on a 3-D input reshapes
    around its `MatMul` and adds the bias on the 3-D result, which does not fuse. Not for quantized layers (their
    stored kernel is not the matrix they multiply by): call those as layers.
    """
    with tf.name_scope(layer.name):
        y = _product(x, layer.kernel, getattr(layer, "bias", None), dtype)
        return y if residual is None else y + tf.cast(residual, dtype)


def after_gradient(grads, *tensors):
    """`tensors` as identities that exist only once the incoming gradient(s) `grads` do (a tensor, a list, Nones
    skipped): for a custom gradient that recomputes from forward tensors. Without it TensorFlow's executor runs
    whatever part of a gradient reads forward tensors alone (a recomputation, the GELU's derivative, the band's
    key blocks) as soon as those exist, during the forward pass (dataflow: nothing orders it later), and holds the
    results until the backward pass reaches them: the memory the recomputation was meant to save, and more
    (measured at 4096 tokens, base size: 1.5 GiB of the masked-LM step's 5.8 GiB peak of live tensors). Identities
    forward their input's buffer (no copy); None stays None.

    XLA ignores control dependencies, and its common-subexpression elimination merges a recomputation with the
    forward pass's identical computation, whose result then stays alive until the backward pass (the feed-forward's
    activation and the GELU's derivative, 96 MiB per layer at 4096 tokens, base size). Under XLA the floating-point
    tensors therefore get `0 *` one element of the gradient added: a data dependency XLA keeps (it does not fold
    `0 * x` for floats, which may be NaN), fused into their first use. (XLA's `OptimizationBarrier`, what JAX uses
    for this, is expanded away early in XLA's CPU pipeline; tried, it made the step 7x slower.) Integer and bool
    tensors pass as they are."""
    signals = [g for g in tf.nest.flatten(grads) if g is not None]
    if not signals or tf.executing_eagerly():
        return tensors
    if xla_context():
        zero = 0 * tf.reduce_sum(tf.reshape(signals[0], [-1])[:1])  # 0 (NaN if the gradient is: then so is all)
        return tuple(t + tf.cast(zero, t.dtype) if t is not None and t.dtype.is_floating else t for t in tensors)
    with tf.control_dependencies(signals):
        return tuple(None if t is None else tf.identity(t) for t in tensors)


def _product(x, kernel, bias, dtype):
    """`x @ kernel + bias` in `dtype`, the kernel flattened to `(in, out)` (`bias` may be None)."""
    y = tf.matmul(x, tf.reshape(tf.cast(kernel, dtype), [x.shape[-1], -1]))
    return y if bias is None else tf.nn.bias_add(y, tf.reshape(tf.cast(bias, dtype), [-1]))


def activation_product(act, layer, x, dtype, scope=None):
    """`dense_product(layer, act(x), dtype)` whose gradient keeps `x` only: the backward pass computes `act(x)`
    again (one elementwise pass) instead of keeping it. `x` `(tokens, in)`; `scope`: the name scope of the
    activation (the profiles attribute it there).

    In the feed-forward block `x` is the `(tokens, intermediate)` pre-activation: plain autodiff keeps both it (for
    the activation's gradient) and `act(x)` (for the kernel's), two `(tokens, 3072)` tensors per layer at base size
    (96 MiB at 4096 tokens in float32); this keeps one. The backward pass has the same two products as autodiff's
    (`act(x)^T dy` and `dy kernel^T`), the activation's gradient by autodiff of `act` itself (any activation).
    The weights enter as their values, so the gradient reaches the variables through their reads (and the
    mixed-precision casts). A layer with LoRA enabled or quantized is not handled here: callers use plain autodiff.
    """
    kernel, bias = layer.kernel.value, getattr(layer, "bias", None)
    bias = None if bias is None else bias.value
    scope = scope or "activation"

    @tf.custom_gradient
    def run(x, kernel, *bias):
        with tf.name_scope(scope):
            h = act(x)
        with tf.name_scope(layer.name):
            y = _product(h, kernel, bias[0] if bias else None, dtype)

        def grad(dy):
            x_, = after_gradient(dy, x)  # recomputed in the backward pass, not as soon as `x` exists
            with tf.GradientTape() as tape:
                tape.watch(x_)
                with tf.name_scope(scope):
                    h = act(x_)
            with tf.name_scope(layer.name):
                d_kernel = tf.reshape(tf.cast(tf.matmul(h, dy, transpose_a=True), kernel.dtype), tf.shape(kernel))
                dh = tf.matmul(dy, tf.reshape(tf.cast(kernel, dtype), [x.shape[-1], -1]), transpose_b=True)
            dx = tape.gradient(h, x_, output_gradients=dh)
            d_bias = [tf.reshape(tf.cast(tf.reduce_sum(dy, 0), b.dtype), tf.shape(b)) for b in bias]
            return (dx, d_kernel, *d_bias)

        return y, grad

    return run(tf.cast(x, dtype), kernel, *([] if bias is None else [bias]))


def clone_initializer(initializer):
    """A fresh initializer with the same config, so two weights never share random state."""
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


# The GELUs keep only their input for the backward pass (a custom gradient): written out as plain ops, autodiff
# kept four `(batch, length, intermediate)` tensors per layer (at base size and 4096 tokens, 192 MiB per layer),
# where the derivative needs `x` alone. The forward expressions are the reference's, op for op; constants are made
# in the input's dtype (a Python float cast to float64 would first be rounded to float32).
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)


@tf.custom_gradient
def _gelu_exact(x):
    def grad(dy):
        z, = after_gradient(dy, x)
        cdf = 0.5 * (1.0 + tf.math.erf(z * tf.constant(_SQRT_HALF, x.dtype)))
        pdf = tf.exp(-0.5 * z * z) * tf.constant(_INV_SQRT_2PI, x.dtype)
        return dy * (cdf + z * pdf)

    return 0.5 * x * (1.0 + tf.math.erf(x / tf.constant(math.sqrt(2.0), x.dtype))), grad


def _gelu_tanh_grad(x, c):
    """The derivative of `0.5 x (1 + tanh(c (x + 0.044715 x^3)))`."""
    t = tf.tanh(c * (x + 0.044715 * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)


@tf.custom_gradient
def _gelu_tanh(x):
    c = tf.constant(_TANH_C, x.dtype)
    return (0.5 * x * (1.0 + tf.tanh(c * (x + 0.044715 * x * x * x))),
            lambda dy: dy * _gelu_tanh_grad(after_gradient(dy, x)[0], c))


@tf.custom_gradient
def _gelu_fast(x):
    y = 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
    return y, lambda dy: dy * _gelu_tanh_grad(after_gradient(dy, x)[0], tf.constant(0.7978845608, x.dtype))


ACTIVATIONS = {
    "gelu": _gelu_exact,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.tanh,
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def layer_norm(x, gamma, beta, epsilon, dtype=None):
    """LayerNorm over the last axis, computed in float32 (a half-precision `x` is cast up, the output cast to
    `dtype`, default `x.dtype`): `n = (x - mean) * rsqrt(var + epsilon)`, `y = n * gamma + beta`.

    Fewer passes than Keras' own (`ops.layer_normalization`: three products, one of them broadcasting the
    per-token scale to full size, and an `AddN`): measured at 4096 x 768 on an Intel Xeon with AMX, 4.6 ms
    against 6.5 ms in float32, 5.3 against 6.5 in bfloat16 (the same numbers to 1e-6, resp. one bfloat16
    rounding). Its custom gradient keeps `n` and the per-token `rsqrt` `r` (no more than Keras' own keeps) and is
    the textbook one: `dx = r * (dn - mean(dn) - n * mean(dn * n))` with `dn = dy * gamma`.

    In a graph with oneDNN on (`onednn_layer_norm_applies`) the forward is instead one oneDNN kernel
    (`_onednn_layer_norm`; in bfloat16 it takes `gamma` and `beta` in bfloat16), with the same gradient.
    """
    dtype = tf.as_dtype(dtype or x.dtype)
    if onednn_layer_norm_applies(x, dtype):
        return _onednn_layer_norm(x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), float(epsilon))
    return _layer_norm(x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), float(epsilon), dtype)


def onednn_layer_norm_applies(x, dtype) -> bool:
    """Whether `layer_norm` builds its forward as the pattern TensorFlow's graph rewriter (Grappler's remapper)
    replaces by ONE oneDNN kernel, `_MklLayerNorm` (`_onednn_layer_norm`): in a graph (eager ops are not
    rewritten) with oneDNN on and no GPU visible, outside XLA (which fuses on its own) and the ONNX export (which
    converts TensorFlow's ops one by one), for a float32 or bfloat16 `x` of rank 2 or 3 (the kernel's) returned
    in its own dtype."""
    x_dtype = tf.as_dtype(x.dtype)
    return (not tf.executing_eagerly() and x_dtype == tf.as_dtype(dtype) and x_dtype in (tf.float32, tf.bfloat16)
            and x.shape.rank in (2, 3) and onednn_enabled() and not xla_context() and not ONNX_TRACE
            and not tf.config.list_logical_devices("GPU"))


def _onednn_layer_norm(x, gamma, beta, epsilon):
    """`layer_norm` as Keras 2's fused LayerNorm wrote it, the pattern the remapper turns into `_MklLayerNorm`:
    the tokens as the channels of a `(1, tokens, width, 1)` batch norm in training mode (each token normalised
    over its `width` values, unit scale, zero offset), reshaped back, times `gamma` plus `beta` (in `x`'s dtype:
    the kernel's bfloat16 inputs and output; it computes the statistics in float32 inside).

    One pass instead of eight (measured at 4096 x 768 on an Intel Xeon with AMX: 1.5-1.7 ms against 4.7 in
    float32, 1.3-1.6 against 5.7 in bfloat16 with its two casts). The pattern only matches when the token count is not a
    constant Grappler folds (`Fill` of it must stay a `Fill`): it goes through `placeholder_with_default`, which
    folding leaves alone. The raw op takes `epsilon` as given (`tf.nn.fused_batch_norm` raises it to 1.001e-5).
    The gradient is `_layer_norm`'s, with the normalised input recomputed from `x` (one pass): the backward
    keeps `x` (not the float32 normalised copy)."""
    dtype = x.dtype

    @tf.custom_gradient
    def run(x, gamma, beta):
        shape = tf.shape(x)
        rows = tf.compat.v1.placeholder_with_default(tf.reduce_prod(shape[:-1]), [])
        flat = tf.reshape(x, tf.stack([1, rows, shape[-1], 1]))
        empty = tf.zeros([0], tf.float32)
        n = tf.raw_ops.FusedBatchNormV3(x=flat, scale=tf.fill([rows], 1.0), offset=tf.fill([rows], 0.0),
                                        mean=empty, variance=empty, epsilon=epsilon, data_format="NCHW",
                                        is_training=True).y
        y = tf.cast(beta, dtype) + tf.reshape(n, shape) * tf.cast(gamma, dtype)

        def grad(dy):
            x32 = tf.cast(after_gradient(dy, x)[0], tf.float32)
            centred = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
            r = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
            return _layer_norm_grad(dy, centred * r, r, gamma, dtype)

        return y, grad

    return run(x, gamma, beta)


def _layer_norm(x, gamma, beta, epsilon, dtype):
    in_dtype = x.dtype

    @tf.custom_gradient
    def run(x, gamma, beta):
        x32 = tf.cast(x, tf.float32)
        centred = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
        r = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True) + epsilon)
        n = centred * r
        y = tf.cast(n * gamma + beta, dtype)

        def grad(dy):
            return _layer_norm_grad(dy, n, r, gamma, in_dtype)

        return y, grad

    return run(x, gamma, beta)


def _layer_norm_grad(dy, n, r, gamma, in_dtype):
    """LayerNorm's gradients `(dx, d_gamma, d_beta)` from the normalised input `n` and the per-token `rsqrt` `r`
    (float32): `dx = r * (dn - mean(dn) - n * mean(dn * n))` with `dn = dy * gamma`."""
    dy = tf.cast(dy, tf.float32)
    width = tf.shape(dy)[-1]
    d_gamma = tf.reduce_sum(tf.reshape(dy * n, [-1, width]), axis=0)
    d_beta = tf.reduce_sum(tf.reshape(dy, [-1, width]), axis=0)
    dn = dy * gamma
    dx = r * (dn - tf.reduce_mean(dn, axis=-1, keepdims=True) - n * tf.reduce_mean(dn * n, axis=-1, keepdims=True))
    return tf.cast(dx, in_dtype), d_gamma, d_beta


@serializable
class LayerNorm(keras.layers.LayerNormalization):
    """Keras' `LayerNormalization` (the same weights, config and checkpoints) computed by `layer_norm` when it
    normalises the last axis with both `gamma` and `beta` (every LayerNorm of the model); any other setting runs
    Keras' own."""

    def call(self, inputs):
        last = inputs.shape.rank - 1 if inputs.shape.rank is not None else None
        axis = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        if (getattr(self, "rms_scaling", False) or not (self.center and self.scale) or last is None
                or [a % (last + 1) for a in axis] != [last]):
            return super().call(inputs)
        return layer_norm(inputs, self.gamma, self.beta, self.epsilon, self.compute_dtype)
