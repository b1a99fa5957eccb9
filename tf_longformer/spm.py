"""A SentencePiece model (`sentencepiece.bpe.model`, KerasHub's `vocabulary.spm`) as a `tokenizers` pipeline.

XLM-RoBERTa and CamemBERT ship their vocabulary as a SentencePiece Unigram model; `transformers` turns it into a
`tokenizers.Tokenizer` when it builds `XLMRobertaTokenizerFast` / `CamembertTokenizerFast` from the `.model` file.
This module builds the same pipeline, so that a folder without `tokenizer.json` (or a KerasHub preset) reads without
`transformers` or `sentencepiece`:

- the fairseq ids of the family: XLM-R `<s> <pad> </s> <unk>`, then the model's pieces from the fourth on, then
  `<mask>`; CamemBERT `<s>NOTUSED <pad> </s>NOTUSED <unk> <unk>NOTUSED`, then the pieces from the second on
  (its `<s>`, `</s>` among them), then `<mask>`; unknown text is `<unk>` (id 3);
- the model's own normaliser (its precompiled character map), the right end stripped and runs of spaces made one
  `▁`, a `▁` before every word (Metaspace), the template `<s> A </s>` / `<s> A </s></s> B </s>`.

The model file is a protocol buffer; the few fields read here (pieces with their scores and types, the model
type, the normaliser's character map) are decoded from its wire format directly, with no `protobuf` schema.
"""

from __future__ import annotations

import struct

#: the families whose SentencePiece layout this module knows, by transformers tokenizer class
FAMILIES = {"XLMRobertaTokenizer": "xlm-roberta", "XLMRobertaTokenizerFast": "xlm-roberta",
            "CamembertTokenizer": "camembert", "CamembertTokenizerFast": "camembert"}
_UNIGRAM, _NORMAL, _CONTROL, _USER_DEFINED = 1, 1, 3, 4


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of one protobuf message: ints for varints, bytes for length-delimited
    fields, raw bytes for fixed-width ones."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
            if i > len(data):
                raise ValueError("truncated field")
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def parse_model(data: bytes) -> dict:
    """The parts of a SentencePiece `ModelProto` the conversion needs: `pieces` [(piece, score, type)],
    `model_type` (1 Unigram, 2 BPE, ...), `byte_fallback`, `precompiled_charsmap`."""
    out = {"pieces": [], "model_type": _UNIGRAM, "byte_fallback": False, "precompiled_charsmap": b""}
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:  # repeated SentencePiece {1: piece, 2: score, 3: type}
            piece, score, kind = "", 0.0, _NORMAL
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    piece = v.decode("utf-8")
                elif n == 2 and w == 5:
                    score = struct.unpack("<f", v)[0]
                elif n == 3 and w == 0:
                    kind = v
            out["pieces"].append((piece, score, kind))
        elif number == 2 and wire == 2:  # TrainerSpec {3: model_type, 35: byte_fallback}
            for n, w, v in _fields(value):
                if n == 3 and w == 0:
                    out["model_type"] = v
                elif n == 35 and w == 0:
                    out["byte_fallback"] = bool(v)
        elif number == 3 and wire == 2:  # NormalizerSpec {2: precompiled_charsmap}
            for n, w, v in _fields(value):
                if n == 2 and w == 2:
                    out["precompiled_charsmap"] = v
    return out


def read_model(path: str) -> dict:
    """`parse_model` of a file, with errors that name it."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        model = parse_model(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path!r} is not a SentencePiece model ({e}).") from None
    if not model["pieces"]:
        raise ValueError(f"{path!r} is not a SentencePiece model (no pieces in it).")
    return model


def unigram_tokenizer(model: dict, family: str = "xlm-roberta"):
    """The `tokenizers.Tokenizer` transformers builds from this SentencePiece model for `family` ("xlm-roberta"
    or "camembert"); `model` is what `parse_model` returns."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if family not in ("xlm-roberta", "camembert"):
        raise ValueError(f"family must be 'xlm-roberta' or 'camembert', got {family!r}.")
    if model["model_type"] != _UNIGRAM:
        raise ValueError(f"This SentencePiece model is not a Unigram model (model_type {model['model_type']}); "
                         "XLM-RoBERTa and CamemBERT use Unigram.")
    pieces = model["pieces"]
    if family == "xlm-roberta":
        vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
        vocab += [(p, s) for p, s, _ in pieces[3:]]
    else:  # the SentencePiece <unk> scored down, so that the id-3 <unk> is the one used
        vocab = [("<s>NOTUSED", 0.0), ("<pad>", 0.0), ("</s>NOTUSED", 0.0), ("<unk>", 0.0), ("<unk>NOTUSED", -100.0)]
        vocab += [(p, s) for p, s, _ in pieces[1:]]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    # the model's control and user-defined pieces are matched whole in the text (control ones as special tokens)
    tok.add_tokens([AddedToken(p, normalized=False, special=kind == _CONTROL)
                    for p, _, kind in pieces if kind in (_CONTROL, _USER_DEFINED)])
    steps = [normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")]
    if model["precompiled_charsmap"]:
        steps.insert(0, normalizers.Precompiled(model["precompiled_charsmap"]))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return tok


def special_tokens(family: str) -> dict:
    """The special-token settings of the family's transformers fast tokenizer (`<mask>` takes the space before it),
    as `LongformerTokenizerFast` keyword arguments."""
    plain = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
             "pad_token": "<pad>"}
    out = {k: {"content": v, "lstrip": False, "rstrip": False, "normalized": False, "single_word": False}
           for k, v in plain.items()}
    out["mask_token"] = {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False,
                         "single_word": False}
    out["tokenizer_class"] = "CamembertTokenizer" if family == "camembert" else "XLMRobertaTokenizer"
    if family == "camembert":
        out["additional_special_tokens"] = ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"]
    return out
