"""Masked-LM training computes vocabulary logits at the labelled positions only (`TFLongformerForMaskedLM.
labelled_logits`), with the loss, every gradient and the metrics of the full computation.

Checked: the shortcut's loss and gradients against the full `(batch, length, vocab)` logits (per-token weights
too); one `fit` epoch with and without the shortcut, eagerly, in graph mode and under XLA (same losses, metrics and
weights); that the shortcut is really taken (the LM head sees the labelled positions only) and is not taken for a
loss it cannot serve; the XLA slot bound (`max_predictions_per_seq`) and its NaN on overflow; direct calls unchanged.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import random_batch, tiny_config
from tf_longformer import training

VOCAB = 60


def small_model(**overrides):
    config = tiny_config(**{"num_hidden_layers": 1, "attention_window": 4, "hidden_dropout_prob": 0.0,
                            "attention_probs_dropout_prob": 0.0, **overrides})
    keras.utils.set_random_seed(3)
    model = T.TFLongformerForMaskedLM(config)
    model.build()
    return model


def mlm_batch(rng, batch=4, length=24, rate=0.15):
    """A batch with padding and global tokens, and labels on about `rate` of the real tokens (-100 elsewhere);
    row 1 has no label at all."""
    x = random_batch(rng, batch, length, vocab=VOCAB, n_global=(0, 2))
    labels = np.full_like(x["input_ids"], -100)
    for b in range(batch):
        real = np.flatnonzero(x["attention_mask"][b])
        if b == 1:
            continue
        pick = rng.choice(real, size=max(1, int(round(rate * len(real)))), replace=False)
        labels[b, pick] = rng.integers(5, VOCAB, size=len(pick))
    return x, labels


def test_labelled_logits_loss_and_gradients_equal_the_full_computation():
    rng = np.random.default_rng(0)
    model = small_model()
    x, labels = mlm_batch(rng, batch=3, length=30)
    token_weights = rng.uniform(0.5, 2.0, size=labels.shape).astype(np.float32)
    loss_fn = training.SparseCrossentropy()
    for weights in (None, token_weights, np.array([1.0, 2.0, 0.5], np.float32)):
        with tf.GradientTape(persistent=True) as tape:
            h = model.backbone(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                               global_attention_mask=x["global_attention_mask"])["last_hidden_state"]
            full = loss_fn(labels, model.token_logits(h), sample_weight=weights)
            slot_labels, slot_logits, slot_weights = model.labelled_logits(labels, h, weights)
            short = loss_fn(slot_labels, slot_logits, sample_weight=slot_weights)
        # The batch's largest count of labels, not the length.
        assert slot_logits.shape[1] == int((labels != -100).sum(axis=1).max()) < labels.shape[1]
        np.testing.assert_allclose(short.numpy(), full.numpy(), rtol=1e-6)
        g_full = tape.gradient(full, model.trainable_variables)
        g_short = tape.gradient(short, model.trainable_variables)
        for v, a, b in zip(model.trainable_variables, g_full, g_short):
            assert (a is None) == (b is None), v.path
            if a is None:
                continue
            a = tf.convert_to_tensor(a).numpy()
            b = tf.convert_to_tensor(b).numpy()
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=v.path)


def _fit_once(shortcut, rng_seed=1, jit_compile=False, run_eagerly=False, config=None, **fit_kwargs):
    rng = np.random.default_rng(rng_seed)
    model = small_model(**(config or {}))
    model.logits_at_labels_only = shortcut
    seen = []
    token_logits = model.token_logits

    def recording(hidden):
        seen.append(hidden.shape[1])
        return token_logits(hidden)

    model.token_logits = recording
    x, labels = mlm_batch(rng, batch=4, length=24)
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile, run_eagerly=run_eagerly)
    history = model.fit(x, labels, batch_size=2, epochs=2, shuffle=False, verbose=0, **fit_kwargs)
    evaluated = model.evaluate(x, labels, batch_size=4, verbose=0, return_dict=True)
    return history.history, evaluated, [v.numpy() for v in model.trainable_variables], seen, labels


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_fit_with_the_shortcut_equals_fit_without(mode):
    kw = {"run_eagerly": mode == "eager", "jit_compile": mode == "xla"}
    h_short, e_short, w_short, seen_short, labels = _fit_once(True, **kw)
    h_full, e_full, w_full, seen_full, _ = _fit_once(False, **kw)
    for key in h_full:
        np.testing.assert_allclose(h_short[key], h_full[key], rtol=2e-5, err_msg=key)
    for key in e_full:
        np.testing.assert_allclose(e_short[key], e_full[key], rtol=2e-5, err_msg=key)
    for a, b in zip(w_short, w_full):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert all(s == 24 for s in seen_full)
    if mode == "eager":  # the head saw each batch's largest number of labels, never the length
        per_batch = [int((labels[i:i + 2] != -100).sum(axis=1).max()) for i in (0, 2)]
        assert seen_short[:2] == per_batch, (seen_short, per_batch)
    elif mode == "xla":  # static slots: the length, without `max_predictions_per_seq`
        assert all(s in (None, 24) for s in seen_short)


def test_xla_with_max_predictions_per_seq_is_exact_and_uses_that_many_slots():
    h_short, e_short, w_short, seen, labels = _fit_once(True, jit_compile=True,
                                                        config={"max_predictions_per_seq": 6})
    h_full, e_full, w_full, _, _ = _fit_once(False, jit_compile=True)
    assert int((labels != -100).sum(axis=1).max()) <= 6
    for key in h_full:
        np.testing.assert_allclose(h_short[key], h_full[key], rtol=2e-5, err_msg=key)
    for a, b in zip(w_short, w_full):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert all(s in (None, 6) for s in seen), seen


def test_xla_overflow_of_max_predictions_per_seq_gives_nan_not_a_dropped_label():
    rng = np.random.default_rng(1)
    model = small_model(max_predictions_per_seq=2)
    x, labels = mlm_batch(rng, batch=4, length=24, rate=0.3)
    assert (labels != -100).sum(axis=1).max() > 2
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    result = model.evaluate(x, labels, batch_size=4, verbose=0, return_dict=True)
    assert np.isnan(result["loss"])


def test_a_loss_the_shortcut_cannot_serve_gets_the_full_logits():
    rng = np.random.default_rng(2)
    model = small_model()
    seen = []
    token_logits = model.token_logits
    model.token_logits = lambda h: (seen.append(h.shape[1]), token_logits(h))[1]
    x, labels = mlm_batch(rng, batch=2, length=16)
    labels = np.where(labels == -100, 7, labels)  # a loss that counts every position
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[], run_eagerly=True)
    model.fit(x, labels, epochs=1, verbose=0)
    assert seen == [16]


def test_own_loss_training_takes_the_shortcut_with_the_same_loss():
    rng = np.random.default_rng(4)
    x, labels = mlm_batch(rng, batch=2, length=20)
    results, seen = [], []
    for shortcut in (True, False):
        model = small_model()
        model.logits_at_labels_only = shortcut
        token_logits = model.token_logits
        model.token_logits = lambda h, f=token_logits: (seen.append((shortcut, h.shape[1])), f(h))[1]
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=None, run_eagerly=True)
        hist = model.fit({**x, "labels": labels}, epochs=2, verbose=0, shuffle=False)
        results.append(hist.history["loss"])
    np.testing.assert_allclose(results[0], results[1], rtol=2e-5)
    most = int((labels != -100).sum(axis=1).max())
    assert {s for t, s in seen if t} == {most} and {s for t, s in seen if not t} == {20}, seen


def test_direct_calls_still_return_every_positions_logits():
    rng = np.random.default_rng(5)
    model = small_model()
    x, labels = mlm_batch(rng, batch=2, length=20)
    out = model(x, labels=labels, training=True)
    assert out.logits.shape == (2, 20, model.config.vocab_size)
    expected = training.SparseCrossentropy()(labels, out.logits)
    np.testing.assert_allclose(out.loss.numpy(), expected.numpy(), rtol=1e-6)


def test_max_predictions_per_seq_is_validated_and_saved():
    with pytest.raises(ValueError, match="max_predictions_per_seq"):
        tiny_config(max_predictions_per_seq=0)
    c = tiny_config(max_predictions_per_seq=64)
    assert T.LongformerConfig.from_dict(c.to_dict()).max_predictions_per_seq == 64
    assert "max_predictions_per_seq" not in tiny_config().to_dict()
