"""Checkpoint files in and out: HF TF h5, safetensors, pytorch_model.bin, strict loading, PyTorch round trip.

The tests that write their checkpoint with the PyTorch reference carry the `reference` marker; the HF TF h5
fixtures and the bad-path checks need neither torch nor transformers."""

import os
import shutil
import warnings

import numpy as np
import pytest

import tf_longformer as T
from conftest import random_batch
from helpers import HEADS, load_reference, make_reference, run_reference  # the reference: imported when called
from tf_longformer.checkpoints import CheckpointError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "hf_tf_h5")
TOL = 1e-4

H5_OUTPUTS = {
    "base": ["last_hidden_state", "pooler_output"],
    "masked_lm": ["logits"],
    "sequence_classification": ["logits"],
    "token_classification": ["logits"],
    "question_answering": ["start_logits", "end_logits"],
    "multiple_choice": ["logits"],
}


@pytest.mark.parametrize("head", list(H5_OUTPUTS))
def test_loads_hugging_face_tf_h5(head):
    """`tf_model.h5` written by the HF TF implementation (transformers 4.57 + tf-keras) gives its numbers."""
    expected = np.load(os.path.join(FIXTURES, head, "expected.npz"))
    model = getattr(T, HEADS[head][1]).from_pretrained(os.path.join(FIXTURES, head))
    inputs = {k: expected[k] for k in ("input_ids", "attention_mask", "global_attention_mask")}
    if head == "question_answering":  # the fixture's main outputs use the automatic question-global mask
        inputs.pop("global_attention_mask")
    out = model(inputs, output_hidden_states=head == "base")
    for key in H5_OUTPUTS[head]:
        np.testing.assert_allclose(out[key].numpy(), expected[key], atol=TOL, rtol=0)
    if head == "base":
        np.testing.assert_allclose(np.stack([h.numpy() for h in out.hidden_states]), expected["hidden_states"], atol=TOL)
        no_global = model(inputs["input_ids"], attention_mask=inputs["attention_mask"])
        np.testing.assert_allclose(no_global.last_hidden_state.numpy(), expected["last_hidden_state_no_global"], atol=TOL)
    if head == "question_answering":
        np.testing.assert_array_equal(model.question_global_mask(inputs["input_ids"]).numpy(),
                                      expected["auto_global_attention_mask"])
        explicit = model(inputs, global_attention_mask=expected["global_attention_mask"])
        np.testing.assert_allclose(explicit.start_logits.numpy(), expected["start_logits_global"], atol=TOL)
        np.testing.assert_allclose(explicit.end_logits.numpy(), expected["end_logits_global"], atol=TOL)
    if head == "sequence_classification":
        auto = model(inputs["input_ids"], attention_mask=inputs["attention_mask"])
        np.testing.assert_allclose(auto.logits.numpy(), expected["logits_default_global"], atol=TOL)


@pytest.mark.reference
@pytest.mark.parametrize("head", list(HEADS))
def test_save_pretrained_is_read_by_pytorch_with_the_same_numbers(head, tmp_path, rng):
    """Our `save_pretrained` -> PyTorch `from_pretrained` -> same outputs (and back again)."""
    transformers = load_reference().transformers
    overrides = {"num_labels": 2} if head == "question_answering" else {}
    make_reference(head, tmp_path / "src", seed=3, **overrides)
    ours = getattr(T, HEADS[head][1]).from_pretrained(tmp_path / "src")
    ours.save_pretrained(tmp_path / "ours")
    assert sorted(os.listdir(tmp_path / "ours")) == ["config.json", "model.safetensors"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "newly initialised" weights on the PyTorch side
        pt = getattr(transformers, HEADS[head][0]).from_pretrained(tmp_path / "ours").eval()
    inputs = random_batch(rng, 2, 12, n_global=(1, 3), sep_pattern=True)
    if head == "multiple_choice":
        inputs = {k: np.stack([v, v], 1) for k, v in inputs.items()}
    r = run_reference(pt, inputs)
    o = ours(inputs)
    for key, value in r.items():
        np.testing.assert_allclose(np.asarray(o[key]), value, atol=TOL, rtol=0)
    again = getattr(T, HEADS[head][1]).from_pretrained(tmp_path / "ours")
    for a, b in zip(again.weights, ours.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.reference
def test_pytorch_bin_is_read_with_weights_only(tmp_path, rng):
    ref = make_reference("masked_lm", tmp_path / "pt", seed=5)
    ref.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert os.path.exists(tmp_path / "bin" / "pytorch_model.bin")
    ours = T.TFLongformerForMaskedLM.from_pretrained(tmp_path / "bin")
    inputs = random_batch(rng, 2, 10)
    np.testing.assert_allclose(ours(inputs).logits.numpy(), run_reference(ref, inputs)["logits"], atol=TOL)


@pytest.mark.reference
def test_pytorch_bin_with_code_is_refused(tmp_path):
    """A pickle that would run code is refused by `weights_only=True`, and nothing runs."""
    torch = load_reference().torch
    make_reference("base", tmp_path, seed=1)
    os.remove(tmp_path / "model.safetensors")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        T.TFLongformerModel.from_pretrained(tmp_path)
    assert not os.path.exists(tmp_path / "pwned")


@pytest.mark.reference  # the checkpoint is written by the PyTorch reference
def test_base_checkpoint_into_a_head_says_the_head_is_new(tmp_path):
    make_reference("base", tmp_path, seed=2)
    with pytest.warns(UserWarning, match=r"newly initialised.*classifier\.dense\.weight"):
        model = T.TFLongformerForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert model.classifier.out_proj.kernel.shape == (16, 4)


@pytest.mark.reference  # the checkpoint is written by the PyTorch reference
def test_masked_lm_checkpoint_into_classifier_ignores_the_lm_head(tmp_path):
    make_reference("masked_lm", tmp_path, seed=2)
    with pytest.warns(UserWarning, match="newly initialised"):
        T.TFLongformerForTokenClassification.from_pretrained(tmp_path)
    base = T.TFLongformerModel.from_pretrained(tmp_path)  # pooler absent from an MLM checkpoint: new
    assert base.built


@pytest.mark.reference  # the checkpoint is written by the PyTorch reference
def test_missing_unexpected_and_mismatched_tensors_are_listed(tmp_path):
    from safetensors.numpy import load_file, save_file

    make_reference("masked_lm", tmp_path, seed=2)
    path = tmp_path / "model.safetensors"
    state = load_file(path)
    del state["longformer.encoder.layer.1.attention.self.key_global.weight"]
    state["longformer.encoder.layer.0.surprise"] = np.zeros(3, np.float32)
    state["lm_head.dense.bias"] = np.zeros(5, np.float32)
    save_file(state, path)
    with pytest.raises(CheckpointError) as err:
        T.TFLongformerForMaskedLM.from_pretrained(tmp_path)
    msg = str(err.value)
    assert "missing tensors: ['longformer.encoder.layer.1.attention.self.key_global.weight']" in msg
    assert "unexpected tensors: ['longformer.encoder.layer.0.surprise']" in msg
    assert "lm_head.dense.bias: checkpoint (5,), model (16,)" in msg


@pytest.mark.reference  # the checkpoint is written by the PyTorch reference
def test_config_that_does_not_fit_the_weights(tmp_path):
    make_reference("base", tmp_path, seed=2)
    with pytest.raises(CheckpointError, match="intermediate.dense.weight: checkpoint \\(24, 16\\), model \\(32, 16\\)"):
        T.TFLongformerModel.from_pretrained(tmp_path, intermediate_size=32)


@pytest.mark.reference  # the checkpoint is written by the PyTorch reference
def test_half_a_head_is_an_error_not_a_new_head(tmp_path):
    from safetensors.numpy import load_file, save_file

    make_reference("sequence_classification", tmp_path, seed=2)
    state = load_file(tmp_path / "model.safetensors")
    del state["classifier.out_proj.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing tensors: \\['classifier.out_proj.weight'\\]"):
        T.TFLongformerForSequenceClassification.from_pretrained(tmp_path)


def test_no_weights_and_bad_paths(tmp_path):
    shutil.copy(os.path.join(FIXTURES, "base", "config.json"), tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="No weights in"):
        T.TFLongformerModel.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="No checkpoint directory"):
        T.TFLongformerModel.from_pretrained(str(tmp_path / "nowhere" / "x"))
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        T.TFLongformerModel.from_pretrained(tmp_path)


def test_hub_id_without_huggingface_hub_or_network(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name == "huggingface_hub":
            raise ImportError("no hub")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(CheckpointError, match="huggingface_hub"):
        T.TFLongformerModel.from_pretrained("allenai/longformer-base-4096")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A save that dies mid-write leaves the previous checkpoint intact."""
    model = T.TFLongformerModel(T.LongformerConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=8, attention_window=2))
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()
    import tf_longformer.checkpoints as ck

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []
