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


# ------------------------------------------------------- no activation-sized constants (issue 13)
def _large_constants(function, args, config):
    """Bytes of the `Const` nodes over 64 KiB in Grappler's optimized graph of `function(*args)` under `config`."""
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = function.get_concrete_function(*args).graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend([t.name for t in graph.outputs])
    meta.collection_def["train_op"].CopyFrom(fetch)
    optimized = tf_optimizer.OptimizeGraph(config, meta)
    nodes = list(optimized.node) + [n for f in optimized.library.function for n in f.node_def]
    total = 0
    for node in nodes:
        if node.op == "Const":
            t = node.attr["value"].tensor
            size = int(np.prod([d.size for d in t.tensor_shape.dim])) * tf.dtypes.as_dtype(t.dtype).size
            total += size if size > 2**16 else 0
    return total


def test_a_static_training_step_keeps_no_activation_sized_constants(grappler):
    """A training step traced at a static length (blocked band, a global token) is optimized by Grappler with
    constant folding on: zeros of a static shape become constants, kept for the life of the step. The sum of
    three or more gradients of one tensor is such a source (Grappler's memory optimizer gives it an accumulator
    with a zeros initializer): with the global paths as a chain of `tf.cond`, a layer's `q`, `k`, `v`, band output
    and input each had three (1.13 GB of constants at 4096 tokens, base size). With ONE `tf.switch_case`
    (`_bucketed`) what is left is the untaken branches' zero gradients, shared by the layers: here under two
    activation-sized tensors for the whole model, and no sum of three activation-sized gradients (the chain had
    five per layer)."""
    from tensorflow.python.eager import context

    model = T.TFLongformerForSequenceClassification(tiny_config(
        hidden_size=64, num_attention_heads=4, intermediate_size=96, attention_window=[16, 16],
        max_position_embeddings=1030, global_buckets=[4]))  # 1024 tokens: the blocked band
    ids = np.full((1, 1024), 7, np.int32)
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    args = (tf.constant(ids), tf.constant(glob))
    model(args[0][:, :32], global_attention_mask=args[1][:, :32])
    variables = model.trainable_variables

    @tf.function
    def step(ids, glob):
        with tf.GradientTape() as tape:
            loss = model(ids, global_attention_mask=glob, labels=tf.constant([1]), training=True).loss
        grads = tape.gradient(loss, variables)
        return loss, tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

    activation = 1024 * 64 * 4  # bytes of one (1, 1024, 64) float32 tensor
    found = _large_constants(step, args, context.context().config)
    assert found <= 2 * activation, found / activation
    # The source itself, in the graph as traced: no sum of three or more activation-sized gradients (this small
    # graph stays under the memory optimizer's threshold, so the constants above do not show it).
    graph = step.get_concrete_function(*args).graph
    sums = [op.name for op in graph.get_operations() if op.type in ("AddN", "AccumulateNV2") and len(op.inputs) > 2
            and op.outputs[0].shape.is_fully_defined() and op.outputs[0].shape.num_elements() >= 1024 * 16]
    assert not sums, [(n, [i.op.name for i in graph.get_operation_by_name(n).inputs], graph.get_operation_by_name(n).outputs[0].shape) for n in sums]
