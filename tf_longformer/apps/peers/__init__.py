"""Scripts that run in ANOTHER Python environment, started as files (`python PATH ...`), never imported here.

`hf_tf_longformer_bench.py`: the reference TF Longformer (Hugging Face `transformers` 4.x + `tf-keras`) for
`tf-longformer bench --peer-python PY`. It lives in the package so an installed tf-longformer has it;
`script_path(name)` locates it.
`onnx_runtime_bench.py`: the `onnx` implementation's timing in ONNX Runtime, in a process without TensorFlow.
`saved_model_bench.py`: the `saved_model` implementation's timing of the exported SavedModel, as a server loads it.
"""

from __future__ import annotations

import os

HF_TF_LONGFORMER_BENCH = "hf_tf_longformer_bench.py"
ONNX_RUNTIME_BENCH = "onnx_runtime_bench.py"  # the `onnx` implementation's ONNX Runtime side (no TensorFlow)
SAVED_MODEL_BENCH = "saved_model_bench.py"  # the `saved_model` implementation's serving side (no tf_longformer)


def script_path(name: str = HF_TF_LONGFORMER_BENCH) -> str:
    """The absolute path of a peer script shipped in this package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
