"""`TFLongformerForTokenClassification`: one label per token."""

from __future__ import annotations

import keras

from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, masked_sparse_ce


@serializable
class TFLongformerForTokenClassification(TFLongformerPreTrainedModel):
    """`logits (batch, length, num_labels)`; `loss` over labels that are not -100. No automatic global attention."""

    hf_architecture = "LongformerForTokenClassification"
    head_prefixes = ("classifier.",)

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.dropout = keras.layers.Dropout(c.hidden_dropout_prob, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(c.num_labels, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="classifier")

    def _build_head(self):
        self.classifier.build((None, None, self.config.hidden_size))

    def _head_weight_map(self):
        return self._dense_map("classifier", self.classifier)

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, labels=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict, labels=labels)
        out = self._run_backbone(x, training)
        logits = self.classifier(self.dropout(out["last_hidden_state"], training=training))
        loss = None if x["labels"] is None else masked_sparse_ce(x["labels"], logits)
        return self._finish(out, x["return_dict"], loss=loss, logits=logits)
