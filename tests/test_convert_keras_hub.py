"""Longformers from KerasHub RoBERTa / XLM-RoBERTa models (`from_source(..., source="keras_hub")`,
`tf-longformer convert --source keras-hub`): tiny random backbones (hidden 32, 2 layers, 4 heads, 64 positions)
and their tasks built in the test, every weight drawn at random.

- With the window covering the input and no global token, the converted model computes what KerasHub computes
  (sequence output, MLM logits, classifier logits; padding in one row), within 1e-4: objects and preset folders.
- The tokenizer written beside the converted model (byte-level BPE from the vocabulary and merges, Unigram from the
  SentencePiece proto) encodes as KerasHub's tokenizer and preprocessor on the same texts.
- Other KerasHub classes, a missing keras-hub and a mis-shaped classifier are refused with errors that say so.

Needs the `keras-hub` extra (marker `keras_hub`: CI's full leg installs it, the latest leg deselects it).
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

import tf_longformer as T
from families import PAIRS, PROBES, TEXTS
from tf_longformer.cli import main
from tf_longformer.sources import ConversionError
from tf_longformer.tokenizer import train_tokenizer

pytestmark = pytest.mark.keras_hub
FAMILIES = ("roberta", "xlm-roberta")
SIZE = dict(num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=64, max_sequence_length=64, dropout=0.0)
LENGTH = 40
# KerasHub's tokenizers take "<mask>" in the text as text; ours (as transformers') as the mask token
PLAIN_PROBES = [t for t in PROBES if "<mask>" not in t] + TEXTS[:3]


@pytest.fixture(autouse=True, scope="module")
def keras_hub():
    return pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def tokenizers(keras_hub, tmp_path_factory):
    """KerasHub tokenizers: RoBERTa's on a byte-level BPE trained here, XLM-R's on a SentencePiece Unigram model
    trained here (the sentencepiece package comes with keras-hub)."""
    import sentencepiece

    ours = train_tokenizer(TEXTS, vocab_size=300)
    folder = tmp_path_factory.mktemp("bpe")
    ours.save_pretrained(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [line for line in (folder / "merges.txt").read_text().splitlines() if line and not line.startswith("#")]
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_writer=proto, vocab_size=120,
                                             model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                             minloglevel=2)
    return {"roberta": keras_hub.models.RobertaTokenizer(vocabulary=vocab, merges=merges),
            "xlm-roberta": keras_hub.models.XLMRobertaTokenizer(proto=proto.getvalue())}


def _randomize(model, seed=0):
    """Every weight drawn at random (LayerNorm scales around 1), so that no mapping hides behind an initializer."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        scale = 1.0 if w.path.endswith("gamma") else 0.0
        w.assign((scale + rng.normal(0.0, 0.2, w.shape)).astype("float32"))


def _backbone(keras_hub, family, tokenizer, seed=0):
    cls = keras_hub.models.XLMRobertaBackbone if family == "xlm-roberta" else keras_hub.models.RobertaBackbone
    backbone = cls(vocabulary_size=tokenizer.vocabulary_size(), **SIZE)
    _randomize(backbone, seed)
    return backbone


def _task(keras_hub, family, kind, tokenizer, seed=0):
    """A KerasHub masked LM or text classifier (3 classes) with its preprocessor, every weight random."""
    backbone = _backbone(keras_hub, family, tokenizer, seed)
    prefix = "XLMRoberta" if family == "xlm-roberta" else "Roberta"
    models = keras_hub.models
    if kind == "masked_lm":
        pre = getattr(models, prefix + "MaskedLMPreprocessor")(tokenizer, sequence_length=SIZE["max_sequence_length"])
        task = getattr(models, prefix + "MaskedLM")(backbone, preprocessor=pre)
    else:
        pre = getattr(models, prefix + "TextClassifierPreprocessor")(tokenizer,
                                                                     sequence_length=SIZE["max_sequence_length"])
        task = getattr(models, prefix + "TextClassifier")(backbone, num_classes=3, preprocessor=pre)
    _randomize(task, seed + 1)
    return task


def _inputs(tokenizer, seed=0):
    """Two rows of random ordinary tokens between <s> and </s>; the second padded at the end (KerasHub's layout)."""
    rng = np.random.default_rng(seed)
    special = {tokenizer.start_token_id, tokenizer.end_token_id, tokenizer.pad_token_id,
               tokenizer.token_to_id("<mask>"), tokenizer.token_to_id("<unk>")}
    ordinary = np.array([i for i in range(tokenizer.vocabulary_size()) if i not in special])
    ids = rng.choice(ordinary, size=(2, LENGTH)).astype("int32")
    ids[:, 0], ids[:, -1] = tokenizer.start_token_id, tokenizer.end_token_id
    mask = np.ones_like(ids)
    ids[1, LENGTH - 11], ids[1, LENGTH - 10:], mask[1, LENGTH - 10:] = (tokenizer.end_token_id,
                                                                       tokenizer.pad_token_id, 0)
    return ids, mask


def _ours(model, ids, mask):
    return model({"input_ids": ids, "attention_mask": mask}, training=False)


def _close(ours, theirs, mask):
    """Equal within 1e-4 at the real tokens (padding positions are free on both sides)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    keep = mask.astype(bool)
    np.testing.assert_allclose(ours[keep], theirs[keep], atol=1e-4, rtol=0)


# -------------------------------------------------------------------------------------------- in-memory objects
@pytest.mark.parametrize("family", FAMILIES)
def test_backbone_object_sequence_output_matches(keras_hub, tokenizers, family):
    tok = tokenizers[family]
    backbone = _backbone(keras_hub, family, tok)
    ids, mask = _inputs(tok)
    theirs = backbone({"token_ids": ids, "padding_mask": mask})
    model = T.TFLongformerModel.from_source(backbone, source="keras_hub", max_length=128, attention_window=128)
    assert model.config.max_sequence_length == 128 and model.config.attention_window == 128
    _close(_ours(model, ids, mask)["last_hidden_state"], theirs, mask)
    # positions: KerasHub's row i is the Longformer's row pad + 1 + i, the rows beyond copies of the learned ones
    table = model.hf_state_dict()["embeddings.position_embeddings.weight"]
    learned = np.asarray(backbone.get_layer("embeddings").position_embedding.position_embeddings)
    np.testing.assert_array_equal(table[2:66], learned)
    np.testing.assert_array_equal(table[66:130], learned)


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_lm_object_logits_match(keras_hub, tokenizers, family):
    task = _task(keras_hub, family, "masked_lm", tokenizers[family])
    ids, mask = _inputs(tokenizers[family], seed=1)
    positions = np.tile(np.arange(LENGTH, dtype="int32"), (2, 1))
    theirs = task({"token_ids": ids, "padding_mask": mask, "mask_positions": positions})
    model = T.TFLongformerForMaskedLM.from_source(task, max_length=128, attention_window=128)  # detected
    _close(_ours(model, ids, mask)["logits"], theirs, mask)


@pytest.mark.parametrize("family", FAMILIES)
def test_text_classifier_object_logits_match(keras_hub, tokenizers, family):
    task = _task(keras_hub, family, "classifier", tokenizers[family])
    ids, mask = _inputs(tokenizers[family], seed=2)
    theirs = np.asarray(task({"token_ids": ids, "padding_mask": mask}))
    model = T.TFLongformerForSequenceClassification.from_source(task, source="keras_hub", max_length=128,
                                                                attention_window=128)
    assert model.config.num_labels == 3
    np.testing.assert_allclose(np.asarray(_ours(model, ids, mask)["logits"]), theirs, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------ preset folders, CLI, tokenizer
def _tokenizer_matches(keras_hub, ours, kh_tok, family):
    """Our tokenizer encodes as KerasHub's tokenizer (no specials) and the family's classifier preprocessor on it
    (with them: `<s> A </s>`, `<s> A </s></s> B </s>`; the masked-LM preprocessor masks at random)."""
    prefix = "XLMRoberta" if family == "xlm-roberta" else "Roberta"
    pre = getattr(keras_hub.models, prefix + "TextClassifierPreprocessor")(kh_tok, sequence_length=256)
    for text in PLAIN_PROBES:
        assert ours(text, add_special_tokens=False)["input_ids"] == np.asarray(kh_tok(text)).tolist(), (family, text)
        packed = pre(text)
        packed = packed[0] if isinstance(packed, tuple) else packed
        expected = np.asarray(packed["token_ids"])[np.asarray(packed["padding_mask"]).astype(bool)].tolist()
        assert ours(text)["input_ids"] == expected, (family, text)
    for a, b in PAIRS:
        packed = pre(x=(a, b))
        packed = packed[0] if isinstance(packed, tuple) else packed
        expected = np.asarray(packed["token_ids"])[np.asarray(packed["padding_mask"]).astype(bool)].tolist()
        assert ours(a, b)["input_ids"] == expected, (family, a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_preset_folder_from_source_and_cli(keras_hub, tokenizers, family, tmp_path, capsys):
    task = _task(keras_hub, family, "masked_lm", tokenizers[family], seed=3)
    preset = tmp_path / "preset"
    task.save_to_preset(str(preset))
    ids, mask = _inputs(tokenizers[family], seed=3)
    positions = np.tile(np.arange(LENGTH, dtype="int32"), (2, 1))
    theirs = task({"token_ids": ids, "padding_mask": mask, "mask_positions": positions})

    model = T.TFLongformerForMaskedLM.from_source(str(preset), max_length=128, attention_window=128)  # detected
    _close(_ours(model, ids, mask)["logits"], theirs, mask)

    out = tmp_path / "long"
    assert main(["convert", "--model", str(preset), "--output", str(out), "--source", "keras-hub",
                 "--max-length", "128", "--attention-window", "128"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"] == "keras-hub" and summary["head"] == "masked-lm" and summary["tokenizer"]
    back = T.TFLongformerForMaskedLM.from_pretrained(str(out))
    _close(_ours(back, ids, mask)["logits"], theirs, mask)
    ours = T.LongformerTokenizerFast.from_pretrained(str(out))
    assert ours.model_max_length == 128 and ours.pad_token_id == 1 and ours.mask_token_id == \
        task.preprocessor.tokenizer.token_to_id("<mask>")
    _tokenizer_matches(keras_hub, ours, keras_hub.tokenizers.Tokenizer.from_preset(str(preset)), family)


def test_backbone_preset_folder_detected_by_the_cli(keras_hub, tokenizers, tmp_path, capsys):
    backbone = _backbone(keras_hub, "roberta", tokenizers["roberta"], seed=4)
    backbone.save_to_preset(str(tmp_path / "preset"))
    tokenizers["roberta"].save_to_preset(str(tmp_path / "preset"))
    assert main(["convert", "--model", str(tmp_path / "preset"), "--output", str(tmp_path / "long"),
                 "--max-length", "128", "--attention-window", "128"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["source"], summary["head"], summary["tokenizer"]) == ("keras-hub", "base", True)
    ids, mask = _inputs(tokenizers["roberta"], seed=4)
    _close(_ours(T.TFLongformerModel.from_pretrained(str(tmp_path / "long")), ids, mask)["last_hidden_state"],
           backbone({"token_ids": ids, "padding_mask": mask}), mask)


# ------------------------------------------------------------------------------------------------- refusals
def test_unsupported_keras_hub_class_is_refused(keras_hub):
    bert = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
                                         intermediate_dim=16, max_sequence_length=16)
    with pytest.raises(ConversionError, match="BertBackbone does not convert.*RobertaBackbone"):
        T.TFLongformerModel.from_source(bert, source="keras_hub")
    with pytest.raises(ConversionError, match="does not convert"):
        T.TFLongformerModel.from_source(bert)  # detected as KerasHub, refused the same way


def test_classifier_with_another_hidden_size_is_refused(keras_hub, tokenizers):
    backbone = _backbone(keras_hub, "roberta", tokenizers["roberta"])
    task = keras_hub.models.RobertaTextClassifier(backbone, num_classes=2, hidden_dim=16)
    with pytest.raises(ConversionError, match="hidden_dim 16"):
        T.TFLongformerForSequenceClassification.from_source(task)


def test_missing_keras_hub_says_how_to_install(monkeypatch, tmp_path):
    from tf_longformer import kerashub

    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if not installed
    with pytest.raises(ConversionError, match=r"tf-longformer\[keras-hub\]"):
        kerashub.load(str(tmp_path))
