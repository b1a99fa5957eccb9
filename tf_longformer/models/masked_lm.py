"""`TFLongformerForMaskedLM`: the LM head, tied to the word embeddings."""

from __future__ import annotations

from tf_longformer.layers.heads import LongformerLMHead
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, masked_sparse_ce


@serializable
class TFLongformerForMaskedLM(TFLongformerPreTrainedModel):
    """Masked-token prediction: `logits (batch, length, vocab)`; `loss` over labels that are not -100."""

    hf_architecture = "LongformerForMaskedLM"
    head_prefixes = ("lm_head.",)

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.lm_head = LongformerLMHead(c.vocab_size, c.hidden_size, c.layer_norm_eps, c.initializer_range,
                                        dtype=self.dtype_policy, name="lm_head")

    def _build_head(self):
        self.lm_head.build()

    def _head_weight_map(self):
        h = self.lm_head
        m = self._dense_map("lm_head.dense", h.dense)
        m["lm_head.layer_norm.weight"] = (h.layer_norm.gamma, 0)
        m["lm_head.layer_norm.bias"] = (h.layer_norm.beta, 0)
        m["lm_head.bias"] = (h.bias, 0)
        return m

    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None, token_type_ids=None,
             position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, labels=None, training=False):
        x = self._parse(input_ids, attention_mask=attention_mask, head_mask=head_mask,
                        global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=return_dict, labels=labels)
        out = self._run_backbone(x, training)
        logits = self.lm_head(out["last_hidden_state"], self.embeddings.word_embeddings.embeddings)
        loss = None if x["labels"] is None else masked_sparse_ce(x["labels"], logits)
        return self._finish(out, x["return_dict"], loss=loss, logits=logits)
