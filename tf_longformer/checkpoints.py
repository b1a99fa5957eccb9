"""Hugging Face checkpoint files in and out: safetensors, the HF TF `tf_model.h5`, `pytorch_model.bin`.

Every reader returns a flat `{name: numpy array}` in the PyTorch naming and layout of `transformers`
(`Linear.weight` is `[out, in]`), so the mapping onto our Keras variables is written once.
"""

from __future__ import annotations

import json
import logging
import os
import re

import numpy as np

from tf_longformer.config import CONFIG_NAME, LongformerConfig
from tf_longformer.files import CheckpointError, atomic_write_bytes

logger = logging.getLogger("tf_longformer")

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TF_WEIGHTS_NAME = "tf_model.h5"
PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"


# ------------------------------------------------------------------------------------------------- config
def read_config(directory: str, **overrides):
    """`config.json` of a checkpoint directory; every error names the file."""
    path = os.path.join(directory, CONFIG_NAME)
    try:
        return LongformerConfig.from_json_file(path, **overrides)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No config file at {path!r}: a checkpoint directory needs config.json next to the weights."
        ) from None
    except OSError as e:
        raise CheckpointError(f"Could not read the config file {path!r}: {e}") from e
    except (ValueError, TypeError) as e:
        if path in str(e):
            raise
        raise type(e)(f"Invalid config file {path!r}: {e}") from e


# ---------------------------------------------------------------------------------------------------- readers
def read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:  # gives numpy the bfloat16 dtype (a dependency of TensorFlow), so bf16 checkpoints read too
        import ml_dtypes  # noqa: F401
    except ImportError:
        pass

    try:
        out = {}
        with safe_open(path, framework="numpy") as f:
            for name in f.keys():
                out[name] = f.get_tensor(name)
        return out
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"Could not read safetensors file {path!r}: {e}") from e


def read_pytorch_bin(path: str) -> dict[str, np.ndarray]:
    """Reads `pytorch_model.bin` ONLY through `torch.load(weights_only=True)`: no code from the file runs."""
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path!r} is a PyTorch pickle; it is only read with `torch.load(weights_only=True)`, and torch is "
            "not installed. Install torch, or convert the checkpoint to model.safetensors."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"Could not read {path!r} with torch.load(weights_only=True) (refused or corrupt): {e}"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path!r} does not hold a state dict (got {type(state).__name__}).")
    not_tensors = sorted(f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{path!r} is not a flat state dict of tensors (name -> tensor); these entries are not tensors: "
            f"{not_tensors[:10]}{' ...' if len(not_tensors) > 10 else ''}. A training checkpoint (e.g. "
            "{'model': state_dict, 'optimizer': ...}) must be reduced to the model's state dict first."
        )
    return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def _tf_name_to_torch(name: str) -> tuple[str, bool]:
    """A HF TF weight name -> (PyTorch name, whether the array is a Keras kernel to transpose).

    `longformer/tf_longformer_model/longformer/encoder/layer_._0/attention/self/query/kernel:0` becomes
    `longformer.encoder.layer.0.attention.self.query.weight`: the Keras model's scope (and the h5 group
    before it, when present) is dropped, `layer_._N` becomes `layer.N`, and Keras names become PyTorch names.
    """
    parts = [p for p in name.split(":")[0].split("/") if p]
    scope = next((i for i, p in enumerate(parts[:2]) if p.startswith("tf_longformer")), None)
    if scope is not None:  # the Keras model's scope (and the h5 group before it, when present)
        parts = parts[scope + 1:]
    leaf = parts[-1]
    is_kernel = leaf == "kernel"
    parts[-1] = {"kernel": "weight", "gamma": "weight", "beta": "bias", "embeddings": "weight"}.get(leaf, leaf)
    torch_name = re.sub(r"layer_\._(\d+)", r"layer.\1", ".".join(parts))
    return torch_name, is_kernel


def read_tf_h5(path: str) -> dict[str, np.ndarray]:
    """Reads a Hugging Face TF (`TFLongformer*`, Keras 2) `tf_model.h5` into PyTorch names and layout."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"Could not read HDF5 file {path!r}: {e}") from e
    state: dict[str, np.ndarray] = {}
    try:
        if "layer_names" not in f.attrs:
            raise CheckpointError(f"{path!r} is HDF5 but not a Keras weights file (no 'layer_names' attribute).")
        for layer in f.attrs["layer_names"]:
            group = f[layer.decode() if isinstance(layer, bytes) else layer]
            for wn in group.attrs.get("weight_names", []):
                wn = wn.decode() if isinstance(wn, bytes) else wn
                name, is_kernel = _tf_name_to_torch(wn)
                array = np.asarray(_own_dataset(group, wn, path))
                state[name] = np.ascontiguousarray(array.T if is_kernel else array)  # Keras [in, out] -> [out, in]
    except (OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path!r} is not a readable Hugging Face TF weights file: {e}") from e
    finally:
        f.close()
    return state


def _own_dataset(group, name: str, path: str):
    """The dataset `name` of `group`, stored inside this file: links to other files, virtual datasets and
    external raw storage are refused (they would read other files of this machine into the weights)."""
    import h5py

    link = group.get(name, getlink=True)
    if link is None:
        raise CheckpointError(f"{path!r} lists the weight {name!r} but does not hold it (truncated or corrupt file).")
    if not isinstance(link, h5py.HardLink):
        raise CheckpointError(f"{path!r}: the weight {name!r} is a {type(link).__name__} to data outside the file; "
                              "refused (weights must be stored in the file itself).")
    ds = group[name]
    if not isinstance(ds, h5py.Dataset):
        raise CheckpointError(f"{path!r}: the weight {name!r} is not a dataset.")
    if ds.is_virtual or ds.external:
        raise CheckpointError(f"{path!r}: the weight {name!r} reads its data from other files (virtual or external "
                              "storage); refused (weights must be stored in the file itself).")
    return ds


def _read_index(directory: str, index_name: str, reader) -> dict[str, np.ndarray]:
    index_path = os.path.join(directory, index_name)
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"Could not read the shard index {index_path!r}: {type(e).__name__}: {e}") from e
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"The shard index {index_path!r} must map tensor names to shard file names.")
    state: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        # A shard is a file name in this directory: no path, so an index cannot point at other files.
        if shard in ("", ".", "..") or os.path.basename(shard) != shard or "/" in shard or "\\" in shard:
            raise CheckpointError(f"The shard index {index_path!r} names the shard {shard!r}; shards must be plain "
                                  "file names in the checkpoint directory.")
        state.update(reader(os.path.join(directory, shard)))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise CheckpointError(f"The shard index {index_path!r} lists tensors that its shards do not hold: "
                              f"{missing[:10]}{' ...' if len(missing) > 10 else ''}.")
    return state


def weight_problem(array) -> str | None:
    """Why `array` cannot be a weight (not floating point, or not finite), or None."""
    dtype = np.asarray(array).dtype
    if dtype.kind != "f" and dtype.name != "bfloat16":
        return f"dtype {dtype}, not floating point"
    if not np.isfinite(np.asarray(array, dtype=np.float32)).all():
        return "holds NaN or infinite values"
    return None


def read_state_dict(directory: str) -> tuple[dict[str, np.ndarray], str]:
    """The weights of a checkpoint directory, in PyTorch naming; also the file they came from."""
    candidates = [
        (SAFE_WEIGHTS_NAME, read_safetensors),
        (SAFE_WEIGHTS_INDEX_NAME, lambda p: _read_index(directory, SAFE_WEIGHTS_INDEX_NAME, read_safetensors)),
        (TF_WEIGHTS_NAME, read_tf_h5),
        (PT_WEIGHTS_NAME, read_pytorch_bin),
        (PT_WEIGHTS_INDEX_NAME, lambda p: _read_index(directory, PT_WEIGHTS_INDEX_NAME, read_pytorch_bin)),
    ]
    for name, reader in candidates:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return reader(path), path
    raise CheckpointError(
        f"No weights in {directory!r}: expected one of {[c[0] for c in candidates]}."
    )


def safetensors_bytes(state: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in state.items()}, metadata=metadata or {"format": "pt"})


def write_safetensors(path: str, state: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    atomic_write_bytes(path, safetensors_bytes(state, metadata))
