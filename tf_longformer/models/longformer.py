"""`TFLongformerModel`: the bare encoder, with the pooler."""

from __future__ import annotations

from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerModel(TFLongformerPreTrainedModel):
    """The Longformer encoder: `last_hidden_state`, `pooler_output` (hidden states / attentions on request).

    No labels, no loss of its own and no automatic global attention.

    >>> from tf_longformer import LongformerConfig, TFLongformerModel
    >>> cfg = LongformerConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    ...                        intermediate_size=32, attention_window=4, max_position_embeddings=64)
    >>> out = TFLongformerModel(cfg)([[0, 5, 6, 7, 2]])
    >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
    ((1, 5, 16), (1, 16))
    """

    task = "base"
    task_order = 0
    hf_architecture = "LongformerModel"
    label_names = ()
    output_names = ("last_hidden_state", "pooler_output")
    has_pooler = True

    def head(self, out, x, training):
        return {"last_hidden_state": out["last_hidden_state"], "pooler_output": out["pooler_output"]}

    def loss_predictions(self, fields):
        return fields["last_hidden_state"]

    def probability_kind(self):
        return None
