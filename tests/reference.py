"""The PyTorch reference (`transformers` + `torch`), used only by tests: tiny random checkpoints and its outputs.

Importing this module skips the importing test (or module) when torch or transformers is missing; what needs
neither (the tiny config, the head names) lives in `helpers.py`, and `helpers.make_reference` /
`helpers.run_reference` import this module only when called, so test modules can be collected without torch.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from helpers import HEADS, tiny_config_dict  # noqa: E402,F401  (torch-free; re-exported)


def make_reference(head, directory, seed=0, **config_overrides):
    """A random PyTorch Longformer of `head`, every weight perturbed (so biases and norms matter), saved."""
    torch.manual_seed(seed)
    # One global bucket (4): parity covers the bucketed path (1-4 global tokens) and the full-length one.
    cfg = transformers.LongformerConfig(**tiny_config_dict(**{"global_buckets": [4], **config_overrides}))
    model = getattr(transformers, HEADS[head][0])(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.2 if p.dim() > 1 else 0.1))
    model.save_pretrained(directory)  # config.json + model.safetensors
    return model


def _pad_last(x, multiple, value):
    extra = (-x.shape[-1]) % multiple
    if x.ndim >= 2 and extra:
        pad = [(0, 0)] * x.ndim
        pad[-1] = (0, extra)
        x = np.pad(x, pad, constant_values=value)
    return x


def run_reference(model, inputs, **kwargs):
    """Runs the PyTorch model on numpy inputs; returns numpy outputs (tuples as lists).

    The reference pads only to a multiple of its LARGEST window, and fails when per-layer windows do not
    divide each other; so the inputs are padded here to their least common multiple first (padding with
    mask 0 changes nothing, which our own tests check) and per-token outputs are cut back.
    """
    import math

    windows = model.config.attention_window
    windows = windows if isinstance(windows, (list, tuple)) else [windows]
    # one window for all layers: the reference pads and cuts back by itself
    multiple = math.lcm(*windows) if len(set(windows)) > 1 else 1
    ids_key = "input_ids" if inputs.get("input_ids") is not None else None
    length = np.asarray(inputs[ids_key]).shape[-1] if ids_key else None
    inputs = dict(inputs)
    if ids_key:
        pad_values = {"input_ids": model.config.pad_token_id, "position_ids": model.config.pad_token_id}
        for k in ("input_ids", "attention_mask", "global_attention_mask", "token_type_ids", "position_ids"):
            if inputs.get(k) is not None:
                inputs[k] = _pad_last(np.asarray(inputs[k]), multiple, pad_values.get(k, 0))
        padded_len = np.asarray(inputs["input_ids"]).shape[-1]
        for k in ("start_positions", "end_positions"):
            if inputs.get(k) is not None:  # out of the caller's sequence = out of the padded one (ignored)
                inputs[k] = np.where(np.asarray(inputs[k]) >= length, padded_len, inputs[k])
        labels = inputs.get("labels")
        if labels is not None and np.asarray(labels).shape == (np.asarray(inputs["input_ids"]).shape[:-1] + (length,)):
            inputs["labels"] = _pad_last(np.asarray(labels), multiple, -100)
        if inputs.get("attention_mask") is None:
            inputs["attention_mask"] = _pad_last(np.ones(np.asarray(kwargs.get("_shape", np.asarray(
                inputs["input_ids"]).shape[:-1] + (length,))), np.int64), multiple, 0)
    t = {k: torch.as_tensor(np.asarray(v)) for k, v in inputs.items() if v is not None}
    for k in ("input_ids", "attention_mask", "global_attention_mask", "token_type_ids", "position_ids", "labels",
              "start_positions", "end_positions"):
        if k in t and not t[k].is_floating_point():
            t[k] = t[k].long()
    with torch.no_grad():
        out = model(**t, **kwargs)
    padded = np.asarray(inputs[ids_key]).shape[-1] if ids_key else None

    def cut(key, v):
        v = v.numpy()
        if padded is None or padded == length:
            return v
        if key in ("attentions", "global_attentions"):
            return v[:, :, :length]
        if key in ("last_hidden_state", "hidden_states", "start_logits", "end_logits") or (
            key == "logits" and v.ndim >= 2 and v.shape[1] == padded
        ):
            return v[:, :length]
        return v

    result = {}
    for key, value in out.items():
        if value is None:
            continue
        if key == "loss" and "start_positions" in inputs and padded != length:
            continue  # the QA loss's softmax spans the sequence: with harness padding it is not comparable
        result[key] = [cut(key, v) for v in value] if isinstance(value, tuple) else cut(key, value)
    return result
