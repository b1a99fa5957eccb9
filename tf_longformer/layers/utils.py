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


def _gelu_exact(x):
    return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(math.sqrt(2.0), x.dtype)))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.tanh(tf.cast(math.sqrt(2.0 / math.pi), x.dtype) * (x + 0.044715 * x * x * x)))


def _gelu_fast(x):
    return 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


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
