"""Training: compile defaults, fit/evaluate/predict in every input style, graph and XLA, mixed precision,
gradient checkpointing, `.keras` round trips, Keras callbacks.

One `fit` and the `.keras` round trip with the optimizer state, for every head: `harness.py` (test_tasks.py).

Graph tracing of a training step costs seconds, so most semantic checks run with `run_eagerly=True` and a
few tests cover graph mode and XLA on purpose.
"""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import random_batch, tiny_config
from tf_longformer import training

HEADS = [
    T.TFLongformerForSequenceClassification,
    T.TFLongformerForTokenClassification,
    T.TFLongformerForMaskedLM,
    T.TFLongformerForQuestionAnswering,
    T.TFLongformerForMultipleChoice,
]


def small_config(**overrides):
    """One layer: graph tracing and XLA compiling cost seconds per layer."""
    return tiny_config(**{"num_hidden_layers": 1, "attention_window": 4, **overrides})


def inputs_and_labels(cls, rng, batch=4, length=20):
    """Inputs (with padding and global tokens) and the head's labels, as the reference names them."""
    x = random_batch(rng, batch, length, n_global=(0, 3))
    if cls is T.TFLongformerForSequenceClassification:
        return x, {"labels": rng.integers(0, 3, batch)}
    if cls is T.TFLongformerForQuestionAnswering:
        # One answer outside the sequence (ignored, as the reference does).
        return x, {"start_positions": np.array([1, 4, 2, length + 5])[:batch],
                   "end_positions": np.array([3, 6, 9, 7])[:batch]}
    if cls is T.TFLongformerForMultipleChoice:
        x = {k: np.stack([v, v[::-1]], 1) for k, v in x.items()}
        return x, {"labels": rng.integers(0, 2, batch)}
    vocab = 60 if cls is T.TFLongformerForMaskedLM else 3
    labels = rng.integers(0, vocab, (batch, length))
    labels[:, :3] = -100
    labels[x["attention_mask"] == 0] = -100
    return x, {"labels": labels}


def as_y(labels):
    return labels["labels"] if "labels" in labels else (labels["start_positions"], labels["end_positions"])


def same_weights(a, b, atol=0.0):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(wa, wb)) <= atol


def twin(cls, config, **kwargs):
    """Two models of `cls` with the same weights."""
    a = cls(config, **kwargs)
    a.build()
    b = cls(config, **kwargs)
    b.build()
    b.set_weights(a.get_weights())
    return a, b


# ------------------------------------------------------------------------------------------ compile defaults
@pytest.mark.parametrize("optimizer", ["auto", "adam"])
def test_the_first_fit_traces_the_training_step_once(optimizer, rng):
    """The model and optimizer are built before the training step is traced (`make_train_function`): variables
    created inside the first trace (the optimizer's slots) would make tf.function trace the step again. Counted
    as Python calls of `train_step` (made only while tracing): one for two `fit`s on batches of one shape."""
    model = T.TFLongformerForSequenceClassification(small_config())
    model.compile(optimizer=optimizer)
    calls = []
    train_step = model.train_step
    model.train_step = lambda data: (calls.append(1), train_step(data))[1]
    x = {"input_ids": rng.integers(3, 60, (4, 12)).astype("int32"), "labels": rng.integers(0, 3, 4)}
    for _ in range(2):
        history = model.fit(x, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert len(calls) == 1 and model.optimizer.built and int(model.optimizer.iterations) == 4


def test_compile_defaults():
    model = T.TFLongformerForTokenClassification(tiny_config())
    model.compile()
    opt = model.optimizer
    assert isinstance(opt, training.LongformerAdamW)
    assert float(opt.learning_rate) == pytest.approx(3e-5) and opt.weight_decay == pytest.approx(0.01)
    assert opt.global_clipnorm == pytest.approx(1.0)
    model.build()
    decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
    assert not any(p.endswith(("/bias", "/gamma", "/beta")) for p in decayed)
    assert any(p.endswith("/kernel") for p in decayed)
    assert isinstance(model._compile_loss._user_loss, training.SparseCrossentropy)
    assert model.jit_compile is False  # opt-in until XLA stops recompiling the training step per batch
    # Explicit arguments still win.
    model.compile(optimizer="sgd", loss="mse", metrics=[])
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model._compile_loss._user_loss == "mse"
    # The bare model has no loss of its own.
    base = T.TFLongformerModel(tiny_config())
    base.compile()
    assert base._compile_loss is None


# ------------------------------------------------------------------------------------ labels in x and as y
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_labels_inside_inputs_or_as_y_give_the_models_own_loss(cls, rng):
    keras.utils.set_random_seed(0)
    x, labels = inputs_and_labels(cls, rng)
    a, b = twin(cls, small_config())
    c = cls(small_config())
    c.build()
    c.set_weights(a.get_weights())
    own = float(a({**x, **labels}).loss)

    a.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)  # default loss, labels inside x
    b.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)  # default loss, labels as y
    c.compile(optimizer=keras.optimizers.SGD(0.5), loss=None, run_eagerly=True)  # the model's own `loss`
    ev_a = a.evaluate({**x, **labels}, verbose=0, return_dict=True, batch_size=4)
    ev_b = b.evaluate(x, as_y(labels), verbose=0, return_dict=True, batch_size=4)
    ev_c = c.evaluate({**x, **labels}, verbose=0, return_dict=True, batch_size=4)
    assert ev_a["loss"] == pytest.approx(own, abs=1e-6)
    assert ev_b["loss"] == pytest.approx(own, abs=1e-6)
    assert ev_c["loss"] == pytest.approx(own, abs=1e-6)
    assert {k: v for k, v in ev_a.items()} == pytest.approx(ev_b, abs=1e-6)
    accuracy = [k for k in ev_a if k.endswith("accuracy")]
    assert accuracy and all(0.0 <= ev_a[k] <= 1.0 for k in accuracy)

    # Two steps of each style from the same weights end at the same (changed) weights.
    start = a.get_weights()
    for model, args in ((a, ({**x, **labels},)), (b, (x, as_y(labels))), (c, ({**x, **labels},))):
        model.fit(*args, epochs=1, batch_size=2, shuffle=False, verbose=0)
    assert same_weights(a, b, atol=1e-6) and same_weights(a, c, atol=1e-6)
    assert max(float(np.abs(w - s).max()) for w, s in zip(a.get_weights(), start)) > 1e-5


def test_question_answering_y_forms_and_out_of_range_positions(rng):
    cls = T.TFLongformerForQuestionAnswering
    x, labels = inputs_and_labels(cls, rng)
    model = cls(small_config())
    model.compile(run_eagerly=True)
    own = float(model({**x, **labels}).loss)
    forms = [
        (labels["start_positions"], labels["end_positions"]),
        [labels["start_positions"], labels["end_positions"]],
        {"start_positions": labels["start_positions"], "end_positions": labels["end_positions"]},
    ]
    for y in forms:
        result = model.evaluate(x, y, verbose=0, return_dict=True)
        assert result["loss"] == pytest.approx(own, abs=1e-6)
        assert result["loss"] == pytest.approx(
            (result["start_positions_loss"] + result["end_positions_loss"]) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="end_positions"):
        model.evaluate({**x, "start_positions": labels["start_positions"]}, verbose=0)


def test_sample_weights_and_ignored_labels(rng):
    # Token labels: -100 is ignored; a sample weight of 0 removes an example.
    cls = T.TFLongformerForTokenClassification
    x, labels = inputs_and_labels(cls, rng)
    model = cls(small_config())
    model.compile(weighted_metrics=[training.TaskAccuracy(name="weighted_accuracy")], run_eagerly=True)
    y = labels["labels"]
    weighted = model.evaluate(x, y, sample_weight=np.array([1.0, 1.0, 0.0, 0.0]), verbose=0, return_dict=True)
    first_two = model.evaluate({k: v[:2] for k, v in x.items()}, y[:2], verbose=0, return_dict=True)
    unweighted = model.evaluate(x, y, verbose=0, return_dict=True)
    # As with every Keras loss, the weighted terms are divided by the number of terms (here: counted tokens),
    # whatever their weights. Keras gives sample weights to `weighted_metrics` only.
    counted = (y != -100).sum(axis=1)
    assert weighted["loss"] == pytest.approx(first_two["loss"] * counted[:2].sum() / counted.sum(), abs=1e-6)
    assert weighted["weighted_accuracy"] == pytest.approx(first_two["accuracy"], abs=1e-6)
    assert weighted["accuracy"] == pytest.approx(unweighted["accuracy"], abs=1e-6)
    # The reference's loss, by hand: mean cross-entropy over the counted tokens.
    logits = model(x).logits.numpy().astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    counted = y != -100
    want = -np.mean(np.take_along_axis(logp, np.where(counted, y, 0)[..., None], -1)[..., 0][counted])
    assert unweighted["loss"] == pytest.approx(want, abs=1e-5)


def test_errors_name_the_problem(rng):
    cls = T.TFLongformerForSequenceClassification
    x, labels = inputs_and_labels(cls, rng)
    model = cls(tiny_config())
    model.compile(run_eagerly=True)
    with pytest.raises(ValueError, match="nothing to train on"):
        model.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="given twice"):
        model.fit({**x, **labels}, labels["labels"], epochs=1, verbose=0)
    model.compile(loss=None, run_eagerly=True)
    with pytest.raises(ValueError, match="loss=None"):
        model.fit(x, labels["labels"], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        cls(tiny_config(gradient_checkpointing="yes"))


def test_sequence_classification_problem_types(rng):
    x = random_batch(rng, 4, 12)
    for config, y in (
        (tiny_config(num_labels=1), rng.normal(size=4).astype(np.float32)),                      # regression
        (tiny_config(num_labels=3), (rng.random((4, 3)) > 0.5).astype(np.float32)),               # multi-label
        (tiny_config(num_labels=3, problem_type="single_label_classification"), np.array([0, 2, 1, -100])),
    ):
        model = T.TFLongformerForSequenceClassification(config)
        model.compile(run_eagerly=True)
        own = float(model({**x, "labels": y}).loss)
        assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(own, abs=1e-6)


# ------------------------------------------------------------------------------------------- graph and XLA
def varying_batches(rng, cls=T.TFLongformerForTokenClassification):
    """Batches of different lengths with no global token, one, and many (more than the bucket of 4 its callers set)."""
    out = []
    for length, n_global in ((12, (0, 0)), (20, (1, 1)), (40, (18, 24))):
        x, labels = inputs_and_labels(cls, rng, batch=2, length=length)
        x["global_attention_mask"] = random_batch(rng, 2, length, n_global=n_global)["global_attention_mask"]
        out.append({**x, **labels})
    return out


def as_dataset(batches):
    spec = {k: tf.TensorSpec([None] * v.ndim, tf.int64) for k, v in batches[0].items()}
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)


def count_calls(model, name):
    counter = {"n": 0}
    original = getattr(model, name)

    def counted(*args, **kwargs):
        counter["n"] += 1  # runs once per trace in graph mode
        return original(*args, **kwargs)

    setattr(model, name, counted)
    return counter


def test_fit_eager_graph_and_xla_agree_on_mixed_global_batches(rng):
    """One fit over batches of different lengths with no global token, one, and many; one trace serves all.
    XLA trains on the same batches right-padded to the longest: the same weights (padding changes nothing), from
    one compiled step instead of one per length (each XLA compile of the step takes seconds)."""
    config = small_config(global_buckets=[4])  # the three paths: none, the bucket of 4, the full length
    batches = varying_batches(rng)
    longest = max(b["input_ids"].shape[1] for b in batches)
    fill = {"input_ids": config.pad_token_id, "labels": -100}  # masks: 0
    padded = [{k: np.pad(v, ((0, 0), (0, longest - v.shape[1])), constant_values=fill.get(k, 0))
               for k, v in b.items()} for b in batches]
    first = T.TFLongformerForTokenClassification(config)
    first.build()
    start = first.get_weights()
    models, traces = {}, {}
    for mode in ("eager", "graph", "xla"):
        model = T.TFLongformerForTokenClassification(config)
        model.build()
        model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(1.0), run_eagerly=mode == "eager", jit_compile=mode == "xla")
        traces[mode] = count_calls(model, "train_step")
        history = model.fit(as_dataset(padded if mode == "xla" else batches), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        models[mode] = model
    assert same_weights(models["graph"], models["eager"], atol=1e-5)
    assert same_weights(models["xla"], models["eager"], atol=1e-5)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(models["eager"].get_weights(), start))
    assert moved > 1e-2  # training really changed the weights

    # Keras traces a second time when the first trace creates variables (optimizer slots); after that the
    # traced step serves new lengths, batch sizes and global counts without retracing.
    assert traces["graph"]["n"] <= 2 and traces["xla"]["n"] <= 2
    before = traces["graph"]["n"]
    models["graph"].fit(as_dataset(varying_batches(rng)[::-1]), epochs=1, verbose=0)
    assert traces["graph"]["n"] == before, "a new set of lengths retraced the training step"


def test_one_trace_serves_every_length_and_xla_matches_eager(rng):
    model = T.TFLongformerForTokenClassification(small_config(global_buckets=[4]))  # none, bucket, full length
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_ids", "attention_mask", "global_attention_mask")}
    graph = tf.function(lambda x: model(x).logits, input_signature=[spec])
    xla = tf.function(lambda x: model(x).logits, input_signature=[spec], jit_compile=True)
    for length, n_global in ((5, (0, 0)), (17, (1, 1)), (40, (17, 30))):
        x = random_batch(rng, 3, length, n_global=n_global)
        x = {k: tf.constant(v, tf.int32) for k, v in x.items()}
        eager = model(x).logits.numpy()
        np.testing.assert_allclose(graph(x).numpy(), eager, atol=1e-5)
        if length > 5:  # XLA compiles once per shape: two shapes (one global token; many) keep the test short
            np.testing.assert_allclose(xla(x).numpy(), eager, atol=1e-5)
    assert graph.experimental_get_tracing_count() == 1
    assert xla.experimental_get_tracing_count() == 1


def test_predict_on_variable_length_batches_matches_eager(rng):
    model = T.TFLongformerForTokenClassification(small_config())
    rows = []
    for length in (7, 19, 12, 30, 5):
        b = random_batch(rng, 1, length, pad_rows=False, n_global=(0, 2))
        rows.append({k: v[0] for k, v in b.items()})
    spec = {k: tf.TensorSpec([None], tf.int64) for k in rows[0]}
    pads = {"input_ids": np.int64(1), "attention_mask": np.int64(0), "global_attention_mask": np.int64(0)}
    ds = tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec).padded_batch(2, padding_values=pads)
    traces = count_calls(model, "predict_step")
    logits = model.predict(ds, verbose=0)["logits"]
    assert isinstance(logits, tf.RaggedTensor) and logits.shape[0] == len(rows)
    for i, row in enumerate(rows):
        want = model({k: v[None] for k, v in row.items()}).logits.numpy()[0]
        got = logits[i].numpy()[: len(want)]  # each row is padded to its batch's length
        np.testing.assert_allclose(got, want, atol=1e-5)
    first = traces["n"]
    model.predict(ds.unbatch().padded_batch(3, padding_values=pads), verbose=0)
    assert traces["n"] == first  # new lengths and batch sizes: no new trace


# --------------------------------------------------------------------------------------- long-range task
class LossPerStep(keras.callbacks.Callback):
    """The loss of each step (Keras logs a running mean over the epoch)."""

    def on_train_begin(self, logs=None):
        self.losses, self._total = [], 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append(mean * (batch + 1) - self._total)
        self._total = mean * (batch + 1)


def test_loss_falls_on_a_task_only_global_attention_can_solve():
    """The label is one token 24 positions from `<s>`, far beyond its local reach (2 tokens: one layer,
    window 4); every other token is the same in every example. With global attention on `<s>` (the
    classification default) the model learns it. The same trained model without global attention sees the
    same context at `<s>` in every example: identical logits, so a loss of at least the labels' entropy, ln 2."""
    rng = np.random.default_rng(0)
    length, n = 32, 16
    ids = np.tile(rng.integers(7, 60, length), (n, 1))
    ids[:, 0], ids[:, -1] = 0, 2
    y = np.array([0, 1] * (n // 2))
    ids[:, 24] = 5 + y
    keras.utils.set_random_seed(0)
    model = T.TFLongformerForSequenceClassification(small_config(num_labels=2))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    steps = 30  # one epoch of 30 steps over the same 16 examples (Keras' per-epoch overhead is larger)
    history = LossPerStep()
    model.fit({"input_ids": np.tile(ids, (steps, 1)), "labels": np.tile(y, steps)}, epochs=1, batch_size=n,
              shuffle=False, verbose=0, callbacks=[history])
    loss = history.losses
    assert loss[0] > 0.6 and loss[-1] < 0.05
    local_only = model({"input_ids": ids, "global_attention_mask": np.zeros_like(ids)}).logits.numpy()
    np.testing.assert_allclose(local_only, np.broadcast_to(local_only[:1], local_only.shape), atol=1e-5)
    without = model.evaluate({"input_ids": ids, "global_attention_mask": np.zeros_like(ids)}, y, verbose=0,
                             return_dict=True)
    assert without["loss"] > np.log(2) - 1e-4


# ---------------------------------------------------------------------------------------- mixed precision
# Measured on random tiny models (logits up to ~0.24): float16 within 2.3e-4 of float32, bfloat16 within 1.3e-3.
@pytest.mark.parametrize("policy, atol", [("mixed_float16", 1e-3), ("mixed_bfloat16", 5e-3)])
def test_mixed_precision_infers_and_trains(policy, atol, rng):
    config = small_config()
    full = T.TFLongformerForTokenClassification(config)
    full.build()
    half = T.TFLongformerForTokenClassification(config, dtype=policy)
    half.build()
    half.set_weights(full.get_weights())
    x, labels = inputs_and_labels(T.TFLongformerForTokenClassification, rng, batch=4, length=40)
    x["attention_mask"][3] = 0  # a fully padded row
    x["global_attention_mask"][1, :20] = 1  # many global tokens in one row
    want = full(x, output_hidden_states=True)
    got = half(x, output_hidden_states=True)
    assert got.logits.dtype == (tf.float16 if policy == "mixed_float16" else tf.bfloat16)
    for key in ("logits",):
        a, b = want[key].numpy(), tf.cast(got[key], tf.float32).numpy()
        assert np.isfinite(b).all()
        np.testing.assert_allclose(b, a, atol=atol)
    assert all(np.isfinite(tf.cast(h, tf.float32).numpy()).all() for h in got.hidden_states)
    assert all(v.dtype == "float32" for v in half.trainable_variables)

    # float16 trains in graph mode (the path that used to break); bfloat16 eagerly, to keep the test short.
    half.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=policy == "mixed_bfloat16")
    if policy == "mixed_float16":
        assert isinstance(half.optimizer, keras.optimizers.LossScaleOptimizer)
    history = half.fit({**x, **labels}, epochs=3, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and history.history["loss"][-1] < history.history["loss"][0]
    assert all(np.isfinite(w).all() for w in half.get_weights())
    assert np.isfinite(tf.cast(half(x).logits, tf.float32).numpy()).all()


# ------------------------------------------------------------------------------------ gradient checkpointing
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_gradient_checkpointing_gives_the_same_gradients_and_dropout_masks(mode, rng):
    x, labels = inputs_and_labels(T.TFLongformerForTokenClassification, rng, length=30)

    def gradients(checkpointing):
        make = tiny_config if mode == "eager" else small_config
        config = make(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3, gradient_checkpointing=checkpointing)
        keras.utils.set_random_seed(3)
        model = T.TFLongformerForTokenClassification(config)
        model.build()
        assert model.encoder.gradient_checkpointing is checkpointing

        def step(inputs):
            with tf.GradientTape() as tape:
                loss = model(inputs, training=True).loss
            return loss, tape.gradient(loss, model.trainable_variables)

        fn = step if mode == "eager" else tf.function(step)
        loss, grads = fn({**x, **labels})
        states = [s.numpy() for s in training.seed_states(model)]
        return float(loss), [tf.convert_to_tensor(g).numpy() for g in grads], states

    loss0, g0, s0 = gradients(False)
    loss1, g1, s1 = gradients(True)
    assert loss0 == loss1
    assert len(s0) >= 4 and all((a == b).all() for a, b in zip(s0, s1))  # same random state afterwards
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert sum(float(np.abs(a).sum()) for a in g0) > 0


def test_gradient_checkpointing_switch_and_config_round_trip():
    model = T.TFLongformerForSequenceClassification(tiny_config())
    assert not model.encoder.gradient_checkpointing
    model.gradient_checkpointing_enable()
    assert model.encoder.gradient_checkpointing and model.config.gradient_checkpointing
    again = T.TFLongformerForSequenceClassification.from_config(model.get_config())
    assert again.encoder.gradient_checkpointing
    layer = T.LongformerEncoderLayer(num_heads=2, intermediate_size=8, attention_window=4, gradient_checkpointing=True)
    assert T.LongformerEncoderLayer.from_config(layer.get_config()).gradient_checkpointing
    model.gradient_checkpointing_disable()
    assert not model.encoder.gradient_checkpointing


# ------------------------------------------------------------------------------------------ saving
# The models' own `.keras` round trip with the optimizer state, and their config round trip: harness.py, for
# every head (test_tasks.py). The layers' here.
LAYERS = [
    (T.LongformerSelfAttention, {"num_heads": 2, "head_dim": 4, "attention_window": 6, "dropout": 0.1}),
    (T.LongformerEncoderLayer, {"num_heads": 2, "intermediate_size": 8, "attention_window": 4,
                                "gradient_checkpointing": True}),
    (T.LongformerEncoder, {"num_layers": 2, "num_heads": 2, "intermediate_size": 8, "attention_window": [4, 6]}),
    (T.LongformerEmbeddings, {"vocab_size": 30, "hidden_size": 8, "max_position_embeddings": 20}),
    (T.LongformerPooler, {"hidden_size": 8}),
    (T.LongformerLMHead, {"vocab_size": 30, "hidden_size": 8}),
    (T.LongformerClassificationHead, {"hidden_size": 8, "num_labels": 3}),
]


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_layer_config_round_trip(cls, kwargs):
    layer = cls(**kwargs, name="x")
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == config


# --------------------------------------------------------------------------------------- Keras callbacks
def test_progress_bar_and_tensorboard(rng, tmp_path, capsys):
    cls = T.TFLongformerForSequenceClassification
    x, labels = inputs_and_labels(cls, rng)
    model = cls(tiny_config())
    model.compile(run_eagerly=True)
    logs = str(tmp_path / "logs")
    history = model.fit({**x, **labels}, epochs=2, batch_size=2, verbose=1,
                        callbacks=[keras.callbacks.TensorBoard(log_dir=logs, update_freq="epoch")])
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "2/2" in out and "loss:" in out and "accuracy:" in out
    files = glob.glob(os.path.join(logs, "train", "events.out.tfevents.*"))
    assert files
    logged = {}
    for record in tf.data.TFRecordDataset(files):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
            logged.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    np.testing.assert_allclose(logged["epoch_loss"], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(logged["epoch_accuracy"], history.history["accuracy"], rtol=1e-6)
