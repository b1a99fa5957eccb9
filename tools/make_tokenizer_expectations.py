"""Record what `transformers.LongformerTokenizerFast` answers to the calls of tests/test_tokenizer.py.

    python tools/make_tokenizer_expectations.py [--output PATH]   # default: tests/fixtures/tokenizer/expected.json

Needs transformers (the pinned test stack, e.g. `pip install -e .[reference]`). It runs the `live` comparison tests
of tests/test_tokenizer.py (`-m reference`) with a recorder plugin: every call those tests make on the transformers
tokenizer (from_pretrained with its folder and keywords, calls with their texts / pairs / words and padding /
truncation / max_length / stride / return_* options, decode / convert / tokenize, attributes, the methods of the
returned BatchEncoding) is answered by transformers and written down, keyed by the canonical form of the call. So
the recording holds exactly the calls the tests make, no list of cases is kept twice. The tests' `recorded` variant
answers from the file without transformers (CI's latest and minimum legs); the `live` variant fails when the file
no longer matches transformers or lacks a call, which is when to run this tool again.

The file is written only when all those tests pass (a test that stops early would leave its later calls out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join("tests", "test_tokenizer.py")
DEFAULT_OUTPUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "expected.json")


class Recorder:
    """Found by tests/test_tokenizer.py through this attribute; the tests put their recording `_Book` in `book`."""

    tf_longformer_tokenizer_recorder = True
    book = None


def _write(path: str, document: dict) -> None:
    """Plain JSON, one recorded call per line (readable diffs), written atomically."""
    calls = document.pop("calls")
    head = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, sort_keys=True)}," for k, v in document.items()]
    compact = dict(ensure_ascii=False, separators=(",", ":"))
    body = [f"    {json.dumps(k)}: {json.dumps(v, **compact)}" for k, v in calls.items()]
    text = "{\n" + "\n".join(head) + '\n  "calls": {\n' + ",\n".join(body) + "\n  }\n}\n"
    json.loads(text)  # well formed
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args, pytest_args = parser.parse_known_args(argv)  # anything else goes to pytest (e.g. -x)

    import pytest
    import tokenizers
    import transformers

    os.chdir(ROOT)
    sys.path.insert(0, ROOT)  # this checkout's tf_longformer (the tests pass its outputs to decode & co.)
    recorder = Recorder()
    status = pytest.main(
        [TEST_FILE, "-m", "reference", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *pytest_args],
        plugins=[recorder],
    )
    if status != 0 or recorder.book is None or not recorder.book.calls:
        print(f"make_tokenizer_expectations: the live tests did not all pass (pytest status {int(status)}) or "
              f"recorded nothing; {args.output} left as it was.", file=sys.stderr)
        return 1
    meta = {
        "generated_by": "tools/make_tokenizer_expectations.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "n_calls": len(recorder.book.calls),
    }
    _write(args.output, recorder.book.export(meta))
    size = os.path.getsize(args.output)
    print(f"make_tokenizer_expectations: {len(recorder.book.calls)} calls, {len(recorder.book.folders)} folders, "
          f"{size / 1e6:.2f} MB -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
