"""Subcommands of `tf-longformer`: one module each, with a `register(subparsers)` function."""

from __future__ import annotations

import os

# In the order `--help` lists them. A module that does not exist (yet) is skipped.
COMMANDS = ("run", "train", "export", "convert", "bench", "info", "tour")


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
