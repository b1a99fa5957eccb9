"""`TFLongformerForMaskedLM`: the LM head, tied to the word embeddings."""

from __future__ import annotations

import tensorflow as tf

from tf_longformer import training, validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.heads import LongformerLMHead
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForMaskedLM(TFLongformerPreTrainedModel):
    """Masked-token prediction: `logits (batch, length, vocab)`; `loss` over labels that are not -100.

    No automatic global attention. The serving `probabilities` signature returns the `top_k` tokens per position.
    """

    task = "masked_lm"
    task_order = 1
    hf_architecture = "LongformerForMaskedLM"
    head_prefixes = ("lm_head.",)
    serving_top_k = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.lm_head = LongformerLMHead(c.vocab_size, c.hidden_size, c.layer_norm_eps, c.initializer_range,
                                        dtype=self.dtype_policy, name="lm_head")

    def build_head(self):
        self.lm_head.build()

    def token_logits(self, hidden_states):
        """Vocabulary logits of any `(..., hidden)` states, e.g. only the masked positions of a long text."""
        return self.lm_head(hidden_states, self.backbone.token_embedding_matrix())

    def head(self, out, x, training):
        return {"logits": self.token_logits(out["last_hidden_state"])}

    def default_loss(self):
        return training.SparseCrossentropy()

    def default_metrics(self):
        return [training.TaskAccuracy()]

    def check_labels(self, x, context):
        validation.check_token_labels(x, context, self.config.vocab_size, "vocab_size")

    def head_weight_map(self):
        h = self.lm_head
        m = dense_map("lm_head.dense", h.dense)
        m["lm_head.layer_norm.weight"] = (h.layer_norm.gamma, 0)
        m["lm_head.layer_norm.bias"] = (h.layer_norm.beta, 0)
        m["lm_head.bias"] = (h.bias, 0)
        return m

    @classmethod
    def normalise_checkpoint(cls, state):
        # PyTorch ties lm_head.decoder.{weight,bias} to the word embeddings and lm_head.bias.
        if "lm_head.decoder.bias" in state and "lm_head.bias" not in state:
            state["lm_head.bias"] = state["lm_head.decoder.bias"]
        state.pop("lm_head.decoder.bias", None)
        state.pop("lm_head.decoder.weight", None)
        return state

    def serving_probabilities(self, out, attention_mask, top_k):
        result = dict(out)
        logits = tf.cast(out["logits"], tf.float32)
        values, indices = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=min(int(top_k), self.config.vocab_size))
        result["top_k_probabilities"] = values
        result["top_k_token_ids"] = indices
        return result
