"""The `tf-longformer` command line: `tf-longformer COMMAND --help` for each command."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

from tf_longformer.commands import COMMANDS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf-longformer", description="The Longformer for Keras 3 / TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tf_longformer.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"tf_longformer.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
