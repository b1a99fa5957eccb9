"""Small shared pieces of the layers."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

PACKAGE = "tf_longformer"


def serializable(cls):
    """Registers a class for `.keras` saving without `custom_objects`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


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
        cdf = 0.5 * (1.0 + tf.math.erf(x * tf.constant(_SQRT_HALF, x.dtype)))
        pdf = tf.exp(-0.5 * x * x) * tf.constant(_INV_SQRT_2PI, x.dtype)
        return dy * (cdf + x * pdf)

    return 0.5 * x * (1.0 + tf.math.erf(x / tf.constant(math.sqrt(2.0), x.dtype))), grad


def _gelu_tanh_grad(x, c):
    """The derivative of `0.5 x (1 + tanh(c (x + 0.044715 x^3)))`."""
    t = tf.tanh(c * (x + 0.044715 * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)


@tf.custom_gradient
def _gelu_tanh(x):
    c = tf.constant(_TANH_C, x.dtype)
    return 0.5 * x * (1.0 + tf.tanh(c * (x + 0.044715 * x * x * x))), lambda dy: dy * _gelu_tanh_grad(x, c)


@tf.custom_gradient
def _gelu_fast(x):
    y = 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
    return y, lambda dy: dy * _gelu_tanh_grad(x, tf.constant(0.7978845608, x.dtype))


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
