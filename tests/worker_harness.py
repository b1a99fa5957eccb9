"""Running `tests/training_worker.py` in fresh processes (test_distributed.py, test_fault_tolerance.py): the
environment (the tf_longformer the tests import, on PYTHONPATH; no inherited TF_CONFIG), a time limit, and the
saved results. Not a test module: the tests import it.
"""

import json
import os
import subprocess
import sys

import numpy as np

from helpers import package_parent

WORKER = os.path.join(os.path.dirname(__file__), "training_worker.py")
ROOT = package_parent()
# Seconds per process: a hang fails the test, not a slow machine. A run took 8-30 s on a two-core machine
# (TensorFlow 2.21, the one-layer config; the MirroredStrategy run is the longest, and took about 90 s on TensorFlow
# 2.16 with two layers); in CI it shares the cores with three pytest processes.
TIMEOUT = 600


def env(**extra):
    out = dict(os.environ)
    out["PYTHONPATH"] = ROOT + os.pathsep + out.get("PYTHONPATH", "")
    out["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


def run_worker(opts, **extra_env):
    proc = subprocess.run([sys.executable, WORKER, json.dumps(opts)], env=env(**extra_env), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def load(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
