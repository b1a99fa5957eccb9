"""Task heads: pooler, masked-LM head (tied to the word embeddings), classification head."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer.layers.utils import Dropout, LayerNorm, get_activation, serializable


def _init(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@serializable
class LongformerPooler(keras.layers.Layer):
    """`tanh(dense(h[:, 0]))`."""

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range

    def build(self, input_shape=None):
        self.dense = keras.layers.Dense(self.hidden_size, activation="tanh", kernel_initializer=_init(self.initializer_range),
                                        dtype=self.dtype_policy, name="dense")
        self.dense.build((None, self.hidden_size))
        self.built = True

    def call(self, hidden_states):
        return self.dense(hidden_states[:, 0])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config


@serializable
class LongformerLMHead(keras.layers.Layer):
    """`LN(gelu(dense(h))) @ word_embeddings^T + bias`; the embedding matrix is passed at call time (tied)."""

    def __init__(self, vocab_size, hidden_size, layer_norm_eps=1e-5, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range

    def build(self, input_shape=None):
        self.dense = keras.layers.Dense(self.hidden_size, kernel_initializer=_init(self.initializer_range),
                                        dtype=self.dtype_policy, name="dense")
        self.dense.build((None, None, self.hidden_size))
        self.layer_norm = LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype_policy,
                                                          name="layer_norm")
        self.layer_norm.build((None, None, self.hidden_size))
        self.bias = self.add_weight(name="bias", shape=(self.vocab_size,), initializer="zeros")
        self.built = True

    def call(self, hidden_states, embedding_matrix):
        x = self.layer_norm(get_activation("gelu")(self.dense(hidden_states)))
        logits = tf.einsum("blh,vh->blv", x, tf.cast(embedding_matrix, x.dtype))
        return logits + tf.cast(self.bias, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                      layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range)
        return config


@serializable
class LongformerClassificationHead(keras.layers.Layer):
    """Sentence classification on `h[:, 0]`: dropout, `dense(tanh)`, dropout, `out_proj`."""

    def __init__(self, hidden_size, num_labels, dropout=0.0, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_labels = num_labels
        self.dropout = dropout
        self.initializer_range = initializer_range

    def build(self, input_shape=None):
        self.dense = keras.layers.Dense(self.hidden_size, activation="tanh", kernel_initializer=_init(self.initializer_range),
                                        dtype=self.dtype_policy, name="dense")
        self.dense.build((None, self.hidden_size))
        self.out_proj = keras.layers.Dense(self.num_labels, kernel_initializer=_init(self.initializer_range),
                                           dtype=self.dtype_policy, name="out_proj")
        self.out_proj.build((None, self.hidden_size))
        self.drop = Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, hidden_states, training=None):
        x = self.drop(hidden_states[:, 0], training=training)
        x = self.drop(self.dense(x), training=training)
        return self.out_proj(x)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_labels=self.num_labels, dropout=self.dropout,
                      initializer_range=self.initializer_range)
        return config
