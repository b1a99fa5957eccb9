"""The bfloat16 SavedModel export (`dtype="bfloat16"`, `tf-longformer export --dtype bfloat16`): it computes in
bfloat16, and clients see exactly what the float32 export gives them: the same signatures, the same output names
and shapes, float32 outputs, and logits within a stated tolerance with the same top-1 class.

One tiny perturbed sequence classifier (the export harness's) is exported twice, once per dtype, every signature.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tf_longformer as T
from tf_longformer import serving

from export_harness import TOKENIZER_DIR, make_inputs, make_model

TASK = "sequence_classification"
# The tiny model's logits reach about 0.8; bfloat16 (8 bits of mantissa) moved them by at most 6.5e-3 over this
# batch (16 rows, 41 tokens), while the smallest gap between a row's best two classes is 8.6e-2.
BF16_ATOL = 2e-2
# A bfloat16 graph cannot match float32 closer than this: a smaller difference means it ran in float32.
MIN_BF16_DIFF = 1e-4


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("bf16")
    model = make_model(TASK, seed=11)
    fp32 = model.export(str(root / "fp32"), verbose=False)
    bf16 = model.export(str(root / "bf16"), dtype="bfloat16", verbose=False)
    return {"model": model, "float32": fp32, "bfloat16": bf16,
            "loaded": {"float32": tf.saved_model.load(fp32), "bfloat16": tf.saved_model.load(bf16)}}


def _batch():
    """16 rows of 41 tokens: some right-padded, every row with one or two global tokens."""
    x = make_inputs(TASK, np.random.default_rng(7), 16, 41, (1, 2))
    assert (x["attention_mask"] == 0).any() and (x["global_attention_mask"].sum(-1) >= 1).all()
    return x


def _metadata(path):
    with open(os.path.join(path, serving.EXTRA_DIR, serving.METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_same_signatures_output_names_shapes_and_float32(exports):
    fp32, bf16 = exports["loaded"]["float32"], exports["loaded"]["bfloat16"]
    assert sorted(bf16.signatures) == sorted(fp32.signatures)
    assert {"serving_default", "auto_global", "probabilities", "attentions", "hidden_states"} <= set(bf16.signatures)
    for name in fp32.signatures:
        want = fp32.signatures[name].structured_outputs
        got = bf16.signatures[name].structured_outputs
        assert sorted(got) == sorted(want), name
        for key, spec in got.items():
            assert spec.dtype == want[key].dtype, (name, key, spec.dtype)
            assert spec.dtype == tf.float32 or spec.dtype.is_integer, (name, key, spec.dtype)  # class ids: int
            assert spec.shape.as_list() == want[key].shape.as_list(), (name, key)
        assert bf16.signatures[name].structured_input_signature == fp32.signatures[name].structured_input_signature


def _assert_same_top1(got, want):
    """The same top-1 class wherever the fp32 logits decide it: a row whose two best logits are closer than twice
    the bf16 error bound may flip within that bound (a random tiny model has such near-ties; the latest leg hit
    one: 1 of 16 rows), so only the decided rows are compared (at least one must be)."""
    top2 = np.sort(want, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > 2 * BF16_ATOL
    # the logits' closeness (checked by the caller) is the numerical test; this one needs a decided row to check
    assert decided.any(), f"none of {decided.size} rows has a clear top-1 class"
    np.testing.assert_array_equal(got.argmax(-1)[decided], want.argmax(-1)[decided])


@pytest.mark.parametrize("signature", ["serving_default", "auto_global", "probabilities", "serving_default_int64"])
def test_logits_within_tolerance_and_same_top1(exports, signature):
    x = _batch()
    if signature == "auto_global":
        x.pop("global_attention_mask")
    if signature.endswith("_int64"):
        x = {k: v.astype(np.int64) for k, v in x.items()}
    out = {dtype: exports["loaded"][dtype].signatures[signature](**x) for dtype in ("float32", "bfloat16")}
    assert all(v.dtype == tf.float32 for v in out["bfloat16"].values() if v.dtype.is_floating)
    want, got = out["float32"]["logits"].numpy(), out["bfloat16"]["logits"].numpy()
    diff = np.max(np.abs(got - want))
    assert MIN_BF16_DIFF < diff <= BF16_ATOL, diff
    _assert_same_top1(got, want)
    if signature == "probabilities":
        np.testing.assert_allclose(out["bfloat16"]["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


def test_the_float32_export_still_matches_keras(exports):
    x = _batch()
    got = exports["loaded"]["float32"].signatures["serving_default"](**x)["logits"].numpy()
    want = exports["model"](**x).logits.numpy()
    assert np.max(np.abs(got - want)) <= 1e-5
    assert exports["model"].dtype_policy.name == "float32"  # the bf16 export worked on a copy


def test_the_graph_computes_in_bfloat16(exports):
    def matmul_dtypes(path):
        fn = exports["loaded"][path].signatures["serving_default"]
        graph = fn.graph.as_graph_def()
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        return {tf.dtypes.as_dtype(n.attr["T"].type).name for n in nodes
                if n.op in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum") and "T" in n.attr}

    assert "bfloat16" in matmul_dtypes("bfloat16")
    assert matmul_dtypes("float32") == {"float32"}


def test_metadata_records_the_dtype(exports):
    assert {k: _metadata(exports["float32"])[k] for k in ("dtype", "dtype_policy")} == \
        {"dtype": "float32", "dtype_policy": "float32"}
    assert {k: _metadata(exports["bfloat16"])[k] for k in ("dtype", "dtype_policy")} == \
        {"dtype": "bfloat16", "dtype_policy": "mixed_bfloat16"}


def test_model_in_dtype_copies_the_weights():
    model = make_model(TASK, seed=3, num_hidden_layers=1, attention_window=[6])
    assert serving.model_in_dtype(model, "float32") is model
    half = serving.model_in_dtype(model, "mixed_bfloat16")
    assert half is not model and half.dtype_policy.name == "mixed_bfloat16"
    assert [w.path for w in half.weights] == [w.path for w in model.weights]
    for a, b in zip(half.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a.numpy(), np.float32), np.asarray(b.numpy(), np.float32))
    assert serving.model_in_dtype(half, "bfloat16") is half
    back = serving.model_in_dtype(half, "float32")
    assert back.dtype_policy.name == "float32" and back.compute_dtype == "float32"


@pytest.mark.parametrize("given, canonical", [(None, None), ("float32", "float32"), ("bfloat16", "bfloat16"),
                                              ("mixed_bfloat16", "bfloat16"), (tf.bfloat16, "bfloat16")])
def test_export_dtype_names(given, canonical):
    assert serving.export_dtype(given) == canonical


@pytest.mark.parametrize("bad", ["float16", "mixed_float16", "bf16", "int8", 16])
def test_bad_dtype_is_refused_before_any_work(tmp_path, bad):
    model = make_model(TASK, seed=3, num_hidden_layers=1, attention_window=[6])
    with pytest.raises(ValueError, match=r"`dtype` must be one of \['float32', 'bfloat16'\].*got " + repr(bad)):
        model.export(str(tmp_path / "out"), dtype=bad)
    assert not (tmp_path / "out").exists()


def test_dtype_with_keras_own_export_is_refused(tmp_path):
    model = make_model(TASK, seed=3, num_hidden_layers=1, attention_window=[6])
    spec = [tf.TensorSpec([None, None], tf.int32, name="input_ids")]
    with pytest.raises(ValueError, match="`dtype` applies to our serving SavedModel"):
        model.export(str(tmp_path / "out"), input_signature=spec, dtype="bfloat16")
    assert not (tmp_path / "out").exists()


def test_onnx_refuses_bfloat16(tmp_path):
    model = make_model(TASK, seed=3, num_hidden_layers=1, attention_window=[6])
    with pytest.raises(ValueError, match="float32 only, got dtype='bfloat16'.*no bfloat16 arithmetic"):
        model.export(str(tmp_path / "m.onnx"), format="onnx", dtype="bfloat16")
    assert not os.listdir(tmp_path)


def test_export_command_dtype(tmp_path, capsys):
    from tf_longformer.cli import main

    model = make_model(TASK, seed=5, num_hidden_layers=1, attention_window=[6])
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    T.LongformerTokenizerFast.from_pretrained(TOKENIZER_DIR).save_pretrained(ckpt)
    base = tmp_path / "served"
    args = ["export", "--model", str(ckpt), "--output", str(base), "--signatures", "serving_default", "--no-int64"]
    assert main(args + ["--dtype", "bfloat16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dtype"] == "bfloat16" and report["version"] == 1
    assert _metadata(str(base / "1"))["dtype_policy"] == "mixed_bfloat16"
    x = _batch()
    got = tf.saved_model.load(str(base / "1")).signatures["serving_default"](**x)["logits"]
    assert got.dtype == tf.float32
    want = model(**x).logits.numpy()
    assert MIN_BF16_DIFF < np.max(np.abs(got.numpy() - want)) <= BF16_ATOL
    _assert_same_top1(got.numpy(), want)

    assert main(args) == 0  # the default stays float32
    assert json.loads(capsys.readouterr().out)["dtype"] == "float32"
    assert _metadata(str(base / "2"))["dtype"] == "float32"

    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--dtype", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--format onnx takes only --dtype float32, got --dtype bfloat16"):
        main(["export", "--model", str(ckpt), "--output", str(tmp_path / "onnx"), "--format", "onnx",
              "--dtype", "bfloat16"])
    assert not (tmp_path / "onnx").exists() and sorted(os.listdir(base)) == ["1", "2"]
