"""`tf.distribute`: MirroredStrategy on two logical CPU devices and a two-process MultiWorkerMirroredStrategy
cluster on loopback give the single-device training result.

Each run is a fresh process (`tests/training_worker.py`): the logical device layout and TF_CONFIG must be set
before TensorFlow starts. Every run starts from the same saved initial weights and trains 3 SGD steps on a
global batch of 4 (rows with no global token, one and several; padding) with the default Keras loss, or with
the model's own `loss` output (`compile(loss=None)`).

Tolerance: 1e-5 absolute on every weight. A replica computes the mean loss of its half batch and the
gradients are summed after scaling by 1/replicas, so the result equals the single-device mean up to float32
summation order.
"""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from worker_harness import TIMEOUT, WORKER, env, load, run_worker

TOLERANCE = 1e-5


def assert_same_training(got, want, tolerance=TOLERANCE):
    weights = sorted(k for k in want if not k.startswith("extra|"))
    assert weights == sorted(k for k in got if not k.startswith("extra|"))
    assert any(k.startswith("optimizer|") for k in weights)
    worst = max(float(np.max(np.abs(got[k] - want[k]))) if want[k].size else 0.0 for k in weights)
    assert worst <= tolerance, f"largest difference from one device: {worst:.3g}"
    np.testing.assert_allclose(got["extra|loss"], want["extra|loss"], atol=tolerance)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The initial weights, then one device and two mirrored replicas trained from them (one process)."""
    d = tmp_path_factory.mktemp("distributed")
    paths = {name: str(d / f"{name}.npz") for name in ("single", "mirrored", "mirrored_own_loss")}
    paths["init"] = str(d / "init.weights.h5")  # written by the first run
    run_worker({"mode": "mirrored", "init": paths["init"], "out": paths["mirrored"],
                "out_own_loss": paths["mirrored_own_loss"], "out_single": paths["single"]})
    return paths


@pytest.mark.parametrize("result", ["mirrored", "mirrored_own_loss"])
def test_mirrored_strategy_two_devices_equals_one(runs, result):
    mirrored, single = load(runs[result]), load(runs["single"])
    assert int(mirrored["extra|replicas"]) == 2
    assert float(single["extra|moved"]) > 1e-2  # the runs really trained
    assert_same_training(mirrored, single)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_two_processes_equals_one(runs, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        opts = {"mode": "multiworker", "init": runs["init"], "out": str(tmp_path / f"worker{index}.npz")}
        procs.append(subprocess.Popen([sys.executable, WORKER, json.dumps(opts)],
                                      env=env(TF_CONFIG=json.dumps(tf_config)),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    single = load(runs["single"])
    for index in range(2):
        result = load(str(tmp_path / f"worker{index}.npz"))
        assert int(result["extra|replicas"]) == 2 and int(result["extra|index"]) == index
        assert_same_training(result, single)
