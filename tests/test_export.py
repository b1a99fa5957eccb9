"""SavedModel export for TF Serving, checked the way the server loads it.

Each of the six heads is exported ONCE (`model.export`, tiny config, random weights). A fresh process in which
`keras` and `tf_longformer` cannot be imported (a `sitecustomize` import blocker) loads every export with three
loaders: `tf.saved_model.load`, the TF1 SavedModelBundle-style loader (`tf.compat.v1.saved_model.loader.load` in a
Session of its own Graph, fed and fetched by the signature's tensor names: TF Serving's C++ contract), and
`saved_model_cli run` (which loads the export anew on every call); it also runs `saved_model_cli show`. The
process starts before the first export and takes each head as soon as it is exported. Its outputs must equal the
Keras model's within 1e-5 at three sequence lengths (none traced: the signatures are traced symbolically, with no
length; 5 is below the largest window, 41 above it, both need internal padding, 24 does not) and two batch sizes,
with and without global tokens, for every head.

`TF_LONGFORMER_FULL_EXPORT_CHECK=1` also runs the whole case matrix through `saved_model_cli run` (slow: the CLI
reloads the model for every call); by default it runs one mixed case per head and signature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config

import tf_longformer as T
from tf_longformer import serving

from export_harness import (  # shared with test_serving_clients.py
    ATOL,
    BATCHES,
    EXTRAS_HEADS,
    EXTRA_SIGNATURE_CHECKS,
    FULL_CLI,
    HAVE_SERVING_API,
    HEADS,
    LABELS,
    LENGTHS,
    SMALL,
    TOKENIZER_DIR,
    VOCAB,
    assert_outputs_equal,
    case_matrix,
    export_all_heads,
    keras_expected,
    make_inputs,
    make_model,
)


# ------------------------------------------------------------------------------------------- the loader
# Installed as `sitecustomize` in the loader process: `import keras` / `import tf_longformer` (and any submodule)
# fail there, and `importlib.util.find_spec` reports them absent, which TensorFlow's own import handles.
BLOCKER = textwrap.dedent('''
    import sys
    for _name in ("keras", "tf_keras", "tf_longformer"):
        sys.modules[_name] = None
''')

# One process runs every loader: importing TensorFlow costs several seconds a process, and the process starts
# before the first export, so that import, and each head's loads, overlap the exports that follow. The three
# loaders share nothing but the import: the TF2 loader loads each export eagerly, the TF1 loader into a tf.Graph
# of its own, and `saved_model_cli run` into the Graph it makes on every call (from its default flags each time).
# A loader that fails on a head is recorded (with its traceback) for that mode and head; the rest go on.
LOADER = textwrap.dedent('''
    import contextlib, io, json, os, sys, time, traceback
    import numpy as np
    plan_path, report_path = sys.argv[1:3]
    for name in ("keras", "tf_longformer"):
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} is importable: the blocker did not work")
    import tensorflow as tf
    from absl import flags
    from tensorflow.python.tools import saved_model_cli

    plan = json.load(open(plan_path))
    report = {"signatures": {}, "errors": {}, "seconds": {}}
    parent = os.getppid()

    def save(path, outputs):
        np.savez(path, **{k: np.asarray(v) for k, v in outputs.items()})

    def wait_for(path):
        """The manifest of a head appears (atomically) once the test process has exported it."""
        deadline = time.monotonic() + plan["timeout"]
        while not os.path.exists(path):
            if os.getppid() != parent or time.monotonic() > deadline:
                raise SystemExit(f"gave up waiting for {path} (the test process is gone or too slow)")
            time.sleep(0.05)

    def run_tf2(d, jobs):
        loaded = tf.saved_model.load(d)
        for job in jobs:
            x = dict(np.load(job["inputs"]))
            fn = loaded.signatures[job["signature"]]
            args = {k: tf.constant(x[k]) for k in fn.structured_input_signature[1]}
            if job.get("expect_error"):
                try:
                    fn(**args)
                    message = None
                except tf.errors.InvalidArgumentError as e:
                    message = e.message
                json.dump({"error": message}, open(job["out"], "w"))
                continue
            out = {k: v.numpy() for k, v in fn(**args).items()}
            if job["signature"] == "serving_default":  # Keras' endpoint name answers the same
                again = loaded.serve(**args)
                assert all(np.array_equal(out[k], again[k].numpy()) for k in out), "serve != serving_default"
            save(job["out"], out)

    def run_tf1(d, jobs):
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], d)
            report["signatures"][d] = {
                name: {"inputs": {k: [tf.dtypes.as_dtype(v.dtype).name, [x.size for x in v.tensor_shape.dim]]
                                  for k, v in sig.inputs.items()},
                       "outputs": sorted(sig.outputs)}
                for name, sig in meta.signature_def.items()}
            for job in jobs:
                x = dict(np.load(job["inputs"]))
                sig = meta.signature_def[job["signature"]]
                feed = {sig.inputs[k].name: x[k] for k in sig.inputs}
                fetch = {k: v.name for k, v in sig.outputs.items()}
                save(job["out"], sess.run(fetch, feed))

    def saved_model_cli_command(*args):
        """`saved_model_cli ARGS`: the console script's entry point, from the default flags as a fresh command."""
        flags.FLAGS.unparse_flags()
        sys.argv = ["saved_model_cli", *args]
        try:
            saved_model_cli.main()
        except SystemExit as e:
            if e.code not in (None, 0):
                raise RuntimeError(f"saved_model_cli {' '.join(args)} exited with {e.code}") from None

    def run_cli(d, jobs):
        for job in jobs:
            names = job["input_names"]
            outdir = job["out"] + ".d"
            saved_model_cli_command(
                "run", "--dir", job["dir"], "--tag_set", "serve", "--signature_def", job["signature"],
                "--inputs", ";".join(f"{k}={job['inputs']}[{k}]" for k in names), "--outdir", outdir, "--overwrite")
            save(job["out"], {f[:-4]: np.load(os.path.join(outdir, f)) for f in os.listdir(outdir)})

    def run_show(d, show):
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            saved_model_cli_command("show", "--dir", d, "--tag_set", "serve", "--signature_def", show)
        report["show"] = text.getvalue()

    for head in plan["heads"]:
        wait_for(head["manifest"])
        manifest = json.load(open(head["manifest"]))
        d = manifest["dir"]
        steps = [(mode, fn, manifest[mode]) for mode, fn in (("tf2", run_tf2), ("tf1", run_tf1), ("cli", run_cli))]
        if manifest.get("show"):
            steps.append(("show", run_show, manifest["show"]))
        for mode, fn, arg in steps:
            start = time.monotonic()
            try:
                fn(d, arg)
            except Exception:
                report["errors"][f"{mode} {head['task']}"] = traceback.format_exc()
            report["seconds"][f"{mode} {head['task']}"] = round(time.monotonic() - start, 2)
    report["blocked_but_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tf_longformer")
                                          and sys.modules[m] is not None)
    for name in ("keras", "tf_longformer"):  # still blocked at the end
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            report["blocked_but_loaded"].append(name)
    json.dump(report, open(report_path, "w"))
''')

LOADER_TIMEOUT = 900  # seconds: for a manifest to appear, and for the process to finish once a test waits on it


def _loader_env(block_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = block_dir  # only the blocker: neither the worktree nor tests/ are on the path
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # Tiny graphs: one thread (the process runs beside the test process, which exports meanwhile, on shared cores).
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return env


class LoaderRuns:
    """Starts the loader process at once, writes each head's cases and jobs (`add_head`) as soon as the head is
    exported, and reads the process's report. `jobs[mode]`: every job of a mode; `cases[(task, case)]`: inputs."""

    def __init__(self, root):
        self.root = root
        self.block_dir = os.path.join(root, "blocker")
        os.makedirs(self.block_dir, exist_ok=True)
        with open(os.path.join(self.block_dir, "sitecustomize.py"), "w") as f:
            f.write(BLOCKER)
        script = os.path.join(root, "loader.py")
        with open(script, "w") as f:
            f.write(LOADER)
        self.jobs = {"tf2": [], "tf1": [], "cli": []}
        self.cases = {}
        self.report = None
        plan = {"heads": [{"task": task, "manifest": self._manifest(task)} for task in HEADS],
                "timeout": LOADER_TIMEOUT}
        with open(os.path.join(root, "plan.json"), "w") as f:
            json.dump(plan, f)
        self.log = os.path.join(root, "loader.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, script, os.path.join(root, "plan.json"), os.path.join(root, "report.json")],
                cwd=self.block_dir, env=_loader_env(self.block_dir), stdout=log, stderr=subprocess.STDOUT)

    def _manifest(self, task):
        return os.path.join(self.root, f"manifest-{task}.json")

    def add_head(self, task, model, path):
        """Writes the head's cases and jobs, then its manifest (atomically): the loader process starts on it."""
        i = HEADS.index(task)
        head = {"dir": path, "tf2": [], "tf1": [], "cli": []}
        for case, x in case_matrix(task, i).items():
            npz = os.path.join(self.root, f"{task}-{case}.npz")
            np.savez(npz, **x)
            self.cases[(task, case)] = (x, npz)
            for signature in ("serving_default", "auto_global"):
                for mode in ("tf2", "tf1"):
                    head[mode].append(self._job(mode, task, case, signature, path, npz))
                # saved_model_cli reloads the model on every call: one mixed case per head unless asked for all.
                if FULL_CLI or (case == "L41_B3_mixed" and signature == "serving_default"):
                    head["cli"].append(self._job("cli", task, case, signature, path, npz))
            if case in ("L24_B3_global", "L41_B2_manyglobal"):
                for signature in EXTRA_SIGNATURE_CHECKS.get(task, ()):
                    head["tf2"].append(self._job("tf2", task, case, signature, path, npz))
        if task == "question_answering":
            for name, (signature, x, _) in bad_inputs().items():
                npz = os.path.join(self.root, f"bad-{name}.npz")
                np.savez(npz, **x)
                head["tf2"].append({"dir": path, "signature": signature, "inputs": npz, "task": task,
                                    "case": f"bad-{name}", "expect_error": True,
                                    "out": os.path.join(self.root, f"out-bad-{name}.json")})
        if task == "multiple_choice":
            head["show"] = "serving_default"  # `saved_model_cli show` of this export's default signature
        for mode in self.jobs:
            self.jobs[mode] += head[mode]
        manifest = self._manifest(task)
        with open(manifest + ".tmp", "w") as f:
            json.dump(head, f)
        os.replace(manifest + ".tmp", manifest)

    def _job(self, mode, task, case, signature, path, npz):
        takes_global = not signature.startswith("auto_global")
        names = ["input_ids", "attention_mask"] + (["global_attention_mask"] if takes_global else [])
        inputs = npz
        if signature.endswith("_int64"):
            inputs = npz[:-4] + "-int64.npz"
            np.savez(inputs, **{k: v.astype(np.int64) for k, v in np.load(npz).items()})
        return {"dir": path, "signature": signature, "inputs": inputs, "input_names": names, "task": task,
                "case": case, "out": os.path.join(self.root, f"out-{mode}-{task}-{case}-{signature}.npz")}

    def compute_expected(self, exports):
        """The Keras outputs every job is compared with (cached in export_harness), while the loader runs."""
        for mode, jobs in self.jobs.items():
            for job in jobs:
                if not job.get("expect_error"):
                    model, _ = exports[job["task"]]
                    x, _ = self.cases[(job["task"], job["case"])]
                    keras_expected(model, job["task"], job["signature"].removesuffix("_int64"), x,
                                   key=(id(model), job["case"]))

    def result(self):
        """The loader process's report, once it has finished (it must exit cleanly)."""
        if self.report is None:
            try:
                self.proc.wait(timeout=LOADER_TIMEOUT)
            finally:
                self.close()
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            assert self.proc.returncode == 0, f"the loader process failed:\n{text[-6000:]}"
            with open(os.path.join(self.root, "report.json")) as f:
                self.report = json.load(f)
        return self.report

    def check(self, mode, task):
        """Fails with the loader's traceback if `mode` failed on `task`'s export."""
        error = self.result()["errors"].get(f"{mode} {task}")
        assert error is None, f"the {mode} loader failed on {task}:\n{error}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return export_all_heads(tmp_path_factory.getbasetemp() / "shared-exports")


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    """The loader process, started first and fed each export as it is made; the Keras expectations are computed
    while it runs."""
    runs = LoaderRuns(str(tmp_path_factory.mktemp("loaders")))
    try:
        exported = export_all_heads(tmp_path_factory.getbasetemp() / "shared-exports", on_export=runs.add_head)
        runs.compute_expected(exported)
        yield runs
    finally:
        runs.close()


def _check_mode(loaders, exports, mode, task):
    loaders.check(mode, task)
    model, _ = exports[task]
    jobs = [j for j in loaders.jobs[mode] if j["task"] == task and not j.get("expect_error")]
    assert jobs
    seen_lengths, seen_batches, seen_global = set(), set(), set()
    for job in jobs:
        x, _ = loaders.cases[(task, job["case"])]
        signature = job["signature"]
        expected = keras_expected(model, task, signature.removesuffix("_int64"), x, key=(id(model), job["case"]))
        got = dict(np.load(job["out"]))
        assert_outputs_equal(got, expected, f"{mode} {task} {job['case']} {signature}", signature)
        seen_lengths.add(x["input_ids"].shape[-1])
        seen_batches.add(x["input_ids"].shape[0])
        seen_global.add(bool(x["global_attention_mask"].any()) and not signature.startswith("auto_global"))
    return seen_lengths, seen_batches, seen_global


@pytest.mark.parametrize("task", HEADS)
def test_tf_saved_model_load_matches_keras(loaders, exports, task):
    lengths, batches, with_global = _check_mode(loaders, exports, "tf2", task)
    assert lengths == set(LENGTHS) and batches >= set(BATCHES) and with_global == {True, False}


@pytest.mark.parametrize("task", HEADS)
def test_tf1_session_loader_matches_keras(loaders, exports, task):
    """The SavedModelBundle contract: `serve` tag, signature tensor names fed and fetched in a Session."""
    lengths, batches, with_global = _check_mode(loaders, exports, "tf1", task)
    assert lengths == set(LENGTHS) and batches >= set(BATCHES) and with_global == {True, False}


@pytest.mark.parametrize("task", HEADS)
def test_saved_model_cli_run_matches_keras(loaders, exports, task):
    lengths, batches, _ = _check_mode(loaders, exports, "cli", task)
    if FULL_CLI:
        assert lengths == set(LENGTHS) and batches >= set(BATCHES)


def test_loader_process_had_no_keras_and_no_tf_longformer(loaders):
    """The one process that ran every loader (tf2, tf1, cli, show): checked after all of them."""
    assert loaders.result()["blocked_but_loaded"] == []


@pytest.mark.parametrize("task", HEADS)
def test_signature_defs_are_named_int_and_dynamic(loaders, exports, task):
    """What TF Serving sees: every signature's inputs by name, int32 (or int64 twins), every dimension -1."""
    signatures = loaders.result()["signatures"]  # read by the TF1 loader, before its jobs
    assert exports[task][1] in signatures, f"the tf1 loader did not load {task}:\n{loaders.result()['errors']}"
    report = signatures[exports[task][1]]
    report.pop("__saved_model_init_op", None)  # TF's own restore op, in every TF2 SavedModel
    rank = 3 if task == "multiple_choice" else 2
    head = sorted(serving.HEAD_OUTPUTS[task])
    expected_names = {"serving_default", "serve", "auto_global"}
    if task in EXTRAS_HEADS:
        expected_names |= {"attentions", "hidden_states", "probabilities"}
        expected_names |= {f"{n}_int64" for n in expected_names - {"serve"}}
    assert set(report) == expected_names
    for name, sig in report.items():
        inputs = ["input_ids", "attention_mask"] + ([] if name.startswith("auto_global") else ["global_attention_mask"])
        dtype = "int64" if name.endswith("_int64") else "int32"
        assert sig["inputs"] == {k: [dtype, [-1] * rank] for k in inputs}, name
        assert set(head) <= set(sig["outputs"]), (name, sig["outputs"])
    assert report["serving_default"]["outputs"] == head
    if task in EXTRAS_HEADS:
        assert report["attentions"]["outputs"] == sorted(
            head + [f"{kind}_{i}" for kind in ("attentions", "global_attentions") for i in range(2)])
        assert report["hidden_states"]["outputs"] == sorted(head + ["hidden_states"])


def test_saved_model_cli_show_sees_dynamic_named_signature(loaders):
    """The real `saved_model_cli` command (the console script's entry point, called in the loader process, where
    keras and tf_longformer cannot be imported): `show --dir <multiple choice export> --tag_set serve
    --signature_def serving_default`."""
    from importlib.metadata import entry_points

    assert {e.value for e in entry_points(group="console_scripts", name="saved_model_cli")} == \
        {"tensorflow.python.tools.saved_model_cli:main"}  # what the loader calls
    loaders.check("show", "multiple_choice")
    text = loaders.result()["show"]
    for name in ("input_ids", "attention_mask", "global_attention_mask"):
        assert f"inputs['{name}'] tensor_info:\n      dtype: DT_INT32\n      shape: (-1, -1, -1)" in text, text
    assert "outputs['logits'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, -1)" in text, text


# ------------------------------------------------------------------------------------ in-process checks
def test_the_cases_can_fail(loaders, exports):
    """Guards the comparisons: in the loaders' own outputs, global tokens change the numbers, and `auto_global`
    (the head's rule) differs from no global attention for the heads that have a rule."""
    for task in HEADS:
        loaders.check("tf2", task)
        out = {(j["case"], j["signature"]): dict(np.load(j["out"])) for j in loaders.jobs["tf2"]
               if j["task"] == task and not j.get("expect_error")}
        key = serving.HEAD_OUTPUTS[task][0]
        plain = out[("L41_B3_noglobal", "serving_default")][key]
        x, _ = loaders.cases[(task, "L41_B3_noglobal")]
        glob = x["global_attention_mask"].copy()
        glob[..., 10] = 1  # outside token 0's window, inside every row
        model, _ = exports[task]
        with_global = model(x["input_ids"], attention_mask=x["attention_mask"], global_attention_mask=glob)[key]
        assert np.max(np.abs(with_global.numpy() - plain)) > 1e-3, task
        auto = out[("L41_B3_noglobal", "auto_global")][key]
        has_rule = task in ("sequence_classification", "question_answering", "multiple_choice")
        assert (np.max(np.abs(auto - plain)) > 1e-3) == has_rule, task


def bad_inputs():
    """`{name: (signature, inputs, what the error must say)}`: refused by the graph, with a message."""
    x = make_inputs("question_answering", np.random.default_rng(0), 1, 12, (1, 1))
    x["input_ids"][0, 5] = 5
    long = {k: np.ones((1, 129), np.int32) * (5 if k == "input_ids" else 1) for k in x}
    long["global_attention_mask"][:] = 0
    wrapped = {k: v.astype(np.int64) for k, v in x.items()}
    wrapped["input_ids"][0, 3] = 2**32 + 5  # would wrap to 5 in int32: refused before the cast
    return {
        "too_long": ("serving_default", long, "at most 128"),
        "id_too_large": ("serving_default", {**x, "input_ids": np.where(x["input_ids"] == 5, VOCAB, x["input_ids"])},
                         "[0, 400)"),
        "negative_id": ("auto_global", {**x, "input_ids": np.where(x["input_ids"] == 5, -1, x["input_ids"])},
                        "negative id"),
        "mask_shape": ("serving_default", {**x, "attention_mask": x["attention_mask"][:, :-1]},
                       "attention_mask must have the shape"),
        "global_values": ("serving_default", {**x, "global_attention_mask": x["global_attention_mask"] * 2 + 1},
                          "only 0 and 1; found a value above 1"),
        "negative_mask": ("auto_global", {**x, "attention_mask": -x["attention_mask"]},
                          "only 0 and 1; found a negative value"),
        "int64_wraps": ("serving_default_int64", wrapped, "[0, 400)"),
    }


@pytest.mark.parametrize("name", sorted(bad_inputs()))
def test_bad_inputs_fail_with_a_message(loaders, name):
    """Checked in the keras-free tf2 loader process: what TF Serving would send back to the client."""
    loaders.check("tf2", "question_answering")
    with open(next(j["out"] for j in loaders.jobs["tf2"] if j["case"] == f"bad-{name}")) as f:
        message = json.load(f)["error"]
    expected = bad_inputs()[name][2]
    assert message is not None, f"{name}: no error"
    assert expected in message, message


def test_assets_hold_tokenizer_config_and_metadata(exports):
    from tf_longformer import LongformerConfig, LongformerTokenizerFast

    _, path = exports["sequence_classification"]
    extra = os.path.join(path, "assets.extra")
    tok = LongformerTokenizerFast.from_pretrained(extra)
    ref = LongformerTokenizerFast.from_pretrained(TOKENIZER_DIR)
    texts = ["Once upon a time, in a small village by the sea", "Grüße aus München 😀 <mask>!"]
    assert tok(texts)["input_ids"] == ref(texts)["input_ids"]
    assert tok.decode(tok("Der schnelle braune Fuchs")["input_ids"], skip_special_tokens=True) == \
        "Der schnelle braune Fuchs"
    cfg = LongformerConfig.from_pretrained(extra)
    assert cfg.id2label == LABELS and cfg.architectures == ["LongformerForSequenceClassification"]
    with open(os.path.join(extra, serving.METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["task"] == "sequence_classification" and meta["max_sequence_length"] == 128
    assert meta["id2label"] == {str(k): v for k, v in LABELS.items()} and meta["probabilities"] == "softmax"
    assert meta["signatures"]["auto_global"] == {"inputs": ["input_ids", "attention_mask"], "dtype": "int32",
                                                 "outputs": ["logits", "predictions", "probabilities"]}
    with open(os.path.join(exports["multiple_choice"][1], "assets.extra", serving.METADATA_FILE)) as f:
        full = json.load(f)["signatures"]
    assert full["serving_default_int64"] == {"inputs": list(serving.INPUT_NAMES), "dtype": "int64",
                                             "outputs": ["logits"]}
    assert full["probabilities"]["outputs"] == ["logits", "predictions", "probabilities"]
    assert full["hidden_states"]["outputs"] == ["hidden_states", "logits"]
    # The export folder holds exactly a SavedModel and its extras (no temporary folders left behind).
    assert sorted(os.listdir(os.path.dirname(path))) == ["1"]
    assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(path))


# ------------------------------------------------------------------------------- command and edge cases
def _quick_model(task="sequence_classification"):
    return make_model(task, seed=11, **SMALL)


def test_export_command_writes_the_next_version(tmp_path, capsys):
    from tf_longformer.cli import main

    model = _quick_model()
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    T.LongformerTokenizerFast.from_pretrained(TOKENIZER_DIR).save_pretrained(ckpt)
    base = tmp_path / "serving" / "classifier"
    for name in ("1", "3", "latest", ".tmp-export-x"):  # TF Serving only reads numeric folders
        (base / name).mkdir(parents=True)
    args = ["export", "--model", str(ckpt), "--output", str(base), "--signatures", "auto_global", "--no-int64"]
    args += ["--warmup"] if HAVE_SERVING_API else []
    assert main(args) == 0  # --task comes from config.json's architectures
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 4 and report["task"] == "sequence_classification" and report["tokenizer"]
    assert report["signatures"] == ["auto_global", "serve", "serving_default"]
    with pytest.raises(SystemExit, match="Version 4 already exists"):
        main(args + ["--version", "4"])

    loaded = tf.saved_model.load(str(base / "4"))
    x = make_inputs("sequence_classification", np.random.default_rng(5), 2, 17, (1, 2))
    got = loaded.signatures["serving_default"](**x)["logits"].numpy()
    want = model(x["input_ids"], attention_mask=x["attention_mask"], global_attention_mask=x["global_attention_mask"])
    assert np.max(np.abs(got - want.logits.numpy())) <= ATOL

    if not HAVE_SERVING_API:
        return
    # Warm-up records: PredictionLogs TF Serving replays at load time; each one runs on the export.
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(base / "4" / "assets.extra" / serving.WARMUP_FILE)))
    assert len(records) == 2 * 3  # 2 signatures x 3 lengths (8, 64, and 512 capped at the 128 limit)
    for raw in records:
        request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
        fn = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert set(inputs) == set(fn.structured_input_signature[1])
        assert all(v.dtype == np.int32 for v in inputs.values())
        fn(**inputs)


def test_export_command_errors(tmp_path):
    from tf_longformer.cli import main

    model = _quick_model()
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    with pytest.raises(SystemExit, match="no tokenizer files"):
        main(["export", "--model", str(ckpt), "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        main(["export", "--model", str(ckpt), "--output", str(tmp_path / "out"), "--signatures", "logits"])
    with pytest.raises(SystemExit):
        main(["export", "--model", str(ckpt), "--output", str(tmp_path / "out"), "--version", "-3"])
    assert not (tmp_path / "out").exists()


def test_export_arguments_are_checked(tmp_path):
    model = _quick_model()
    with pytest.raises(ValueError, match="Unknown signature"):
        model.export(tmp_path / "a", signatures=["serving_default", "logits"])
    with pytest.raises(ValueError, match="top_k"):
        model.export(tmp_path / "a", top_k=0)
    small = serving.model_class("sequence_classification")(tiny_config(vocab_size=100))
    with pytest.raises(ValueError, match="400 tokens but the model's vocabulary has 100"):
        small.export(tmp_path / "a", tokenizer=TOKENIZER_DIR)
    (tmp_path / "0").mkdir()
    with pytest.raises(FileExistsError, match="Version 0 already exists"):
        serving.export_for_serving(model, tmp_path, version=0)
    assert sorted(os.listdir(tmp_path)) == ["0"] and not os.listdir(tmp_path / "0")


def test_failed_export_leaves_nothing_and_keeps_the_old_one(tmp_path, monkeypatch):
    model = _quick_model()
    target = tmp_path / "m"
    target.mkdir()
    (target / "saved_model.pb").write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        model.export(target, signatures=["serving_default"], int64=False)
    assert sorted(os.listdir(tmp_path)) == ["m"] and (target / "saved_model.pb").read_bytes() == b"old"


def test_other_formats_and_explicit_signatures_go_to_keras(tmp_path, monkeypatch):
    """Other formats, or an explicit `input_signature`, keep Keras' own export, with every argument."""
    import keras

    calls = []
    monkeypatch.setattr(keras.Model, "export", lambda self, *args, **kwargs: calls.append((self, args, kwargs)))
    model = _quick_model()
    spec = [{"input_ids": tf.TensorSpec([None, None], tf.int32)}]
    model.export(tmp_path / "a", input_signature=spec, verbose=False)
    model.export(tmp_path / "b", format="litert", optimizations=[])
    assert [c[0] for c in calls] == [model, model]
    assert calls[0][1:] == ((tmp_path / "a",), {"format": "tf_saved_model", "verbose": False,
                                                  "input_signature": spec})
    assert calls[1][1:] == ((tmp_path / "b",), {"format": "litert", "verbose": None, "input_signature": None,
                                                  "optimizations": []})
    # ONNX: our own export (tf_longformer.onnx_export; tests/test_onnx.py runs it), never Keras'.
    onnx_calls = []
    from tf_longformer import onnx_export

    monkeypatch.setattr(onnx_export, "export_onnx", lambda *args, **kwargs: onnx_calls.append((args, kwargs)))
    model.export(tmp_path / "c.onnx", format="onnx", opset=17)
    assert onnx_calls == [((model, tmp_path / "c.onnx"), {"verbose": None, "opset": 17})]
    with pytest.raises(ValueError, match="no `input_signature`"):
        model.export(tmp_path / "d.onnx", format="onnx", input_signature=spec)
    assert not os.listdir(tmp_path) and len(calls) == 2


def test_mixed_precision_models_serve_float32():
    model = serving.model_class("question_answering")(tiny_config(**SMALL), dtype="mixed_float16")
    model.build()
    core = serving._core_functions(model, "question_answering")
    outputs = core["with_global"].get_concrete_function().structured_outputs
    assert {k: v.dtype for k, v in outputs.items()} == {"start_logits": tf.float32, "end_logits": tf.float32}


def test_command_choices_match_the_serving_module():
    from tf_longformer.commands import export as command

    assert command.TASK_CHOICES == serving.TASKS
    assert command.SIGNATURE_CHOICES == serving.SIGNATURES
    assert serving.task_from_architectures(["LongformerForMultipleChoice"]) == "multiple_choice"
    assert serving.task_from_architectures(["BertModel"]) is None
    assert serving.next_version("/nonexistent/path") == 1
