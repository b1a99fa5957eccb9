from tf_longformer.layers.attention import LongformerSelfAttention
from tf_longformer.layers.embeddings import LongformerEmbeddings
from tf_longformer.layers.encoder import LongformerEncoder, LongformerEncoderLayer
from tf_longformer.layers.heads import LongformerClassificationHead, LongformerLMHead, LongformerPooler

__all__ = [
    "LongformerClassificationHead",
    "LongformerEmbeddings",
    "LongformerEncoder",
    "LongformerEncoderLayer",
    "LongformerLMHead",
    "LongformerPooler",
    "LongformerSelfAttention",
]
