"""A training run killed with SIGKILL (mid-epoch, or in the middle of writing a backup) and started again with
`tf_longformer.training.BackupAndRestore` ends with exactly the weights of an uninterrupted run.

The runs (`tests/training_worker.py`, mode `resumable`) train 3 epochs of 4 steps with dropout 0.1, so the
restored optimizer state and dropout random state matter as much as the weights.
"""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from worker_harness import TIMEOUT, WORKER, env, load, run_worker


def start(opts):
    return subprocess.Popen([sys.executable, WORKER, json.dumps(opts)], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def assert_identical(got, want):
    weights = sorted(k for k in want if not k.startswith("extra|"))
    assert weights == sorted(k for k in got if not k.startswith("extra|"))
    assert any(k.startswith("optimizer|") for k in weights)
    for key in weights:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


class Background:
    """A worker run started at once; `wait()` returns its exit code, `result()` its weights."""

    def __init__(self, directory, **options):
        self.opts = {"mode": "resumable", "backup_dir": str(directory / "backup"), "out": str(directory / "out.npz"),
                     "marker": str(directory / "marker"), **options}
        self.proc = start(self.opts)
        self.err = None

    def wait(self):
        if self.err is None:
            _, self.err = self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode

    def result(self):
        assert self.wait() == 0, self.err[-3000:]
        return load(self.opts["out"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs side by side: uninterrupted, one to be killed mid-epoch, one that crashes in a backup write."""
    started = {
        "uninterrupted": Background(tmp_path_factory.mktemp("uninterrupted")),
        "victim": Background(tmp_path_factory.mktemp("victim"), pause_at=[1, 2]),
        "crash": Background(tmp_path_factory.mktemp("crash"), crash_in_write=2),
    }
    yield started
    for run in started.values():
        run.stop()


def resume(run):
    opts = {k: v for k, v in run.opts.items() if k not in ("pause_at", "crash_in_write")}
    run_worker(opts)
    return load(opts["out"])


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(runs):
    from tf_longformer.training import BackupAndRestore

    victim = runs["victim"]
    deadline = time.time() + TIMEOUT
    while not os.path.exists(victim.opts["marker"]):
        assert victim.proc.poll() is None, victim.proc.communicate()[1][-3000:]
        assert time.time() < deadline, "the run never reached the kill point"
        time.sleep(0.2)
    os.kill(victim.proc.pid, signal.SIGKILL)  # in the second epoch, after its third step
    assert victim.wait() == -signal.SIGKILL
    assert not os.path.exists(victim.opts["out"])
    backup = os.path.join(victim.opts["backup_dir"], "latest.weights.h5")
    assert BackupAndRestore.read_metadata(backup)["epoch"] == 1  # the end of the first epoch

    resumed, want = resume(victim), runs["uninterrupted"].result()
    assert int(resumed["extra|epochs_run"]) == 2 and int(want["extra|epochs_run"]) == 3
    assert_identical(resumed, want)
    assert not os.path.exists(victim.opts["backup_dir"])  # deleted once training finished


def test_crash_while_writing_a_backup_keeps_the_previous_one(runs):
    from tf_longformer.training import BackupAndRestore

    crash = runs["crash"]
    assert crash.wait() == -signal.SIGKILL  # killed itself with half of the second epoch's backup written
    names = sorted(os.listdir(crash.opts["backup_dir"]))
    assert "latest.weights.h5" in names and any(n.startswith("tmp-") for n in names)
    latest = os.path.join(crash.opts["backup_dir"], "latest.weights.h5")
    assert BackupAndRestore.read_metadata(latest)["epoch"] == 1  # the last complete backup, readable
    with h5py.File(latest, "r") as f:
        assert len(f[BackupAndRestore.SEEDS_KEY]) > 0

    assert_identical(resume(crash), runs["uninterrupted"].result())
