"""`TFLongformerForSequenceClassification`: classification / regression / multi-label on the first token."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer import training, validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.heads import LongformerClassificationHead
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForSequenceClassification(TFLongformerPreTrainedModel):
    """`logits (batch, num_labels)`. Token 0 is made global when no `global_attention_mask` is given.

    The loss follows `config.problem_type`, or when unset: `num_labels == 1` -> regression (MSE), integer
    labels -> cross-entropy, float labels -> multi-label sigmoid cross-entropy.
    """

    task = "sequence_classification"
    task_order = 2
    hf_architecture = "LongformerForSequenceClassification"
    head_prefixes = ("classifier.",)
    id2label_outputs = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.classifier = LongformerClassificationHead(c.hidden_size, c.num_labels, c.hidden_dropout_prob,
                                                       c.initializer_range, dtype=self.dtype_policy, name="classifier")

    def build_head(self):
        self.classifier.build()

    def automatic_global_attention(self, input_ids):
        """1 on each row's first token (`<s>`). A comparison, not `tf.one_hot`: tf2onnx 1.17 cannot convert a
        one-hot whose depth (here the length) is only known at run time."""
        first = tf.equal(tf.range(tf.shape(input_ids)[1]), 0)
        return tf.cast(tf.broadcast_to(first[None, :], tf.shape(input_ids)), tf.int32)

    def head(self, out, x, training):
        return {"logits": self.classifier(out["last_hidden_state"], training=training)}

    def problem_type_for(self, labels):
        """The loss this model uses for `labels` (`config.problem_type`, or what the labels imply)."""
        return self._own_loss.kind_for(tf.convert_to_tensor(labels).dtype)

    def _is_regression(self):
        return self._own_loss.kind_for(tf.int32) == "regression"

    def default_loss(self):
        return training.SequenceClassificationLoss(self.config.num_labels, self.config.problem_type)

    def default_metrics(self):
        if self._is_regression():
            return [keras.metrics.MeanAbsoluteError(name="mean_absolute_error")]
        return [training.TaskAccuracy()]

    def check_labels(self, x, context):
        c, ctx = self.config, context
        labels = x["labels"]
        kind = self.problem_type_for(labels)
        if kind == "single_label_classification":
            validation.check_per_example("labels", labels, ctx.batch_static, ctx.batch, ctx.asserts)
            validation.check_class_ids("labels", labels, c.num_labels, f"num_labels={c.num_labels}", ctx.asserts)
        elif kind == "regression" and c.num_labels == 1:
            if not (labels.dtype.is_floating or labels.dtype.is_integer):
                raise TypeError(f"Regression `labels` must be numbers, got dtype {labels.dtype.name}.")
            validation.check_per_example("labels", labels, ctx.batch_static, ctx.batch, ctx.asserts)
        else:  # multi-label, or regression onto several outputs: (batch, num_labels)
            what = "multi-label targets" if kind == "multi_label_classification" else "regression targets"
            if not (labels.dtype.is_floating or labels.dtype.is_integer):
                raise TypeError(f"`labels` ({what}) must be numbers, got dtype {labels.dtype.name}.")
            shape = validation.static_shape(labels)
            want = (ctx.batch_static, c.num_labels)
            if labels.shape.rank != 2 or any(a is not None and b is not None and a != b for a, b in zip(shape, want)):
                hint = (" Float labels are read as multi-label targets; pass integer class ids for single-label "
                        "classification.") if kind == "multi_label_classification" and c.problem_type is None \
                    else ""
                raise ValueError(f"`labels` ({what}) must have shape (batch, num_labels) = "
                                 f"{validation.format_shape(want)}, got {validation.format_shape(shape)}.{hint}")
            if None in shape or ctx.batch_static is None:
                ctx.asserts.append(tf.debugging.Assert(
                    tf.reduce_all(tf.equal(tf.shape(labels), tf.stack([ctx.batch, c.num_labels]))),
                    ["`labels` must have shape (batch, num_labels); got", tf.shape(labels)]))
            if kind == "multi_label_classification":
                f = tf.cast(labels, tf.float32)
                validation.check_values("labels", labels, (f >= 0.0) & (f <= 1.0), "multi-label targets in [0, 1]",
                                        ctx.asserts)

    def head_weight_map(self):
        return {**dense_map("classifier.dense", self.classifier.dense),
                **dense_map("classifier.out_proj", self.classifier.out_proj)}

    def probability_kind(self):
        problem = self._own_loss.kind_for(tf.int32)  # what integer labels would train: the served logits' kind
        return {"regression": None, "multi_label_classification": "sigmoid"}.get(problem, "softmax")
