"""Subcommands of `tf-longformer`: one module each, with a `register(subparsers)` function."""

from __future__ import annotations

# In the order `--help` lists them. A module that does not exist (yet) is skipped.
COMMANDS = ("run", "train", "recipe", "export", "convert", "bench", "info", "tour")


def quiet_tf() -> None:
    """Quiets TensorFlow unless `--verbose` (cli.main has done it already; kept for the commands' calls)."""
    from tf_longformer import _console

    _console.configure(_console.verbose)
