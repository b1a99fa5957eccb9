"""Padding invariance and batch invariance, for every head."""

import numpy as np
import pytest

import tf_longformer as T
from conftest import random_batch, tiny_config

MODELS = [T.TFLongformerModel, T.TFLongformerForMaskedLM, T.TFLongformerForSequenceClassification,
          T.TFLongformerForTokenClassification, T.TFLongformerForQuestionAnswering]


def main_output(out):
    return out["last_hidden_state"] if "last_hidden_state" in out else (
        out["logits"] if "logits" in out else out["start_logits"])


@pytest.mark.parametrize("cls", MODELS)
def test_extra_padding_changes_nothing(cls, rng):
    model = cls(tiny_config())
    inputs = random_batch(rng, 2, 19, n_global=(1, 4))
    base = main_output(model(inputs)).numpy()
    for extra in (1, 5, 24):
        padded = {
            "input_ids": np.pad(inputs["input_ids"], [(0, 0), (0, extra)], constant_values=1),
            "attention_mask": np.pad(inputs["attention_mask"], [(0, 0), (0, extra)]),
            # a padded token marked global stays padding
            "global_attention_mask": np.pad(inputs["global_attention_mask"], [(0, 0), (0, extra)], constant_values=1),
        }
        out = main_output(model(padded)).numpy()
        if out.ndim >= 2 and out.shape[1] == 19 + extra:
            out = out[:, :19]
        real = inputs["attention_mask"].astype(bool)
        a, b = (out[real], base[real]) if base.ndim >= 2 and base.shape[1] == 19 else (out, base)
        np.testing.assert_allclose(a, b, atol=2e-5)


@pytest.mark.parametrize("cls", MODELS)
def test_a_batch_equals_its_rows_one_by_one(cls, rng):
    model = cls(tiny_config())
    inputs = random_batch(rng, 4, 23, n_global=(0, 6))
    batched = main_output(model(inputs)).numpy()
    for b in range(4):
        real = int(inputs["attention_mask"][b].sum())
        row = {k: v[b: b + 1, :real] for k, v in inputs.items()}
        single = main_output(model(row)).numpy()
        want = batched[b: b + 1]
        if want.ndim >= 2 and want.shape[1] == 23:
            want = want[:, :real]
        np.testing.assert_allclose(single, want, atol=2e-5)


def test_zero_global_mask_equals_no_mask(rng):
    model = T.TFLongformerModel(tiny_config())
    inputs = random_batch(rng, 2, 15, n_global=(0, 0))
    a = model(inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    b = model(inputs).last_hidden_state
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_multiple_choice_equals_flattened_rows(rng):
    model = T.TFLongformerForMultipleChoice(tiny_config())
    inputs = random_batch(rng, 3, 14, n_global=(1, 2))
    stacked = {k: np.stack([v, v[::-1]], 1) for k, v in inputs.items()}
    logits = model(stacked).logits.numpy()
    pooled = T.TFLongformerModel(tiny_config())
    pooled.build()
    for a, b in zip(pooled.weights, [w for w in model.weights if "classifier" not in w.path]):
        a.assign(b)
    flat = pooled(inputs).pooler_output.numpy() @ model.classifier.kernel.numpy() + model.classifier.bias.numpy()
    np.testing.assert_allclose(logits[:, 0], flat[:, 0], atol=1e-5)
