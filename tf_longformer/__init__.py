"""tf-longformer: the Longformer for Keras 3 / TensorFlow."""

# First: the command line quiets TensorFlow before the imports below import it (see tf_longformer/_console.py;
# does nothing in a program that imports tf_longformer).
from tf_longformer import _console

_console.prepare()

from tf_longformer.backbone import LongformerBackbone
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
from tf_longformer.sources import refresh_global_projections
from tf_longformer.tokenizer import LongformerTokenizer, LongformerTokenizerFast
from tf_longformer import registry as _registry
from tf_longformer.version import __version__  # noqa: F401

__all__ = [
    "LongformerBackbone",
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
    "refresh_global_projections",
]

# A task module added to tf_longformer/models/ is public here too, without editing this file.
for _cls in _registry.task_classes().values():
    if _cls.__name__ not in __all__:
        globals()[_cls.__name__] = _cls
        __all__.append(_cls.__name__)
