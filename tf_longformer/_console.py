"""How loud the `tf-longformer` command line is: the job on the console, not TensorFlow's chatter.

By default every command is quiet:
- `TF_CPP_MIN_LOG_LEVEL=3`: no C++ INFO, WARNING or ERROR lines from TensorFlow (CUDA probes on a machine
  without a GPU, oneDNN and CPU-feature notices, warnings of graph passes). A value the user set wins.
- The lines TensorFlow's C++ logging writes while TensorFlow is being IMPORTED do not follow that variable
  (absl logging, before it is initialised, writes everything to stderr): stderr goes to a temporary file
  during `import tensorflow`, and is shown only if the import fails.
- The `tensorflow` and `absl` Python loggers show errors only; deprecation and future warnings are hidden.
  Warnings of this package (`tf_longformer.*`, e.g. inputs cut to the model's limit) still show.

`--verbose` anywhere on the command line (before a `--`) changes none of this: everything shows.

Why the package's `__init__` calls `prepare()`: importing `tf_longformer.cli` runs `tf_longformer/__init__.py`
first, and that imports TensorFlow, so settings made in cli.py come after TensorFlow's start-up lines.
`prepare()` acts only when this process IS the command line (the `tf-longformer` console script or
`python -m tf_longformer.cli`); a program that imports tf_longformer is left alone. Nothing here imports
TensorFlow except `_import_tensorflow_quietly`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings

VERBOSE_FLAG = "--verbose"
SCRIPT_NAMES = ("tf-longformer", "tf-longformer-script")  # the console script (and its Windows wrapper)
CLI_MODULES = ("tf_longformer.cli", "tf_longformer.apps.bench")  # `python -m ...` entry points of the commands
QUIET_LEVEL = "3"

verbose = False  # what the command line asked for; set by prepare() and by cli.main()
_configured = False


def _module_run(orig_argv) -> str | None:
    """The module of `python [options] -m MODULE ...`, or None (a script, `-c`, or no python command)."""
    args = list(orig_argv[1:])
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m":
            return args[i + 1] if i + 1 < len(args) else None
        if a.startswith("-m"):
            return a[2:]
        if a in ("-W", "-X"):  # options that take a separate value
            i += 2
            continue
        if not a.startswith("-") or a.startswith("-c") or a == "-":
            return None
        i += 1
    return None


def is_command_line(argv=None, orig_argv=None) -> bool:
    """Whether this process is the `tf-longformer` command line (not a program importing tf_longformer)."""
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    name = os.path.splitext(re.split(r"[\\/]", argv[0] if argv else "")[-1])[0]
    if name in SCRIPT_NAMES:
        return True
    module = _module_run(orig_argv)
    if module == "tf_longformer.apps.bench" and "--worker" in orig_argv:
        return False  # one measurement of `tf-longformer bench`: its output is captured by the parent
    return module in CLI_MODULES


def wants_verbose(args) -> bool:
    """`--verbose` among the command line's arguments (before a `--`)."""
    for a in args:
        if a == "--":
            return False
        if a == VERBOSE_FLAG:
            return True
    return False


def configure(verbose_: bool) -> None:
    """Quiet (the default) or leave everything as it is (`--verbose`). Idempotent."""
    global verbose, _configured
    verbose = bool(verbose_)
    if verbose or _configured:
        return
    _configured = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:  # never create the `absl` logger before absl does (it sets its class)
        logging.getLogger("absl").setLevel(logging.ERROR)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=category, module=r"tf_longformer(\.|$)")  # ours still show


def _import_tensorflow_quietly() -> None:
    """`import tensorflow`, its start-up lines on stderr sent to a temporary file (replayed if it fails)."""
    if "tensorflow" in sys.modules or int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) < 1:
        return  # a user who asked for TensorFlow's INFO lines gets them
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    with tempfile.TemporaryFile() as tmp:
        failed = True
        try:
            os.dup2(tmp.fileno(), 2)
            import tensorflow  # noqa: F401

            failed = False
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                tmp.seek(0)
                sys.stderr.write(tmp.read().decode("utf-8", "replace"))
                sys.stderr.flush()
    if "absl.logging" in sys.modules:
        logging.getLogger("absl").setLevel(logging.ERROR)


def prepare() -> None:
    """Called first by `tf_longformer/__init__.py`: quiets TensorFlow before it is imported, on the command line only."""
    if not is_command_line():
        return
    configure(wants_verbose(sys.argv[1:]))
    if not verbose:
        try:
            _import_tensorflow_quietly()
        except ValueError:  # TF_CPP_MIN_LOG_LEVEL not a number: TensorFlow's business, not ours
            pass
