"""Files and folders: atomic writes (nothing half-written survives a crash) and where a checkpoint lives (a local
folder, or a hub id downloaded with `huggingface_hub` when it is installed). A leaf module: it imports nothing of
tf_longformer, so the config, the checkpoints, the tokenizer and the jobs can all use it.
"""

from __future__ import annotations

import os
import re
import tempfile

HUB_PATTERNS = [
    "config.json", "*.safetensors", "model.safetensors.index.json", "tf_model.h5", "pytorch_model.bin*",
    "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, unreadable, or not fitting the model."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str, data: bytes, shared: bool = False) -> None:
    """Writes `data` to `path` through a temporary file and a rename: a crash never leaves half a file.

    The file is private to its owner (0600, as `mkstemp` makes it) unless `shared`: then it gets the permissions
    a plain `open(path, "w")` would give (0666 less the umask), for reports and plots meant to be read by others.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if shared:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_files(files: dict[str, bytes]) -> None:
    """Writes several files that belong together (weights + config) with the least exposure to a crash.

    Every file is first written in full and synced under a temporary name; only then are they renamed over
    their targets, one right after the other, and the directory is synced. A crash before the renames leaves
    every previous file as it was (and a `.tmp-*` file behind, which nothing reads); only a crash between two
    back-to-back renames could pair a new file with an old one.
    """
    staged = []
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    for directory in {os.path.dirname(os.path.abspath(p)) for p in files}:
        fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """Makes renames inside `directory` durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def resolve_checkpoint_dir(path_or_id) -> str:
    """A local directory, or a hub id downloaded with `huggingface_hub` (when installed and online)."""
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise CheckpointError(f"{path!r} is a file; give the checkpoint DIRECTORY (with config.json and weights).")
    if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", path) or path.startswith((".", "/")):
        raise CheckpointError(f"No checkpoint directory at {path!r}.")
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(
            f"{path!r} is not a local directory, and it looks like a hub id, but `huggingface_hub` is not "
            "installed to download it. `pip install huggingface_hub`, or pass a local directory."
        ) from None
    try:
        return huggingface_hub.snapshot_download(path, allow_patterns=HUB_PATTERNS)
    except Exception as e:  # offline, unknown repo, auth: all end the same way for the user
        raise CheckpointError(
            f"{path!r} is not a local directory and could not be downloaded from the Hugging Face hub "
            f"({type(e).__name__}: {e}). Check the id and the network, or pass a local directory."
        ) from e


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Saves a matplotlib figure as a PNG at `path` atomically (rendered in memory, then `atomic_write_bytes`,
    shared: a plot is for reading), and closes it."""
    import io

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), shared=True)
