"""`TFLongformerForMultipleChoice`: one score per choice, inputs `(batch, choices, length)`."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, masked_sparse_ce


@serializable
class TFLongformerForMultipleChoice(TFLongformerPreTrainedModel):
    """`logits (batch, choices)` from the pooled first token of each `(question, choice)` row.

    Without a `global_attention_mask`, as the PyTorch reference: every token after a row's first
    `</s></s>` is global. Hidden states and attentions are those of the flattened `(batch*choices)` rows.
    """

    has_pooler = True
    hf_architecture = "LongformerForMultipleChoice"
    head_prefixes = ("classifier.",)
    input_rank = 3

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.dropout = keras.layers.Dropout(c.hidden_dropout_prob, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(1, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="classifier")

    def _build_head(self):
        self.classifier.build((None, self.config.hidden_size))

    def _head_weight_map(self):
        return self._dense_map("classifier", self.classifier)

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, labels=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict, labels=labels)
        ref = x["input_ids"] if x["input_ids"] is not None else x["inputs_embeds"]
        if ref is None:
            raise ValueError("Give `input_ids` or `inputs_embeds` of shape (batch, choices, length).")
        ref = tf.convert_to_tensor(ref)
        num_choices = tf.shape(ref)[1]
        flat = {}
        for key in ("input_ids", "attention_mask", "global_attention_mask", "token_type_ids", "position_ids"):
            if x[key] is not None:
                t = tf.convert_to_tensor(x[key])
                flat[key] = tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
        if x["inputs_embeds"] is not None:
            e = tf.convert_to_tensor(x["inputs_embeds"])
            flat["inputs_embeds"] = tf.reshape(e, tf.concat([[-1], tf.shape(e)[2:]], 0))
        if "global_attention_mask" not in flat and "input_ids" in flat:
            ids = flat["input_ids"]
            first_sep, has_sep = self._first_sep_index(ids)
            positions = tf.range(tf.shape(ids)[1])[None, :]
            flat["global_attention_mask"] = tf.cast((positions > first_sep[:, None] + 1) & has_sep[:, None], tf.int32)
        out = self._run_backbone(x, training, **{k: flat.get(k) for k in
                                                 ("input_ids", "attention_mask", "global_attention_mask",
                                                  "token_type_ids", "position_ids", "inputs_embeds")})
        pooled = self.dropout(out["pooler_output"], training=training)
        logits = tf.reshape(self.classifier(pooled), [-1, num_choices])
        loss = None if x["labels"] is None else masked_sparse_ce(tf.reshape(x["labels"], [-1]), logits)
        return self._finish(out, x["return_dict"], loss=loss, logits=logits)
