"""`tf-longformer bench`: runs end to end on a tiny config and produces a well-formed report (no timing checks)."""

import json
import math
import os
import sys
import textwrap

import pytest

from tf_longformer.apps import bench

TINY = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "attention_window": 8}


def test_ideal_flops_match_the_hand_count():
    """Base size, 4096 tokens, one global token: about 0.89 TFLOP forward (performance notes)."""
    f = bench.ideal_flops(bench.BASE_CONFIG, 4096, "forward", 1)
    h, n, L = 768, 4096, 12
    per_layer = 12 * n * h * h + 2 * h * h + 4 * n * h * 3072 + 4 * (n - 1) * (513 + 1) * h + 4 * n * h
    assert f == pytest.approx(L * per_layer)
    assert 0.88e12 < f < 0.90e12
    # no global token: no global projections; dense: n keys per query and 4 projections
    assert bench.ideal_flops(bench.BASE_CONFIG, 4096, "forward", 0) == pytest.approx(
        L * (8 * n * h * h + 4 * n * 513 * h + 4 * n * h * 3072))
    assert bench.ideal_flops(bench.BASE_CONFIG, 4096, "forward", dense=True) == pytest.approx(
        L * (8 * n * h * h + 4 * n * n * h + 4 * n * h * 3072))
    # a training step: 3x (forward + MLM head)
    head = 2 * n * h * h + 2 * n * h * 50265
    assert bench.ideal_flops(bench.BASE_CONFIG, 4096, "train", 1) == pytest.approx(3 * (f + head))


def _row(impl, mode, length, median, peak=1 << 30, after=1 << 28, frac=None):
    return {"impl": impl, "mode": mode, "length": length, "ok": median is not None, "median_s": median,
            "tokens_per_s": None if median is None else length / median, "peak_rss_bytes": peak,
            "rss_after_build_bytes": after, "fraction_of_matmul_peak": frac, "errors": [] if median else ["boom"]}


def _batch_row(impl, mode, length, batch, median):
    row = _row(impl, mode, length, median)
    row.update(batch=batch, tokens_per_s=None if median is None else bench.tokens_per_s(batch, length, median))
    return row


def test_targets_are_judged_from_the_ratios():
    results = [
        _row("ours", "forward", 4096, 2.0, peak=1 << 30, frac=0.70),
        _row("reference", "forward", 4096, 4.0, peak=3 << 30),
        _row("ours", "train", 4096, 10.0, peak=4 << 30),
        _row("reference_noglobal", "train", 4096, 15.0, peak=6 << 30),
        _row("ours", "forward", 2048, 1.0), _row("ours", "forward", 16384, 8.4),
        _row("dense", "forward", 2048, 0.9), _row("dense", "forward", 16384, None),
    ]
    got = {x["target"]: (x["met"], x["value"]) for x in bench.evaluate_targets(results)}
    assert len(got) == 25  # every target of the issues is listed, measured or not (+3 informative rows)
    fwd = [v for k, v in got.items() if k.startswith("forward 4096 fp32")][0]
    assert fwd == (True, 2.0)  # 2x the reference's tokens/s >= 1.8
    fwd_mem = [v for k, v in got.items() if k.startswith("forward 4096: peak memory")][0]
    assert fwd_mem[0] is True and fwd_mem[1] == pytest.approx(1 / 3)
    train = [v for k, v in got.items() if k.startswith("train step 4096 fp32")][0]
    assert train == (False, 1.5)  # 1.5x faster is not 2x
    train_mem = [v for k, v in got.items() if k.startswith("train step 4096: peak")][0]
    assert train_mem[0] is False
    peak = [v for k, v in got.items() if "matmul peak" in k][0]
    assert peak == (True, 0.70)
    linear = [v for k, v in got.items() if k.startswith("linear (forward)")][0]
    assert linear[0] is True and linear[1] == pytest.approx(8.4 / 8 / 1.0)
    dense = [v for k, v in got.items() if k.startswith("faster than the dense") and "(forward)" in k][0]
    assert dense[0] is False  # 0.9 s dense vs 1.0 s ours at 2048; the 16384 dense failure counts as a win
    untested = [v for k, v in got.items() if k.startswith("linear (train)")][0]
    assert untested == (None, None)
    mlm = [v for k, v in got.items() if k.startswith("masked-LM step 4096 (")][0]
    assert mlm == (False, 1.5)  # 1.5x faster is not 1.8x
    assert [v for k, v in got.items() if k.startswith("XLA masked-LM step 4096: peak")][0] == (None, None)


def test_the_targets_are_data_and_a_file_of_ones_own_replaces_them(tmp_path):
    """The issue's targets come from the package's bench_targets.json; `targets=` (`--targets FILE`) swaps them."""
    shipped = bench.load_targets()
    assert len(shipped) == 25 and shipped[17]["target"] == "linear (forward): time per token at 16384 within 1.15x of 2048"
    mine = tmp_path / "targets.json"
    mine.write_text(json.dumps({"targets": [{"modes": ["forward"], "targets": [
        {"target": "ours {mode} 2048 under 1.5 s", "measure": "value", "of": ["ours", "{mode}", 2048, "median_s"],
         "threshold": 1.5, "better": "lower", "detail": "seconds", "needs": "ours {mode} at 2048"}]}]}))
    got = bench.evaluate_targets([_row("ours", "forward", 2048, 1.0)], str(mine))
    assert got == [{"target": "ours forward 2048 under 1.5 s", "met": True, "value": 1.0, "threshold": 1.5,
                    "detail": "seconds"}]
    assert bench.evaluate_targets([], str(mine))[0]["detail"] == "not measured in this run (ours forward at 2048)"
    mine.write_text(json.dumps([{"target": "x", "measure": "nope", "better": "lower"}]))
    with pytest.raises(ValueError, match="`measure` must be one of"):
        bench.run_benchmark(lengths=[32], targets=str(mine))
    with pytest.raises(ValueError, match="cannot read the targets file"):
        bench.load_targets(str(tmp_path / "missing.json"))


def test_matmul_peak_worker_reports_both_dtypes():
    out = bench._matmul_peak({"matmul_size": 64, "repeats": 1})
    assert out["float32_gflops"] > 0 and out["bfloat16_gflops"] > 0 and out["matmul_size"] == 64


def test_a_worker_over_the_memory_cap_is_killed_and_recorded(tmp_path):
    script = "import time; x = bytearray(600 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"
    r = bench._run_subprocess([sys.executable, "-c", script], dict(os.environ), 60, 200 * 2**20)
    assert r["ok"] is False and "cap of 0.2 GiB" in r["error"]


def test_end_to_end_tiny_run_with_a_peer(tmp_path):
    """Our model, its ONNX export in ONNX Runtime and the dense model in fresh processes, a stub peer (the
    reference's protocol: one failure, one success), and the outputs: JSON, Markdown table, plot."""
    stub = tmp_path / "peer.py"
    stub.write_text(textwrap.dedent("""
        import json, sys
        if sys.argv[1] == "--check":
            print("BENCH_PEER " + json.dumps({"ok": True, "python": "3", "tensorflow": "2.21.0", "keras": "2.21.0",
                                              "transformers": "4.57.0"}))
            sys.exit(0)
        spec = json.loads(sys.argv[1])
        if spec["global_tokens"]:
            print("BENCH_RESULT " + json.dumps({"ok": False, "error": "Incompatible shapes: [1,32,2,6] vs. [1,32,2,5]",
                                                "peak_rss_bytes": 1}))
        else:
            print("BENCH_RESULT " + json.dumps({"ok": True, "times": [0.5, 0.4, 0.6], "peak_rss_bytes": 3 << 30,
                                                "rss_after_build_bytes": 1 << 30, "first_call_s": 1.0}))
    """))
    lines = []
    report = bench.run_benchmark(
        lengths=[32], modes=["forward", "train"], impls=["ours", "onnx", "saved_model", "dense", "reference",
                                                              "reference_noglobal"],
        peer_python=sys.executable, peer_script=str(stub), config=TINY, repeats=1, warmup=0,
        out_dir=str(tmp_path / "out"), measure_matmul=False, log=lines.append,
    )
    rows = {(r["impl"], r["mode"]): r for r in report["results"]}
    for key in (("ours", "forward"), ("ours", "train"), ("dense", "forward"), ("dense", "train")):
        r = rows[key]
        assert r["ok"], r["errors"]
        assert r["median_s"] > 0 and r["tokens_per_s"] > 0 and r["peak_rss_bytes"] > r["rss_after_build_bytes"] > 0
        assert r["achieved_gflops"] > 0 and r["fraction_of_matmul_peak"] is None  # no peak measured here
    # ONNX Runtime (forward only), in a process of its own: its peak is not the exporting worker's
    onnx_row = rows[("onnx", "forward")]
    assert onnx_row["ok"], onnx_row["errors"]
    assert onnx_row["median_s"] > 0 and onnx_row["peak_rss_bytes"] > onnx_row["rss_after_build_bytes"] > 0
    assert ("onnx", "train") not in rows
    [raw] = [r for r in report["raw"] if r["impl"] == "onnx"]
    assert raw["peak_rss_bytes"] < raw["export_peak_rss_bytes"] and raw["export_s"] > 0 and raw["onnxruntime"]
    # the SavedModel as a server loads it, in a process of its own (TensorFlow only)
    sm_row = rows[("saved_model", "forward")]
    assert sm_row["ok"], sm_row["errors"]
    assert sm_row["median_s"] > 0 and sm_row["peak_rss_bytes"] > sm_row["rss_after_build_bytes"] > 0
    assert ("saved_model", "train") not in rows
    [raw] = [r for r in report["raw"] if r["impl"] == "saved_model"]
    assert raw["tensorflow"] and "global_attention_mask" in raw["signature_inputs"]
    assert not rows[("reference", "forward")]["ok"]
    assert "Incompatible shapes" in rows[("reference", "forward")]["errors"][0]
    assert rows[("reference_noglobal", "train")]["median_s"] == 0.5
    assert ("reference_noglobal", "forward") not in rows  # only the training step is a target without globals
    assert report["matmul_peak_gflops"] is None and report["matmul"] == []
    assert {t["met"] for t in report["targets"]} == {None}  # 4096 etc. were not measured: nothing is claimed
    out = tmp_path / "out"
    saved = json.loads((out / "bench.json").read_text())
    assert saved["results"] == json.loads(json.dumps(report["results"]))
    table = (out / "bench.md").read_text()
    assert "| forward | 32 | 1 | ours |" in table and "failed: Incompatible shapes" in table
    assert "AMX" in table
    try:
        __import__("matplotlib")
    except ImportError:
        assert not (out / "bench.png").exists()
    else:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("FAILED" in line for line in lines)
    assert any(line.startswith("peer ") and "transformers 4.57.0" in line for line in lines)


def test_a_peer_environment_without_the_reference_stops_the_run_at_once(tmp_path):
    """`--peer-python` of an environment without tf-keras / transformers: one clear error before any measurement."""
    stub = tmp_path / "peer.py"
    stub.write_text("import json, sys\n"
                    "assert sys.argv[1] == '--check', 'measured without a check'\n"
                    "print('BENCH_PEER ' + json.dumps({'ok': False, 'error': \"tf-keras: No module named 'tf_keras'\"}))\n")
    lines = []
    with pytest.raises(ValueError, match=r"cannot run the reference: tf-keras: No module named 'tf_keras'\. Make one "
                                         r"with: python -m venv"):
        bench.run_benchmark(lengths=[32], modes=["forward"], impls=["ours", "reference"], peer_python=sys.executable,
                            peer_script=str(stub), config=TINY, repeats=1, warmup=0, log=lines.append)
    assert lines == []  # nothing was measured, not even the matmul peak
    # a peer script that dies says so
    stub.write_text("raise SystemExit('boom')\n")
    r = bench.check_peer(sys.executable, str(stub))
    assert r["ok"] is False and "exited with status 1 and no answer" in r["error"] and "boom" in r["error"]
    with pytest.raises(ValueError, match="peer script .* is missing"):
        bench.run_benchmark(lengths=[32], impls=["reference"], peer_python=sys.executable,
                            peer_script=str(tmp_path / "nope.py"))


def test_the_peer_runs_without_our_pythonpath(monkeypatch):
    """The peer's python must import ITS tensorflow / tf-keras: our PYTHONPATH (a source tree, or site-packages
    with Keras 3) is not passed on; our own measurements get the package's root when it is a source tree."""
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert "PYTHONPATH" not in bench._peer_env()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(bench.__file__))))  # above tf_longformer
    ours = bench._worker_env()["PYTHONPATH"].split(os.pathsep)
    assert "/somewhere/else" in ours
    import site

    if root in site.getsitepackages():
        assert ours == ["/somewhere/else"]
    else:
        assert ours[0] == root


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="unknown implementation 'nope'"):
        bench.run_benchmark(lengths=[32], impls=["nope"])
    with pytest.raises(ValueError, match="give `peer_python`"):
        bench.run_benchmark(lengths=[32], impls=["reference"])
    with pytest.raises(ValueError, match="unknown mode 'backward'"):
        bench.run_benchmark(lengths=[32], modes=["backward"])
    with pytest.raises(ValueError, match="positive integers, got -5"):
        bench.run_benchmark(lengths=[-5])


def test_cli_lengths_and_help():
    from tf_longformer.cli import build_parser
    from tf_longformer.commands.bench import _ints

    assert _ints("1k,2048, 16K") == [1024, 2048, 16384]
    with pytest.raises(SystemExit, match="not a length: 'x'"):
        _ints("1k,x")
    args = build_parser().parse_args(["bench", "--lengths", "2k", "--peer-python", "/usr/bin/python3"])
    assert args.lengths == "2k" and args.peer_python == "/usr/bin/python3" and args.func.__name__ == "cmd_bench"
    assert args.targets is None and build_parser().parse_args(["bench", "--targets", "t.json"]).targets == "t.json"
    assert math.isfinite(bench.ideal_flops(TINY, 32))


# ------------------------------------------------------------------------------------------- batch sizes
def test_cli_batch_takes_a_list():
    from tf_longformer.cli import build_parser
    from tf_longformer.commands.bench import _batches

    assert _batches("1,4, 8") == [1, 4, 8] and _batches("2") == [2]
    parse = build_parser().parse_args
    assert parse(["bench"]).batch == [1]
    assert parse(["bench", "--batch", "1,4,8"]).batch == [1, 4, 8]
    for bad in ("0", "1,x", "-2", ","):
        with pytest.raises(SystemExit) as exit_info:
            parse(["bench", "--batch", bad])
        assert exit_info.value.code == 2


def test_cli_batch_error_names_the_value(capsys):
    from tf_longformer.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--batch", "1,x"])
    assert "got 'x' in '1,x'" in capsys.readouterr().err


def test_batch_sizes_of_the_python_api():
    import numpy as np

    assert bench.batch_sizes(1) == [1] and bench.batch_sizes([8, 1, 8]) == [8, 1] and bench.batch_sizes(
        (np.int64(4),)) == [4]
    for bad in (0, -1, 1.5, True, "4", [1, 0], []):
        with pytest.raises(ValueError, match="batch size"):
            bench.batch_sizes(bad)
    with pytest.raises(ValueError, match="batch sizes must be positive integers, got 0"):
        bench.run_benchmark(lengths=[32], batch=[1, 0])


def test_each_batch_size_is_a_row_with_its_tokens_per_s():
    """Raw measurements at batch 1 and 4 (two passes at batch 4) -> one row each, sorted by batch; tokens/s is
    batch x length / the median of the pooled times; the ideal FLOPs scale with the batch."""
    raw = [
        {"impl": "ours", "mode": "forward", "length": 256, "batch": 4, "ok": True, "times": [1.0, 1.2],
         "peak_rss_bytes": 3, "rss_after_build_bytes": 1, "first_call_s": 2.0},
        {"impl": "ours", "mode": "forward", "length": 256, "batch": 1, "ok": True, "times": [0.5, 0.4, 0.6],
         "peak_rss_bytes": 2, "rss_after_build_bytes": 1, "first_call_s": 2.0},
        {"impl": "ours", "mode": "forward", "length": 256, "batch": 4, "ok": True, "times": [1.1],
         "peak_rss_bytes": 3, "rss_after_build_bytes": 1, "first_call_s": 2.0},
        {"impl": "dense", "mode": "forward", "length": 256, "batch": 4, "ok": False, "error": "boom"},
    ]
    rows = bench.summarize(raw, TINY, 1, 1, None, None)
    assert [(r["impl"], r["batch"]) for r in rows] == [("ours", 1), ("ours", 4), ("dense", 4)]
    one, four, dense = rows
    assert one["median_s"] == 0.5 and one["tokens_per_s"] == pytest.approx(256 / 0.5)
    assert four["times"] == [1.0, 1.2, 1.1] and four["median_s"] == 1.1
    assert four["tokens_per_s"] == pytest.approx(4 * 256 / 1.1)
    assert four["ideal_gflop"] == pytest.approx(4 * one["ideal_gflop"])
    assert not dense["ok"] and dense["errors"] == ["boom"]
    # a raw result without a batch (a report from before batch lists) takes the run's batch size
    without = {k: v for k, v in raw[1].items() if k != "batch"}
    [old] = bench.summarize([without], TINY, 1, 2, None, None)
    assert old["batch"] == 2 and old["tokens_per_s"] == pytest.approx(2 * 256 / 0.5)
    report = {"results": rows}
    table = bench.format_table(report)
    assert "| mode | length | batch | implementation | median s | tokens/s |" in table
    assert "| forward | 256 | 1 | ours | 0.500 | 512 |" in table
    assert "| forward | 256 | 4 | ours | 1.100 | 931 |" in table
    assert "| forward | 256 | 4 | dense | failed: boom |" in table


def test_batch_scaling_targets_need_both_rows():
    def judged(results):
        got = {x["target"]: x for x in bench.evaluate_targets(results)}
        return (got["batch scaling, forward 4096 fp32: tokens/s at batch 8 >= batch 1's"],
                got["batch scaling, forward 4096 bf16: tokens/s at batch 8 >= batch 1's"])

    # batch 1: 2048 tokens/s; batch 8 in 12 s: 2731 tokens/s -> 1.33x, met; bf16 has no batch-8 row: not judged
    fp32, bf16 = judged([_batch_row("ours", "forward", 4096, 1, 2.0), _batch_row("ours", "forward", 4096, 8, 12.0),
                         _batch_row("ours_bf16", "forward", 4096, 1, 1.0)])
    assert fp32["met"] is True and fp32["value"] == pytest.approx((8 * 4096 / 12.0) / (4096 / 2.0))
    assert bf16["met"] is None and bf16["detail"] == "not measured in this run (ours_bf16 forward at 4096 with " \
                                                     "--batch 1,8)"
    # batch 8 in 20 s: 1638 tokens/s, less than batch 1's -> not met; a failed batch-8 row is not judged
    fp32, bf16 = judged([_batch_row("ours", "forward", 4096, 1, 2.0), _batch_row("ours", "forward", 4096, 8, 20.0),
                         _batch_row("ours_bf16", "forward", 4096, 1, 1.0),
                         _batch_row("ours_bf16", "forward", 4096, 8, None)])
    assert fp32["met"] is False and fp32["value"] == pytest.approx(0.8)
    assert bf16["met"] is None


def test_targets_without_a_batch_read_the_smallest_batch():
    """The issue's older targets name no batch: with rows at batch 1 and 8 they read batch 1's, as before."""
    results = [_batch_row("ours", "forward", 4096, 8, 8.0), _batch_row("ours", "forward", 4096, 1, 2.0),
               _batch_row("reference", "forward", 4096, 1, 4.0), _batch_row("reference", "forward", 4096, 8, 40.0)]
    got = {x["target"]: x for x in bench.evaluate_targets(results)}
    assert got["forward 4096 fp32: tokens/s >= 1.8x the reference TF Longformer"]["value"] == pytest.approx(2.0)
    # the dense comparison over lengths stays within one batch size
    results = [_batch_row("ours", "forward", 2048, 1, 1.0), _batch_row("dense", "forward", 2048, 1, 2.0),
               _batch_row("ours", "forward", 2048, 4, 4.0), _batch_row("dense", "forward", 2048, 4, 1.0)]
    got = {x["target"]: x for x in bench.evaluate_targets(results)}
    assert got["faster than the dense model of the same size from 2048 up (forward)"]["value"] == pytest.approx(2.0)


def test_every_batch_size_reaches_the_runners():
    """Our worker's spec and the peer's spec carry the row's batch size (the ONNX / SavedModel runners get it as
    the shape of the inputs our worker makes from it), and a runner that timed another size is a failure."""
    common = {"batch": 1, "repeats": 1, "warmup": 0, "seed": 0, "mlm_fraction": 0.15, "config": TINY,
              "global_tokens": 1, "memory_profile": False, "op_profile": False, "op_profile_calls": 1,
              "peer_python": sys.executable, "peer_script": "peer.py"}
    for impl in ("ours", "ours_bf16", "onnx", "saved_model", "dense", "reference", "hf_roberta"):
        for b in (1, 4, 8):
            cmd, spec = bench._spec_for(impl, "forward", 64, common, b)
            assert spec["batch"] == b and json.loads(cmd[-1])["batch"] == b
    assert bench._spec_for("ours", "forward", 64, common)[1]["batch"] == 1
    ok = {"ok": True, "times": [1.0], "input_shape": [4, 64]}
    assert bench._check_input_shape(dict(ok), 4, 64)["ok"] is True
    wrong = bench._check_input_shape(dict(ok), 8, 64)
    assert wrong["ok"] is False and "shape [4, 64], not batch 8 x length 64" in wrong["error"]
    assert bench._check_input_shape({"ok": True, "times": [1.0]}, 8, 64)["ok"] is True  # a runner that says nothing


def test_a_peer_gets_each_batch_size(tmp_path):
    """A stub reference (no TensorFlow) that times `batch` x 0.1 s and reports its input shape: one row per batch
    size, the peer's times filed under the right one."""
    stub = tmp_path / "peer.py"
    stub.write_text(textwrap.dedent("""
        import json, sys
        if sys.argv[1] == "--check":
            print("BENCH_PEER " + json.dumps({"ok": True, "python": "3"}))
            sys.exit(0)
        spec = json.loads(sys.argv[1])
        print("BENCH_RESULT " + json.dumps({"ok": True, "times": [0.1 * spec["batch"]], "peak_rss_bytes": 2,
                                            "rss_after_build_bytes": 1, "first_call_s": 1.0,
                                            "input_shape": [spec["batch"], spec["length"]]}))
    """))
    lines = []
    report = bench.run_benchmark(lengths=[32], modes=["forward"], impls=["reference"], peer_python=sys.executable,
                                 peer_script=str(stub), config=TINY, batch=[1, 4], repeats=1, warmup=0,
                                 measure_matmul=False, log=lines.append)
    assert report["batch"] == [1, 4] and report["batches"] == [1, 4]
    rows = {r["batch"]: r for r in report["results"]}
    assert rows[1]["median_s"] == pytest.approx(0.1) and rows[4]["median_s"] == pytest.approx(0.4)
    assert rows[4]["tokens_per_s"] == pytest.approx(4 * 32 / 0.4)
    assert [r["batch"] for r in report["raw"]] == [1, 4]
    assert any("batch 4" in line and "tokens/s" in line for line in lines)
    assert "batch 1, 4" in bench.format_report({**report, "load_average_end": [0.0], "total_s": 1.0})


def test_the_classification_step_mode(tmp_path):
    """`--modes train_cls`: a sequence-classification training step, ours (plain and checkpointed) only, with the
    pooler's and classifier's FLOPs; its 16k target reads that row; dense and peers are skipped, not failed."""
    n, h = 4096, 768
    forward = bench.ideal_flops(bench.BASE_CONFIG, n, "forward", 1)
    assert bench.ideal_flops(bench.BASE_CONFIG, n, "train_cls", 1) == pytest.approx(3 * (forward + 2 * h * h + 4 * h))
    report = bench.run_benchmark(lengths=[40], modes=["train_cls"], impls=["ours", "ours_gc", "dense"], config=TINY,
                                 repeats=1, warmup=0, out_dir=str(tmp_path), measure_matmul=False, log=lambda *a: None)
    rows = {r["impl"]: r for r in report["results"]}
    assert set(rows) == {"ours", "ours_gc"}
    for r in rows.values():
        assert r["ok"] and r["mode"] == "train_cls" and r["median_s"] > 0 and r["peak_rss_bytes"] > 0
    target = [t for t in bench.load_targets() if "classification step 16384" in t["target"]]
    assert len(target) == 1 and target[0]["of"] == ["ours_gc", "train_cls", 16384, "peak_rss_bytes"]
    with pytest.raises(ValueError, match="unknown mode 'train_mlm'"):
        bench.run_benchmark(lengths=[32], modes=["train_mlm"])
