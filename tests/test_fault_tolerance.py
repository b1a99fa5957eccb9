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

from test_distributed import TIMEOUT, WORKER, env, load, run_worker


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
    """An uninterrupted run, started once and shared; `result()` waits for it."""

    def __init__(self, directory):
        self.opts = {"mode": "resumable", "backup_dir": str(directory / "backup"), "out": str(directory / "out.npz")}
        self.proc = start(self.opts)
        self.err = None

    def result(self):
        if self.err is None:
            _, self.err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, self.err[-3000:]
        return load(self.opts["out"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = Background(tmp_path_factory.mktemp("uninterrupted"))
    yield run
    run.stop()


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, tmp_path):
    opts = {"mode": "resumable", "backup_dir": str(tmp_path / "backup"), "out": str(tmp_path / "out.npz"),
            "pause_at": [1, 2], "marker": str(tmp_path / "marker")}
    victim = start(opts)  # runs alongside the uninterrupted run
    deadline = time.time() + TIMEOUT
    while not os.path.exists(opts["marker"]):
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert time.time() < deadline, "the run never reached the kill point"
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)  # in epoch 2 (index 1), after its third step
    victim.communicate(timeout=TIMEOUT)
    assert victim.returncode == -signal.SIGKILL
    assert not os.path.exists(opts["out"])
    backup = os.path.join(opts["backup_dir"], "latest.weights.h5")
    from tf_longformer.training import BackupAndRestore

    assert BackupAndRestore.read_metadata(backup)["epoch"] == 1  # the end of the first epoch

    del opts["pause_at"]
    run_worker(opts)  # resumes at epoch index 1
    resumed, want = load(opts["out"]), uninterrupted.result()
    assert int(resumed["extra|epochs_run"]) == 2 and int(want["extra|epochs_run"]) == 3
    assert_identical(resumed, want)
    assert not os.path.exists(opts["backup_dir"])  # deleted once training finished


def test_crash_while_writing_a_backup_keeps_the_previous_one(uninterrupted, tmp_path):
    opts = {"mode": "resumable", "backup_dir": str(tmp_path / "backup"), "out": str(tmp_path / "out.npz"),
            "crash_in_write": 2}
    proc = start(opts)  # kills itself with half of epoch 2's backup written
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    names = sorted(os.listdir(opts["backup_dir"]))
    assert "latest.weights.h5" in names and any(n.startswith("tmp-") for n in names)
    from tf_longformer.training import BackupAndRestore

    latest = os.path.join(opts["backup_dir"], "latest.weights.h5")
    assert BackupAndRestore.read_metadata(latest)["epoch"] == 1  # the last complete backup, readable
    with h5py.File(latest, "r") as f:
        assert len(f[BackupAndRestore.SEEDS_KEY]) > 0

    del opts["crash_in_write"]
    run_worker(opts)
    assert_identical(load(opts["out"]), uninterrupted.result())
