"""`TFLongformerModel`: the bare encoder, with the pooler."""

from __future__ import annotations

from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel


@serializable
class TFLongformerModel(TFLongformerPreTrainedModel):
    """The Longformer encoder: `last_hidden_state`, `pooler_output` (hidden states / attentions on request).

    >>> from tf_longformer import LongformerConfig, TFLongformerModel
    >>> cfg = LongformerConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    ...                        intermediate_size=32, attention_window=4, max_position_embeddings=64)
    >>> out = TFLongformerModel(cfg)([[0, 5, 6, 7, 2]])
    >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
    ((1, 5, 16), (1, 16))
    """

    has_pooler = True
    hf_architecture = "LongformerModel"
    label_names = ()

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict)
        out = self._run_backbone(x, training)
        return self._finish(out, x["return_dict"], last_hidden_state=out["last_hidden_state"],
                            pooler_output=out["pooler_output"])
