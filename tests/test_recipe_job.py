"""The recipe job (`tf-longformer recipe`, `tf_longformer.apps.recipe_job`) measures what it says.

- The masker is deterministic and masks round(15%) of the ordinary tokens, 80% <mask> / 10% random / 10% kept.
- Bits per token equal a hand computation from a tiny model's full logits.
- Every model is scored on the same masked tokens: RoBERTa's pieces and the long reading hold the same body,
  the same masks and the same labels, in the same order.
- The RoBERTa folder (`sources.save_as_roberta`) read back with `from_source(..., source="roberta")` at the short
  length is the short model; converted to a longer length with copied positions and a covering window it computes
  the short model on inputs it could read; random positions keep the learned rows and differ after them.
- A tiny run of the command writes every row of the table.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

import tf_longformer as T
from tf_longformer.apps.recipe_job import (IGNORE, cover_document, heldout_examples, bits_per_token,
                                           markdown_table, mask_tokens, masked_token_losses)
from tf_longformer.cli import main
from tf_longformer.sources import save_as_roberta

BOS, PAD, EOS, MASK = 0, 1, 2, 3
SPECIALS = (BOS, PAD, EOS, MASK)
VOCAB = 60
SHORT = 16


class _Tok:
    """What the recipe's held-out set reads of a tokenizer."""

    bos_token_id, pad_token_id, eos_token_id, mask_token_id = BOS, PAD, EOS, MASK
    all_special_ids = list(SPECIALS)

    def __len__(self):
        return VOCAB


# ---------------------------------------------------------------------------------------------- masking
def test_masker_is_deterministic_and_masks_15_percent_80_10_10():
    rng = np.random.default_rng(0)
    ids = np.concatenate([[BOS], rng.integers(4, 1000, size=20000), [EOS]])
    a_ids, a_labels = mask_tokens(ids, np.random.default_rng([5, 1]), MASK, SPECIALS, 1000)
    b_ids, b_labels = mask_tokens(ids, np.random.default_rng([5, 1]), MASK, SPECIALS, 1000)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_array_equal(a_labels, b_labels)
    c_ids, c_labels = mask_tokens(ids, np.random.default_rng([5, 2]), MASK, SPECIALS, 1000)
    assert not np.array_equal(c_labels, a_labels)

    chosen = a_labels != IGNORE
    assert chosen.sum() == round(0.15 * 20000)  # exactly, of the 20000 ordinary tokens
    assert not chosen[0] and not chosen[-1]  # specials are never chosen
    np.testing.assert_array_equal(a_labels[chosen], ids[chosen])
    np.testing.assert_array_equal(a_ids[~chosen], ids[~chosen])  # nothing else changes
    masked = (a_ids == MASK) & chosen
    kept = (a_ids == ids) & chosen
    swapped = chosen & ~masked & ~kept
    n = chosen.sum()
    assert abs(masked.sum() / n - 0.8) < 0.03
    assert abs(swapped.sum() / n - 0.1) < 0.02
    assert abs(kept.sum() / n - 0.1) < 0.02  # (a random token equal to the original, 1 in 996, counts as kept)
    assert not np.isin(a_ids[swapped], SPECIALS).any()  # random tokens are ordinary ones

    # a short sequence: at least one token; only specials: none
    _, labels = mask_tokens([BOS, 7, 8, EOS], np.random.default_rng(0), MASK, SPECIALS, 1000)
    assert (labels != IGNORE).sum() == 1
    out, labels = mask_tokens([BOS, EOS], np.random.default_rng(0), MASK, SPECIALS, 1000)
    assert (labels == IGNORE).all() and list(out) == [BOS, EOS]


def test_cover_document_covers_every_token_with_full_inputs():
    doc = [BOS] + list(range(10, 10 + 37)) + [EOS]
    inputs = cover_document(doc, 12, BOS, EOS)
    assert all(len(x) == 12 and x[0] == BOS and x[-1] == EOS for x in inputs)
    assert sorted({t for x in inputs for t in x[1:-1]}) == doc[1:-1]
    assert inputs[-1][-2] == doc[-2]  # the last piece ends at the body's end
    assert cover_document([BOS, 10, 11, EOS], 12, BOS, EOS) == [[BOS, 10, 11, EOS]]


# ---------------------------------------------------------------------------------------- the held-out set
def _docs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [[BOS] + list(rng.integers(4, VOCAB, size=n)) + [EOS] for n in lengths]


def test_heldout_short_and_long_readings_hold_the_same_masked_tokens():
    long = 4 * SHORT
    body_max = 4 * (SHORT - 2)
    docs = _docs([200, body_max, 30])
    h = heldout_examples(docs, _Tok(), SHORT, long, seed=3)
    again = heldout_examples(docs, _Tok(), SHORT, long, seed=3)
    np.testing.assert_array_equal(h.targets, again.targets)
    assert h.documents == 3 and len(h.long_ids) == 3
    assert [len(r) for r in h.long_ids] == [body_max + 2, body_max + 2, 32]  # first body_max tokens, framed
    assert all(len(r) <= SHORT for r in h.short_ids)
    assert len(h.short_ids) == 4 + 4 + math.ceil(30 / (SHORT - 2))
    # the pieces' bodies, end to end, are the long rows' bodies: ids and labels
    short_body = np.concatenate([r[1:-1] for r in h.short_ids])
    short_labels = np.concatenate([r[1:-1] for r in h.short_labels])
    np.testing.assert_array_equal(short_body, np.concatenate([r[1:-1] for r in h.long_ids]))
    np.testing.assert_array_equal(short_labels, np.concatenate([r[1:-1] for r in h.long_labels]))
    for rows in (h.short_labels, h.long_labels):  # specials are never scored
        assert all(r[0] == IGNORE and r[-1] == IGNORE for r in rows)
    np.testing.assert_array_equal(h.targets, short_labels[short_labels != IGNORE])
    for doc, labels in zip(docs, h.long_labels):
        body = labels[1:-1]
        assert (body != IGNORE).sum() == max(1, round(0.15 * len(body)))
        np.testing.assert_array_equal(body[body != IGNORE], np.asarray(doc[1:-1])[:len(body)][body != IGNORE])


def _tiny_mlm(max_length, window, seed=0, **kw):
    config = T.LongformerConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, attention_window=window, max_position_embeddings=max_length + 2,
                                type_vocab_size=1, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0, **kw)
    keras.utils.set_random_seed(seed)
    model = T.TFLongformerForMaskedLM(config)
    model.build()
    return model


def test_bits_per_token_equal_a_hand_computation_and_every_model_scores_the_same_tokens():
    long = 4 * SHORT
    h = heldout_examples(_docs([80, 25]), _Tok(), SHORT, long, seed=1)
    short = _tiny_mlm(SHORT, 2 * SHORT)
    long_model = _tiny_mlm(long, 8, seed=1)
    # by hand: the full logits of every position, a log-softmax, the labelled positions, the mean over them / ln 2
    hand = []
    for ids, labels in zip(h.short_ids, h.short_labels):
        logits = short(ids[None].astype(np.int32)).logits.numpy()[0].astype(np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        at = np.flatnonzero(labels != IGNORE)
        hand.extend(-logp[at, labels[at]])
    losses, targets = masked_token_losses(short, h.short_ids, h.short_labels, PAD, batch_size=3)  # padded batches
    np.testing.assert_allclose(losses, hand, rtol=1e-5, atol=1e-5)
    assert bits_per_token(losses) == pytest.approx(np.mean(hand) / math.log(2), rel=1e-5)
    np.testing.assert_array_equal(targets, h.targets)
    long_losses, long_targets = masked_token_losses(long_model, h.long_ids, h.long_labels, PAD)
    np.testing.assert_array_equal(long_targets, h.targets)  # the same tokens, the same order
    assert long_losses.shape == losses.shape


# ------------------------------------------------------------------------------------ RoBERTa folder, conversion
@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """A tiny RoBERTa (our MLM model computing RoBERTa: SHORT + 2 positions, a window of 2 * SHORT), trained a
    little so its weights are not the initial ones, written as a RoBERTa folder."""
    model = _tiny_mlm(SHORT, 2 * SHORT, seed=4)
    state = model.hf_state_dict()
    rng = np.random.default_rng(0)
    state = {k: v + rng.normal(0, 0.02, v.shape).astype(v.dtype) for k, v in state.items()}
    model.load_hf_state_dict(state)
    folder = tmp_path_factory.mktemp("roberta") / "roberta"
    save_as_roberta(model, str(folder))
    return model, str(folder)


def _ids(length, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, size=(2, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = BOS, EOS
    mask = np.ones_like(ids)
    ids[1, length - 3:], mask[1, length - 3:] = PAD, 0
    return ids, mask


def test_roberta_folder_round_trip(roberta):
    model, folder = roberta
    config = json.load(open(f"{folder}/config.json"))
    assert config["model_type"] == "roberta" and config["architectures"] == ["RobertaForMaskedLM"]
    assert "attention_window" not in config and config["max_position_embeddings"] == SHORT + 2
    from tf_longformer import checkpoints

    state, _ = checkpoints.read_state_dict(folder)
    assert not any("_global" in k for k in state) and all(k.startswith(("roberta.", "lm_head.")) for k in state)
    back = T.TFLongformerForMaskedLM.from_source(folder, source="roberta", max_length=SHORT,
                                                  attention_window=2 * SHORT)
    assert back.config.max_position_embeddings == SHORT + 2
    ids, mask = _ids(SHORT)
    np.testing.assert_allclose(back(ids, attention_mask=mask).logits.numpy(),
                               model(ids, attention_mask=mask).logits.numpy(), atol=1e-5)


@pytest.mark.reference
def test_roberta_folder_is_what_transformers_reads(roberta):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, folder = roberta
    pt = transformers.RobertaForMaskedLM.from_pretrained(folder).eval()
    ids, mask = _ids(SHORT, seed=2)
    with torch.no_grad():
        ref = pt(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)).logits.numpy()
    ours = model(ids, attention_mask=mask).logits.numpy()
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-4)
    np.testing.assert_allclose(ours[1][mask[1] == 1], ref[1][mask[1] == 1], atol=1e-4)


def test_copied_conversion_computes_the_short_model_and_random_keeps_the_learned_rows(roberta):
    model, folder = roberta
    kw = dict(source="roberta", max_length=4 * SHORT, seed=3)
    copied = T.TFLongformerForMaskedLM.from_source(folder, attention_window=2 * SHORT, **kw)
    for length in (SHORT, SHORT - 5):  # inputs the short model reads; the window covers them
        ids, mask = _ids(length, seed=length)
        np.testing.assert_allclose(copied(ids, attention_mask=mask).logits.numpy(),
                                   model(ids, attention_mask=mask).logits.numpy(), atol=1e-5)
    name = "longformer.embeddings.position_embeddings.weight"
    short_rows = model.hf_state_dict()[name]
    copied_rows = copied.hf_state_dict()[name]
    random_rows = T.TFLongformerForMaskedLM.from_source(folder, attention_window=8, position_init="random",
                                                        **kw).hf_state_dict()[name]
    n = SHORT + 2  # rows 0 .. SHORT + 1: padding row, unused row, the SHORT learned positions
    assert copied_rows.shape == random_rows.shape == (4 * SHORT + 2, 16)
    np.testing.assert_array_equal(random_rows[:n], short_rows)
    np.testing.assert_array_equal(copied_rows[:n], short_rows)
    np.testing.assert_array_equal(copied_rows[n:n + SHORT], short_rows[2:])  # copied over and over
    assert not np.isclose(random_rows[n:], copied_rows[n:]).any(axis=1).all()
    assert np.isfinite(random_rows).all()


# --------------------------------------------------------------------------------------------- a tiny run
def test_tiny_recipe_run_writes_every_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = {"sea": "ships ports harbours sailors waves tides", "land": "farms fields wheat barns ploughs hills"}
    data = tmp_path / "docs.jsonl"
    with open(data, "w") as f:
        for i in range(12):
            label = "sea" if i % 2 else "land"
            text = " ".join(rng.choice((words[label] + " the of and").split(), size=int(rng.integers(80, 200))))
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    out = tmp_path / "out"
    code = main(["recipe", "--data", str(data), "--output", str(out), "--short-length", "16", "--long-length", "64",
                 "--window", "8", "--short-steps", "4", "--long-steps", "2", "--tokens-per-step", "64",
                 "--vocab-size", "300", "--hidden-size", "16", "--layers", "1", "--heads", "2",
                 "--intermediate-size", "32", "--finetune-epochs", "1"])
    assert code == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["bits_per_token"]) == {"roberta", "long_random", "long_copied", "long_copied_continued"}
    assert all(np.isfinite(v) and v > 0 for v in rep["bits_per_token"].values())
    counts = set(rep["scored_tokens"].values())
    assert counts == {rep["heldout"]["scored_tokens"]} and counts.pop() > 0
    assert 0.0 <= rep["finetune"]["accuracy"] <= 1.0
    assert rep["roberta"]["pretraining"]["steps"] == 4 and rep["continued_pretraining"]["steps"] == 2
    assert rep["continued_pretraining"]["batch"] == 1 and rep["roberta"]["pretraining"]["batch"] == 4
    assert set(rep["seconds_by_phase"]) == {"data", "pretrain_short", "convert_and_score", "pretrain_long",
                                            "finetune"}
    assert (out / "report.md").read_text().strip() == markdown_table(rep)
    assert (out / "roberta-16" / "config.json").exists() and (out / "longformer-64" / "tokenizer.json").exists()
    assert (out / "report.png").exists()
    assert "| RoBERTa, 16-token pieces read one at a time |" in capsys.readouterr().out
    # pretrained without dropout, fine-tuned with the main job's
    assert json.loads((out / "roberta-16" / "config.json").read_text())["hidden_dropout_prob"] == 0.0
    assert json.loads((out / "longformer-64" / "config.json").read_text())["hidden_dropout_prob"] == 0.1
    # the continued checkpoint's global projections were set from the local ones
    state = T.TFLongformerForMaskedLM.from_pretrained(str(out / "longformer-64")).hf_state_dict()
    attn = "longformer.encoder.layer.0.attention.self."
    np.testing.assert_array_equal(state[attn + "query_global.weight"], state[attn + "query.weight"])


def test_settings_errors(tmp_path):
    with pytest.raises(SystemExit, match="multiple of"):
        main(["recipe", "--data", str(tmp_path / "x.jsonl"), "--short-length", "16", "--long-length", "40"])
