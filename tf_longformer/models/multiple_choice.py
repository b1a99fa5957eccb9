"""`TFLongformerForMultipleChoice`: one score per choice, inputs `(batch, choices, length)`."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer import training, validation
from tf_longformer.hf import TENSOR_INPUTS, dense_map
from tf_longformer.layers.utils import Dropout, serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForMultipleChoice(TFLongformerPreTrainedModel):
    """`logits (batch, choices)` from the pooled first token of each `(question, choice)` row.

    Without a `global_attention_mask`, as the PyTorch reference: every token after a row's first
    `</s></s>` is global. Hidden states and attentions are those of the flattened `(batch*choices)` rows.
    """

    task = "multiple_choice"
    task_order = 5
    hf_architecture = "LongformerForMultipleChoice"
    head_prefixes = ("classifier.",)
    input_rank = 3
    has_pooler = True
    id2label_outputs = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.dropout = Dropout(c.hidden_dropout_prob, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(1, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="classifier")

    def build_head(self):
        self.classifier.build((None, self.config.hidden_size))

    def backbone_inputs(self, x):
        """`(batch, choices, ...)` inputs as `(batch*choices, ...)` rows."""
        flat = {}
        for key in TENSOR_INPUTS:
            if x[key] is not None and key != "head_mask":
                t = tf.convert_to_tensor(x[key])
                flat[key] = tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
            else:
                flat[key] = x[key]
        return flat

    def automatic_global_attention(self, input_ids):
        first_sep, has_sep = self.first_separator(input_ids)
        positions = tf.range(tf.shape(input_ids)[1])[None, :]
        return tf.cast((positions > first_sep[:, None] + 1) & has_sep[:, None], tf.int32)

    def head(self, out, x, training):
        ref = x["input_ids"] if x["input_ids"] is not None else x["inputs_embeds"]
        num_choices = tf.shape(ref)[1]
        pooled = self.dropout(out["pooler_output"], training=training)
        return {"logits": tf.reshape(self.classifier(pooled), [-1, num_choices])}

    def default_loss(self):
        return training.SparseCrossentropy()

    def default_metrics(self):
        return [training.TaskAccuracy()]

    def check_labels(self, x, context):
        ctx = context
        labels = x["labels"]
        choices_static = validation.static_shape(ctx.ref)[1]
        validation.check_per_example("labels", labels, ctx.batch_static, ctx.batch, ctx.asserts)
        if choices_static is None:
            validation.check_class_ids("labels", labels, tf.shape(ctx.ref)[1], "num_choices", ctx.asserts)
        else:
            validation.check_class_ids("labels", labels, choices_static, f"num_choices={choices_static}", ctx.asserts)

    def head_weight_map(self):
        return dense_map("classifier", self.classifier)
