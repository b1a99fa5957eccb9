"""Word + RoBERTa position + token-type embeddings, LayerNorm, dropout."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer.layers.utils import Dropout, LayerNorm, clone_initializer, serializable


def roberta_position_ids(input_ids, pad_token_id):
    """RoBERTa positions: real tokens count from `pad_token_id + 1`, pads get `pad_token_id`."""
    real = tf.cast(tf.not_equal(input_ids, pad_token_id), tf.int32)
    return tf.cumsum(real, axis=1) * real + pad_token_id


def sequential_position_ids(batch, length, pad_token_id):
    """Positions for `inputs_embeds` (no ids to find padding in): `pad+1, pad+2, ...`."""
    pos = tf.range(pad_token_id + 1, length + pad_token_id + 1, dtype=tf.int32)
    return tf.broadcast_to(pos[None, :], [batch, length])


@serializable
class LongformerEmbeddings(keras.layers.Layer):
    """`LayerNorm(word[ids] + position[pos] + token_type[tt])`, then dropout.

    Call with `input_ids` or `inputs_embeds`; `position_ids` and `token_type_ids` are required (the model
    computes the RoBERTa positions before padding).
    """

    def __init__(
        self,
        vocab_size,
        hidden_size,
        max_position_embeddings,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        dropout=0.0,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout = dropout
        self.initializer_range = initializer_range

    def build(self, input_shape=None):
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)

        def emb(n, name):
            layer = keras.layers.Embedding(
                n, self.hidden_size, embeddings_initializer=clone_initializer(init), dtype=self.dtype_policy, name=name
            )
            layer.build((None, None))
            return layer

        self.word_embeddings = emb(self.vocab_size, "word_embeddings")
        self.position_embeddings = emb(self.max_position_embeddings, "position_embeddings")
        self.token_type_embeddings = emb(self.type_vocab_size, "token_type_embeddings")
        self.layer_norm = LayerNorm(
            epsilon=self.layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build((None, None, self.hidden_size))
        self.drop = Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, input_ids=None, position_ids=None, token_type_ids=None, inputs_embeds=None, training=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        x = inputs_embeds + self.position_embeddings(position_ids) + self.token_type_embeddings(token_type_ids)
        return self.drop(self.layer_norm(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            dropout=self.dropout,
            initializer_range=self.initializer_range,
        )
        return config
