"""`LongformerTokenizerFast` on other families' tokenizer.json (Unigram as XLM-R / CamemBERT, WordPiece as BERT):
the same encodings as the transformers fast tokenizer of that family on the same folder, and after our
save_pretrained (the folder `tf-longformer convert` writes) transformers still reads it as that family."""

from __future__ import annotations

import json

import pytest

import tf_longformer as T
from families import PAIRS, PROBES, hf_tokenizer

pytestmark = pytest.mark.reference
FAMILIES = ("xlm-roberta", "camembert", "bert")
KEYS = ("input_ids", "attention_mask", "token_type_ids", "offset_mapping", "special_tokens_mask")


def assert_same_encodings(ours, theirs):
    """Ids, masks, token types, offsets and special-token masks of single texts, pairs, and a padded, truncated
    batch (both sides, both strategies) agree."""
    pytest.importorskip("transformers")
    extras = dict(return_offsets_mapping=True, return_token_type_ids=True, return_special_tokens_mask=True)

    def same(*args, **kwargs):
        a, b = ours(*args, **extras, **kwargs), theirs(*args, **extras, **kwargs)
        for key in KEYS:
            assert a[key] == b[key], (key, args, kwargs)

    for text in PROBES:
        same(text)
        assert ours.tokenize(text) == theirs.tokenize(text)
        ids = ours(text)["input_ids"]
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    for a, b in PAIRS:
        same(a, b)
        ids_a, ids_b = ours.encode(a, add_special_tokens=False), ours.encode(b, add_special_tokens=False)
        assert ours.build_inputs_with_special_tokens(ids_a, ids_b) == theirs.build_inputs_with_special_tokens(ids_a,
                                                                                                              ids_b)
        assert ours.build_inputs_with_special_tokens(ids_a) == theirs.build_inputs_with_special_tokens(ids_a)
    same(PROBES, padding=True)
    same([["Hello", "world", "of", "foxes"], ["Paris,", "France"]], is_split_into_words=True, padding=True)
    same([p for p, _ in PAIRS], [q for _, q in PAIRS], padding="max_length", truncation="longest_first", max_length=12)
    same(PROBES, padding=True, truncation=True, max_length=7)
    same(PROBES, padding="max_length", max_length=24, truncation="longest_first")
    # the call's defaults: token types only where the family's models take them
    assert set(ours(PROBES[0])) == set(theirs(PROBES[0]))
    assert ours.special_tokens_map == {k: str(v) for k, v in theirs.special_tokens_map.items()
                                       if k != "additional_special_tokens"}
    assert (ours.pad_token_id, ours.mask_token_id, ours.cls_token_id, ours.sep_token_id, ours.unk_token_id) == (
        theirs.pad_token_id, theirs.mask_token_id, theirs.cls_token_id, theirs.sep_token_id, theirs.unk_token_id)
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()


@pytest.mark.parametrize("family", FAMILIES)
def test_other_families_encode_as_their_transformers_tokenizer(family, tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_tokenizer(family).save_pretrained(tmp_path / "src")
    ours = T.LongformerTokenizerFast.from_pretrained(tmp_path / "src")
    assert_same_encodings(ours, transformers.AutoTokenizer.from_pretrained(tmp_path / "src"))
    # written back by us, read by transformers as the same family, and by us again
    ours.model_max_length = 96
    ours.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out" / "merges.txt").exists()
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert type(theirs).__name__ == type(hf_tokenizer(family)).__name__ and theirs.model_max_length == 96
    assert_same_encodings(T.LongformerTokenizerFast.from_pretrained(tmp_path / "out"), theirs)


def test_bert_has_no_roberta_defaults(tmp_path):
    pytest.importorskip("transformers")
    hf_tokenizer("bert").save_pretrained(tmp_path)
    tok = T.LongformerTokenizerFast.from_pretrained(tmp_path)
    assert tok.bos_token is None and tok.bos_token_id is None and "<s>" not in tok.get_vocab()
    assert tok.model_input_names == ("input_ids", "token_type_ids", "attention_mask")
    enc = tok("hello world", "the fox")
    assert enc["token_type_ids"][0] == 0 and enc["token_type_ids"][-1] == 1
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == tok.decode(
        tok.encode("hello world", add_special_tokens=False) + tok.encode("the fox", add_special_tokens=False))
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer"


def test_unknown_tokenizer_model_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    Tokenizer(models.BPE()).save(str(tmp_path / "tokenizer.json"))
    state = json.loads((tmp_path / "tokenizer.json").read_text())
    state["model"]["type"] = "Mystery"
    (tmp_path / "tokenizer.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="tokenizer.json"):
        T.LongformerTokenizerFast.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_input_names"):
        T.LongformerTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), model_input_names=["attention_mask"])


@pytest.mark.parametrize("settings", [{"do_lower_case": True}, {"do_lower_case": False},
                                      {"do_lower_case": True, "strip_accents": False, "tokenize_chinese_chars": False}])
def test_bert_folder_with_vocab_txt_only(settings, tmp_path):
    """Older BERT checkpoints ship vocab.txt and no tokenizer.json: BERT's pipeline is built from it and the
    tokenizer_config.json settings, encoding as transformers' BertTokenizerFast does on the same folder."""
    transformers = pytest.importorskip("transformers")
    from families import wordpiece_tokenizer

    vocab = wordpiece_tokenizer().get_vocab()
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t, _ in sorted(vocab.items(), key=lambda x: x[1])))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", **settings}))
    ours = T.LongformerTokenizerFast.from_pretrained(tmp_path)
    theirs = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    assert_same_encodings(ours, theirs)
    ours.save_pretrained(tmp_path / "out")
    again = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert type(again).__name__ == "BertTokenizerFast"
    assert_same_encodings(T.LongformerTokenizerFast.from_pretrained(tmp_path / "out"), again)
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[UNK\]', '\[CLS\]', '\[SEP\]'\]"):
        T.LongformerTokenizerFast.from_pretrained(tmp_path)
