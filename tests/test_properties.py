"""Property-based tests (hypothesis): random configs, lengths, batches, padding and global sets.

Checked against the dense masked oracle (tests/oracle.py) and the invariances: extra padding, batching and a
global mask of zeros change nothing.

Profiles (`HYPOTHESIS_PROFILE`): `ci` (default) runs 20 examples per test, derandomized (the same examples on
every run, so CI never flakes); `large` runs 300 random examples per test, for an on-demand search:
    HYPOTHESIS_PROFILE=large python -m pytest -q tests/test_properties.py
"""

import os
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tf_longformer as T  # noqa: E402
from oracle import dense_attention, dense_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Rows .* have no separator")

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_SLOW, print_blob=True)
settings.register_profile("large", max_examples=300, deadline=None, suppress_health_check=_SLOW, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
CI = settings.get_profile(PROFILE)

VOCAB, PAD, MAX_LEN = 40, 1, 48
WINDOWS = st.sampled_from([2, 4, 6, 8, 10, 16])


@st.composite
def configs(draw):
    layers = draw(st.integers(1, 3))
    heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([2, 4, 8]))
    window = draw(st.lists(WINDOWS, min_size=layers, max_size=layers) if draw(st.booleans()) else WINDOWS)
    return T.LongformerConfig(
        vocab_size=VOCAB, hidden_size=heads * head_dim, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=draw(st.sampled_from([8, 16, 32])), attention_window=window,
        max_position_embeddings=MAX_LEN + 2 + 16, type_vocab_size=1, pad_token_id=PAD, bos_token_id=0,
        eos_token_id=2, sep_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-5, hidden_act="gelu", num_labels=3,
    )


ROW_PADDING = st.sampled_from(["none", "right", "left", "scattered", "all"])
GLOBALS = st.sampled_from(["none", "first", "some", "all"])


@st.composite
def batches(draw, max_len=MAX_LEN, max_batch=3):
    """`input_ids, attention_mask, global_attention_mask` with a padding pattern and a global set per row."""
    batch, length = draw(st.integers(1, max_batch)), draw(st.integers(1, max_len))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(0, VOCAB, size=(batch, length))
    mask = np.ones((batch, length), np.int32)
    glob = np.zeros((batch, length), np.int32)
    for b in range(batch):
        pattern = draw(ROW_PADDING)
        if pattern == "right":
            mask[b, rng.integers(1, length + 1):] = 0
        elif pattern == "left":
            mask[b, : rng.integers(0, length)] = 0
        elif pattern == "scattered":
            mask[b] = rng.random(length) < 0.6
        elif pattern == "all":
            mask[b] = 0
        ids[b, mask[b] == 0] = PAD
        kind = draw(GLOBALS)
        if kind == "first":
            glob[b, 0] = 1
        elif kind == "some":
            glob[b] = rng.random(length) < 0.25
        elif kind == "all":
            glob[b] = 1
    return {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob}


def perturbed(model, seed):
    """Every weight moved by noise, so that biases, norms and a wrong key set show in the outputs."""
    rng = np.random.default_rng(seed)
    model.build()
    for v in model.weights:
        shape = tuple(v.shape)
        v.assign(v.numpy() + rng.normal(size=shape).astype(np.float32) * (0.3 if len(shape) > 1 else 0.1))
    return model


@settings(parent=CI)
@given(config=configs(), inputs=batches(), seed=st.integers(0, 2**16))
def test_model_equals_the_dense_oracle(config, inputs, seed):
    model = perturbed(T.TFLongformerModel(config), seed)
    ours = model(inputs).last_hidden_state.numpy()
    want = dense_model(model, **inputs)
    # every position, padded ones included (they attend nowhere; their outputs are defined too)
    np.testing.assert_allclose(ours, want, atol=2e-4, rtol=2e-4)
    assert np.isfinite(ours).all()


@settings(parent=CI)
@given(window=WINDOWS, heads=st.sampled_from([1, 2, 3]), dim=st.sampled_from([2, 4, 8]), inputs=batches(max_len=64),
       use_head_mask=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_layer_equals_the_dense_oracle(window, heads, dim, inputs, use_head_mask, seed):
    rng = np.random.default_rng(seed)
    layer = T.LongformerSelfAttention(num_heads=heads, head_dim=dim, attention_window=window,
                                      kernel_initializer="glorot_normal", bias_initializer="random_normal")
    mask = inputs["attention_mask"] * (inputs["global_attention_mask"] + 1)
    hidden = rng.normal(size=mask.shape + (heads * dim,)).astype(np.float32)
    head_mask = rng.random(heads).astype(np.float32) if use_head_mask else None
    ours = layer(hidden, mask, head_mask=head_mask).numpy()
    np.testing.assert_allclose(ours, dense_attention(layer, hidden, mask, head_mask), atol=5e-5, rtol=1e-4)


HEADS = [T.TFLongformerModel, T.TFLongformerForMaskedLM, T.TFLongformerForSequenceClassification,
         T.TFLongformerForTokenClassification, T.TFLongformerForQuestionAnswering]


def main_output(out):
    for key in ("last_hidden_state", "logits", "start_logits"):
        if key in out:
            return out[key].numpy()


def per_token(cls):
    return cls is not T.TFLongformerForSequenceClassification


@settings(parent=CI)
@given(config=configs(), cls=st.sampled_from(HEADS), inputs=batches(max_len=40), extra=st.integers(1, 20),
       seed=st.integers(0, 2**16))
def test_extra_padding_changes_nothing(config, cls, inputs, extra, seed):
    model = perturbed(cls(config), seed)
    base = main_output(model(inputs))
    rng = np.random.default_rng(seed)
    padded = {
        "input_ids": np.pad(inputs["input_ids"], [(0, 0), (0, extra)], constant_values=PAD),
        "attention_mask": np.pad(inputs["attention_mask"], [(0, 0), (0, extra)]),
        # a padded token marked global stays padding
        "global_attention_mask": np.concatenate(
            [inputs["global_attention_mask"], rng.integers(0, 2, (len(base), extra))], axis=1),
    }
    out = main_output(model(padded))
    length = inputs["input_ids"].shape[1]
    if per_token(cls):
        out = out[:, :length]
    np.testing.assert_allclose(out, base, atol=5e-5, rtol=1e-5)


@settings(parent=CI)
@given(config=configs(), cls=st.sampled_from(HEADS), inputs=batches(max_len=40, max_batch=4),
       seed=st.integers(0, 2**16))
def test_a_batch_equals_its_rows_one_by_one(config, cls, inputs, seed):
    model = perturbed(cls(config), seed)
    batched = main_output(model(inputs))
    for b in range(len(batched)):
        row = {k: v[b: b + 1] for k, v in inputs.items()}
        np.testing.assert_allclose(main_output(model(row)), batched[b: b + 1], atol=5e-5, rtol=1e-5)


@settings(parent=CI)
@given(config=configs(), inputs=batches(), seed=st.integers(0, 2**16))
def test_global_mask_of_zeros_is_no_global_mask(config, inputs, seed):
    model = perturbed(T.TFLongformerModel(config), seed)
    a = model(inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state.numpy()
    b = model(inputs["input_ids"], attention_mask=inputs["attention_mask"],
              global_attention_mask=np.zeros_like(inputs["input_ids"])).last_hidden_state.numpy()
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- junk inputs
JUNK_MODELS = {}
JUNK_DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.float16, np.float32, np.float64, np.bool_]
TENSOR_KEYS = ["attention_mask", "global_attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
               "head_mask", "labels"]


def junk_model(name):
    if name not in JUNK_MODELS:
        cfg = T.LongformerConfig(vocab_size=VOCAB, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=8, attention_window=[2, 4], max_position_embeddings=34,
                                 type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        JUNK_MODELS[name] = getattr(T, name)(cfg)
    return JUNK_MODELS[name]


@st.composite
def arrays(draw, like=None):
    """A numpy array: often shaped like `like` (so the checks past the shape are reached), any dtype and values."""
    if like is not None and draw(st.booleans()):
        shape = like
    else:
        shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 8, 40]), max_size=4)))
    dtype = draw(st.sampled_from(JUNK_DTYPES))
    kind = draw(st.sampled_from(["binary", "ids", "negative", "huge", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = {"binary": lambda: rng.integers(0, 2, shape), "ids": lambda: rng.integers(0, VOCAB, shape),
              "negative": lambda: rng.integers(-3, 3, shape), "huge": lambda: rng.integers(0, 2**40, shape),
              "nan": lambda: np.where(rng.random(shape) < 0.5, np.nan, 1.0)}[kind]()
    with np.errstate(all="ignore"):
        return np.asarray(values).astype(dtype)


@st.composite
def junk_calls(draw):
    name = draw(st.sampled_from(["TFLongformerForMaskedLM", "TFLongformerForSequenceClassification",
                                 "TFLongformerForQuestionAnswering", "TFLongformerForMultipleChoice"]))
    shape = (2, 2, 5) if name == "TFLongformerForMultipleChoice" else (2, 5)
    kwargs = {}
    if draw(st.integers(0, 4)):  # mostly ids, sometimes embeds only (or nothing)
        kwargs["input_ids"] = draw(arrays(like=shape))
    for key in draw(st.sets(st.sampled_from(TENSOR_KEYS), max_size=3)):
        like = {"inputs_embeds": shape + (8,), "head_mask": (2, 2)}.get(key, shape)
        if key == "labels" and name == "TFLongformerForQuestionAnswering":
            kwargs["start_positions"] = draw(arrays(like=(2,)))
            kwargs["end_positions"] = draw(arrays(like=(2,)))
        else:
            kwargs[key] = draw(arrays(like=like))
    return name, kwargs


@settings(parent=CI, max_examples=CI.max_examples * 5)
@given(call=junk_calls())
def test_junk_inputs_work_or_fail_with_a_message_naming_the_input(call):
    """Whatever arrays are thrown at a model: finite outputs, or a TypeError / ValueError naming an input."""
    name, kwargs = call
    try:
        out = junk_model(name)(**kwargs)
    except (TypeError, ValueError) as e:
        msg = str(e)
        event(type(e).__name__)
        assert re.search(r"`(input_ids|inputs_embeds|attention_mask|global_attention_mask|token_type_ids|position_ids|"
                         r"head_mask|labels|start_positions|end_positions)`", msg), msg
        return
    event("ran")
    for value in out.values():
        for t in value if isinstance(value, tuple) else (value,):
            assert np.isfinite(np.asarray(t, np.float32)).all()
