"""The `tf-longformer` command line: `tf-longformer COMMAND --help` for each command.

Quiet by default (TensorFlow's C++ logs, its Python logger and deprecation warnings hidden); `--verbose`, before
or after the command, shows everything. See tf_longformer/_console.py: the quieting happens when the package is
imported, before TensorFlow is.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tf_longformer import _console
from tf_longformer.commands import COMMANDS

VERBOSE_HELP = "show TensorFlow's logs and warnings (hidden by default)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf-longformer", description="The Longformer for Keras 3 / TensorFlow.")
    parser.add_argument(_console.VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tf_longformer.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"tf_longformer.commands.{name}":
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():  # `tf-longformer train --verbose` as well as `tf-longformer --verbose train`
        command.add_argument(_console.VERBOSE_FLAG, action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _console.configure(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
