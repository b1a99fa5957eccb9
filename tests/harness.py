"""The shared test harness of the six task classes, in the spirit of KerasHub's `TestCase.run_layer_test` /
`run_model_saving_test`. Not a test module: `test_tasks.py` runs every class through it, `test_parity.py` uses its
reference cache and comparison.

Only the PUBLIC API of the models is used here (the classes, `call`, `build`, `get_config` / `from_config`,
`get_weights` / `set_weights`, `save` / `keras.saving.load_model`, `export`, `from_pretrained`, `hf_state_dict`,
`compile` / `fit`), so the checks hold whatever the models' internals look like.

`run_task_test(cls, config, inputs, expected_output_shapes, ...)` runs every check below on one class:

- `check_build`: `build()` creates every weight before the first call (the first call adds none, changes none);
- `check_call_forms`: a tensor, a list in the documented positional order, a dict, keyword arguments, int32 /
  int64 / tf / Python-list inputs all give IDENTICAL outputs (`assert_array_equal`), with the expected shapes;
- `check_config_round_trip`: `get_config` is JSON-able, `from_config` gives the same config and parameter count,
  and with the same weights IDENTICAL outputs; `serialize_keras_object` / `deserialize_keras_object` too;
- `check_fit_and_keras_round_trip`: one `fit` on the head's own labels (finite loss, weights move), `.keras`
  save and `keras.saving.load_model` WITHOUT custom objects: same class, config, optimizer and its step count,
  every weight by path bit-identical, IDENTICAL outputs, and one more `fit` on both ends at the same weights;
- `check_saved_model`: a SavedModel export reloaded with `tf.saved_model.load`: `serving_default` (and Keras'
  `serve` endpoint) give the model's outputs within 1e-5;
- `check_parity`: a random PyTorch reference checkpoint of the head loaded with `from_pretrained`: the same
  weights back through `hf_state_dict`, and every output (loss included, whenever labels are given: the
  question-answering loss too) within 1e-4 of PyTorch.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from helpers import HEADS, make_reference, run_reference

# The documented positional order of the call arguments (the Hugging Face TF models'); the labels follow.
INPUT_ORDER = ("input_ids", "attention_mask", "head_mask", "global_attention_mask", "token_type_ids",
               "position_ids", "inputs_embeds", "output_attentions", "output_hidden_states", "return_dict")
LABEL_NAMES = {"base": (), "question_answering": ("start_positions", "end_positions")}
PARITY_TOL = 1e-4  # float32 against the PyTorch reference (as test_parity.py)
EXPORT_ATOL = 1e-5  # the SavedModel against the Keras model (as test_export.py)
CHECKS = ("build", "call_forms", "config_round_trip", "fit_and_keras_round_trip", "saved_model", "parity")


def head_of(cls):
    """The head name (`helpers.HEADS`) of a task class."""
    for head, (_, ours) in HEADS.items():
        if cls.__name__ == ours:
            return head
    raise KeyError(cls.__name__)


def label_names(cls):
    return LABEL_NAMES.get(head_of(cls), ("labels",))


def as_numpy(out):
    """`{key: array}` of an output (a tuple of tensors, e.g. hidden states, as a list of arrays)."""
    result = {}
    for key in out.keys():
        value = out[key]
        result[key] = [np.asarray(v) for v in value] if isinstance(value, (tuple, list)) else np.asarray(value)
    return result


def assert_identical(got, want, where=""):
    """Same keys, same shapes, bit-identical values."""
    got, want = as_numpy(got), as_numpy(want)
    assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
    for key, value in want.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), f"{where}: {key}"
            for a, b in zip(got[key], value):
                np.testing.assert_array_equal(a, b, err_msg=f"{where}: {key}")
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=f"{where}: {key}")


def _same_weights(a, b, atol=0.0):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    return max((float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(wa, wb)), default=0.0) <= atol


def _twin(model):
    """A second model of the same class and config with the same weights (public API only)."""
    again = type(model).from_config(model.get_config())
    again.build()
    again.set_weights(model.get_weights())
    return again


# ------------------------------------------------------------------------------------------------ checks
def check_build(cls, config, inputs):
    """`build()` creates every weight: the first call creates none and changes none."""
    model = cls(config)
    assert not model.built
    model.build()
    assert model.built and model.count_params() > 0
    names = [v.path for v in model.weights]
    assert len(set(names)) == len(names), "two weights share a path"
    before = model.get_weights()
    model(inputs)
    assert [v.path for v in model.weights] == names, "the first call created weights"
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    return model


def check_call_forms(model, inputs, expected_output_shapes, labels=None):
    """A tensor, a list in the documented order, a dict and keyword arguments give identical outputs."""
    import tensorflow as tf

    labels = dict(labels or {})
    names = label_names(type(model))
    assert set(labels) <= set(names), (sorted(labels), names)
    want = model(**inputs, **labels)
    shapes = {k: tuple(np.shape(v)) for k, v in as_numpy(want).items()}
    expected = dict(expected_output_shapes)
    if labels:
        expected = {"loss": (), **expected}
    assert shapes == expected, (shapes, expected)
    assert all(np.isfinite(v).all() for v in as_numpy(want).values() if not isinstance(v, list))

    positional = [inputs.get(k) for k in INPUT_ORDER] + [labels.get(k) for k in names]
    while positional and positional[-1] is None:
        positional.pop()
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    variants = {
        "dict": model({**inputs, **labels}),
        "list": model(positional),
        "tuple": model(tuple(positional)),
        "tensor + keywords": model(tf.constant(inputs["input_ids"]), **rest, **labels),
        "dict + keyword labels": model(inputs, **labels),
        "int32": model({k: np.asarray(v).astype(np.int32) for k, v in {**inputs, **labels}.items()}),
        "tf int64": model({k: tf.constant(v, tf.int64) for k, v in {**inputs, **labels}.items()}),
        "python lists": model(np.asarray(inputs["input_ids"]).tolist(), **rest, **labels),
    }
    for name, out in variants.items():
        assert_identical(out, want, name)
    # The tensor alone: the ids with every default (no mask, the head's own global attention).
    assert_identical(model(tf.constant(inputs["input_ids"])), model(input_ids=inputs["input_ids"]), "tensor")
    return want


def check_config_round_trip(model, inputs):
    """`get_config` -> `from_config`: the same config, parameter count and (same weights) outputs."""
    import keras

    cls = type(model)
    config = model.get_config()
    json.dumps(config)  # a Keras config must be JSON
    again = cls.from_config(config)
    assert type(again) is cls and again.get_config() == config
    again.build()
    assert again.count_params() == model.count_params()
    again.set_weights(model.get_weights())
    assert_identical(again(inputs), model(inputs), "from_config")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(restored) is cls and restored.get_config() == config
    return again


def _fit_args(model, inputs, labels):
    if head_of(type(model)) == "base":  # no loss of its own: a Keras loss on the hidden states
        shape = np.shape(inputs["input_ids"]) + (model.config.hidden_size,)
        return (inputs, np.zeros(shape, np.float32)), {"optimizer": "adam", "loss": "mse"}
    return ({**inputs, **labels},), {}


def check_fit_and_keras_round_trip(model, inputs, labels, directory, batch_size=2):
    """One `fit` (on a twin: `model` is left as it was), then `.keras` round trip with the optimizer state."""
    import keras

    cls = type(model)
    trained = _twin(model)
    args, compile_args = _fit_args(trained, inputs, labels)
    trained.compile(run_eagerly=True, **compile_args)
    start = trained.get_weights()
    history = trained.fit(*args, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    assert max(float(np.abs(w - s).max()) for w, s in zip(trained.get_weights(), start) if w.size) > 1e-6
    steps = math.ceil(np.shape(inputs["input_ids"])[0] / batch_size)

    path = os.path.join(os.fspath(directory), "model.keras")
    trained.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    assert type(loaded) is cls and loaded.config == trained.config
    assert loaded.get_config() == trained.get_config()
    assert type(loaded.optimizer) is type(trained.optimizer)
    assert int(loaded.optimizer.iterations) == int(trained.optimizer.iterations) == steps
    assert sorted(v.path for v in loaded.weights) == sorted(v.path for v in trained.weights)
    by_path = {v.path: v.numpy() for v in loaded.weights}
    for v in trained.weights:
        np.testing.assert_array_equal(by_path[v.path], v.numpy(), err_msg=v.path)
    assert_identical(loaded(inputs), trained(inputs), ".keras")
    # The restored optimizer state and compile settings go on training exactly as the original.
    trained.fit(*args, epochs=1, batch_size=batch_size, verbose=0, shuffle=False)
    loaded.fit(*args, epochs=1, batch_size=batch_size, verbose=0, shuffle=False)
    assert _same_weights(trained, loaded, atol=1e-6)
    return loaded


def check_saved_model(model, inputs, directory=None, exported=None):
    """`model.export` (or the export of `model` already at `exported`), reloaded: the serving signature's
    outputs equal the model's (every output the signature shares with the model), within 1e-5."""
    import tensorflow as tf

    if exported is None:
        exported = os.path.join(os.fspath(directory), "export", "1")
        assert model.export(exported, signatures=["serving_default"], int64=False) == exported
    loaded = tf.saved_model.load(exported)
    fn = loaded.signatures["serving_default"]
    feed = {k: tf.constant(np.asarray(inputs[k]), tf.int32) for k in fn.structured_input_signature[1]}
    assert "input_ids" in feed
    got = {k: v.numpy() for k, v in fn(**feed).items()}
    want = as_numpy(model({k: np.asarray(v) for k, v in feed.items()}))
    shared = [k for k in want if k in got]
    assert shared, (sorted(got), sorted(want))
    for key in shared:
        assert got[key].shape == want[key].shape, key
        err = float(np.max(np.abs(got[key].astype(np.float64) - want[key]))) if want[key].size else 0.0
        assert err <= EXPORT_ATOL, f"serving_default {key} differs from Keras by {err:.3g}"
    again = loaded.serve(**feed)  # Keras' endpoint name answers the same
    for key in got:
        np.testing.assert_array_equal(again[key].numpy(), got[key])
    return got


# ---------------------------------------------------------------------------------------- the reference
_REFERENCES: dict = {}


def reference_pair(head, root, seed=0, **overrides):
    """`(PyTorch reference, our model from its checkpoint)`, made ONCE per (root, head, seed, overrides): the
    reference is seeded, so every caller gets the same numbers it would get from a fresh one. Callers must not
    change the weights of either (train a twin instead)."""
    if head == "question_answering":
        overrides.setdefault("num_labels", 2)
    key = (os.fspath(root), head, seed, json.dumps(overrides, sort_keys=True))
    if key not in _REFERENCES:
        import tf_longformer as T

        directory = os.path.join(os.fspath(root), f"{head}-{seed}-{len(_REFERENCES)}")
        ref = make_reference(head, directory, seed=seed, **overrides)
        _REFERENCES[key] = (ref, getattr(T, HEADS[head][1]).from_pretrained(directory), ref.config.problem_type)
    ref, ours, problem_type = _REFERENCES[key]
    # The reference's sequence classifier writes the problem type its first labels implied into its config and
    # keeps it: as fresh, every time.
    ref.config.problem_type = problem_type
    return ref, ours


def compare(ours, ref, inputs, keys=None):
    """Max abs difference per output key; global attentions compared on each row's real global slots."""
    diffs = {}
    for key, value in ref.items():
        if keys is not None and key not in keys:
            continue
        mine = ours[key]
        if key == "global_attentions":
            gm = np.asarray(inputs["global_attention_mask"]) * np.asarray(inputs["attention_mask"])
            counts = gm.reshape(-1, gm.shape[-1]).sum(-1)
            d = 0.0
            for a, m in zip(value, mine):
                m = np.asarray(m)
                a = a[:, :, : m.shape[2]]  # the reference keeps its padded length on this axis; we cut it back
                assert m.shape[:3] == a.shape[:3] and m.shape[3] == counts.max()
                for b, c in enumerate(counts):
                    if c:
                        d = max(d, float(np.abs(a[b, :, :, :c] - m[b, :, :, :c]).max()))
            diffs[key] = d
        elif isinstance(value, list):
            assert len(value) == len(mine)
            for a, m in zip(value, mine):
                assert a.shape == tuple(m.shape), (key, a.shape, m.shape)
            diffs[key] = max(float(np.abs(a - np.asarray(m)).max()) for a, m in zip(value, mine))
        else:
            assert value.shape == tuple(np.shape(mine)), (key, value.shape, np.shape(mine))
            diffs[key] = float(np.abs(value - np.asarray(mine)).max())
    return diffs


def check_parity(cls, inputs, labels, root, tol=PARITY_TOL, **overrides):
    """The head's PyTorch reference checkpoint through `from_pretrained`: the same weights out of
    `hf_state_dict`, and every output (hidden states, attentions, global attentions, the loss) within `tol`."""
    head = head_of(cls)
    ref, ours = reference_pair(head, root, **overrides)
    assert type(ours) is cls
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    mine = ours.hf_state_dict()
    for name, value in mine.items():
        np.testing.assert_array_equal(np.asarray(value), state[name], err_msg=name)
    feed = {**inputs, **(labels or {})}
    r = run_reference(ref, feed, output_attentions=True, output_hidden_states=True)
    o = ours(feed, output_attentions=True, output_hidden_states=True)
    diffs = compare(o, r, feed)
    assert {"hidden_states", "attentions", "global_attentions"} <= set(diffs), sorted(diffs)
    if labels:
        # run_reference leaves the QA loss out when it has to pad the input itself: the case must not need it
        assert "loss" in diffs and np.isfinite(diffs["loss"]), f"the loss was not compared: {sorted(diffs)}"
    assert max(diffs.values()) <= tol, diffs
    return diffs


# ------------------------------------------------------------------------------------------------- all
def run_task_test(cls, config, inputs, expected_output_shapes, labels=None, *, directory, reference_root=None,
                  exported=None, checks=CHECKS, reference_overrides=None):
    """Every check above on `cls` (or those named in `checks`).

    `inputs`: numpy inputs (`input_ids` first; multiple choice (batch, choices, length)); `labels`: the head's
    labels; `expected_output_shapes`: `{output: shape}` without labels; `directory`: a fresh folder;
    `exported`: `(model, path)` of an export already made (else `check_saved_model` exports the model);
    `reference_root`: where the PyTorch reference checkpoints are cached (default: inside `directory`).
    """
    unknown = set(checks) - set(CHECKS)
    assert not unknown, unknown
    directory = os.fspath(directory)
    model = None
    if "build" in checks or set(checks) & {"call_forms", "config_round_trip", "fit_and_keras_round_trip"}:
        model = check_build(cls, config, inputs)
    if "call_forms" in checks:
        check_call_forms(model, inputs, expected_output_shapes, labels)
    if "config_round_trip" in checks:
        check_config_round_trip(model, inputs)
    if "fit_and_keras_round_trip" in checks:
        check_fit_and_keras_round_trip(model, inputs, labels or {}, directory)
    if "saved_model" in checks:
        if exported is not None:
            check_saved_model(exported[0], inputs, exported=exported[1])
        else:
            check_saved_model(model if model is not None else check_build(cls, config, inputs), inputs, directory)
    if "parity" in checks:
        check_parity(cls, inputs, labels, reference_root or os.path.join(directory, "reference"),
                     **(reference_overrides or {}))
