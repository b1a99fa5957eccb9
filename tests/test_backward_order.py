"""The backward pass's work waits for the backward pass.

TensorFlow's executor runs an op as soon as its inputs exist. A custom gradient that recomputes something from
forward tensors (the feed-forward's activation, the GELU's derivative, the LayerNorm's normalised input, the band's
key and value blocks and its backward loop, the global tokens' recomputed paths) would, without an order, run
that part during the FORWARD pass and hold its results until the backward pass reaches the layer: at 4096 tokens,
base size, 1.5 GiB of the masked-LM step's peak of live tensors (5.8 -> 4.3 GiB, TensorFlow's allocator
timeline). `layers.utils.after_gradient` orders them after the incoming gradient; this checks every
activation-sized tensor the gradient computes has the incoming gradient among its ancestors, in the traced
training step of a model with global tokens, dropout and every gradient path of the attention.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from helpers import tiny_config_dict
from tf_longformer.layers.utils import after_gradient


def _ancestors(op, seen):
    stack = [op]
    while stack:
        o = stack.pop()
        for parent in [t.op for t in o.inputs] + list(o.control_inputs):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _early_backward_ops(build, dy_shape, min_elements):
    """Ops the gradient adds whose output has at least `min_elements` elements and that do not depend on the
    incoming gradient `dy` (a function input): `[(op name, op type, shape)]`."""
    found = {}

    @tf.function
    def step(scale):
        with tf.GradientTape() as tape:
            y, watched = build()
        graph = tf.compat.v1.get_default_graph()
        before = set(graph.get_operations())
        dy = tf.ones(dy_shape) * scale
        grads = tape.gradient(y, watched, output_gradients=dy)
        found["new"] = [op for op in graph.get_operations() if op not in before]
        found["dy"] = dy.op
        return [g for g in grads if g is not None]

    step.get_concrete_function(tf.TensorSpec([], tf.float32))
    early = []
    dy_inputs = _ancestors(found["dy"], set())
    for op in found["new"]:
        if op is found["dy"] or op in dy_inputs or op.type in ("Const", "Shape", "ShapeN", "Size", "Rank",
                                                                 "Identity", "IdentityN"):  # views
            continue
        if not op._control_outputs and not any(t.consumers() for t in op.outputs):
            continue  # read by nothing: pruned from the function, never run
        big = [tuple(t.shape) for t in op.outputs
               if t.shape.is_fully_defined() and t.shape.num_elements() >= min_elements]
        if big and found["dy"] not in _ancestors(op, set()):
            early.append((op.name, op.type, big[0]))
    return early


@pytest.mark.parametrize("checkpointing", [False, True])
def test_no_activation_sized_gradient_work_runs_before_the_incoming_gradient(checkpointing):
    cfg = T.LongformerConfig(**tiny_config_dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                                                attention_window=[8, 8], max_position_embeddings=260,
                                                gradient_checkpointing=checkpointing))
    model = T.TFLongformerModel(cfg)
    rng = np.random.default_rng(0)
    length = 64
    ids = tf.constant(rng.integers(3, cfg.vocab_size, size=(2, length)), tf.int32)
    glob = tf.constant(np.eye(2, length, dtype=np.int32) + np.eye(2, length, k=length - 2, dtype=np.int32))
    model(ids[:, :8], global_attention_mask=glob[:, :8])

    def build():
        out = model(ids, global_attention_mask=glob, training=True).last_hidden_state
        return out, model.trainable_variables

    # one (length, hidden) activation per row: anything that large the backward pass makes must wait for `dy`
    early = _early_backward_ops(build, (2, length, cfg.hidden_size), length * cfg.hidden_size)
    assert not early, early[:10]


def test_after_gradient_orders_and_forwards():
    """`after_gradient`: the same values; in a graph, identities with a control input on every gradient given
    (Nones skipped); eager, or no gradient at all, returns the tensors themselves."""
    x, y = tf.constant([1.0, 2.0]), tf.constant(3.0)
    assert after_gradient(tf.constant(0.0), x, y) == (x, y)

    @tf.function
    def f(g1, g2):
        a, b = after_gradient([g1, None, g2], x * 2, y + 1)
        assert a.op.type == "Identity" and {g1.op, g2.op} <= set(a.op.control_inputs), a.op.control_inputs
        assert after_gradient(None, a) == (a,)
        return a, b

    a, b = f(tf.constant(0.0), tf.constant(1.0))
    np.testing.assert_array_equal(a.numpy(), [2.0, 4.0])
    assert float(b) == 4.0
