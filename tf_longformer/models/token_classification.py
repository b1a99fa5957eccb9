"""`TFLongformerForTokenClassification`: one label per token."""

from __future__ import annotations

import keras

from tf_longformer import training, validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.utils import Dropout, serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForTokenClassification(TFLongformerPreTrainedModel):
    """`logits (batch, length, num_labels)`; `loss` over labels that are not -100. No automatic global attention."""

    task = "token_classification"
    task_order = 3
    hf_architecture = "LongformerForTokenClassification"
    head_prefixes = ("classifier.",)
    id2label_outputs = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.dropout = Dropout(c.hidden_dropout_prob, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(c.num_labels, kernel_initializer=keras.initializers.TruncatedNormal(
            stddev=c.initializer_range), dtype=self.dtype_policy, name="classifier")

    def build_head(self):
        self.classifier.build((None, None, self.config.hidden_size))

    def head(self, out, x, training):
        return {"logits": self.classifier(self.dropout(out["last_hidden_state"], training=training))}

    def default_loss(self):
        return training.SparseCrossentropy()

    def default_metrics(self):
        return [training.TaskAccuracy()]

    def check_labels(self, x, context):
        validation.check_token_labels(x, context, self.config.num_labels, "num_labels")

    def head_weight_map(self):
        return dense_map("classifier", self.classifier)
