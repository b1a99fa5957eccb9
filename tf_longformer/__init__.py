"""tf-longformer: the Longformer for Keras 3 / TensorFlow."""

# First: the command line quiets TensorFlow before the imports below import it (see tf_longformer/_console.py;
# does nothing in a program that imports tf_longformer).
from tf_longformer import _console

_console.prepare()

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
