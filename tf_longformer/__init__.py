"""tf-longformer: the Longformer for Keras 3 / TensorFlow."""

from tf_longformer.config import LongformerConfig
from tf_longformer.layers import (
    LongformerClassificationHead,
    LongformerEmbeddings,
    LongformerEncoder,
    LongformerEncoderLayer,
    LongformerLMHead,
    LongformerPooler,
    LongformerSelfAttention,
)
from tf_longformer.models import (
    TFLongformerForMaskedLM,
    TFLongformerForMultipleChoice,
    TFLongformerForQuestionAnswering,
    TFLongformerForSequenceClassification,
    TFLongformerForTokenClassification,
    TFLongformerModel,
    TFLongformerPreTrainedModel,
)
from tf_longformer.outputs import LongformerOutput
from tf_longformer.tokenizer import LongformerTokenizer, LongformerTokenizerFast

__version__ = "0.1.0"

__all__ = [
    "LongformerClassificationHead",
    "LongformerConfig",
    "LongformerEmbeddings",
    "LongformerEncoder",
    "LongformerEncoderLayer",
    "LongformerLMHead",
    "LongformerOutput",
    "LongformerPooler",
    "LongformerSelfAttention",
    "LongformerTokenizer",
    "LongformerTokenizerFast",
    "TFLongformerForMaskedLM",
    "TFLongformerForMultipleChoice",
    "TFLongformerForQuestionAnswering",
    "TFLongformerForSequenceClassification",
    "TFLongformerForTokenClassification",
    "TFLongformerModel",
    "TFLongformerPreTrainedModel",
]
