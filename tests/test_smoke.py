"""The smoke subset: what every supported dependency set must do (CI's minimum leg runs this file alone).

Every head forward with global tokens (checked against the dense oracle, and for invariance to batching and
padding), a few `fit` steps, `.keras` and Hugging Face-layout save/load, and a SavedModel export reloaded in a
process where neither Keras nor tf_longformer can be imported. No PyTorch, no transformers: only the package's own
requirements and pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tf_longformer as T
from oracle import dense_model

HEADS = {
    "base": T.TFLongformerModel,
    "masked_lm": T.TFLongformerForMaskedLM,
    "sequence_classification": T.TFLongformerForSequenceClassification,
    "token_classification": T.TFLongformerForTokenClassification,
    "question_answering": T.TFLongformerForQuestionAnswering,
    "multiple_choice": T.TFLongformerForMultipleChoice,
}
OUTPUT = {"base": "last_hidden_state", "question_answering": "start_logits"}


def config(**overrides):
    values = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                  max_position_embeddings=130, attention_window=[4, 6], type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, sep_token_id=2, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5, num_labels=3)
    values.update(overrides)
    return T.LongformerConfig(**values)


def batch(length=37, rows=3, seed=0):
    """Row 0 full with 2 global tokens, row 1 padded with 1, row 2 full with none."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, size=(rows, length))
    ids[:, 0], ids[:, -1] = 0, 2
    mask = np.ones_like(ids)
    ids[1, 20:], mask[1, 20:] = 1, 0
    ids[1, 19] = 2
    glob = np.zeros_like(ids)
    glob[0, [0, 11]] = 1
    glob[1, 0] = 1
    return {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob}


def first_output(model, inputs):
    out = model(inputs)
    return np.asarray(out[0] if isinstance(out, (tuple, list)) else out[list(out.keys())[0]])


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_runs_with_global_tokens_and_is_batch_and_padding_invariant(head):
    model = HEADS[head](config())
    inputs = batch()
    if head == "multiple_choice":  # (batch, choices, length)
        inputs = {k: np.stack([v, v[::-1]], axis=0) for k, v in inputs.items()}
    out = first_output(model, inputs)
    assert np.all(np.isfinite(out))
    if head == "multiple_choice":
        assert out.shape == (2, 3)
        return
    # each row alone, without the batch's padding, gives its own output
    for row, real in ((0, 37), (1, 20), (2, 37)):
        alone = {k: v[row:row + 1, :real] for k, v in inputs.items()}
        got = first_output(model, alone)
        want = out[row:row + 1]
        if want.ndim >= 3 or head in ("question_answering", "token_classification", "masked_lm"):
            want = want[:, :real]
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_base_model_equals_the_dense_oracle():
    model = T.TFLongformerModel(config())
    inputs = batch()
    got = np.asarray(model(inputs).last_hidden_state)
    want = dense_model(model, inputs["input_ids"], inputs["attention_mask"], inputs["global_attention_mask"])
    real = inputs["attention_mask"].astype(bool)
    np.testing.assert_allclose(got[real], want[real], atol=1e-4)


def test_a_few_fit_steps_learn_and_keras_round_trip(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = T.TFLongformerForSequenceClassification(config(num_labels=2))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    inputs = batch(rows=8, seed=1)
    labels = (inputs["input_ids"][:, 5] > 30).astype(np.int64)  # a label the model can read
    history = model.fit(inputs, labels, batch_size=4, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    before = np.asarray(model(inputs).logits)

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(inputs).logits), before, atol=1e-6)

    folder = str(tmp_path / "hf")
    model.save_pretrained(folder)
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))
    again = T.TFLongformerForSequenceClassification.from_pretrained(folder)
    np.testing.assert_allclose(np.asarray(again(inputs).logits), before, atol=1e-6)


LOADER = textwrap.dedent('''
    import json, sys
    for name in ("keras", "tf_keras", "tf_longformer"):
        sys.modules[name] = None
    import numpy as np
    import tensorflow as tf
    path, inputs_path = sys.argv[1:3]
    inputs = {k: tf.constant(np.asarray(v, np.int32)) for k, v in json.load(open(inputs_path)).items()}
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](**inputs)
    print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
''')


def test_saved_model_export_reloads_without_keras(tmp_path):
    model = T.TFLongformerForTokenClassification(config())
    inputs = batch()
    want = np.asarray(model(inputs).logits)
    path = str(tmp_path / "exported")
    model.export(path)
    feed = {k: v.tolist() for k, v in inputs.items() if k in ("input_ids", "attention_mask", "global_attention_mask")}
    (tmp_path / "inputs.json").write_text(json.dumps(feed))
    (tmp_path / "loader.py").write_text(LOADER)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(tmp_path / "loader.py"), path, str(tmp_path / "inputs.json")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.asarray(got["logits"]), want, atol=1e-5)
