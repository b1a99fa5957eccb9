"""The exports and expectations that test_export.py and test_serving_clients.py share (test_tasks.py reloads the
exports too): tiny perturbed models of every head exported once per session (`export_all_heads`; once for all
pytest-xdist workers), the input cases, what each signature must return (from the Keras model), and the
comparison. Not a test module: the tests import it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

try:
    import fcntl
except ImportError:  # no file locks (Windows): each process exports for itself
    fcntl = None

import keras
import numpy as np

from conftest import random_batch, tiny_config

from tf_longformer import serving

HEADS = serving.TASKS
LENGTHS = (5, 24, 41)
BATCHES = (1, 3)
ATOL = 1e-5
VOCAB = 400  # the tokenizer fixture's size
TOKENIZER_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "tokenizer")
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
EXTRAS_HEADS = ("question_answering", "multiple_choice")
SMALL = {"num_hidden_layers": 1, "attention_window": [6]}
EXTRA_SIGNATURE_CHECKS = {
    "question_answering": ("serving_default_int64", "auto_global_int64", "attentions"),
    "multiple_choice": ("serving_default_int64", "probabilities", "attentions", "hidden_states"),
}
HAVE_SERVING_API = importlib.util.find_spec("tensorflow_serving") is not None
FULL_CLI = bool(os.environ.get("TF_LONGFORMER_FULL_EXPORT_CHECK"))


# ---------------------------------------------------------------------------------------- the exports
def make_model(task, seed=0, **overrides):
    """A tiny random model whose every weight is perturbed (so biases, norms and the head all matter)."""
    # One global bucket (4): the exported graphs carry a bucketed path and the full-length one (cases cross it).
    cfg = tiny_config(vocab_size=VOCAB, id2label=LABELS, **{"global_buckets": [4], **overrides})
    # Keras' initializers seeded too: the same model in every process (unseeded, a worker's model could have
    # every row's two best logits within bfloat16's error, and test_export_bf16 had no row to compare)
    keras.utils.set_random_seed(seed)
    model = serving.model_class(task)(cfg)
    model.build()
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(v.numpy() + rng.normal(0, 0.2 if len(v.shape) > 1 else 0.1, v.shape).astype(np.float32))
    return model


_EXPORTS: dict = {}


def _session_dir(root):
    """pytest-xdist gives every worker a basetemp of its own (`<session basetemp>/popen-<worker>`): the exports are
    made in the session's, where the other workers find them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    parent, name = os.path.split(os.fspath(root))
    if fcntl is not None and worker and os.path.basename(parent) == f"popen-{worker}":
        return os.path.join(os.path.dirname(parent), name)
    return os.fspath(root)


@contextlib.contextmanager
def _locked(path):
    """One process at a time makes (or reads) an export; the lock goes with the process if it dies."""
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def export_all_heads(root, on_export=None):
    """`{task: (model, export_dir)}`, exported once per test session (shared with test_serving_clients and
    test_tasks): a process whose worker did not make an export rebuilds the same model from the weights saved
    beside it (in `<root>/.weights/`) and uses the export as it is.

    `on_export(task, model, export_dir)` is called for each head as soon as it is exported (at once for the heads
    exported earlier in the session), so that test_export's loader process can start on it while the rest export.
    """
    root = _session_dir(root)
    result = _EXPORTS.setdefault(root, {})
    os.makedirs(os.path.join(root, ".weights"), exist_ok=True)
    for i, task in enumerate(HEADS):
        if task not in result:
            # Two layers with different windows (per-layer padding, attention widths) where every signature is
            # checked; one layer elsewhere, which halves the graph the loaders have to load and optimise.
            model = make_model(task, seed=i, **({} if task in EXTRAS_HEADS else SMALL))
            path = os.path.join(root, task, "1")  # TF Serving's <base>/<version>/
            weights = os.path.join(root, ".weights", f"{task}.weights.h5")  # written once the export is complete
            with _locked(os.path.join(root, ".weights", f"{task}.lock")):
                if os.path.exists(weights):  # exported by another process of this session: its model, exactly
                    model.load_weights(weights)
                else:
                    # Every signature for two heads (multiple choice reshapes its extras); the two main ones
                    # elsewhere, to keep the tests fast (each signature is one more graph to trace, save, load
                    # and instantiate).
                    full = task in EXTRAS_HEADS
                    out = model.export(path, tokenizer=TOKENIZER_DIR, int64=full,
                                       signatures=None if full else ["serving_default", "auto_global"])
                    assert out == path
                    model.save_weights(weights[:-len(".weights.h5")] + ".tmp.weights.h5")
                    os.replace(weights[:-len(".weights.h5")] + ".tmp.weights.h5", weights)
            result[task] = (model, path)
        if on_export is not None:
            on_export(task, *result[task])
    return result


def make_inputs(task, rng, batch, length, n_global):
    """int32 inputs: `<s> ... </s>` rows with a `</s></s>` pair (QA / multiple-choice rules), some padded."""
    rows = batch * 2 if task == "multiple_choice" else batch
    x = random_batch(rng, rows, length, vocab=VOCAB, n_global=n_global, sep_pattern=True)
    x = {k: v.astype(np.int32) for k, v in x.items()}
    if task == "multiple_choice":
        x = {k: v.reshape(batch, 2, length) for k, v in x.items()}
    return x


def case_matrix(task, seed):
    """The cases every loader is checked on: name -> inputs."""
    rng = np.random.default_rng(1000 + seed)
    cases = {}
    for length in LENGTHS:
        for batch in BATCHES:
            cases[f"L{length}_B{batch}_noglobal"] = make_inputs(task, rng, batch, length, (0, 0))
            cases[f"L{length}_B{batch}_global"] = make_inputs(task, rng, batch, length, (1, 3))
    # More global tokens than the exported models' one global bucket (4): the graph's full-length branch.
    cases["L41_B2_manyglobal"] = make_inputs(task, rng, 2, 41, (20, 20))
    # One batch with rows with and without global tokens, padded and not (saved_model_cli's case).
    mixed = make_inputs(task, rng, 3, 41, (1, 3))
    mixed["global_attention_mask"][0] = 0
    cases["L41_B3_mixed"] = mixed
    return cases


def softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_EXPECTED: dict = {}


def keras_expected(model, task, signature, x, key=None):
    """What each signature must return, from the Keras model (probabilities derived in numpy); cached by `key`."""
    if key is not None:
        if (key, signature) not in _EXPECTED:
            _EXPECTED[(key, signature)] = keras_expected(model, task, signature, x)
        return _EXPECTED[(key, signature)]
    ids, mask, glob = x["input_ids"], x["attention_mask"], x["global_attention_mask"]
    extras = signature in ("attentions", "hidden_states")
    if signature == "auto_global":
        out = model(ids, attention_mask=mask)
    else:
        out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=extras,
                    output_hidden_states=extras)
    expected = {k: out[k].numpy() for k in serving.HEAD_OUTPUTS[task]}
    if signature in ("auto_global", "probabilities") and task != "base":
        if task == "question_answering":
            for side in ("start", "end"):
                logits = np.where(mask == 1, expected[f"{side}_logits"], -np.inf)
                expected[f"{side}_probabilities"] = softmax(logits)
        elif task == "masked_lm":
            probs = softmax(expected["logits"])
            expected["top_k_probabilities"] = -np.sort(-probs, axis=-1)[..., :10]
        else:
            expected["probabilities"] = softmax(expected["logits"])
            expected["predictions"] = np.argmax(expected["logits"], -1)
    if signature == "attentions":
        for i, (a, g) in enumerate(zip(out["attentions"], out["global_attentions"])):
            a, g = a.numpy(), g.numpy()
            if task == "multiple_choice":
                a, g = a.reshape(ids.shape[:2] + a.shape[1:]), g.reshape(ids.shape[:2] + g.shape[1:])
            expected[f"attentions_{i}"], expected[f"global_attentions_{i}"] = a, g
    if signature == "hidden_states":
        h = np.stack([t.numpy() for t in out["hidden_states"]], 1)
        expected["hidden_states"] = h.reshape(ids.shape[:-1] + h.shape[1:]) if task == "multiple_choice" else h
    return expected


def assert_outputs_equal(got, expected, where, signature):
    missing = [k for k in expected if k not in got]
    assert not missing, f"{where}: outputs {missing} missing; got {sorted(got)}"
    for key, want in expected.items():
        have = np.asarray(got[key])
        assert have.shape == want.shape, f"{where}: {key} shape {have.shape} != Keras {want.shape}"
        if key == "predictions":
            np.testing.assert_array_equal(have, want, err_msg=f"{where}: {key}")
        elif key == "top_k_token_ids":
            continue
        else:
            err = float(np.max(np.abs(have.astype(np.float64) - want))) if want.size else 0.0
            assert err <= ATOL, f"{where}: {key} differs from Keras by {err:.3g} (> {ATOL})"
    if "top_k_token_ids" in got:  # the ids of the top probabilities (compared through their probabilities)
        assert got["top_k_token_ids"].shape == got["top_k_probabilities"].shape
