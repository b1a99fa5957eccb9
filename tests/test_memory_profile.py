"""Training memory: what a step keeps for its backward pass (`tf_longformer.apps.memory_profile`, the bench's
`--memory-profile`), and the changes it led to (GELUs that keep only their input)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_longformer.apps import bench, memory_profile
from tf_longformer.layers.utils import ACTIVATIONS

PLAIN = {
    "gelu": lambda x: 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0))),
    "gelu_new": lambda x: 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x))),
    "gelu_pytorch_tanh": lambda x: 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x))),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
}


def _trace(fn, shape, dtype=tf.float32):
    """The graph of `loss = fn(x)` and its gradient, and the loss tensor."""
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = fn(x)
        return loss, tape.gradient(loss, x)

    graph = step.get_concrete_function(tf.TensorSpec(shape, dtype)).graph
    loss = graph.outputs[0].op.inputs[0] if graph.outputs[0].op.type == "Identity" else graph.outputs[0]
    return graph, loss


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_gelus_equal_the_plain_formula_and_its_autodiff_gradient(name):
    x = tf.constant(np.linspace(-9.0, 9.0, 4001))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, plain = ACTIVATIONS[name](x), PLAIN[name](x)
    np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(plain, x).numpy(), rtol=1e-12,
                               atol=1e-13)
    x32 = tf.cast(x, tf.float32)
    with tf.GradientTape() as tape:  # the same in float32 (the second derivative exists too)
        tape.watch(x32)
        with tf.GradientTape() as inner:
            inner.watch(x32)
            y = ACTIVATIONS[name](x32)
        g = inner.gradient(y, x32)
    assert np.all(np.isfinite(tape.gradient(g, x32).numpy()))


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "gelu_fast"])
def test_a_gelu_keeps_only_its_input_for_the_backward_pass(name):
    """Written as plain ops, autodiff kept four tensors of the input's size; now only the input itself."""
    def loss(x):
        h = x * 2.0 + 1.0  # x is a placeholder: give the GELU an input the forward pass computes
        return tf.reduce_sum(ACTIVATIONS[name](h))  # a sum's gradient keeps nothing

    graph, loss_tensor = _trace(loss, [5, 7])
    kept = memory_profile.kept_tensors(graph, loss_tensor)
    big = [name for name, shape, _, _ in kept if shape == (5, 7)]
    assert len(big) == 1 and "add" in big[0], kept

    graph, loss_tensor = _trace(lambda x: tf.reduce_sum(PLAIN[name](x * 2.0 + 1.0)), [5, 7])
    plain = [n for n, shape, _, _ in memory_profile.kept_tensors(graph, loss_tensor) if shape == (5, 7)]
    assert len(plain) >= 3, plain  # what the custom gradient saves


def test_kept_tensors_counts_views_once_and_sizes_them():
    w = tf.Variable(tf.ones([6, 4]))

    def loss(x):
        h = tf.matmul(x, w)  # kept: x (for w's gradient; a placeholder is not counted), h's relu output
        r = tf.nn.relu(h)
        v = tf.reshape(r, [-1])  # a view of r
        return tf.reduce_sum(tf.reshape(v, [3, 8]) * tf.reshape(v, [3, 8]))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = loss(x)
        return out, tape.gradient(out, [x, w])

    graph = step.get_concrete_function(tf.TensorSpec([6, 6])).graph
    loss_tensor = graph.outputs[0].op.inputs[0]
    kept = memory_profile.kept_tensors(graph, loss_tensor)
    names = sorted(n.split("/")[-1] for n, _, _, _ in kept)
    sizes = {n.split("/")[-1]: b for n, _, _, b in kept}
    assert any(n.startswith("Relu") for n in names), names
    assert not any(n.startswith("Reshape") for n in names), names  # views resolved to their source
    assert sizes[[n for n in names if n.startswith("Relu")][0]] == 6 * 4 * 4
    summary = memory_profile.summarize(kept, tokens=6)
    assert summary["total_bytes"] == sum(b for _, _, _, b in kept if b)
    assert "total kept" in memory_profile.format_profile(summary)


def test_component_names():
    assert memory_profile.component_of("m/longformer_1/encoder_1/layer_11_1/attention_1/Reshape_2") == (
        "layer 11", "attention")
    assert memory_profile.component_of("m/longformer/encoder/layer_0/add_1") == ("layer 0", "residuals, dropout")
    assert memory_profile.component_of("m/longformer/embeddings/layer_norm/mul") == ("-", "embeddings")
    assert memory_profile.component_of("m/encoder/layer_3_1/dropout_12_1/mul") == ("layer 3", "dropout")


def test_bench_mlm_labels_and_fraction_check():
    ids = np.arange(2 * 400).reshape(2, 400).astype(np.int32) + 5
    labels = bench.mlm_labels(ids, 0.15, seed=0)
    share = (labels != -100).mean()
    assert 0.1 < share < 0.2 and np.all((labels == ids) | (labels == -100))
    assert np.all(labels[:, 1] == ids[:, 1])  # at least one label per row
    assert np.all(bench.mlm_labels(ids, 1.0, 0) == ids)
    with pytest.raises(ValueError, match="mlm_fraction"):
        bench.mlm_labels(ids, 0.0, 0)
    with pytest.raises(ValueError, match="mlm_fraction"):
        bench.run_benchmark(lengths=[8], modes=["train"], impls=["ours"], mlm_fraction=1.5, measure_matmul=False)
    full = bench.ideal_flops(bench.BASE_CONFIG, 4096, "train")
    part = bench.ideal_flops(bench.BASE_CONFIG, 4096, "train", mlm_fraction=0.15)
    head = 3 * 2 * 4096 * 768 * bench.BASE_CONFIG["vocab_size"]
    assert math.isclose(full - part, 0.85 * head, rel_tol=1e-9)


def test_live_at_peak_lists_what_is_live_when_allocations_peak():
    """`live_at_peak` on allocator events: the peak, the op at it, what was allocated before the step, and the
    buffers live then (freed ones gone, later ones not yet there), pooled by component and by op."""
    mib = 2**20
    events = [
        ("MemoryAllocation", {"addr": 1, "allocation_bytes": 4 * mib, "bytes_allocated": 104 * mib,
                              "tf_op": "m/encoder/layer_0/attention/MatMul"}),
        ("MemoryAllocation", {"addr": 2, "allocation_bytes": 8 * mib, "bytes_allocated": 112 * mib,
                              "tf_op": "m/encoder/layer_1/intermediate_dense/BiasAdd"}),
        ("MemoryAllocation", {"addr": 3, "allocation_bytes": 2 * mib, "bytes_allocated": 114 * mib,
                              "tf_op": "m/encoder/layer_1/attention/MatMul"}),
        ("MemoryDeallocation", {"addr": 1, "allocation_bytes": 4 * mib, "bytes_allocated": 110 * mib}),
        ("MemoryAllocation", {"addr": 4, "allocation_bytes": 3 * mib, "bytes_allocated": 113 * mib,
                              "tf_op": "gradient_tape/m/lm_head/einsum/Einsum"}),
    ]
    s = memory_profile.live_at_peak(events)
    assert (s["peak_bytes"], s["before_bytes"], s["live_bytes"]) == (114 * mib, 100 * mib, 14 * mib)
    assert s["peak_op"] == "m/encoder/layer_1/attention/MatMul"
    comps = {r["name"]: (r["bytes"], r["buffers"]) for r in s["components"]}
    assert comps == {"encoder layer: attention": (6 * mib, 2), "encoder layer: intermediate_dense": (8 * mib, 1)}
    ops = {r["name"]: r["bytes"] for r in s["ops"]}
    assert ops["m/encoder/layer_<i>/attention/MatMul"] == 6 * mib
    assert "lm_head" not in str(s["components"])  # allocated after the peak
    with pytest.raises(ValueError, match="TF_CPU_ALLOCATOR_USE_BFC=true"):
        memory_profile.live_at_peak([])
    assert "peak of live tensors 0.11 GiB" in memory_profile.format_timeline(s)


def test_timeline_of_a_training_step_under_the_bfc_allocator(tmp_path):
    """`memory_profile.timeline` in a process started with `TIMELINE_ENV` (the bench's `--memory-timeline`): a
    tiny model's training step peaks above what was allocated before it, and the live buffers are the layers'."""
    import json
    import os
    import subprocess
    import sys

    from helpers import package_parent

    script = tmp_path / "timeline.py"
    script.write_text(
        "import json, numpy as np, tensorflow as tf, keras, tf_longformer as T\n"
        "from tf_longformer.apps import memory_profile\n"
        "cfg = T.LongformerConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,\n"
        "    intermediate_size=64, max_position_embeddings=260, attention_window=8, type_vocab_size=1)\n"
        "model = T.TFLongformerModel(cfg)\n"
        "ids = tf.constant(np.random.default_rng(0).integers(3, 60, size=(2, 128)), tf.int32)\n"
        "opt = keras.optimizers.Adam(1e-3)\n"
        "@tf.function\n"
        "def step():\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_sum(model(ids, training=True).last_hidden_state ** 2)\n"
        "    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))\n"
        "    return loss\n"
        "step()\n"
        "print('RESULT' + json.dumps(memory_profile.timeline(step)))\n")
    env = {**os.environ, **memory_profile.TIMELINE_ENV, "PYTHONPATH": package_parent(),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stdout[-2000:] + out.stderr[-2000:]
    s = json.loads(line[0][len("RESULT"):])
    assert s["peak_bytes"] > s["before_bytes"] > 0
    assert 0 < s["live_bytes"] <= s["peak_bytes"] - s["before_bytes"] + 2**20
    assert any(r["name"].startswith("encoder layer: ") for r in s["components"]), s["components"]
