"""Bad input gets an error naming the problem (eager, tf.function, SavedModel); XLA never returns silent
garbage (out-of-range rows become NaN); valid but odd input works."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import random_batch, tiny_config
from oracle import dense_model

VOCAB, MAX_LEN = 60, 128  # tiny_config: vocab_size 60, max_position_embeddings 130, pad 1
IDS = np.array([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


@pytest.fixture(scope="module")
def models():
    return {
        "base": T.TFLongformerModel(tiny_config()),
        "mlm": T.TFLongformerForMaskedLM(tiny_config()),
        "seq": T.TFLongformerForSequenceClassification(tiny_config()),
        "tok": T.TFLongformerForTokenClassification(tiny_config()),
        "qa": T.TFLongformerForQuestionAnswering(tiny_config()),
        "mc": T.TFLongformerForMultipleChoice(tiny_config()),
    }


def stack(x):  # multiple choice: two choices per example
    return np.stack([x, x], 1)


# (id, model, kwargs, exception type, the message must match)
EAGER_CASES = [
    ("id >= vocab_size", "mlm", dict(input_ids=[[0, 75, 6, 2]]), ValueError,
     r"`input_ids` must hold ids in \[0, vocab_size=60\); found 1 value\(s\) outside: 75 at \[0, 1\]"),
    ("negative id", "base", dict(input_ids=[[0, 5, -1, 2]]), ValueError, r"input_ids.*\[0, vocab_size=60\).*-1 at \[0, 2\]"),
    ("id that int32 would wrap", "base", dict(input_ids=np.array([[0, 2**32 + 5]])), ValueError,
     r"input_ids.*4294967301 at \[0, 1\]"),
    ("many bad ids are counted", "base", dict(input_ids=np.full((2, 6), 99)), ValueError, r"found 12 value.*and 9 more"),
    ("float ids", "base", dict(input_ids=IDS.astype(np.float32)), TypeError, r"`input_ids` must hold integer ids.*float32"),
    ("bool ids", "base", dict(input_ids=IDS > 3), TypeError, r"`input_ids` must hold integer ids.*bool"),
    ("string ids", "base", dict(input_ids=tf.constant([["a", "b"]])), TypeError, r"`input_ids`.*string"),
    ("ragged list", "base", dict(input_ids=[[0, 5, 2], [0, 2]]), ValueError, r"`input_ids`.*rows have different lengths"),
    ("RaggedTensor", "base", dict(input_ids=tf.ragged.constant([[0, 5, 2], [0, 2]])), TypeError,
     r"`input_ids` is a tf.RaggedTensor"),
    ("too long", "base", dict(input_ids=np.zeros((1, MAX_LEN + 1), int)), ValueError,
     r"`input_ids` has length 129, but this model takes at most 128 tokens"),
    ("empty batch", "base", dict(input_ids=np.zeros((0, 4), int)), ValueError, r"`input_ids` has an empty batch \(shape \(0, 4\)\)"),
    ("zero-length sequence", "mlm", dict(input_ids=np.zeros((2, 0), int)), ValueError, r"zero-length sequences \(shape \(2, 0\)\)"),
    ("empty list", "base", dict(input_ids=[[]]), ValueError, r"zero-length"),
    ("1-D ids", "base", dict(input_ids=IDS[0]), ValueError, r"`input_ids` must have rank 2 \(batch, length\), got shape \(5,\).*\[ids\]"),
    ("3-D ids", "base", dict(input_ids=stack(IDS)), ValueError, r"`input_ids` must have rank 2"),
    ("attention_mask shape", "base", dict(input_ids=IDS, attention_mask=np.ones((2, 6))), ValueError,
     r"`attention_mask` has shape \(2, 6\) but `input_ids` has shape \(2, 5\)"),
    ("attention_mask broadcastable shape", "base", dict(input_ids=IDS, attention_mask=np.ones((2, 1))), ValueError,
     r"`attention_mask` has shape \(2, 1\)"),
    ("global_attention_mask shape", "base", dict(input_ids=IDS, global_attention_mask=np.ones((1, 5))), ValueError,
     r"`global_attention_mask` has shape \(1, 5\) but `input_ids` has shape \(2, 5\)"),
    ("attention_mask rank", "base", dict(input_ids=IDS, attention_mask=MASK[:, :, None]), ValueError,
     r"`attention_mask` has shape \(2, 5, 1\)"),
    ("attention_mask value 2", "base", dict(input_ids=IDS, attention_mask=[[1, 1, 2, 1, 1], [1, 1, 1, 0, 0]]), ValueError,
     r"`attention_mask` must hold only 0 and 1; found 1 value\(s\) outside: 2 at \[0, 2\]"),
    ("float mask 0.5", "base", dict(input_ids=IDS, attention_mask=MASK * 0.5), ValueError, r"`attention_mask` must hold only 0 and 1.*0\.5"),
    ("global mask value -1", "base", dict(input_ids=IDS, global_attention_mask=-MASK), ValueError,
     r"`global_attention_mask` must hold only 0 and 1.*-1 at \[0, 0\]"),
    ("string mask", "base", dict(input_ids=IDS, attention_mask=tf.fill([2, 5], "1")), TypeError, r"`attention_mask` must be an int, bool or float"),
    ("token type out of range", "base", dict(input_ids=IDS, token_type_ids=MASK), ValueError,
     r"`token_type_ids` must hold ids in \[0, type_vocab_size=1\).*1 at \[0, 0\]"),
    ("position out of range", "base", dict(input_ids=IDS, position_ids=IDS * 30), ValueError,
     r"`position_ids` must hold ids in \[0, max_position_embeddings=130\).*150 at \[0, 1\]"),
    ("position shape", "base", dict(input_ids=IDS, position_ids=IDS[:, :3]), ValueError, r"`position_ids` has shape \(2, 3\)"),
    ("ids and embeds", "base", dict(input_ids=IDS, inputs_embeds=np.zeros((2, 5, 16), np.float32)), ValueError,
     r"exactly one of `input_ids` and `inputs_embeds` \(got both\)"),
    ("neither ids nor embeds", "base", dict(input_ids=None), ValueError, r"exactly one of `input_ids` and `inputs_embeds` \(got neither\)"),
    ("embeds hidden size", "base", dict(inputs_embeds=np.zeros((2, 5, 8), np.float32)), ValueError,
     r"`inputs_embeds` must end in hidden_size=16, got shape \(2, 5, 8\)"),
    ("int embeds", "base", dict(inputs_embeds=np.zeros((2, 5, 16), np.int32)), TypeError, r"`inputs_embeds` must be a float tensor"),
    ("embeds rank", "base", dict(inputs_embeds=np.zeros((5, 16), np.float32)), ValueError, r"`inputs_embeds` must have rank 3"),
    ("embeds mask shape", "base", dict(inputs_embeds=np.zeros((2, 5, 16), np.float32), attention_mask=np.ones((2, 6))),
     ValueError, r"`attention_mask` has shape \(2, 6\) but `inputs_embeds` \(without its hidden axis\) has shape \(2, 5\)"),
    ("embeds too long", "base", dict(inputs_embeds=np.zeros((1, 200, 16), np.float32)), ValueError, r"`inputs_embeds` has length 200"),
    ("head_mask heads", "base", dict(input_ids=IDS, head_mask=np.ones(3)), ValueError,
     r"`head_mask` must have shape \(2,\) .* or \(2, 2\) .*got \(3,\)"),
    ("head_mask layers", "base", dict(input_ids=IDS, head_mask=np.ones((3, 2))), ValueError, r"`head_mask`.*got \(3, 2\)"),
    ("head_mask rank", "base", dict(input_ids=IDS, head_mask=np.ones((2, 2, 1))), ValueError, r"`head_mask`.*got \(2, 2, 1\)"),
    # multiple choice: rank 3
    ("multiple choice rank 2", "mc", dict(input_ids=IDS), ValueError,
     r"`input_ids` must have rank 3 \(batch, choices, length\), got shape \(2, 5\)"),
    ("multiple choice mask rank 2", "mc", dict(input_ids=stack(IDS), attention_mask=MASK), ValueError,
     r"`attention_mask` has shape \(2, 5\) but `input_ids` has shape \(2, 2, 5\)"),
    ("multiple choice 0 choices", "mc", dict(input_ids=np.zeros((2, 0, 5), int)), ValueError, r"0 choices"),
    ("multiple choice bad id", "mc", dict(input_ids=stack(IDS) + 57), ValueError, r"`input_ids`.*vocab_size=60.*at \[0, 0, 1\]"),
    # labels
    ("MLM label >= vocab", "mlm", dict(input_ids=IDS, labels=np.where(IDS == 6, 60, -100)), ValueError,
     r"`labels` must hold class ids in \[0, vocab_size=60\) or -100 \(ignored\); found 1 value\(s\) outside: 60 at \[0, 2\]"),
    ("MLM label -1", "mlm", dict(input_ids=IDS, labels=-np.ones_like(IDS)), ValueError, r"`labels`.*-1 at \[0, 0\]"),
    ("MLM label shape", "mlm", dict(input_ids=IDS, labels=IDS[:, :4]), ValueError, r"`labels` has shape \(2, 4\) but `input_ids` has shape \(2, 5\)"),
    ("MLM float labels", "mlm", dict(input_ids=IDS, labels=IDS * 1.0), TypeError, r"`labels` must hold integer class ids"),
    ("token label >= num_labels", "tok", dict(input_ids=IDS, labels=np.full_like(IDS, 3)), ValueError,
     r"`labels`.*\[0, num_labels=3\).*3 at \[0, 0\]"),
    ("token labels per sequence", "tok", dict(input_ids=IDS, labels=np.array([0, 1])), ValueError, r"`labels` has shape \(2,\)"),
    ("class label >= num_labels", "seq", dict(input_ids=IDS, labels=np.array([0, 3])), ValueError,
     r"`labels`.*\[0, num_labels=3\).*3 at \[1\]"),
    ("class label negative", "seq", dict(input_ids=IDS, labels=np.array([-2, 0])), ValueError, r"`labels`.*-2 at \[0\]"),
    ("class labels shape", "seq", dict(input_ids=IDS, labels=np.array([[0, 1], [1, 0]])), ValueError,
     r"`labels` must hold one value per example, shape \(2,\), got \(2, 2\)"),
    ("class labels batch", "seq", dict(input_ids=IDS, labels=np.array([0, 1, 2])), ValueError, r"one value per example.*got \(3,\)"),
    ("float class labels read as multi-label", "seq", dict(input_ids=IDS, labels=np.array([0.0, 2.0])), ValueError,
     r"multi-label targets\) must have shape \(batch, num_labels\) = \(2, 3\), got \(2,\).*integer class ids"),
    ("multi-label target 2", "seq", dict(input_ids=IDS, labels=np.array([[0.0, 1.0, 2.0], [0, 0, 1]])), ValueError,
     r"multi-label targets in \[0, 1\].*2\.0 at \[0, 2\]"),
    ("QA negative start", "qa", dict(input_ids=IDS, start_positions=np.array([-1, 2]), end_positions=np.array([1, 2])), ValueError,
     r"`start_positions` must hold token positions >= 0.*-1 at \[0\]"),
    ("QA only start", "qa", dict(input_ids=IDS, start_positions=np.array([1, 2])), ValueError,
     r"both `start_positions` and `end_positions`.*only `start_positions`"),
    ("QA float positions", "qa", dict(input_ids=IDS, start_positions=np.array([1.0, 2]), end_positions=np.array([1, 2])), TypeError,
     r"`start_positions` must hold integer token positions"),
    ("QA positions shape", "qa", dict(input_ids=IDS, start_positions=np.array([[1, 2]]), end_positions=np.array([1, 2])), ValueError,
     r"`start_positions` must hold one value per example"),
    ("choice label >= choices", "mc", dict(input_ids=stack(IDS), labels=np.array([0, 2])), ValueError,
     r"`labels`.*\[0, num_choices=2\).*2 at \[1\]"),
]


@pytest.mark.parametrize("case", EAGER_CASES, ids=[c[0] for c in EAGER_CASES])
def test_bad_input_eager(models, case):
    _, name, kwargs, error, pattern = case
    kwargs = dict(kwargs)
    with pytest.raises(error, match=pattern):
        models[name](kwargs.pop("input_ids", None), **kwargs)


def test_regression_labels_shape():
    model = T.TFLongformerForSequenceClassification(tiny_config(num_labels=1))
    with pytest.raises(ValueError, match=r"`labels` must hold one value per example, shape \(2,\), got \(2, 3\)"):
        model(IDS, labels=np.zeros((2, 3), np.float32))
    assert np.isfinite(float(model(IDS, labels=np.array([0.5, 1.5])).loss))


def test_bad_config():
    with pytest.raises(ValueError, match=r"`attention_window` has 3 entries \[4, 4, 4\] but the model has 2 layers"):
        T.TFLongformerModel(tiny_config(attention_window=[4, 4, 4]))
    with pytest.raises(ValueError, match=r"`attention_window` values must be positive even integers.*got 5"):
        T.TFLongformerModel(tiny_config(attention_window=5))
    with pytest.raises(ValueError, match=r"`hidden_size` \(16\) must be divisible by `num_attention_heads` \(3\)"):
        T.TFLongformerModel(tiny_config(num_attention_heads=3))
    with pytest.raises(TypeError, match=r"`config` must be a LongformerConfig or a dict, got str"):
        T.TFLongformerModel("config.json")
    # values an untrusted config.json could hold: no AttributeError, no hang building 10**12 label names
    with pytest.raises(ValueError, match=r"`num_labels` must be at most 1048576, got 1000000000000"):
        T.LongformerConfig(num_labels=10**12)
    with pytest.raises(ValueError, match=r"`vocab_size` must be at most 2147483647, got 2147483648"):
        T.LongformerConfig(vocab_size=2**31)
    with pytest.raises(ValueError, match=r"`id2label` must be a non-empty mapping of label ids to names, got 3"):
        T.LongformerConfig(id2label=3)
    with pytest.raises(ValueError, match=r"`id2label` keys must be integer label ids, got \['a'\]"):
        T.LongformerConfig(id2label={"a": "x"})
    with pytest.raises(ValueError, match=r"`initializer_range` must be a finite number >= 0, got 'x'"):
        T.LongformerConfig(initializer_range="x")


# ---------------------------------------------------------------------------------------- graph mode
SIG2 = [tf.TensorSpec([None, None], tf.int32)] * 2


@pytest.fixture(scope="module")
def one_layer():
    """Graph and XLA tests trace and compile: one layer keeps that quick."""
    return {"mlm": T.TFLongformerForMaskedLM(tiny_config(num_hidden_layers=1, attention_window=4)),
            "tok": T.TFLongformerForTokenClassification(tiny_config(num_hidden_layers=1, attention_window=4)),
            "qa": T.TFLongformerForQuestionAnswering(tiny_config(num_hidden_layers=1, attention_window=4))}


@pytest.fixture(scope="module")
def mlm_graph(one_layer):
    return graph_fn(one_layer["mlm"])  # traced once, for any batch and length


def graph_fn(model, jit_compile=False, key="logits", **kwargs):
    return tf.function(lambda i, a: model(i, attention_mask=a, **kwargs)[key], input_signature=SIG2,
                       jit_compile=jit_compile)


GRAPH_CASES = [
    ("id >= vocab_size", [[0, 75, 6, 2]], [[1, 1, 1, 1]], r"`input_ids` must hold ids in \[0, vocab_size=60\); min and max seen:\] \[0\] \[75\]"),
    ("negative id", [[0, -4, 6, 2]], [[1, 1, 1, 1]], r"`input_ids` must hold ids in \[0, vocab_size=60\); min and max seen:\] \[-4\] \[6\]"),
    ("mask value", [[0, 5, 6, 2]], [[1, 1, 3, 1]], r"`attention_mask` must hold only 0 and 1; min and max seen:\] \[1\] \[3\]"),
    ("mask shape", [[0, 5, 6, 2]], [[1, 1, 1, 1, 1]], r"`attention_mask` and `input_ids` must have the same shape; got\] \[1 5\] \[and\] \[1 4\]"),
    ("mask broadcastable shape", [[0, 5, 6, 2]], [[1]], r"`attention_mask` and `input_ids` must have the same shape"),
    ("too long", [[5] * 129], [[1] * 129], r"`input_ids` must have between 1 and 128 tokens.*got length\] \[129\]"),
    ("zero length", [[]], [[]], r"`input_ids` must have between 1 and 128 tokens.*got length\] \[0\]"),
]


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES])
def test_bad_input_in_tf_function(mlm_graph, case):
    _, ids, mask, pattern = case
    run = mlm_graph
    with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
        run(tf.constant(ids, tf.int32, shape=[1, len(ids[0])]), tf.constant(mask, tf.int32, shape=[1, len(mask[0])]))


def test_bad_labels_in_tf_function(one_layer):
    model = one_layer["tok"]
    run = tf.function(lambda i, y: model(i, labels=y).loss, input_signature=SIG2)
    assert np.isfinite(run(IDS, np.where(MASK == 1, 2, -100)).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels` must hold class ids in \[0, num_labels=3\) or -100"):
        run(IDS, np.full_like(IDS, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels` and `input_ids` must have the same shape"):
        run(IDS, IDS[:, :3])
    qa = one_layer["qa"]
    run_qa = tf.function(lambda i, s, e: qa(i, start_positions=s, end_positions=e).loss,
                         input_signature=SIG2[:1] + [tf.TensorSpec([None], tf.int32)] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`end_positions` must hold token positions >= 0"):
        run_qa(IDS, np.array([1, 1]), np.array([1, -3]))


def test_static_shapes_in_tf_function_fail_at_trace_time(models):
    model = models["base"]
    run = tf.function(lambda i: model(i).last_hidden_state, input_signature=[tf.TensorSpec([None, 200], tf.int32)])
    with pytest.raises(ValueError, match=r"`input_ids` has length 200, but this model takes at most 128"):
        run.get_concrete_function()
    run = tf.function(lambda i: model(i).last_hidden_state, input_signature=[tf.TensorSpec([None, 5], tf.float32)])
    with pytest.raises(TypeError, match=r"`input_ids` must hold integer ids"):
        run.get_concrete_function()
    run = tf.function(lambda i: model(i).last_hidden_state, input_signature=[tf.TensorSpec(None, tf.int32)])
    with pytest.raises(ValueError, match=r"`input_ids` has an unknown rank"):
        run.get_concrete_function()


def test_keras_predict_checks_the_ids(one_layer):
    model = one_layer["mlm"]
    model.compile(jit_compile=False)  # "auto" would pick XLA on a GPU, where the NaN guard answers instead
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`input_ids` must hold ids in \[0, vocab_size=60\)"):
        model.predict(np.array([[0, 5, 99, 2]]), verbose=0)


def test_exported_saved_model_checks_its_inputs(one_layer, tmp_path):
    """The asserts live in the exported graph: a served model refuses bad ids at any length."""
    model = one_layer["mlm"]
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda ids, mask: {"logits": model(ids, attention_mask=mask).logits},
                               input_signature=SIG2)
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    for length in (3, 17):
        ids = tf.constant(random_batch(np.random.default_rng(length), 2, length)["input_ids"], tf.int32)
        ok = served(ids=ids, mask=tf.ones_like(ids))["logits"].numpy()
        np.testing.assert_allclose(ok, model(ids, attention_mask=tf.ones_like(ids)).logits.numpy(), atol=1e-5)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`input_ids` must hold ids in \[0, vocab_size=60\)"):
            served(ids=ids + 100, mask=tf.ones_like(ids))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`attention_mask` must hold only 0 and 1"):
            served(ids=ids, mask=2 * tf.ones_like(ids))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"between 1 and 128 tokens"):
        served(ids=tf.fill([1, 129], 5), mask=tf.ones([1, 129], tf.int32))


def test_saved_model_of_the_bare_model_has_an_int_ids_signature(tmp_path):
    """`tf.saved_model.save(model, dir)` after the model has run: its default signature takes int ids of any
    shape (Keras's own would be traced with float ids of the first call's shape, which the checks refuse)."""
    model = T.TFLongformerForSequenceClassification(tiny_config(num_hidden_layers=1, attention_window=4))
    want = model(IDS).logits.numpy()
    tf.saved_model.save(model, str(tmp_path / "sm"))
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    np.testing.assert_allclose(served(input_ids=tf.constant(IDS, tf.int32))["logits"].numpy(), want, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`input_ids` must hold ids in \[0, vocab_size=60\)"):
        served(input_ids=tf.constant(IDS + 60, tf.int32))


# ----------------------------------------------------------------------------------------------- XLA
def test_what_xla_itself_does_with_asserts_and_gathers():
    """The facts the XLA guard is built on: `Assert` is compiled away, out-of-range gathers are clamped.
    If TensorFlow ever changes either, this test says so."""
    table = tf.reshape(tf.range(10, dtype=tf.float32), [10, 1])

    def lookup(ids):
        check = tf.debugging.Assert(tf.reduce_all(ids < 10), ["out of range"])
        with tf.control_dependencies([check]):  # else the gather may run (and fail) first
            return tf.gather(table, ids)[:, 0]

    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        tf.function(lookup)(tf.constant([1, 12]))
    np.testing.assert_array_equal(tf.function(lookup, jit_compile=True)(tf.constant([1, 12, -3])).numpy(), [1, 9, 0])


def test_xla_drops_asserts_so_out_of_range_rows_become_nan(one_layer):
    """XLA compiles `Assert` away and its gather clamps indices: out-of-range rows are NaN, never garbage."""
    model = one_layer["mlm"]
    run = graph_fn(model, jit_compile=True)
    good = np.array([[0, 5, 6, 7, 2]] * 3, np.int32)
    want = model(good).logits.numpy()
    cases = {
        "id >= vocab": (np.array([[0, 5, 60, 7, 2]]), np.ones((1, 5))),
        "negative id": (np.array([[0, -1, 6, 7, 2]]), np.ones((1, 5))),
        "mask value 2": (good[:1], np.array([[1, 1, 2, 1, 1]])),
        "mask value -1": (good[:1], np.array([[1, 1, -1, 1, 1]])),
    }
    for name, (bad_ids, bad_mask) in cases.items():
        ids, mask = good.copy(), np.ones_like(good)
        ids[1], mask[1] = bad_ids[0], bad_mask[0]
        out = run(ids, mask).numpy()
        assert np.isnan(out[1]).all(), name
        np.testing.assert_allclose(out[[0, 2]], want[[0, 2]], atol=1e-5, err_msg=name)
    # too long for the position table: the rows whose positions run past it
    long_ids = np.full((2, 140), 5, np.int32)
    long_mask = np.ones_like(long_ids)
    long_mask[1, 100:] = 0
    long_ids[1, 100:] = 1  # the second row's real tokens fit; only its padding runs past 128
    out = run(long_ids, long_mask).numpy()
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_xla_bad_labels_give_a_nan_loss(one_layer):
    model = one_layer["tok"]
    run = tf.function(lambda i, y: model(i, labels=y).loss, input_signature=SIG2, jit_compile=True)
    assert np.isfinite(run(IDS, np.where(MASK == 1, 2, -100)).numpy())
    assert np.isnan(run(IDS, np.where(MASK == 1, 3, -100)).numpy())
    assert np.isnan(run(IDS, np.where(MASK == 1, -5, -100)).numpy())


def test_xla_mask_of_another_shape_is_an_error_not_a_broadcast(one_layer):
    run = graph_fn(one_layer["mlm"], jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"reshape"):
        run(IDS.astype(np.int32), np.ones((2, 1), np.int32))


# --------------------------------------------------------------------------------------- odd but valid
def test_all_padding_rows_are_finite_and_attend_nowhere(models):
    model = models["base"]
    ids, mask = IDS.copy(), MASK.copy()
    ids[1], mask[1] = 1, 0
    glob = np.zeros_like(ids)
    glob[:, 0] = 1  # a padded token marked global stays padding
    out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True,
                output_hidden_states=True)
    for t in [out.last_hidden_state, out.pooler_output, *out.hidden_states]:
        assert np.isfinite(t.numpy()).all()
    for a in [*out.attentions, *out.global_attentions]:
        assert not np.abs(a.numpy()[1]).any()
    # and the padded row does not change its neighbour
    alone = model(ids[:1], attention_mask=mask[:1], global_attention_mask=glob[:1]).last_hidden_state.numpy()
    np.testing.assert_allclose(out.last_hidden_state.numpy()[:1], alone, atol=1e-5)


def test_all_padding_under_mixed_float16():
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = T.TFLongformerForMaskedLM(tiny_config())
        ids, mask = IDS.copy(), MASK.copy()
        ids[1], mask[1] = 1, 0
        out = model(ids, attention_mask=mask, global_attention_mask=np.eye(2, 5, dtype=int), output_attentions=True,
                    labels=np.full_like(ids, -100))
        assert out.logits.dtype == tf.float16
        assert np.isfinite(out.logits.numpy()).all()
        assert not np.abs(out.attentions[0].numpy()[1]).any()
        assert float(out.loss) == 0.0  # every label ignored: 0, not NaN
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert keras.config.dtype_policy().name == previous.name


def test_every_token_global_and_a_single_token_match_the_oracle(models):
    model = models["base"]
    ids = np.array([[0, 5, 6, 7, 8, 9, 10, 2]])
    out = model(ids, global_attention_mask=np.ones_like(ids)).last_hidden_state.numpy()
    np.testing.assert_allclose(out, dense_model(model, ids, global_attention_mask=np.ones_like(ids)), atol=1e-4)
    for glob in (None, np.ones((1, 1), int)):
        single = model(np.array([[0]]), global_attention_mask=glob).last_hidden_state.numpy()
        np.testing.assert_allclose(single, dense_model(model, np.array([[0]]), global_attention_mask=glob), atol=1e-4)


def test_the_longest_input_works(models):
    out = models["mlm"](np.full((1, MAX_LEN), 5)).logits
    assert out.shape == (1, MAX_LEN, VOCAB) and np.isfinite(out.numpy()).all()


def test_masks_as_bool_and_float_and_ids_of_any_int_dtype(models):
    model = models["base"]
    want = model(IDS, attention_mask=MASK).last_hidden_state.numpy()
    for ids, mask in [(IDS.astype(np.uint8), MASK.astype(bool)), (IDS.astype(np.int16), MASK.astype(np.float32)),
                      (tf.constant(IDS, tf.int64), tf.constant(MASK, tf.float16))]:
        np.testing.assert_array_equal(model(ids, attention_mask=mask).last_hidden_state.numpy(), want)


def test_odd_but_valid_labels(models):
    qa = models["qa"]
    out = qa(IDS, start_positions=np.array([1, 50]), end_positions=np.array([[2], [60]]))  # past the end: ignored
    assert np.isfinite(float(out.loss))
    mlm = models["mlm"]
    assert float(mlm(IDS, labels=np.full_like(IDS, -100)).loss) == 0.0
    seq = models["seq"]
    one = seq(IDS[:1], labels=np.array(2))  # a scalar label for a batch of one
    np.testing.assert_allclose(float(one.loss), float(seq(IDS[:1], labels=np.array([[2]])).loss))


def test_empty_batch_inside_a_graph_returns_empty_outputs(mlm_graph):
    """tf.distribute may hand a replica an empty batch; with a dynamic batch axis that is not an error."""
    run = mlm_graph
    assert run(np.zeros((0, 5), np.int32), np.zeros((0, 5), np.int32)).shape == (0, 5, VOCAB)


def test_messages_name_the_value_and_the_limit(models):
    """One full message, read as a user would."""
    with pytest.raises(ValueError) as err:
        models["mlm"](np.array([[0, 5, 60, 2], [0, 61, 2, 1]]))
    msg = re.sub(r"\s+", " ", str(err.value))
    assert ("`input_ids` must hold ids in [0, vocab_size=60); found 2 value(s) outside: 60 at [0, 2], 61 at [1, 1]. "
            "Were the ids made by a tokenizer with a different vocabulary than this model's?") in msg
