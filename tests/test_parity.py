"""Parity with the PyTorch reference through real checkpoint files, for every head (float32, max abs <= 1e-4)."""

import numpy as np
import pytest

from conftest import random_batch
from harness import compare, reference_pair  # the reference is imported when first called
from helpers import HEADS, run_reference

pytestmark = pytest.mark.reference

TOL = 1e-4


def load_pair(head, root, **overrides):
    """The head's seeded reference and our model from its checkpoint: made once per session for each (head,
    config) and shared (`harness.reference_pair`, the `references` fixture of conftest.py)."""
    return reference_pair(head, root, **overrides)


def labels_for(head, inputs, rng, num_labels=3):
    ids = inputs["input_ids"]
    if head == "masked_lm":
        labels = np.where(rng.random(ids.shape) < 0.3, ids, -100)
        return {"labels": labels}
    if head == "token_classification":
        labels = rng.integers(0, num_labels, size=ids.shape)
        labels[inputs["attention_mask"] == 0] = -100
        return {"labels": labels}
    if head == "sequence_classification":
        return {"labels": rng.integers(0, num_labels, size=(ids.shape[0],))}
    if head == "question_answering":
        # positions past the end are clamped to the length and ignored (as the reference does); row 0's are always
        # inside, so the loss is never an average over nothing
        length = ids.shape[1]
        start = rng.integers(0, length + 3, size=(ids.shape[0],))
        start[0] = rng.integers(0, length)
        return {"start_positions": start, "end_positions": rng.integers(0, length, size=(ids.shape[0],))}
    if head == "multiple_choice":
        return {"labels": rng.integers(0, ids.shape[1], size=(ids.shape[0],))}
    return {}


# lengths below, at and above the windows [4, 6] (one-sided 2 and 3), multiples of neither, and of both (24)
LENGTHS = [1, 3, 6, 13, 24, 29]
LCM = 12  # of the windows [4, 6]: 24 is not padded by the harness (tests/reference.py), so the QA loss is compared
assert any(n % LCM == 0 for n in LENGTHS)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("length", LENGTHS)
def test_every_output_matches_reference(head, length, references, rng):
    ref, ours = load_pair(head, references)
    inputs = random_batch(rng, 3, length, n_global=(0, 4), sep_pattern=head == "question_answering")
    if head == "multiple_choice":
        other = random_batch(rng, 3, length, n_global=(0, 4))
        inputs = {k: np.stack([v, other[k]], axis=1) for k, v in inputs.items()}
    inputs.update(labels_for(head, inputs, rng))
    r = run_reference(ref, inputs, output_attentions=True, output_hidden_states=True)
    o = ours(inputs, output_attentions=True, output_hidden_states=True)
    diffs = compare(o, r, inputs)
    expected_keys = {"hidden_states", "attentions", "global_attentions"}
    assert expected_keys <= set(diffs)
    # Every head but the base model gets labels, so its loss is compared too; the QA loss only where the harness
    # does not pad the reference (its softmax spans the padded sequence): lengths that are multiples of LCM.
    if head != "base" and not (head == "question_answering" and length % LCM):
        assert "loss" in diffs and np.isfinite(diffs["loss"]), diffs
    assert max(diffs.values()) <= TOL, diffs


@pytest.mark.parametrize("head", ["question_answering", "sequence_classification", "multiple_choice"])
def test_automatic_global_attention_matches_reference(head, references, rng):
    """No global mask given: the head's own rule (question / first token / after `</s></s>`)."""
    ref, ours = load_pair(head, references)
    inputs = random_batch(rng, 2, 17, n_global=(0, 0), pad_rows=False, sep_pattern=True)
    # the PyTorch reference needs exactly three separators per row
    ids = inputs["input_ids"]
    ids[ids == 2] = 7
    ids[:, [4, 5, 16]] = 2
    inputs.pop("global_attention_mask")
    if head == "multiple_choice":
        inputs = {k: np.stack([v, v[::-1].copy()], axis=1) for k, v in inputs.items()}
    r = run_reference(ref, inputs)
    o = ours(inputs)
    diffs = compare(o, r, inputs)
    assert max(diffs.values()) <= TOL, diffs


def test_qa_global_is_decided_per_row(references, rng):
    """A row without `</s>` gets no question-global attention; the other rows keep theirs (reference: all off)."""
    ref, ours = load_pair("question_answering", references)
    inputs = random_batch(rng, 2, 15, n_global=(0, 0), pad_rows=False)
    ids = inputs["input_ids"]
    ids[ids == 2] = 7
    ids[0, [3, 4, 14]] = 2
    inputs.pop("global_attention_mask")
    with pytest.warns(UserWarning, match=r"Rows \[1\] have no separator"):
        o = ours(inputs)
    expected_global = np.zeros_like(ids)
    expected_global[0, :3] = 1
    r = run_reference(ref, {**inputs, "global_attention_mask": expected_global})
    assert max(compare(o, r, inputs).values()) <= TOL


@pytest.mark.parametrize("windows", [[6, 4, 10], [10, 6, 14], 8])  # the reference fails at window 2
def test_window_lists_that_do_not_divide(windows, references, rng):
    layers = len(windows) if isinstance(windows, list) else 2
    ref, ours = load_pair("base", references, attention_window=windows, num_hidden_layers=layers)
    for length in (5, 21, 64):
        inputs = random_batch(rng, 2, length, n_global=(1, 5))
        r = run_reference(ref, inputs, output_attentions=True)
        o = ours(inputs, output_attentions=True)
        assert max(compare(o, r, inputs).values()) <= TOL


def test_many_globals_take_the_full_length_path(references, rng):
    """More global tokens than the parity pairs' one static bucket (4): the full-length path gives the same numbers."""
    ref, ours = load_pair("masked_lm", references)
    inputs = random_batch(rng, 2, 120, n_global=(17, 40))
    r = run_reference(ref, inputs)
    o = ours(inputs)
    assert max(compare(o, r, inputs).values()) <= TOL


@pytest.mark.parametrize("case", ["regression", "multi_label", "ignored"])
def test_sequence_classification_losses(case, references, rng):
    overrides = {"num_labels": 1} if case == "regression" else {}
    ref, ours = load_pair("sequence_classification", references, **overrides)
    inputs = random_batch(rng, 4, 9)
    if case == "regression":
        inputs["labels"] = rng.normal(size=(4,)).astype(np.float32)
    elif case == "multi_label":
        inputs["labels"] = (rng.random((4, 3)) < 0.5).astype(np.float32)
    else:
        inputs["labels"] = np.array([0, -100, 2, 1])
    if case == "ignored":
        # PyTorch's CrossEntropyLoss ignores -100 by default; so do we
        pass
    r = run_reference(ref, inputs)
    o = ours(inputs)
    assert abs(float(o.loss) - float(r["loss"])) <= TOL


def test_head_mask_and_inputs_embeds(references, rng):
    ref, ours = load_pair("base", references)
    inputs = random_batch(rng, 2, 11, n_global=(1, 3))
    head_mask = np.array([[1.0, 0.0], [0.5, 1.0]], np.float32)
    r = run_reference(ref, {**inputs, "head_mask": head_mask}, output_attentions=True)
    o = ours({**inputs, "head_mask": head_mask}, output_attentions=True)
    assert max(compare(o, r, inputs).values()) <= TOL
    emb = ours.hf_state_dict()["embeddings.word_embeddings.weight"][inputs["input_ids"]]  # public API only
    r2 = run_reference(ref, {"inputs_embeds": emb, "attention_mask": inputs["attention_mask"],
                             "global_attention_mask": inputs["global_attention_mask"]})
    o2 = ours(inputs_embeds=emb, attention_mask=inputs["attention_mask"],
              global_attention_mask=inputs["global_attention_mask"])
    # positions of padded tokens differ between ids (1) and embeds (sequential), so compare real tokens
    real = inputs["attention_mask"].astype(bool)
    assert np.abs(o2.last_hidden_state.numpy()[real] - r2["last_hidden_state"][real]).max() <= TOL


def test_long_input_at_the_position_limit(references, rng):
    """The longest allowed input (`max_position_embeddings - 2`) works and matches."""
    ref, ours = load_pair("masked_lm", references)
    length = ours.config.max_position_embeddings - 2
    inputs = random_batch(rng, 1, length, n_global=(2, 2), pad_rows=False)
    r = run_reference(ref, inputs)
    o = ours(inputs)
    assert max(compare(o, r, inputs).values()) <= TOL


@pytest.mark.parametrize("length", [7, 16])
def test_question_answering_loss(length, references, rng):
    """One window for every layer, so the reference pads and cuts by itself and its loss is comparable."""
    ref, ours = load_pair("question_answering", references, attention_window=4)
    inputs = random_batch(rng, 4, length, sep_pattern=True)
    inputs["start_positions"] = np.array([0, 3, length + 5, 2])  # out of range: ignored (negative: refused)
    inputs["end_positions"] = np.array([length - 1, length, 2, 1])
    r = run_reference(ref, inputs)
    o = ours(inputs)
    assert abs(float(o.loss) - float(r["loss"])) <= TOL
