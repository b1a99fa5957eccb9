"""The ONNX export (`model.export(path, format="onnx")`, `tf-longformer export --format onnx`), run in ONNX Runtime
in a fresh process where TensorFlow and Keras cannot be imported (onnx_runner.py), against the Keras model.

Every head is exported once (the bare model through the command line), to its two files; each file's cases run in
ONE subprocess. The cases: lengths 1, just under and just over a window multiple (23, 25: the padding to 24), and
two far ones (97, 128 = the tiny models' limit); batch 1 and 3; rows with 0, 1 and more than 16 global tokens in
one batch (the Keras models have the global bucket 16, so the batch crosses it); padded rows (random_batch pads
every other row); the automatic global rule (the `.auto_global.onnx` file). One head runs the blocked band's
loop in chunks of 6 queries (several loop steps, the last one overlapping). Bad input (too long, ids outside the
vocabulary, masks not 0/1) must be refused by ONNX Runtime with the check's name and the value seen; a Keras model
one weight away must fail the comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="the onnx extra (pip install '.[onnx]') is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra (pip install '.[onnx]') is not installed")
import onnx  # noqa: E402

from conftest import random_batch  # noqa: E402
from export_harness import SMALL, VOCAB, make_model  # noqa: E402

from tf_longformer import onnx_export, serving  # noqa: E402
from tf_longformer.layers.attention import LongformerSelfAttention  # noqa: E402

HEADS = serving.TASKS
TOL = 1e-4
BUCKETS = [16]
TWO_LAYERS = ("question_answering",)  # windows 4 and 6: padding to 6; the others one layer (window 6: to 3)
SMALL_CHUNKS = "token_classification"  # its band loop runs 6 queries a step
RUNNER = os.path.join(os.path.dirname(__file__), "onnx_runner.py")
# name: (batch, length, global tokens per row)
CASES = {
    "L1_B1": (1, 1, [0]),
    "L1_B3": (3, 1, [0, 1, 0]),
    "L23_B3": (3, 23, [0, 1, 3]),
    "L25_B1": (1, 25, [1]),
    "L24_B3": (3, 24, [2, 0, 0]),
    "L41_B3_bucket": (3, 41, [0, 1, 20]),
    "L97_B3": (3, 97, [17, 0, 1]),
    "L128_B1": (1, 128, [20]),
}


def make_case(task, rng, batch, length, counts):
    """int32 inputs with `</s></s>` pairs (the QA / multiple-choice rules), every other row padded, and exactly
    `counts[b]` global tokens among the real tokens of batch row `b` (each choice's row, for multiple choice)."""
    per = 2 if task == "multiple_choice" else 1
    x = random_batch(rng, batch * per, length, vocab=VOCAB, n_global=(0, 0), sep_pattern=True)
    for r in range(batch * per):
        real = int(x["attention_mask"][r].sum())
        k = min(counts[r // per], real)
        x["global_attention_mask"][r, rng.choice(real, size=k, replace=False)] = 1
    x = {k: v.astype(np.int32) for k, v in x.items()}
    return {k: v.reshape(batch, per, length) for k, v in x.items()} if per == 2 else x


def keras_outputs(model, task, x, auto):
    kwargs = {} if auto else {"global_attention_mask": x["global_attention_mask"]}
    out = model(x["input_ids"], attention_mask=x["attention_mask"], **kwargs)
    return {k: np.asarray(out[k]) for k in serving.HEAD_OUTPUTS[task]}


def run_in_onnxruntime(model_path, cases, directory):
    """Every case through `model_path` in one fresh process without TensorFlow: `({case: outputs}, metadata)`."""
    cases_path = os.path.join(directory, os.path.basename(model_path) + ".cases.npz")
    out_path = os.path.join(directory, os.path.basename(model_path) + ".out.npz")
    np.savez(cases_path, **{f"{c}::{k}": v for c, x in cases.items() for k, v in x.items()})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the package on the path
    done = subprocess.run([sys.executable, RUNNER, model_path, cases_path, out_path], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(out_path)
    result = {}
    for key in got.files:
        if "::" in key:
            case, name = key.split("::")
            result.setdefault(case, {})[name] = got[key]
    return result, json.loads(str(got["__metadata__"])), json.loads(str(got["__inputs__"]))


def max_error(got, want):
    assert set(got) == set(want), f"outputs {sorted(got)} != {sorted(want)}"
    errors = {}
    for k in want:
        assert got[k].shape == want[k].shape, f"{k}: shape {got[k].shape} != Keras {want[k].shape}"
        assert got[k].dtype == np.float32, f"{k}: {got[k].dtype}"
        errors[k] = float(np.max(np.abs(got[k].astype(np.float64) - want[k]))) if want[k].size else 0.0
    return errors


def _cli_export(model, root):
    """The bare model through `tf-longformer export --format onnx` (a checkpoint, then the command)."""
    from tf_longformer.cli import main

    ckpt = os.path.join(root, "ckpt")
    model.save_pretrained(ckpt)
    assert main(["export", "--model", ckpt, "--format", "onnx", "--output", os.path.join(root, "served"),
                 "--no-tokenizer"]) == 0
    return onnx_export.paths_for(os.path.join(root, "served", "1", "model.onnx"))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """`{task: {"model", "paths", "cases", "dir"}}`, each head exported on first use."""
    return {"root": tmp_path_factory.mktemp("onnx")}


def exported(exports, task, capsys):
    if task not in exports:
        model = make_model(task, seed=HEADS.index(task), global_buckets=BUCKETS,
                           **({} if task in TWO_LAYERS else SMALL))
        if task == SMALL_CHUNKS:
            for layer in model._flatten_layers():
                if isinstance(layer, LongformerSelfAttention):
                    layer.chunk_queries = 6
        directory = os.path.join(exports["root"], task)
        os.makedirs(directory)
        if task == "base":
            paths = _cli_export(model, directory)
            report = json.loads(capsys.readouterr().out)
            assert report["format"] == "onnx" and report["version"] == 1 and report["opset"] == onnx_export.OPSET
        else:
            paths = model.export(os.path.join(directory, "model.onnx"), format="onnx")
        rng = np.random.default_rng(100 + HEADS.index(task))
        cases = {name: make_case(task, rng, *spec) for name, spec in CASES.items()}
        exports[task] = {"task": task, "model": model, "paths": paths, "cases": cases, "dir": directory, "ort": {}}
    return exports[task]


@pytest.fixture(params=HEADS)
def export(request, exports, capsys):
    return exported(exports, request.param, capsys)


def _ort(export, key):
    if key not in export["ort"]:
        cases = export["cases"]
        if key == "auto_global":
            cases = {c: {k: v for k, v in x.items() if k != "global_attention_mask"} for c, x in cases.items()}
        export["ort"][key] = run_in_onnxruntime(export["paths"][key], cases, export["dir"])
    return export["ort"][key]


@pytest.mark.filterwarnings("ignore:Rows .* have no separator token")  # length 1: the rule has nothing to find
@pytest.mark.parametrize("key", ["with_global", "auto_global"])
def test_onnx_runtime_matches_keras(export, key):
    task, model = export["task"], export["model"]
    got, meta, inputs = _ort(export, key)
    assert inputs == list(serving.INPUT_NAMES if key == "with_global" else serving.INPUT_NAMES[:2])
    assert meta["task"] == task and meta["signature"] == ("serving_default" if key == "with_global" else "auto_global")
    assert sorted(got) == sorted(CASES)
    failures = []
    for case, x in export["cases"].items():
        errors = max_error(got[case], keras_outputs(model, task, x, auto=key == "auto_global"))
        failures += [f"{case} {name}: {err:.3g}" for name, err in errors.items() if not err <= TOL]
    assert not failures, f"{task} {key}: ONNX Runtime differs from Keras by more than {TOL}: {failures}"


def test_onnx_files_are_standard_dynamic_and_described(export):
    """Standard ops only, named dynamic axes, float32 outputs, the versions in metadata_props and in the JSON."""
    task, paths = export["task"], export["paths"]
    meta = json.loads(open(paths["metadata"], encoding="utf-8").read())
    assert meta["task"] == task and meta["opset"] == onnx_export.OPSET and meta["files"] == {
        "with_global": os.path.basename(paths["with_global"]), "auto_global": os.path.basename(paths["auto_global"])}
    import tf2onnx

    assert meta["tf2onnx"] == tf2onnx.__version__ and meta["onnx"] == onnx.__version__
    assert meta["outputs"] == list(serving.HEAD_OUTPUTS[task])
    axes = ["batch", "choices", "length"] if task == "multiple_choice" else ["batch", "length"]
    for key in ("with_global", "auto_global"):
        proto = onnx.load(paths[key])
        onnx_export.check_standard_ops(proto, onnx_export.OPSET)
        assert [o.domain for o in proto.opset_import] == [""] and proto.opset_import[0].version == onnx_export.OPSET
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["tf2onnx"] == tf2onnx.__version__ and props["opset"] == str(onnx_export.OPSET)
        for value in proto.graph.input:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.INT32
            assert [d.dim_param for d in value.type.tensor_type.shape.dim] == axes
        for value in proto.graph.output:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        ops = {n.op_type for n in proto.graph.node}
        assert "If" not in ops and "Loop" in ops  # one global path; the blocked band's chunk loop


def test_the_comparison_fails_for_a_perturbed_model(exports, capsys):
    """The check can fail: ONNX Runtime's outputs against a Keras model whose global query kernel moved by 1e-2
    (1e-3 moves these logits by about 8e-5 only, under the tolerance)."""
    export_ = exported(exports, "question_answering", capsys)
    got, _, _ = _ort(export_, "with_global")
    model = export_["model"]
    x = export_["cases"]["L41_B3_bucket"]
    variable = next(v for v in model.weights if "query_global" in v.path and "kernel" in v.path)
    old = variable.numpy()
    try:
        variable.assign(old + 1e-2)
        errors = max_error(got["L41_B3_bucket"], keras_outputs(model, "question_answering", x, auto=False))
    finally:
        variable.assign(old)
    assert max(errors.values()) > TOL, errors


def test_onnx_export_arguments_are_checked(tmp_path):
    model = make_model("sequence_classification", seed=3, **SMALL)
    with pytest.raises(ValueError, match=r"\*\.onnx"):
        model.export(tmp_path / "model", format="onnx")
    with pytest.raises(ValueError, match="`opset` must be an integer from 13 to .*got 9"):
        model.export(tmp_path / "m.onnx", format="onnx", opset=9)
    with pytest.raises(ValueError, match="`auto_global` must be True or False, got 'no'"):
        model.export(tmp_path / "m.onnx", format="onnx", auto_global="no")
    with pytest.raises(ValueError, match="no `input_signature`"):
        model.export(tmp_path / "m.onnx", format="onnx", input_signature=[])
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(FileExistsError, match="m.json"):
        model.export(tmp_path / "m.onnx", format="onnx", overwrite=False)
    assert sorted(os.listdir(tmp_path)) == ["m.json"]


def test_onnx_command_refuses_saved_model_options(tmp_path):
    from tf_longformer.cli import main

    for extra in (["--warmup"], ["--top-k", "3"], ["--signatures", "auto_global"], ["--no-int64"]):
        with pytest.raises(SystemExit, match=f"{extra[0]} only apply to --format tf_saved_model"):
            main(["export", "--model", str(tmp_path / "ckpt"), "--format", "onnx", "--output", str(tmp_path / "o")]
                 + extra)
    assert not (tmp_path / "o").exists()


def test_bench_onnx_implementation_is_forward_only():
    """(test_bench.py times it end to end.)"""
    from tf_longformer.apps import bench

    with pytest.raises(ValueError, match="forward pass only"):
        bench._worker({"impl": "onnx", "mode": "train", "length": 40, "config": {"num_hidden_layers": 1}})


def bad_cases(task):
    """Inputs the graph must refuse, and what the refusal must say (node name, value seen)."""
    per = (2,) if task == "multiple_choice" else ()

    def x(length=10, **changes):
        ids = np.full((1, *per, length), 5, np.int32)
        out = {"input_ids": ids, "attention_mask": np.ones_like(ids), "global_attention_mask": np.zeros_like(ids)}
        for key, (where, value) in changes.items():
            out[key] = out[key].copy()
            out[key][(0,) * (out[key].ndim - 1) + (where,)] = value
        return out

    return {
        "bad_long": (x(length=140), ["input_ids_longer_than_128", "idx=140"]),
        "bad_id": (x(input_ids=(3, VOCAB + 7)), [f"input_ids_above_the_vocabulary_max_{VOCAB - 1}", f"idx={VOCAB + 7}"]),
        "bad_negative_id": (x(input_ids=(3, -1)), ["input_ids_negative"]),
        "bad_mask": (x(attention_mask=(2, 3)), ["attention_mask_not_0_or_1"]),
        "bad_global_mask": (x(global_attention_mask=(2, 2)), ["global_attention_mask_not_0_or_1"]),
    }


@pytest.mark.parametrize("key", ["with_global", "auto_global"])
def test_bad_input_is_refused_with_what_was_wrong(exports, capsys, key):
    """ONNX has no assertion op: the graph's trip-wires make ONNX Runtime refuse bad input, naming the check and
    the value seen (without them the graph returned numbers for all of these)."""
    task = "multiple_choice"
    export_ = exported(exports, task, capsys)
    cases = bad_cases(task)
    if key == "auto_global":
        cases = {c: v for c, v in cases.items() if c != "bad_global_mask"}
    inputs = {c: {k: v for k, v in x.items() if key == "with_global" or k != "global_attention_mask"}
              for c, (x, _) in cases.items()}
    got, _, _ = run_in_onnxruntime(export_["paths"][key], inputs, export_["dir"])
    for case, (_, expected) in cases.items():
        message = str(got[case]["__error__"])
        assert message and all(e in message for e in expected), (case, message)
