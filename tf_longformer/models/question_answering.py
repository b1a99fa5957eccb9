"""`TFLongformerForQuestionAnswering`: extractive QA (start and end logits)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, masked_sparse_ce


@serializable
class TFLongformerForQuestionAnswering(TFLongformerPreTrainedModel):
    """`start_logits`, `end_logits (batch, length)`.

    Without a `global_attention_mask`, every token before a row's first `</s>` (the question of
    `<s> Q </s></s> C </s>`) is global, decided PER ROW; a row with no `</s>` gets none (and a warning in
    eager mode). Positions outside the sequence are ignored by the loss.
    """

    hf_architecture = "LongformerForQuestionAnswering"
    head_prefixes = ("qa_outputs.",)
    label_names = ("start_positions", "end_positions")

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.qa_outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="qa_outputs")

    def _build_head(self):
        self.qa_outputs.build((None, None, self.config.hidden_size))

    def _head_weight_map(self):
        return self._dense_map("qa_outputs", self.qa_outputs)

    def question_global_mask(self, input_ids):
        """1 on every token before each row's first separator."""
        ids = tf.convert_to_tensor(input_ids)
        end, has_sep = self._first_sep_index(ids)
        positions = tf.range(tf.shape(ids)[-1])[None, :]
        return tf.cast((positions < end[:, None]) & has_sep[:, None], tf.int32)

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, start_positions=None, end_positions=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict,
                        start_positions=start_positions, end_positions=end_positions)
        overrides = {}
        if x["global_attention_mask"] is None and x["input_ids"] is not None:
            overrides["global_attention_mask"] = self.question_global_mask(x["input_ids"])
        out = self._run_backbone(x, training, **overrides)
        logits = self.qa_outputs(out["last_hidden_state"])
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if x["start_positions"] is not None and x["end_positions"] is not None:
            length = tf.shape(start_logits)[1]

            def ce(positions, logits):
                # at or past the end: ignored (as the reference); negative ones are refused by validation
                positions = tf.minimum(tf.reshape(tf.cast(positions, tf.int64), [-1]), tf.cast(length, tf.int64))
                return masked_sparse_ce(positions, logits, ignore_index=length)

            loss = (ce(x["start_positions"], start_logits) + ce(x["end_positions"], end_logits)) / 2.0
        return self._finish(out, x["return_dict"], loss=loss, start_logits=start_logits, end_logits=end_logits)
