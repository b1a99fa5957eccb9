"""`LongformerBackbone`: what every task shares (embeddings, padding, masks, the encoder, the pooler).

The backbone takes plain arguments (no config object) and returns a dict of tensors; the task classes in
`tf_longformer/models/` hold one and put their head on top. It checks nothing that a graph assert could not
check later: the tasks validate their inputs before calling it (see `tf_longformer/validation.py`).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tf_longformer import validation
from tf_longformer.layers.attention import DEFAULT_GLOBAL_BUCKETS, pad_axis
from tf_longformer.layers.embeddings import LongformerEmbeddings, roberta_position_ids, sequential_position_ids
from tf_longformer.layers.encoder import LongformerEncoder
from tf_longformer.layers.heads import LongformerPooler
from tf_longformer.layers.utils import serializable


def padding_multiple(attention_window, num_layers):
    """The length every input is padded to a multiple of: each layer works in blocks of its one-sided window,
    so the least common multiple of those means no layer pads again."""
    windows = [attention_window] * num_layers if isinstance(attention_window, int) else list(attention_window)
    return math.lcm(*[w // 2 for w in windows])


@serializable
class LongformerBackbone(keras.layers.Layer):
    """The Longformer encoder with its embeddings and pooler.

    Call with `input_ids (batch, length)` or `inputs_embeds (batch, length, hidden)`, and optionally
    `attention_mask` (1 real, 0 padding), `global_attention_mask` (1 global), `token_type_ids`,
    `position_ids` (RoBERTa positions from the ids when absent), `head_mask` (`(layers, heads)` or broadcastable).
    Returns a dict: `last_hidden_state`, `pooler_output` (when `use_pooler`), and `hidden_states` /
    `attentions` / `global_attentions` (tuples, one entry per layer) when asked for.

    Where graph asserts do not run (XLA), an id, position or type outside its table, or a mask value other than
    0/1, must not read another row's embedding: lookups are clamped and such a row becomes NaN.

    >>> backbone = LongformerBackbone(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2,
    ...                               intermediate_size=32, attention_window=4, max_position_embeddings=64)
    >>> out = backbone(input_ids=tf.constant([[0, 5, 6, 7, 2]]))
    >>> tuple(out["last_hidden_state"].shape), tuple(out["pooler_output"].shape)
    ((1, 5, 16), (1, 16))
    """

    def __init__(
        self,
        vocab_size,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=3072,
        attention_window=512,
        max_position_embeddings=4098,
        type_vocab_size=1,
        pad_token_id=1,
        hidden_act="gelu",
        dropout=0.1,
        attention_dropout=0.1,
        layer_norm_eps=1e-5,
        initializer_range=0.02,
        global_buckets=DEFAULT_GLOBAL_BUCKETS,
        gradient_checkpointing=False,
        use_pooler=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(gradient_checkpointing, bool):
            raise ValueError(f"`gradient_checkpointing` must be True or False, got {gradient_checkpointing!r}.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.attention_window = attention_window if isinstance(attention_window, int) else list(attention_window)
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.pad_token_id = pad_token_id
        self.hidden_act = hidden_act
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.global_buckets = tuple(global_buckets)
        self.use_pooler = bool(use_pooler)
        self.padding_multiple = padding_multiple(attention_window, num_layers)
        self.embeddings = LongformerEmbeddings(
            vocab_size=vocab_size, hidden_size=hidden_size, max_position_embeddings=max_position_embeddings,
            type_vocab_size=type_vocab_size, layer_norm_eps=layer_norm_eps, dropout=dropout,
            initializer_range=initializer_range, dtype=self.dtype_policy, name="embeddings",
        )
        self.encoder = LongformerEncoder(
            num_layers=num_layers, num_heads=num_heads, intermediate_size=intermediate_size,
            attention_window=attention_window, hidden_act=hidden_act, dropout=dropout,
            attention_dropout=attention_dropout, layer_norm_eps=layer_norm_eps, initializer_range=initializer_range,
            global_buckets=self.global_buckets, gradient_checkpointing=gradient_checkpointing,
            dtype=self.dtype_policy, name="encoder",
        )
        self.pooler = (LongformerPooler(hidden_size, initializer_range, dtype=self.dtype_policy, name="pooler")
                       if self.use_pooler else None)

    @property
    def gradient_checkpointing(self):
        return self.encoder.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled):
        self.encoder.gradient_checkpointing = bool(enabled)

    def build(self, input_shape=None):
        if self.built:
            return
        self.embeddings.build()
        self.encoder.build((None, None, self.hidden_size))
        if self.pooler is not None:
            self.pooler.build()
        self.built = True

    def call(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, head_mask=None, output_attentions=False,
             output_hidden_states=False, training=None):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Give exactly one of `input_ids` and `inputs_embeds` "
                             f"(got {'both' if input_ids is not None else 'neither'}).")
        checks = []  # per-position "in range" flags: a row with any False becomes NaN
        if input_ids is not None:
            input_ids = tf.convert_to_tensor(input_ids)
            checks.append(validation.in_range(input_ids, 0, self.vocab_size))
            input_ids = validation.clamp_ids(input_ids, self.vocab_size)
            shape = tf.shape(input_ids)
        else:
            inputs_embeds = tf.cast(inputs_embeds, self.compute_dtype)
            shape = tf.shape(inputs_embeds)[:2]
        batch, length = shape[0], shape[1]

        def mask(m, default):
            if m is None:
                return tf.fill(shape, default)
            m = tf.convert_to_tensor(m)
            checks.append(validation.is_binary(m))
            return tf.reshape(tf.cast(m, tf.int32), shape)  # never broadcast a mask of another shape

        merged = mask(attention_mask, 1) * (mask(global_attention_mask, 0) + 1)  # 0 padding, 1 local, 2 global
        if position_ids is None:
            position_ids = (roberta_position_ids(input_ids, self.pad_token_id) if input_ids is not None
                            else sequential_position_ids(batch, length, self.pad_token_id))
        checks.append(validation.in_range(position_ids, 0, self.max_position_embeddings))
        position_ids = validation.clamp_ids(position_ids, self.max_position_embeddings)
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape, tf.int32)
        else:
            checks.append(validation.in_range(token_type_ids, 0, self.type_vocab_size))
            token_type_ids = validation.clamp_ids(token_type_ids, self.type_vocab_size)
        row_ok = tf.reduce_all(tf.stack([validation.rows_ok(tf.reshape(k, shape)) for k in checks]), axis=0)
        if head_mask is not None:
            head_mask = tf.broadcast_to(tf.cast(head_mask, tf.float32), [self.num_layers, self.num_heads])

        # Pad once to a length every layer's block size divides; cut every output back to `length`.
        m = self.padding_multiple
        merged = pad_axis(merged, m)
        position_ids = pad_axis(position_ids, m, value=self.pad_token_id)
        token_type_ids = pad_axis(token_type_ids, m)
        if input_ids is not None:
            input_ids = pad_axis(input_ids, m, value=self.pad_token_id)
        else:
            inputs_embeds = pad_axis(inputs_embeds, m)

        h = self.embeddings(input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids,
                            inputs_embeds=inputs_embeds, training=training)
        h = validation.poison_rows(h, row_ok)
        h, hidden_states, attentions, global_attentions = self.encoder(
            h, merged, head_mask=head_mask, training=training,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        out = {"last_hidden_state": h[:, :length]}
        if self.pooler is not None:
            out["pooler_output"] = self.pooler(out["last_hidden_state"])
        if output_hidden_states:
            out["hidden_states"] = tuple(x[:, :length] for x in hidden_states)
        if output_attentions:
            out["attentions"] = tuple(a[:, :, :length] for a in attentions)
            out["global_attentions"] = tuple(g[:, :, :length] for g in global_attentions)
        return out

    def token_embedding_matrix(self):
        """The word-embedding table `(vocab, hidden)`, which the masked-LM head reuses as its output layer."""
        return self.embeddings.word_embeddings.embeddings

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
            num_heads=self.num_heads, intermediate_size=self.intermediate_size,
            attention_window=self.attention_window, max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size, pad_token_id=self.pad_token_id, hidden_act=self.hidden_act,
            dropout=self.dropout, attention_dropout=self.attention_dropout, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, global_buckets=list(self.global_buckets),
            gradient_checkpointing=self.gradient_checkpointing, use_pooler=self.use_pooler,
        )
        return config
