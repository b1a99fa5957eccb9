"""Longformers from other families' checkpoints (`tf-longformer convert`, `from_source`): BERT, XLM-RoBERTa,
CamemBERT, RoBERTa. Tiny random sources (hidden 32, 2 layers, 4 heads, 64 positions) built in the test.

- With the window covering the input and no global token, the converted model computes what the source computes
  (MLM and classification heads, padding in one row, BERT's token types), within 1e-4.
- PyTorch `LongformerForMaskedLM.from_pretrained(output)` matches ours beyond the source's position limit,
  with global tokens.
- The tokenizer carried over encodes as transformers' fast tokenizer of the family on the output folder.
- Random position init: new rows differ from copies, are finite, and are the same for the same seed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_longformer as T
from families import PAIRS, PROBES, source_model
from tf_longformer.cli import main
from tf_longformer.sources import ConversionError

pytestmark = pytest.mark.reference
SOURCE_POSITIONS = 64


@pytest.fixture(autouse=True)
def _reference_stack():
    """Every test here builds its source with PyTorch transformers: skipped (as the other reference tests are)
    where that stack is missing."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")


def _inputs(tok, length=40, seed=0):
    """Two rows of random ordinary tokens, framed by the family's specials; the second row padded."""
    rng = np.random.default_rng(seed)
    special = set(tok.all_special_ids)
    ordinary = np.array([i for i in range(len(tok)) if i not in special])
    ids = rng.choice(ordinary, size=(2, length))
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    mask = np.ones_like(ids)
    ids[1, length - 11], ids[1, length - 10:] = tok.sep_token_id, tok.pad_token_id
    mask[1, length - 10:] = 0
    types = np.zeros_like(ids)
    types[:, length // 2:] = 1
    types[1, length - 10:] = 0
    return ids, mask, types


def _torch(model, ids, mask, types=None):
    import torch

    kwargs = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    if types is not None:
        kwargs["token_type_ids"] = torch.tensor(types)
    with torch.no_grad():
        return model(**kwargs).logits.numpy()


CASES = [("bert", "masked_lm"), ("bert", "sequence_classification"), ("xlm-roberta", "masked_lm"),
         ("camembert", "masked_lm"), ("xlm-roberta", "sequence_classification"), ("roberta", "sequence_classification"),
         ("electra", "masked_lm"), ("distilbert", "masked_lm")]
SOURCE_OF = {"bert": "bert", "electra": "electra", "distilbert": "distilbert"}  # the rest: the RoBERTa family
TOKEN_TYPES = ("bert", "electra")  # the families with token types


@pytest.mark.parametrize("family,head", CASES)
def test_converted_model_computes_what_the_source_computes(family, head, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    src, tok = source_model(family, head, tmp_path / "src", max_positions=SOURCE_POSITIONS)
    code = main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "long"),
                 "--max-length", "160", "--attention-window", "64,128"])
    summary = json.loads(capsys.readouterr().out)
    expected_source = SOURCE_OF.get(family, "roberta")
    assert code == 0 and summary["source"] == expected_source and summary["max_sequence_length"] == 160
    assert summary["head"] == head.replace("_", "-") and summary["attention_window"] == [64, 128]
    cls = T.TFLongformerForMaskedLM if head == "masked_lm" else T.TFLongformerForSequenceClassification
    model = cls.from_pretrained(str(tmp_path / "long"))
    assert model.config.sep_token_id == tok.sep_token_id  # CamemBERT's is 5 here, not the Longformer default 2
    ids, mask, types = _inputs(tok, length=30)  # each window (64, 128) covers it
    types = types if family in TOKEN_TYPES else None
    expected = _torch(src, ids, mask, types)
    kwargs = {"attention_mask": mask} | ({"token_type_ids": types} if types is not None else {})
    ours = model(ids, **kwargs).logits.numpy()
    if head == "masked_lm":  # positions of real tokens (padding's outputs are not defined the same way)
        np.testing.assert_allclose(ours[0], expected[0], atol=1e-4)
        np.testing.assert_allclose(ours[1][mask[1] == 1], expected[1][mask[1] == 1], atol=1e-4)
    else:
        np.testing.assert_allclose(ours, expected, atol=1e-4)

    # the tokenizer came along: transformers' own class reads the output folder and agrees with ours
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "long")
    assert type(theirs).__name__ == type(tok).__name__ and theirs.model_max_length == 160
    from test_tokenizer_families import assert_same_encodings

    assert_same_encodings(T.LongformerTokenizerFast.from_pretrained(tmp_path / "long"), theirs)
    enc = T.LongformerTokenizerFast.from_pretrained(tmp_path / "long")([p for p, _ in PAIRS], [q for _, q in PAIRS],
                                                                       padding=True, return_tensors="np")
    assert np.isfinite(model(enc["input_ids"], **{k: v for k, v in enc.items() if k != "input_ids"})
                       .logits.numpy()).all()

    # PyTorch reads our folder as a Longformer: the same numbers beyond the source's limit, with global tokens
    if head == "masked_lm":
        pt = transformers.LongformerForMaskedLM.from_pretrained(tmp_path / "long").eval()
        long_ids, long_mask, long_types = _inputs(tok, length=150, seed=1)
        glob = np.zeros_like(long_ids)
        glob[:, [0, 7]] = 1
        feed = {"attention_mask": long_mask, "global_attention_mask": glob}
        if family in TOKEN_TYPES:
            feed["token_type_ids"] = long_types
        with torch.no_grad():
            ref = pt(input_ids=torch.tensor(long_ids), **{k: torch.tensor(v) for k, v in feed.items()}).logits.numpy()
        got = model(long_ids, **feed).logits.numpy()
        np.testing.assert_allclose(got[0], ref[0], atol=1e-4)
        np.testing.assert_allclose(got[1][long_mask[1] == 1], ref[1][long_mask[1] == 1], atol=1e-4)
    assert PROBES  # the probes are what assert_same_encodings used


OTHER_HEADS = {"base": ("TFLongformerModel", ("last_hidden_state", "pooler_output")),
               "token_classification": ("TFLongformerForTokenClassification", ("logits",)),
               "question_answering": ("TFLongformerForQuestionAnswering", ("start_logits", "end_logits")),
               "multiple_choice": ("TFLongformerForMultipleChoice", ("logits",))}


@pytest.mark.parametrize("family,head", [(f, h) for f in ("bert", "xlm-roberta") for h in sorted(OTHER_HEADS)]
                         + [(f, h) for f in ("electra", "distilbert")
                            for h in ("base", "token_classification", "question_answering")])
def test_the_other_heads_convert_too(family, head, tmp_path, capsys):
    """BertModel (with its pooler), token classification, question answering and multiple choice (pooler +
    classifier kept apart, as the Longformer's): the same outputs after conversion."""
    import torch

    src, tok = source_model(family, head, tmp_path / "src", num_labels=2 if head == "question_answering" else 3)
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "long"),
                 "--max-length", "96", "--attention-window", "64"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["head"] == head.replace("_", "-")
    model = getattr(T, OTHER_HEADS[head][0]).from_pretrained(str(tmp_path / "long"))
    ids, mask, types = _inputs(tok, length=30)
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if head == "multiple_choice":  # (batch 1, 2 choices, length)
        feed = {k: v[None] for k, v in feed.items()}
    if family not in TOKEN_TYPES:
        feed.pop("token_type_ids")
    with torch.no_grad():
        expected = src(**{k: torch.tensor(v) for k, v in feed.items()})
    ours = model(feed.pop("input_ids"), **feed)
    rows = mask == 1
    for name in OTHER_HEADS[head][1]:
        if getattr(expected, name, None) is None:
            continue  # ELECTRA and DistilBERT have no pooler
        got, want = np.asarray(getattr(ours, name)), getattr(expected, name).numpy()
        if got.ndim >= 2 and got.shape[:2] == mask.shape:  # per position: real tokens only
            got, want = got[rows], want[rows]
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=name)


def test_bert_positions_and_token_types_map_exactly(tmp_path):
    pytest.importorskip("transformers")
    src, tok = source_model("bert", "masked_lm", tmp_path / "src")
    model = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), max_length=150, attention_window=32)
    state = model.hf_state_dict()
    pad = tok.pad_token_id
    learned = src.bert.embeddings.position_embeddings.weight.detach().numpy()
    pos = state["longformer.embeddings.position_embeddings.weight"]
    assert pos.shape[0] == 150 + pad + 1 and model.config.pad_token_id == pad
    np.testing.assert_array_equal(pos[pad + 1:pad + 1 + SOURCE_POSITIONS], learned)  # BERT row i -> pad + 1 + i
    np.testing.assert_array_equal(pos[pad + 1 + SOURCE_POSITIONS:pad + 1 + 2 * SOURCE_POSITIONS], learned)  # copies
    np.testing.assert_array_equal(state["longformer.embeddings.token_type_embeddings.weight"],
                                  src.bert.embeddings.token_type_embeddings.weight.detach().numpy())
    assert model.config.type_vocab_size == 2
    assert model.config.sep_token_id == tok.sep_token_id and model.config.bos_token_id == tok.cls_token_id
    assert model.config.attention_window == 32
    for kind in ("query", "key", "value"):
        np.testing.assert_array_equal(state[f"longformer.encoder.layer.1.attention.self.{kind}_global.weight"],
                                      state[f"longformer.encoder.layer.1.attention.self.{kind}.weight"])


def test_random_position_init_is_new_finite_and_seeded(tmp_path, capsys):
    pytest.importorskip("transformers")
    source_model("xlm-roberta", "masked_lm", tmp_path / "src")
    kw = dict(max_length=200, attention_window=[16, 32])
    copied = T.TFLongformerForMaskedLM.from_roberta(str(tmp_path / "src"), **kw)
    a = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), position_init="random", seed=5, **kw)
    b = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), position_init="random", seed=5, **kw)
    c = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), position_init="random", seed=6, **kw)
    name = "longformer.embeddings.position_embeddings.weight"
    pc, pa, pb, pcc = (m.hf_state_dict()[name] for m in (copied, a, b, c))
    first_new = SOURCE_POSITIONS + 2  # pad 1: the source's table has 64 + 2 rows
    np.testing.assert_array_equal(pa[:first_new], pc[:first_new])  # the learned rows are kept
    assert np.isfinite(pa).all() and not np.allclose(pa[first_new:], pc[first_new:])
    assert abs(float(pa[first_new:].std()) - 0.02) < 0.005
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pcc)
    # the command line: the same rows for the same seed
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "r"), "--max-length", "200",
                 "--attention-window", "16,32", "--position-init", "random", "--seed", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["position_init"] == "random"
    np.testing.assert_array_equal(T.TFLongformerForMaskedLM.from_pretrained(str(tmp_path / "r")).hf_state_dict()[name],
                                  pa)


def test_refresh_global_projections(tmp_path, capsys):
    pytest.importorskip("transformers")
    source_model("xlm-roberta", "masked_lm", tmp_path / "src")
    model = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), max_length=96, attention_window=16)
    attn = "longformer.encoder.layer.0.attention.self."
    # continued pretraining moves the local projections only: simulate it
    state = model.hf_state_dict()
    state[attn + "query.weight"] = state[attn + "query.weight"] + 1.0
    model.load_hf_state_dict(state)
    assert not np.array_equal(model.hf_state_dict()[attn + "query_global.weight"], state[attn + "query.weight"])
    T.refresh_global_projections(model)
    after = model.hf_state_dict()
    for kind in ("query", "key", "value"):
        for p in ("weight", "bias"):
            np.testing.assert_array_equal(after[attn + f"{kind}_global.{p}"], after[attn + f"{kind}.{p}"])
    # and from the command line, on a Longformer folder
    model.load_hf_state_dict(state)
    model.save_pretrained(str(tmp_path / "pretrained"))
    assert main(["convert", "--model", str(tmp_path / "pretrained"), "--output", str(tmp_path / "fresh"),
                 "--copy-global"]) == 0
    capsys.readouterr()
    fresh = T.TFLongformerForMaskedLM.from_pretrained(str(tmp_path / "fresh")).hf_state_dict()
    np.testing.assert_array_equal(fresh[attn + "query_global.weight"], state[attn + "query.weight"])


def test_bad_conversion_requests_are_sentences(tmp_path, capsys):
    pytest.importorskip("transformers")
    source_model("bert", "masked_lm", tmp_path / "src")
    with pytest.raises(ConversionError, match=r"attention_window must be an even positive integer or a list of 2"):
        T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), attention_window=[16, 32, 64])
    with pytest.raises(ConversionError, match=r"position_init \(--position-init\) must be one of .*zeros"):
        T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), position_init="zeros")
    with pytest.raises(SystemExit, match="attention_window must be an even positive integer"):
        main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o"), "--attention-window", "15"])
    cfg = json.loads((tmp_path / "src" / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (tmp_path / "src" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="model_type 'gpt2'"):
        main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o")])
    cfg.update(model_type="bert", hidden_act="relu")
    (tmp_path / "src" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="hidden_act 'relu'"):
        main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o")])
    capsys.readouterr()
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o"), "--head", "base",
                 "--max-length", "96", "--attention-window", "16"]) == 0  # the way out the message names
    assert json.loads(capsys.readouterr().out)["model"] == "TFLongformerModel"


def test_tensorflow_bert_names_and_untied_decoders(tmp_path, capsys):
    """Checkpoints converted from the original TensorFlow BERT (LayerNorm gamma / beta) convert the same; a
    decoder matrix of its own (untied) is refused for the MLM head, never dropped without a word."""
    pytest.importorskip("transformers")
    from tf_longformer import checkpoints

    source_model("bert", "masked_lm", tmp_path / "src")
    state, _ = checkpoints.read_state_dict(str(tmp_path / "src"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    assert any(k.endswith(".gamma") for k in renamed)
    checkpoints.write_safetensors(str(tmp_path / "src" / "model.safetensors"), renamed)
    a = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), max_length=96, attention_window=16)
    checkpoints.write_safetensors(str(tmp_path / "src" / "model.safetensors"), state)
    b = T.TFLongformerForMaskedLM.from_source(str(tmp_path / "src"), max_length=96, attention_window=16)
    for (name, x), y in zip(a.hf_state_dict().items(), b.hf_state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)

    untied = dict(state)
    untied["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"] + 1.0
    checkpoints.write_safetensors(str(tmp_path / "src" / "model.safetensors"), untied)
    with pytest.raises(SystemExit, match="MLM decoder differs from its word embeddings"):
        main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o")])
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "o"), "--head", "base"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "TFLongformerModel"


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
def test_pipelines_run_converted_models_with_their_tokenizers(family, tmp_path, capsys):
    """The pipelines lay inputs out as the tokenizer's family does (`[CLS] q [SEP] c [SEP]` with token types for
    BERT) and pass the token types on: a text pair is scored as the source model scores it."""
    import torch
    from tf_longformer.pipelines import pipeline

    src, tok = source_model(family, "sequence_classification", tmp_path / "src")
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "cls"),
                 "--max-length", "96", "--attention-window", "128"]) == 0
    capsys.readouterr()
    text, pair = PAIRS[0]
    enc = tok(text, pair, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(src(**enc).logits, -1)[0].numpy()
    for compile_ in (False, True):
        got = pipeline("text-classification", model=str(tmp_path / "cls"), compile=compile_)(
            {"text": text, "text_pair": pair}, top_k=None)
        scores = {r["label"]: r["score"] for r in got}
        np.testing.assert_allclose([scores[src.config.id2label[i]] for i in range(3)], expected, atol=1e-4)

    _, qa_tok = source_model(family, "question_answering", tmp_path / "qa_src", num_labels=2)
    assert main(["convert", "--model", str(tmp_path / "qa_src"), "--output", str(tmp_path / "qa"),
                 "--max-length", "96", "--attention-window", "128"]) == 0
    capsys.readouterr()
    qa = pipeline("question-answering", model=str(tmp_path / "qa"))
    answer = qa(question=text, context=pair)
    assert pair[answer["start"]:answer["end"]] == answer["answer"] and 0 <= answer["score"] <= 1
    ours = T.LongformerTokenizerFast.from_pretrained(tmp_path / "qa")
    q, c = ours.encode(text, add_special_tokens=False), ours.encode(pair, add_special_tokens=False)
    reference = qa_tok(text, pair, return_token_type_ids=True)
    assert ours.build_inputs_with_special_tokens(q, c) == reference["input_ids"]
    assert ours.create_token_type_ids_from_sequences(q, c) == reference["token_type_ids"]
    assert ours.create_token_type_ids_from_sequences(q) == qa_tok.create_token_type_ids_from_sequences(q)


def test_bert_with_vocab_txt_only_gets_a_tokenizer_json(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    _, tok = source_model("bert", "masked_lm", tmp_path / "src")
    (tmp_path / "src" / "tokenizer.json").unlink()
    assert (tmp_path / "src" / "vocab.txt").is_file()
    assert main(["convert", "--model", str(tmp_path / "src"), "--output", str(tmp_path / "long"),
                 "--max-length", "96", "--attention-window", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"] is True
    assert (tmp_path / "long" / "tokenizer.json").is_file() and (tmp_path / "long" / "vocab.txt").is_file()
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "long")
    from test_tokenizer_families import assert_same_encodings

    assert_same_encodings(T.LongformerTokenizerFast.from_pretrained(tmp_path / "long"), theirs)
    assert theirs(PROBES[0])["input_ids"] == tok(PROBES[0])["input_ids"]
    config = json.loads((tmp_path / "long" / "config.json").read_text())
    assert config["sep_token_id"] == tok.sep_token_id


def test_heads_that_do_not_convert_are_refused(tmp_path, capsys):
    """DistilBERT's classifier (ReLU) and ELECTRA's (gelu) are not the Longformer's (tanh): refused, with the way
    out (the encoder alone); ELECTRA with an embedding projection is refused."""
    pytest.importorskip("transformers")
    for family in ("distilbert", "electra"):
        src, tok = source_model(family, "sequence_classification", tmp_path / family)
        with pytest.raises(SystemExit, match="does not convert. Convert the encoder"):
            main(["convert", "--model", str(tmp_path / family), "--output", str(tmp_path / "o")])
        assert main(["convert", "--model", str(tmp_path / family), "--output", str(tmp_path / f"{family}-base"),
                     "--head", "base", "--max-length", "96", "--attention-window", "128"]) == 0
        assert json.loads(capsys.readouterr().out)["model"] == "TFLongformerModel"
        base = T.TFLongformerModel.from_pretrained(str(tmp_path / f"{family}-base"))
        ids, mask, _ = _inputs(tok, length=30)
        encoder = src.distilbert if family == "distilbert" else src.electra
        import torch

        with torch.no_grad():
            want = encoder(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
        got = base(ids, attention_mask=mask).last_hidden_state.numpy()
        np.testing.assert_allclose(got[mask == 1], want[mask == 1], atol=1e-4)
    cfg = json.loads((tmp_path / "electra" / "config.json").read_text())
    cfg["embedding_size"] = 16
    (tmp_path / "electra" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="embedding_size 16 != hidden_size 32"):
        main(["convert", "--model", str(tmp_path / "electra"), "--output", str(tmp_path / "o"), "--head", "base"])
