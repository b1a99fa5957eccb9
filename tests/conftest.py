import os
import sys
import warnings
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The notebooks run under nbmake in this process's environment: one epoch of two steps per training cell instead of
# their full runs (their saved outputs show those); what is tested is that every cell runs.
os.environ.setdefault("TF_LONGFORMER_NOTEBOOK_EPOCHS", "1")
os.environ.setdefault("TF_LONGFORMER_NOTEBOOK_STEPS", "2")
os.environ.setdefault("TF_LONGFORMER_NOTEBOOK_LIMIT", "24")  # notebook 02: an even spread of 24 addresses
# One thread of arithmetic per test process: pytest-xdist runs one worker per core (`-n auto`), so the workers are
# the parallelism; TensorFlow's and PyTorch's own pools of one thread per core would make every worker fight the
# other for both cores (and the tiny test models gain nothing from them even alone: test_smoke + test_tasks took
# 188 s with TensorFlow's defaults, 155 s with one thread, `-n 0`, 2 AMD EPYC cores). Environment variables, so
# that the CLI, notebook and worker subprocesses the tests start inherit them.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

if os.environ.get("TF_LONGFORMER_REQUIRE_REFERENCE"):
    # In CI the PyTorch reference must be there: parity tests must never skip silently.
    import importlib

    importlib.import_module("torch")
    importlib.import_module("transformers")

if os.environ.get("TF_LONGFORMER_EXPECT_INSTALLED"):
    # CI's latest and minimum legs test the package as pip installed it (not editable), never the source tree.
    import tf_longformer

    if "site-packages" not in tf_longformer.__file__:
        raise RuntimeError(f"TF_LONGFORMER_EXPECT_INSTALLED: tf_longformer was imported from {tf_longformer.__file__}, "
                           "not from an installed distribution (run `pytest`, not `python -m pytest`).")

MAX_SKIPS_ENV = "TF_LONGFORMER_MAX_SKIPS"


# pytest-xdist (`-n auto --dist loadfile --no-loadscope-reorder`, setup.cfg) runs each test module whole on one
# worker, in the order below (without `--no-loadscope-reorder`, xdist 3.8 hands out the modules with the most tests
# first, which left the three notebooks, one test each, to run last and together), so its
# module-scoped fixtures (the checkpoints and exports built once per module) are built once. Not `loadgroup`:
# with pytest 9.2 and pytest-xdist 3.8 its groups are ignored (pytest-dev/pytest-xdist#1386: xdist writes the group
# into `item._nodeid`, which pytest 9.2 no longer reads), so every module was spread over both workers and each
# built its fixtures twice. The six SavedModel exports are shared by three modules across workers through files
# (`export_harness.export_all_heads`); the PyTorch reference checkpoints (`references`) are made per worker.
# The longest modules (measured, one run on 2 cores) start first, so that no long module starts last and runs alone.
# test_serving_clients.py goes last: it serves the exports test_export.py makes (export_harness), which by then exist.
LONGEST_FIRST = ["test_training.py", "test_attention_paths.py", "test_export.py", "test_onnx.py", "test_xla_training.py",
                 "test_cli.py", "02_fine_tune_long_document_classifier.ipynb", "test_tasks.py", "test_train_job.py",
                 "test_recipe_job.py", "04_long_from_short_recipe.ipynb",
                 "test_readme.py", "test_masked_lm_training.py", "test_properties.py",
                 "test_distributed.py", "01_quickstart.ipynb", "03_export_and_serving.ipynb", "test_bench.py",
                 "test_validation.py", "test_fault_tolerance.py", "test_smoke.py"]
LAST = ["test_serving_clients.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    rank.update({name: len(LONGEST_FIRST) + 1 + i for i, name in enumerate(LAST)})
    # A stable sort: within a module, and among the modules not listed, the collection order stays.
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(LONGEST_FIRST)))


# Grappler, TensorFlow's graph optimizer, runs when a traced function is first called and costs about as much as
# the trace itself for the tiny test models (test_smoke + test_tasks, `-n 0`: 155 s with it, 132 s without, 2 AMD
# EPYC cores). It is off in the test processes except in the modules below, whose subject is the graph users run:
# the PyTorch parity, the SavedModel exports (whose loader process runs TensorFlow's defaults, as TF Serving does;
# the stand-in server of test_serving_clients.py, which tests the clients, does not), the distribution strategies,
# test_grappler.py, which checks that the optimized graphs of every attention path give the unoptimized graphs'
# outputs and gradients, and test_layer_norm.py (the LayerNorm is one oneDNN kernel only after Grappler's
# remapper). The training workers (training_worker.py) follow their module's setting through the environment; the
# other subprocesses (CLI, notebooks, README commands, the export loader) run with TensorFlow's defaults, Grappler on.
GRAPPLER_MODULES = {"test_parity.py", "test_export.py", "test_distributed.py", "test_grappler.py",
                    "test_layer_norm.py"}


@pytest.fixture(autouse=True, scope="module")
def grappler(request):
    """Grappler on in `GRAPPLER_MODULES`, off elsewhere (see above); yields whether it is on."""
    import tensorflow as tf

    on = os.path.basename(str(request.path)) in GRAPPLER_MODULES
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})
    os.environ["TF_LONGFORMER_TEST_GRAPPLER"] = "1" if on else "0"
    yield on


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "reference: needs the PyTorch reference (torch and/or transformers): parity, PyTorch round trips, "
        "transformers tokenizer comparisons; skipped without them, deselect with -m 'not reference'",
    )
    config.addinivalue_line(
        "markers",
        "keras_hub: needs the keras-hub extra (KerasHub model conversion); skipped without it, deselect with "
        "-m 'not keras_hub'",
    )
    if os.environ.get(MAX_SKIPS_ENV, "").strip() and not hasattr(config, "workerinput"):
        config.pluginmanager.register(SkipGuard(os.environ[MAX_SKIPS_ENV].strip()), "tf_longformer_skip_guard")


class SkipGuard:
    """`TF_LONGFORMER_MAX_SKIPS=N`: a session that skips more than N tests, or passes none, FAILS (exit status 1
    unless it already failed), after listing the skip reasons with their counts. A skipped module counts once.
    So a CI leg whose optional dependencies went missing goes red instead of green-but-empty."""

    def __init__(self, limit):
        self.limit = limit
        self.passed = 0
        self.skipped = Counter()
        self.message = None

    @staticmethod
    def _reason(report):
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
            path, line, reason = longrepr
            reason = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
            return f"{reason} [{os.path.basename(str(path))}:{line}]"
        return str(longrepr)

    def _record(self, report):
        if hasattr(report, "wasxfail"):  # xfailed / xpassed: neither a skip nor a pass
            return
        if report.skipped:
            self.skipped[self._reason(report)] += 1
        elif report.passed and report.when == "call":
            self.passed += 1

    def pytest_runtest_logreport(self, report):
        self._record(report)

    def pytest_collectreport(self, report):
        self._record(report)

    def pytest_sessionfinish(self, session):
        if session.config.option.collectonly:
            return
        skipped = sum(self.skipped.values())
        problems = []
        if not self.limit.isdigit():
            problems.append(f"{MAX_SKIPS_ENV}={self.limit!r} is not a non-negative integer")
        elif skipped > int(self.limit):
            problems.append(f"{skipped} test(s) skipped, more than {MAX_SKIPS_ENV}={self.limit}")
        if self.passed == 0:
            problems.append("no test passed")
        if not problems:
            return
        lines = [f"FAILING the session: {'; '.join(problems)}."]
        if self.skipped:
            lines.append(f"Skip reasons ({skipped} skipped; count: reason [where]):")
            lines += [f"  {n:4d}: {reason}" for reason, n in self.skipped.most_common()]
        self.message = "\n".join(lines)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if session.config.pluginmanager.get_plugin("terminalreporter") is None:
            print(f"tf-longformer skip guard: {self.message}", file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter):
        if self.message:
            terminalreporter.section("tf-longformer skip guard", sep="=", red=True, bold=True)
            for line in self.message.splitlines():
                terminalreporter.write_line(line, red=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def references(tmp_path_factory):
    """Where the PyTorch reference checkpoints live (`harness.reference_pair`): each (head, seed, config) is made
    once per session and shared by the modules that compare with it; the reference is seeded, so a shared one
    gives the numbers a fresh one would."""
    return tmp_path_factory.getbasetemp() / "references"


def tiny_config(**overrides):
    from tf_longformer import LongformerConfig

    from helpers import tiny_config_dict

    return LongformerConfig(**tiny_config_dict(**overrides))


def random_batch(rng, batch, length, vocab=60, n_global=(0, 3), pad_rows=True, sep_pattern=False):
    """Ids with `<s>` first and `</s>` last, right padding on some rows, a random global set per row."""
    ids = rng.integers(5, vocab, size=(batch, length))
    ids[:, 0] = 0
    mask = np.ones((batch, length), np.int64)
    glob = np.zeros((batch, length), np.int64)
    for b in range(batch):
        real = length if (not pad_rows or b % 2 == 0 or length < 3) else int(rng.integers(max(1, length // 2), length + 1))
        ids[b, real:] = 1
        mask[b, real:] = 0
        if real > 1:
            ids[b, real - 1] = 2
        if sep_pattern and real >= 6:
            q = int(rng.integers(1, max(2, real // 3)))
            ids[b, q] = 2
            ids[b, q + 1] = 2
        k = int(rng.integers(n_global[0], n_global[1] + 1))
        if k:
            glob[b, rng.choice(length, size=min(k, length), replace=False)] = 1
    return {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob}
