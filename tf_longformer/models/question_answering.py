"""`TFLongformerForQuestionAnswering`: extractive QA (start and end logits)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer import training, validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForQuestionAnswering(TFLongformerPreTrainedModel):
    """`start_logits`, `end_logits (batch, length)`.

    Without a `global_attention_mask`, every token before a row's first `</s>` (the question of
    `<s> Q </s></s> C </s>`) is global, decided PER ROW; a row with no `</s>` gets none (and a warning in
    eager mode). The loss is the mean of the start and end cross-entropies; positions at or past the end of
    the sequence are ignored by it (as the reference).
    """

    task = "question_answering"
    task_order = 4
    hf_architecture = "LongformerForQuestionAnswering"
    head_prefixes = ("qa_outputs.",)
    label_names = ("start_positions", "end_positions")
    output_names = ("start_logits", "end_logits")
    id2label_outputs = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.qa_outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="qa_outputs")

    def build_head(self):
        self.qa_outputs.build((None, None, self.config.hidden_size))

    def automatic_global_attention(self, input_ids):
        """1 on every token before each row's first separator."""
        end, has_sep = self.first_separator(input_ids)
        positions = tf.range(tf.shape(input_ids)[-1])[None, :]
        return tf.cast((positions < end[:, None]) & has_sep[:, None], tf.int32)

    question_global_mask = automatic_global_attention

    def head(self, out, x, training):
        logits = self.qa_outputs(out["last_hidden_state"])
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def loss_predictions(self, fields):
        return {"start_positions": fields["start_logits"], "end_positions": fields["end_logits"]}

    def default_loss(self):
        return {name: training.SparseCrossentropy(span=True, name=f"{name}_loss") for name in self.label_names}

    def default_loss_weights(self):
        return {name: 0.5 for name in self.label_names}  # the reference averages the start and end losses

    def default_metrics(self):
        return {name: [training.TaskAccuracy(span=True, name="accuracy")] for name in self.label_names}

    def check_labels(self, x, context):
        ctx = context
        if len(ctx.names) == 1:
            raise ValueError(f"Give both `start_positions` and `end_positions` for the loss (got only `{ctx.names[0]}`).")
        for n in ctx.names:
            validation.check_integer(n, x[n], "integer token positions")
            validation.check_per_example(n, x[n], ctx.batch_static, ctx.batch, ctx.asserts)
            validation.check_values(n, x[n], tf.cast(x[n], tf.int64) >= 0,
                                    "token positions >= 0 (positions at or past the sequence length are ignored)",
                                    ctx.asserts, " For an example without an answer, point at the `<s>` token: 0.")

    def head_weight_map(self):
        return dense_map("qa_outputs", self.qa_outputs)

    def serving_probabilities(self, out, attention_mask, top_k):
        result = dict(out)
        keep = tf.cast(attention_mask, tf.bool)
        for side in ("start", "end"):
            logits = tf.cast(out[f"{side}_logits"], tf.float32)
            result[f"{side}_probabilities"] = tf.nn.softmax(tf.where(keep, logits, tf.float32.min), axis=-1)
        return result
