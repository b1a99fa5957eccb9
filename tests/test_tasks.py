"""Every public task class through the shared harness (`harness.py`): build, call forms, config round trip,
one `fit` and the `.keras` round trip with the optimizer state, SavedModel export reloaded, parity with the
PyTorch reference (the loss included: the question-answering loss with answers at and past the end)."""

import numpy as np
import pytest

import tf_longformer as T
from conftest import random_batch, tiny_config
from export_harness import export_all_heads
from harness import CHECKS, run_task_test

HIDDEN, VOCAB, LABELS = 16, 60, 3


def case(head, rng):
    """`(class, config, inputs, labels, expected output shapes)` of a head: tiny config (hidden 16, two layers,
    windows [4, 6]); 4 rows of 24 tokens (24: a multiple of both windows, so the reference needs no padding of
    ours and its question-answering loss is comparable), some padded, with global tokens."""
    batch, length = 4, 24
    x = random_batch(rng, batch, length, vocab=VOCAB, n_global=(0, 3), sep_pattern=True)
    config = tiny_config()
    if head == "base":
        return T.TFLongformerModel, config, x, {}, {"last_hidden_state": (batch, length, HIDDEN),
                                                    "pooler_output": (batch, HIDDEN)}
    if head == "masked_lm":
        labels = np.where(rng.random((batch, length)) < 0.3, x["input_ids"], -100)
        # gradient checkpointing on: it must survive every round trip and train like the plain model
        return (T.TFLongformerForMaskedLM, tiny_config(gradient_checkpointing=True), x, {"labels": labels},
                {"logits": (batch, length, VOCAB)})
    if head == "sequence_classification":
        return (T.TFLongformerForSequenceClassification, config, x, {"labels": rng.integers(0, LABELS, batch)},
                {"logits": (batch, LABELS)})
    if head == "token_classification":
        labels = rng.integers(0, LABELS, (batch, length))
        labels[x["attention_mask"] == 0] = -100
        labels[:, :2] = -100
        return T.TFLongformerForTokenClassification, config, x, {"labels": labels}, {"logits": (batch, length, LABELS)}
    if head == "question_answering":
        # positions AT the end (== length) and PAST it are ignored, as by the reference; row 0's are inside
        labels = {"start_positions": np.array([3, length, length + 5, 0]),
                  "end_positions": np.array([7, 2, length + 1, length])}
        return (T.TFLongformerForQuestionAnswering, tiny_config(num_labels=2), x, labels,
                {"start_logits": (batch, length), "end_logits": (batch, length)})
    if head == "multiple_choice":  # (batch, choices, length)
        other = random_batch(rng, batch, length, vocab=VOCAB, n_global=(0, 3))
        x = {k: np.stack([v, other[k]], axis=1) for k, v in x.items()}
        return T.TFLongformerForMultipleChoice, config, x, {"labels": rng.integers(0, 2, batch)}, {"logits": (batch, 2)}
    raise KeyError(head)


HEADS = ("base", "masked_lm", "sequence_classification", "token_classification", "question_answering",
         "multiple_choice")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny perturbed exports test_export.py checks in other processes (made once per session)."""
    return export_all_heads(tmp_path_factory.getbasetemp() / "shared-exports")


@pytest.mark.parametrize("check", [c for c in CHECKS if c not in ("saved_model", "parity")])
@pytest.mark.parametrize("head", HEADS)
def test_task(head, check, rng, tmp_path):
    cls, config, inputs, labels, shapes = case(head, rng)
    run_task_test(cls, config, inputs, shapes, labels, directory=tmp_path, checks=(check,))


@pytest.mark.parametrize("head", HEADS)
def test_task_saved_model(head, rng, tmp_path, exports):
    cls, config, inputs, labels, shapes = case(head, rng)
    run_task_test(cls, config, inputs, shapes, labels, directory=tmp_path, exported=exports[head],
                  checks=("saved_model",))


@pytest.mark.reference
@pytest.mark.parametrize("head", HEADS)
def test_task_parity(head, rng, tmp_path, references):
    cls, config, inputs, labels, shapes = case(head, rng)
    run_task_test(cls, config, inputs, shapes, labels, directory=tmp_path, reference_root=references,
                  checks=("parity",))


def test_question_answering_loss_ignores_answers_at_and_past_the_end(rng):
    """The loss of the QA case by hand: mean over the two sides of the cross-entropy of the answers inside."""
    cls, config, inputs, labels, _ = case("question_answering", rng)
    model = cls(config)
    out = model({**inputs, **labels})
    length = inputs["input_ids"].shape[1]
    total = 0.0
    for side in ("start", "end"):
        logits = np.asarray(out[f"{side}_logits"], np.float64)
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        pos = labels[f"{side}_positions"]
        inside = pos < length
        assert 0 < inside.sum() < len(pos)
        total += -logp[np.flatnonzero(inside), pos[inside]].mean()
    assert float(out.loss) == pytest.approx(total / 2, abs=1e-5)
