"""`TFLongformerForMaskedLM`: the LM head, tied to the word embeddings."""

from __future__ import annotations

import tensorflow as tf

from tf_longformer import training, validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.attention import xla_context
from tf_longformer.layers.heads import LongformerLMHead
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForMaskedLM(TFLongformerPreTrainedModel):
    """Masked-token prediction: `logits (batch, length, vocab)`; `loss` over labels that are not -100.

    No automatic global attention. The serving `probabilities` signature returns the `top_k` tokens per position.

    Inside `fit` / `evaluate` (Keras' steps), with the default loss and metrics (or `loss=None`, the model's own
    loss), the vocabulary logits are computed only at the labelled positions (`labelled_logits`): the loss, its
    gradients and the accuracy are those of the full computation, at a fraction of the cost (pretraining labels
    15% of the tokens). Called directly, the model returns the logits of every position, as the reference does.
    Set `logits_at_labels_only = False` to turn the shortcut off.
    """

    task = "masked_lm"
    task_order = 1
    hf_architecture = "LongformerForMaskedLM"
    head_prefixes = ("lm_head.",)
    serving_top_k = True
    logits_at_labels_only = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.lm_head = LongformerLMHead(c.vocab_size, c.hidden_size, c.layer_norm_eps, c.initializer_range,
                                        dtype=self.dtype_policy, name="lm_head")

    def build_head(self):
        self.lm_head.build()

    def token_logits(self, hidden_states):
        """Vocabulary logits of any `(..., hidden)` states, e.g. only the masked positions of a long text."""
        return self.lm_head(hidden_states, self.backbone.token_embedding_matrix())

    def head(self, out, x, training):
        if self._shortcut_applies():
            return {"masked_lm_hidden_states": out["last_hidden_state"]}
        return {"logits": self.token_logits(out["last_hidden_state"])}

    _compiled_reads_labels_only = False

    def note_compiled(self, loss, metrics):
        # The shortcut serves losses and metrics that read the labelled positions only: ours, ignoring -100.
        ignore = self._own_loss.ignore_index
        if isinstance(metrics, dict):
            metrics = None if not metrics else [object()]
        self._compiled_reads_labels_only = (
            (loss is None or (type(loss) is training.SparseCrossentropy and not loss.span
                              and loss.ignore_index == ignore))
            and all(type(m) is training.TaskAccuracy and not m.span and m.ignore_index == ignore
                    for m in (metrics or ())))

    def _shortcut_applies(self):
        """In a Keras step whose loss and metrics read the labelled positions only."""
        return self.in_keras_step and self.logits_at_labels_only and self._compiled_reads_labels_only

    def loss_targets(self, labels, fields, sample_weight=None):
        if "logits" in fields:
            return labels, fields["logits"], sample_weight
        return self.labelled_logits(labels, fields["masked_lm_hidden_states"], sample_weight)

    def labelled_logits(self, labels, hidden_states, sample_weight=None):
        """`(labels, logits, sample_weight)` at the labelled positions only: each row's labelled positions in
        order, in `slots` slots (the batch's largest count; under XLA a static number, see below), the slots a
        row does not use labelled -100. The mean loss over the labels that count, its gradients and the accuracy
        are those of the full `(batch, length, vocab)` logits.

        Under XLA the slot count must be static: `config.max_predictions_per_seq` when set (a row with more labels
        gets NaN logits, so the loss says so instead of dropping labels), else the length (exact, no saving).
        Per-token sample weights `(batch, length)` are gathered with the labels; per-example ones are kept.
        """
        cache = getattr(self, "step_cache", None)
        key = ("labelled_logits", id(labels), id(hidden_states), id(sample_weight))
        if cache is not None and key in cache:
            return cache[key]
        ignore = self._own_loss.ignore_index
        labels = tf.convert_to_tensor(labels)
        counted = tf.not_equal(tf.cast(labels, tf.int32), ignore)
        count = tf.reduce_sum(tf.cast(counted, tf.int32), axis=1)
        overflow = None
        if xla_context():
            slots = tf.shape(labels)[1]
            if self.config.max_predictions_per_seq is not None:
                slots = tf.minimum(slots, self.config.max_predictions_per_seq)
                overflow = count > slots
        else:
            slots = tf.reduce_max(count)
        # The labelled positions first, in order (a stable sort of "not counted"), then the first `slots`.
        order = tf.argsort(tf.cast(tf.logical_not(counted), tf.int32), axis=1, stable=True)[:, :slots]
        used = tf.range(slots)[tf.newaxis, :] < count[:, tf.newaxis]
        slot_labels = tf.where(used, tf.gather(labels, order, batch_dims=1), tf.cast(ignore, labels.dtype))
        logits = self.token_logits(tf.gather(hidden_states, order, batch_dims=1))
        if overflow is not None:
            logits = tf.where(overflow[:, tf.newaxis, tf.newaxis], tf.cast(float("nan"), logits.dtype), logits)
        if sample_weight is not None:
            sample_weight = tf.convert_to_tensor(sample_weight)
            if sample_weight.shape.rank == 2:
                sample_weight = tf.gather(sample_weight, order, batch_dims=1)
        result = (slot_labels, logits, sample_weight)
        if cache is not None:
            cache[key] = result
        return result

    def default_loss(self):
        return training.SparseCrossentropy()

    def default_metrics(self):
        return [training.TaskAccuracy()]

    def check_labels(self, x, context):
        validation.check_token_labels(x, context, self.config.vocab_size, "vocab_size")

    def head_weight_map(self):
        h = self.lm_head
        m = dense_map("lm_head.dense", h.dense)
        m["lm_head.layer_norm.weight"] = (h.layer_norm.gamma, 0)
        m["lm_head.layer_norm.bias"] = (h.layer_norm.beta, 0)
        m["lm_head.bias"] = (h.bias, 0)
        return m

    @classmethod
    def normalise_checkpoint(cls, state):
        # PyTorch ties lm_head.decoder.{weight,bias} to the word embeddings and lm_head.bias.
        if "lm_head.decoder.bias" in state and "lm_head.bias" not in state:
            state["lm_head.bias"] = state["lm_head.decoder.bias"]
        state.pop("lm_head.decoder.bias", None)
        state.pop("lm_head.decoder.weight", None)
        return state

    def serving_probabilities(self, out, attention_mask, top_k):
        result = dict(out)
        logits = tf.cast(out["logits"], tf.float32)
        values, indices = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=min(int(top_k), self.config.vocab_size))
        result["top_k_probabilities"] = values
        result["top_k_token_ids"] = indices
        return result
