"""Grappler, TensorFlow's graph optimizer, is off in most test modules to save time (conftest.py,
`GRAPPLER_MODULES`). Users run with it on: here the optimized graph of a model's forward pass and gradients, on
every attention path (the dense band at a static length, the blocked band at an unknown length; no global token,
global rows folded and unfolded, the full-length fallback), gives the unoptimized graph's numbers."""

import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from conftest import random_batch, tiny_config


def _step(model, shape):
    """A forward and gradient step traced for `shape`: a static length takes the dense band, `None` the blocked one."""
    spec = {k: tf.TensorSpec(shape, tf.int32) for k in ("input_ids", "attention_mask", "global_attention_mask")}
    spec["labels"] = tf.TensorSpec(shape[:1], tf.int32)

    @tf.function(input_signature=[spec])
    def step(batch):
        with tf.GradientTape() as tape:
            out = model(batch, training=False)
        return out.logits, out.loss, tape.gradient(out.loss, model.trainable_variables)

    return step


def test_the_optimized_graph_equals_the_unoptimized_one(grappler):
    assert grappler  # this module runs with Grappler on (conftest.GRAPPLER_MODULES)
    rng = np.random.default_rng(11)
    model = T.TFLongformerForSequenceClassification(tiny_config(global_buckets=[2, 8]))
    batches = []
    for n_global in (0, 1, 5, 20):  # none; folded (bucket 2); unfolded (bucket 8); beyond the buckets
        x = random_batch(rng, 3, 37, n_global=(n_global, n_global))
        x["labels"] = rng.integers(0, 3, 3)
        batches.append({k: tf.constant(v, tf.int32) for k, v in x.items()})
    model(batches[0])
    results = {}
    try:
        for on in (True, False):
            tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})
            assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) is (not on)
            # Fresh functions: the options apply when a function is first instantiated.
            results[on] = [step(b) for step in (_step(model, [3, 37]), _step(model, [None, None])) for b in batches]
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    for i, ((logits_a, loss_a, grads_a), (logits_b, loss_b, grads_b)) in enumerate(zip(results[True], results[False])):
        np.testing.assert_allclose(logits_a.numpy(), logits_b.numpy(), atol=1e-6, rtol=1e-5, err_msg=str(i))
        assert float(loss_a) == pytest.approx(float(loss_b), abs=1e-6)
        for v, a, b in zip(model.trainable_variables, grads_a, grads_b):
            np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(),
                                       atol=1e-6, rtol=1e-5, err_msg=f"{i} {v.path}")
