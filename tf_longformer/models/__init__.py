from tf_longformer.models.base import TFLongformerPreTrainedModel
from tf_longformer.models.longformer import TFLongformerModel
from tf_longformer.models.masked_lm import TFLongformerForMaskedLM
from tf_longformer.models.multiple_choice import TFLongformerForMultipleChoice
from tf_longformer.models.question_answering import TFLongformerForQuestionAnswering
from tf_longformer.models.sequence_classification import TFLongformerForSequenceClassification
from tf_longformer.models.token_classification import TFLongformerForTokenClassification

__all__ = [
    "TFLongformerForMaskedLM",
    "TFLongformerForMultipleChoice",
    "TFLongformerForQuestionAnswering",
    "TFLongformerForSequenceClassification",
    "TFLongformerForTokenClassification",
    "TFLongformerModel",
    "TFLongformerPreTrainedModel",
]
