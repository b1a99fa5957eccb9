"""Tiny source checkpoints of other model families for the conversion tests, built in the test (no hub): a
Unigram tokenizer laid out as XLM-RoBERTa's / CamemBERT's, a WordPiece one as BERT's, and tiny random
transformers models (hidden 32, 2 layers, 4 heads, 64 positions) saved beside them.

Needs `tokenizers`, and for the folders `transformers` + `torch` (the reference stack).
"""

from __future__ import annotations

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is the capital of "
    "Germany.",
    "Rivers run to the sea; mountains rise over the plains. A long document has many sentences, and many words.",
    "Le renard brun saute par-dessus le chien paresseux. Les rivières coulent vers la mer, loin des montagnes.",
    "State of the Union addresses speak of the economy, of war and peace, of taxes and of the people's welfare.",
    "Longformer reads documents of thousands of tokens with a sliding window and a few global tokens.",
] * 4

PROBES = [
    "The quick brown fox jumps over the lazy dog.",
    "Berlin   is the capital of  Germany, said the  fox! Unseen-words: zyxqv ÉCOLE café.",
    "  leading spaces and a <mask> token",
    "",
]
PAIRS = [("Where is Paris?", "Paris is the capital of France."), ("a", "b c d e f g h i j k l m n o p")]


def unigram_tokenizer(vocab_size: int = 180, specials=("<s>", "<pad>", "</s>", "<unk>")):
    """A SentencePiece-style Unigram pipeline as XLM-R's tokenizer.json has it (NFKC + Metaspace, template
    `<s> A </s>` / `<s> A </s></s> B </s>`, `<mask>` last with lstrip)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC(),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(specials), unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return tok


def wordpiece_tokenizer(vocab_size: int = 200):
    """BERT's pipeline (uncased): BertNormalizer, BertPreTokenizer, WordPiece `##`, `[CLS] A [SEP] B [SEP]` with
    token types 0 / 1."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                               "[MASK]"], show_progress=False)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def hf_tokenizer(family: str):
    """The transformers fast tokenizer of `family` ("xlm-roberta", "camembert", "bert") around a tiny backend."""
    import transformers

    if family in ("bert", "electra", "distilbert"):
        cls = {"bert": transformers.BertTokenizerFast, "electra": transformers.ElectraTokenizerFast,
               "distilbert": transformers.DistilBertTokenizerFast}[family]
        return cls(tokenizer_object=wordpiece_tokenizer(), do_lower_case=True)
    if family == "camembert":
        backend = unigram_tokenizer(specials=("<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<s>", "</s>"))
        return transformers.CamembertTokenizerFast(tokenizer_object=backend)
    return transformers.XLMRobertaTokenizerFast(tokenizer_object=unigram_tokenizer())


def source_model(family: str, head: str, directory, *, max_positions: int = 64, seed: int = 0, num_labels: int = 3):
    """A tiny random transformers model of `family` with `head` ("masked_lm" or "sequence_classification"), its
    tokenizer saved beside it in `directory`; returns (model in eval mode, tokenizer)."""
    import torch
    import transformers

    tok = hf_tokenizer(family)
    common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=max_positions, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, num_labels=num_labels, pad_token_id=tok.pad_token_id)
    suffix = {"masked_lm": "ForMaskedLM", "sequence_classification": "ForSequenceClassification", "base": "Model",
              "token_classification": "ForTokenClassification", "question_answering": "ForQuestionAnswering",
              "multiple_choice": "ForMultipleChoice"}[head]
    if family == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=len(tok), dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=max_positions,
            dropout=0.0, attention_dropout=0.0, num_labels=num_labels, pad_token_id=tok.pad_token_id)
        cls = getattr(transformers, "DistilBert" + suffix)
    elif family == "electra":
        config = transformers.ElectraConfig(type_vocab_size=2, embedding_size=32, **common)
        cls = getattr(transformers, "Electra" + suffix)
    elif family == "bert":
        config = transformers.BertConfig(type_vocab_size=2, **common)
        cls = {"masked_lm": transformers.BertForMaskedLM, "base": transformers.BertModel,
               "sequence_classification": transformers.BertForSequenceClassification,
               "token_classification": transformers.BertForTokenClassification,
               "question_answering": transformers.BertForQuestionAnswering,
               "multiple_choice": transformers.BertForMultipleChoice}[head]
    else:
        common["max_position_embeddings"] = max_positions + tok.pad_token_id + 1
        config_cls, prefix = {"xlm-roberta": (transformers.XLMRobertaConfig, "XLMRoberta"),
                              "camembert": (transformers.CamembertConfig, "Camembert"),
                              "roberta": (transformers.RobertaConfig, "Roberta")}[family]
        config = config_cls(type_vocab_size=1, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            layer_norm_eps=1e-5, **common)
        cls = getattr(transformers, prefix + suffix)
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():  # off the initialiser's near-zero biases and unit norms: every weight matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return model, tok
