"""`tf-longformer bench --op-profile`: where a step's time goes, read from TensorFlow's profiler trace."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from tf_longformer import LongformerConfig, TFLongformerForMaskedLM, TFLongformerModel
from tf_longformer.apps import bench, op_profile


def test_op_kinds():
    kind = op_profile.kind_of
    for op in ("MatMul", "BatchMatMulV2", "_MklBatchMatMulV2", "_MklMatMul", "_FusedMatMul", "_MklEinsum"):
        assert kind(op) == "matrix products", op
    assert kind("Cast") == "casts"
    for op in ("AddV2", "Mul", "SelectV2", "Erf", "Tanh", "BiasAdd"):
        assert kind(op) == "element-wise", op
    for op in ("Exp", "Max", "Sum", "Mean", "Log"):
        assert kind(op).startswith("reductions"), op
    for op in ("_MklTranspose", "Pad", "Slice", "GatherV2", "ConcatV2", "UnsortedSegmentSum"):
        assert kind(op).startswith("layout"), op
    for op in ("Enter", "Merge", "TensorListGetItem", "TensorListSetItem", "LoopCond"):
        assert kind(op).startswith("loop control"), op
    assert kind("StatelessRandomUniformV2").startswith("random")
    assert kind("SomethingNew") == "other"
    assert set(map(kind, ["MatMul", "Cast", "Exp", "Pad", "Merge", "StatelessRandomUniformV2", "Xyz"])) <= set(
        op_profile.KINDS)


def test_op_components():
    comp = op_profile.op_component
    assert comp("m_1/longformer_1/encoder_1/layer_3_1/attention_1/band_backward/map/while/body/_5/Exp") == \
        "encoder layer: attention"
    assert comp("m_1/longformer_1/encoder_1/layer_0_1/intermediate_dense_1/Tensordot/MatMul") == \
        "encoder layer: intermediate_dense"
    assert comp("adam/Sub_18") == "optimizer update"
    assert comp("m_1/lm_head_1/dense_1/MatMul") == "lm_head"
    assert comp("map/while/body/_365/map/while/Exp") == "loops outside any layer's name scope"
    assert comp("AddN_22").startswith("outside the layers")


def test_summarize_shares_and_refuses_an_empty_trace():
    events = [("a/layer_0/attention/x", "MatMul", 3.0), ("a/layer_0/attention/y", "Exp", 1.0),
              ("adam/z", "Mul", 1.0), ("a/layer_1/attention/x", "MatMul", 1.0)]
    s = op_profile.summarize(events, calls=2, wall_s=4.0)
    assert s["op_s_per_call"] == pytest.approx(3.0) and s["wall_s_per_call"] == pytest.approx(2.0)
    kinds = {r["name"]: r for r in s["kinds"]}
    assert kinds["matrix products"]["share"] == pytest.approx(4 / 6)
    assert kinds["matrix products"]["seconds_per_call"] == pytest.approx(2.0)
    assert sum(r["share"] for r in s["kinds"]) == pytest.approx(1.0)
    comps = {r["name"]: r["share"] for r in s["components"]}
    assert comps == pytest.approx({"encoder layer: attention": 5 / 6, "optimizer update": 1 / 6})
    top = s["op_types"][0]
    assert (top["name"], top["ops_per_call"], top["kind"]) == ("MatMul", 1.0, "matrix products")
    with pytest.raises(ValueError, match="no TensorFlow op events"):
        op_profile.summarize([], calls=1, wall_s=1.0)
    text = op_profile.format_op_profile(s, "title")
    assert "matrix products" in text and "66.7%" in text and "optimizer update" in text


def _tiny(cls, length):
    keras.utils.set_random_seed(0)
    cfg = LongformerConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, attention_window=16, max_position_embeddings=length + 2)
    model = cls(cfg)
    ids = tf.constant(np.random.default_rng(0).integers(5, 300, (1, length)), tf.int32)
    model(ids[:, :16])
    return model, ids


def test_a_profiled_forward_counts_its_matmuls_per_layer():
    model, ids = _tiny(TFLongformerModel, 64)
    step = tf.function(lambda: model(ids)["last_hidden_state"])
    step()
    s = op_profile.profile_step(step, calls=2)
    assert s["calls"] == 2 and s["op_s_per_call"] > 0 and s["ops_per_call"] > 10
    kinds = {r["name"]: r for r in s["kinds"]}
    assert kinds["matrix products"]["share"] > 0
    assert sum(r["share"] for r in s["kinds"]) == pytest.approx(1.0)
    comps = {r["name"] for r in s["components"]}
    assert {"encoder layer: attention", "encoder layer: intermediate_dense"} <= comps
    types = {r["name"] for r in s["op_types"]}
    assert any("MatMul" in t or "Einsum" in t for t in types)


def test_a_profiled_training_step_puts_the_band_backward_loop_under_attention():
    """The blocked band's backward loop is built by the tape outside the layer's name scope; it re-enters it, so
    its time is the attention's, not an anonymous loop's."""
    length = 1024  # past dense_max_length: the blocked band and its custom-gradient loop
    model, ids = _tiny(TFLongformerForMaskedLM, length)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(ids, labels=ids, training=True)["loss"])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step()
    s = op_profile.profile_step(step, calls=1)
    comps = {r["name"]: r["share"] for r in s["components"]}
    assert "loops outside any layer's name scope" not in comps, comps
    assert comps["encoder layer: attention"] > 0.2
    assert "optimizer update" in comps


def test_bench_op_profile_end_to_end(tmp_path):
    report = bench.run_benchmark(
        lengths=[64], modes=["forward"], impls=["ours"], repeats=1, warmup=0, measure_matmul=False,
        config=dict(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, attention_window=16),
        out_dir=str(tmp_path), op_profile=True, op_profile_calls=1, log=lambda *_: None)
    raw = report["raw"][0]
    assert raw["ok"] and raw["op_profile"]["calls"] == 1
    md = (tmp_path / "bench.md").read_text()
    assert "Where the time goes: ours, forward, 64 tokens" in md and "matrix products" in md
    with pytest.raises(ValueError, match="op_profile_calls"):
        bench.run_benchmark(lengths=[64], impls=["ours"], op_profile=True, op_profile_calls=0)
