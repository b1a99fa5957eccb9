"""`TFLongformerForSequenceClassification`: classification / regression / multi-label on the first token."""

from __future__ import annotations

import tensorflow as tf

from tf_longformer.layers.heads import LongformerClassificationHead
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, masked_sparse_ce


@serializable
class TFLongformerForSequenceClassification(TFLongformerPreTrainedModel):
    """`logits (batch, num_labels)`. Token 0 is made global when no `global_attention_mask` is given.

    The loss follows `config.problem_type`, or when unset: `num_labels == 1` -> regression (MSE), integer
    labels -> cross-entropy, float labels -> multi-label sigmoid cross-entropy.
    """

    hf_architecture = "LongformerForSequenceClassification"
    head_prefixes = ("classifier.",)

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.classifier = LongformerClassificationHead(c.hidden_size, c.num_labels, c.hidden_dropout_prob,
                                                       c.initializer_range, dtype=self.dtype_policy, name="classifier")

    def _build_head(self):
        self.classifier.build()

    def _head_weight_map(self):
        return {**self._dense_map("classifier.dense", self.classifier.dense),
                **self._dense_map("classifier.out_proj", self.classifier.out_proj)}

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, labels=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict, labels=labels)
        overrides = {}
        if x["global_attention_mask"] is None and x["input_ids"] is not None:
            ids = tf.convert_to_tensor(x["input_ids"])
            overrides["global_attention_mask"] = tf.one_hot(tf.zeros(tf.shape(ids)[:1], tf.int32), tf.shape(ids)[1],
                                                           dtype=tf.int32)
        out = self._run_backbone(x, training, **overrides)
        logits = self.classifier(out["last_hidden_state"], training=training)
        loss = None if x["labels"] is None else self.compute_hf_loss(x["labels"], logits)
        return self._finish(out, x["return_dict"], loss=loss, logits=logits)

    def problem_type_for(self, labels):
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.config.num_labels == 1:
            return "regression"
        return "single_label_classification" if labels.dtype.is_integer else "multi_label_classification"

    def compute_hf_loss(self, labels, logits):
        labels = tf.convert_to_tensor(labels)
        logits = tf.cast(logits, tf.float32)
        kind = self.problem_type_for(labels)
        if kind == "regression":
            labels = tf.reshape(tf.cast(labels, tf.float32), tf.shape(logits)) if self.config.num_labels > 1 \
                else tf.reshape(tf.cast(labels, tf.float32), [-1])
            preds = logits if self.config.num_labels > 1 else tf.reshape(logits, [-1])
            return tf.reduce_mean(tf.square(preds - labels))
        if kind == "single_label_classification":
            return masked_sparse_ce(tf.reshape(labels, [-1]), logits)
        labels = tf.cast(labels, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
