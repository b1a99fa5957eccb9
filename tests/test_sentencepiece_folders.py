"""XLM-RoBERTa / CamemBERT folders with `sentencepiece.bpe.model` and no `tokenizer.json` (`tf_longformer.spm`).

- A model file written here byte by byte reads without `sentencepiece` or `transformers`: the fairseq ids of the
  family, the pieces' scores, its encodings; a corrupt file, a BPE model and another family's model are refused
  with the transformers line that writes the `tokenizer.json` instead.
- (reference) On a SentencePiece model trained here, our tokenizer encodes exactly as transformers'
  `XLMRobertaTokenizerFast` / `CamembertTokenizerFast` built from the same `.model` file (ids, offsets, special-token
  masks, pairs, decoding), transformers reads our saved folder as the family, and `tf-longformer convert` of such
  a folder writes the `tokenizer.json`.
"""

from __future__ import annotations

import io
import json
import struct

import pytest

import tf_longformer as T
from families import PAIRS, PROBES, TEXTS
from tf_longformer import spm

PIECES = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁", -2.0, 1), ("▁hello", -3.0, 1),
          ("▁world", -3.5, 1), ("h", -6.0, 1), ("e", -6.0, 1), ("l", -6.0, 1), ("o", -6.0, 1), ("w", -6.0, 1),
          ("r", -6.0, 1), ("d", -6.0, 1)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload) -> bytes:
    if isinstance(payload, bytes):
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload
    return _varint(number << 3) + _varint(payload)


def _model_bytes(pieces=PIECES, model_type=1) -> bytes:
    """A SentencePiece ModelProto in its wire format: pieces, trainer_spec.model_type, an empty normalizer_spec."""
    out = [_field(1, _field(1, piece.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", score) + _field(3, kind))
           for piece, score, kind in pieces]
    return b"".join(out) + _field(2, _field(3, model_type)) + _field(3, _field(1, b"identity"))


def test_parse_model_reads_pieces_scores_and_types():
    model = spm.parse_model(_model_bytes())
    assert model["pieces"] == PIECES and model["model_type"] == 1 and model["precompiled_charsmap"] == b""


def test_sentencepiece_only_folder_reads_with_the_xlm_r_ids(tmp_path):
    (tmp_path / "sentencepiece.bpe.model").write_bytes(_model_bytes())
    tok = T.LongformerTokenizerFast.from_pretrained(tmp_path)
    # fairseq layout: <s> <pad> </s> <unk>, then the pieces from the fourth on (shifted by one), then <mask>
    assert [tok.convert_ids_to_tokens(i) for i in range(5)] == ["<s>", "<pad>", "</s>", "<unk>", "▁"]
    assert tok.mask_token_id == len(PIECES) + 1 == len(tok) - 1
    enc = tok("hello  world", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<s>", "▁hello", "▁world", "</s>"]
    assert enc["offset_mapping"] == [(0, 0), (0, 5), (6, 12), (0, 0)]
    assert tok("hello <mask>")["input_ids"] == [0, 5, tok.mask_token_id, 2]  # <mask> takes the space before it
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "hello world"


def test_camembert_folder_gets_camembert_ids(tmp_path):
    (tmp_path / "sentencepiece.bpe.model").write_bytes(_model_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "camembert"}))
    tok = T.LongformerTokenizerFast.from_pretrained(tmp_path)
    assert [tok.convert_ids_to_tokens(i) for i in range(7)] == ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>",
                                                                "<unk>NOTUSED", "<s>", "</s>"]
    assert tok("hello")["input_ids"] == [5, 8, 6]


@pytest.mark.parametrize("case, message", [
    ("corrupt", "is not a SentencePiece model"),
    ("bpe", "not a Unigram model"),
    ("albert", "only the XLM-RoBERTa and CamemBERT layouts"),
])
def test_unreadable_models_say_how_to_write_tokenizer_json(tmp_path, case, message):
    data = {"corrupt": b"\xff\xff\xff", "bpe": _model_bytes(model_type=2)}.get(case, _model_bytes())
    (tmp_path / "sentencepiece.bpe.model").write_bytes(data)
    if case == "albert":
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "AlbertTokenizer"}))
    with pytest.raises(ValueError, match=message) as info:
        T.LongformerTokenizerFast.from_pretrained(tmp_path)
    assert "AutoTokenizer.from_pretrained" in str(info.value) and "save_pretrained" in str(info.value)


# ------------------------------------------------------------------------------------ against transformers
@pytest.fixture(scope="module")
def trained_model():
    """A SentencePiece Unigram model trained here, with the NFKC character map the real ones carry."""
    sentencepiece = pytest.importorskip("sentencepiece")
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_writer=out, vocab_size=120,
                                             model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                             minloglevel=2)
    return out.getvalue()


@pytest.mark.reference
@pytest.mark.parametrize("family", ["xlm-roberta", "camembert"])
def test_encodes_as_transformers_converts_the_model(tmp_path, trained_model, family):
    transformers = pytest.importorskip("transformers")
    (tmp_path / "sentencepiece.bpe.model").write_bytes(trained_model)
    cls = transformers.CamembertTokenizerFast if family == "camembert" else transformers.XLMRobertaTokenizerFast
    theirs = cls(vocab_file=str(tmp_path / "sentencepiece.bpe.model"))
    if family == "camembert":
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "camembert"}))
    ours = T.LongformerTokenizerFast.from_pretrained(tmp_path)
    keys = ("input_ids", "attention_mask", "offset_mapping", "special_tokens_mask")
    extras = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    for text in PROBES + ["Tabs\tand\nnew lines, ﬁ ligatures, ① and  ÉCOLE"]:
        a, b = ours(text, **extras), theirs(text, **extras)
        assert all(a[k] == b[k] for k in keys), text
        assert ours.decode(a["input_ids"], skip_special_tokens=True) == theirs.decode(a["input_ids"],
                                                                                      skip_special_tokens=True)
    for x, y in PAIRS:
        assert ours(x, y, **extras)["input_ids"] == theirs(x, y, **extras)["input_ids"]
    assert ours.get_vocab() == theirs.get_vocab()
    ours.save_pretrained(tmp_path / "saved")
    back = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert type(back).__name__ == type(theirs).__name__
    assert back(PROBES[1])["input_ids"] == theirs(PROBES[1])["input_ids"]


@pytest.mark.reference
def test_convert_writes_tokenizer_json_for_a_sentencepiece_only_folder(tmp_path, trained_model, capsys):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from families import source_model
    from tf_longformer.cli import main

    src = tmp_path / "xlmr"
    source_model("xlm-roberta", "masked_lm", src)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (src / name).unlink(missing_ok=True)
    (src / "sentencepiece.bpe.model").write_bytes(trained_model)
    assert main(["convert", "--model", str(src), "--output", str(tmp_path / "long"), "--max-length", "128",
                 "--attention-window", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"]
    assert (tmp_path / "long" / "tokenizer.json").is_file()
    theirs = transformers.XLMRobertaTokenizerFast(vocab_file=str(src / "sentencepiece.bpe.model"))
    ours = T.LongformerTokenizerFast.from_pretrained(tmp_path / "long")
    assert ours.model_max_length == 128
    assert ours(PROBES[1])["input_ids"] == theirs(PROBES[1])["input_ids"]
