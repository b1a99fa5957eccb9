"""`tf_longformer.tokenizer` against `transformers.LongformerTokenizerFast` on a small byte-level BPE fixture.

The fixture (tests/fixtures/tokenizer, made by tools/make_tokenizer_fixture.py with the `tokenizers` library only)
is a 400-token vocabulary trained on a few paragraphs of mixed-language text. Note for the real
`allenai/longformer-base-4096` vocabulary (not available offline): transformers documents
`tokenizer("Hello world")["input_ids"] == [0, 31414, 232, 2]`.

Every comparison with transformers runs twice, through the `reference` fixture:

* `live`: against `transformers` itself (carries the `reference` marker, skips without transformers). Each call
  it makes is also checked against the recording below, so a stale or incomplete recording FAILS here.
* `recorded`: against tests/fixtures/tokenizer/expected.json, what transformers returned for exactly these calls
  (written by tools/make_tokenizer_expectations.py, which runs the `live` tests in record mode). Runs without
  transformers, e.g. in CI's latest and minimum legs (`-m "not reference"`); a call that is not in the recording
  FAILS (it never skips), so the tests and the recording cannot drift apart silently.

What checks our tokenizer alone runs without either.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import os
import pickle
import random
import shutil
from collections.abc import Mapping

import numpy as np
import pytest

from tf_longformer.tokenizer import (
    BatchEncoding,
    LongformerTokenizer,
    LongformerTokenizerFast,
    clean_up_tokenization,
    train_tokenizer,
)

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "tokenizer")


def _long_document(n_chars: int = 6000, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = (
        "the longformer attention window global local sequence tokens élève théâtre München Köln 東京 首都 "
        "😀 🚀 👍 3.14159 $12.50 €9,99 don't we're isn't model(batch) loss.backward() -- ? ! , ."
    ).split(" ")
    separators = [" ", " ", " ", "  ", "\n", "\t", "\n\n", "   "]
    parts: list[str] = []
    while sum(len(p) for p in parts) < n_chars:
        parts.append(rng.choice(words))
        parts.append(rng.choice(separators))
    return "".join(parts)


TEXTS = [
    "Hello world",
    "",
    " ",
    "   leading and trailing spaces   ",
    "Whitespace   runs\t\ttabs\n\nnewlines\r\nand\u00a0nbsp\u3000ideographic space",
    "Il était une fois une élève très curieuse. Ça dépend!",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。",
    "Emoji 😀🎉🚀 thumbs 👍🏽 heart ❤️ family 👨\u200d👩\u200d👧 flags 🇫🇷",
    "Combining e\u0301 vs é, ligature ﬁ, math ∮ ⨌ and zero\u200bwidth",
    "A sentence with a <mask> token and <mask>at the start",
    "<s>special</s> tokens <pad> inside <unk> the text",
    "def f(x):\n\treturn x ** 2  # comment\n",
    "Numbers 1,234,567.89 and 1e-12; prices $12.50 / €9,99.",
    "Don't stop, we're nearly there -- isn't it great? I'm sure you'll agree .",
    _long_document(),
]
PLAIN_TEXTS = [t for t in TEXTS if "<" not in t]
PAIRS = [
    ("Hello world", "How are you today?"),
    ("東京は日本の首都です。", "Emoji 😀🎉"),
    ("A short one", "A much much longer second sequence of text that goes on and on for a while."),
    ("A first sequence that is considerably longer than the second one, with many words in it.", "short"),
    ("", "only second"),
]
WORDS = [
    ["Hello", "world"],
    ["Il", "était", "une", "élève", "😀", "東京"],
    ["spaces", "  inside", "words ", "\ttab"],
    ["single"],
]


# ------------------------------------------------------------------------------------------- the recorded reference
#
# A reference tokenizer is reached through a `_RefNode`: every step taken from the loaded tokenizer (an attribute,
# a call with its arguments, `len()`, a method of a returned BatchEncoding) extends the node's path, and the
# canonical JSON of that path (loader, fingerprint of the folder's files, from_pretrained keywords, then the steps
# with their full arguments) hashed is the key of the step's result in the recording. A `_Book` resolves a step in
# one of three modes:
#   "record"  (tools/make_tokenizer_expectations.py): ask transformers, store its answer;
#   "check"   (the `live` tests): ask transformers, and FAIL unless the recording holds the same answer;
#   "replay"  (the `recorded` tests): answer from the recording, FAIL on a step it does not hold.
# Answers: a value (JSON; tuples and dicts tagged, long runs of equal items run-length coded), a BatchEncoding
# (its keys in order with the values as nested lists, and its own node for tokens()/word_ids()/...), an object
# (an attribute such as a bound method or `backend_tokenizer`, reached further through its node), or an exception,
# recorded as its type. Failures use `pytest.fail`, which `pytest.raises(Exception)` / `except Exception` in a
# test cannot swallow.

EXPECTED_PATH = os.path.join(FIXTURE_DIR, "expected.json")
EXPECTED_FORMAT = 1
REGENERATE = "regenerate it with `python tools/make_tokenizer_expectations.py` (needs transformers)"
# The files transformers' tokenizer loading reads from a folder; a folder is known to the recording by these.
TOKENIZER_FILES = (
    "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json",
)
_RUN_MIN_LIST, _RUN_MIN = 64, 16  # lists of >= 64 items store their runs of >= 16 equal items as one segment


def _canon(value):
    """A call argument as canonical JSON-able data (types that transformers tells apart stay apart)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_canon(v) for v in value]}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist()}
    if isinstance(value, Mapping):
        return {"dict": sorted([str(k), _canon(v)] for k, v in value.items())}
    raise TypeError(f"recorded reference: no canonical form for a {type(value).__name__} argument: {value!r:.80}")


def _encode(value):
    """A result as JSON: tuples / dicts tagged, long lists run-length coded; see `_decode`. (A BatchEncoding is
    recorded as its items in order, each value `_plain`ed first.)"""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, Mapping):  # sorted: dicts compare regardless of order (get_vocab() has none to rely on)
        return {"dict": sorted([k, _encode(v)] for k, v in value.items())}
    if isinstance(value, list):
        items = [_encode(v) for v in value]
        if len(items) < _RUN_MIN_LIST:
            return items
        segments, literal, i = [], [], 0
        while i < len(items):
            j = i
            while j < len(items) and items[j] == items[i]:
                j += 1
            if j - i >= _RUN_MIN:
                if literal:
                    segments.append(literal)
                    literal = []
                segments.append({"repeat": items[i], "count": j - i})
            else:
                literal.extend(items[i:j])
            i = j
        if not any(isinstance(seg, dict) for seg in segments):
            return items
        return {"runs": segments + ([literal] if literal else [])}
    raise TypeError(f"recorded reference: cannot record a {type(value).__name__} result: {value!r:.80}")


def _decode(data):
    if isinstance(data, list):
        return [_decode(v) for v in data]
    if isinstance(data, dict):
        if "tuple" in data:
            return tuple(_decode(v) for v in data["tuple"])
        if "dict" in data:
            return {k: _decode(v) for k, v in data["dict"]}
        if "runs" in data:
            out = []
            for seg in data["runs"]:
                if isinstance(seg, dict):
                    out.extend(_decode(seg["repeat"]) for _ in range(seg["count"]))
                else:
                    out.extend(_decode(seg))
            return out
        raise ValueError(f"recorded reference: unknown encoded value {data!r:.80}")
    return data


def _is_value(value) -> bool:
    """A plain value (recorded as such), as opposed to an object reached further (method, backend tokenizer)."""
    if value is None or isinstance(value, (bool, int, float, str, np.integer)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_value(v) for v in value)
    if isinstance(value, dict):  # a plain dict (get_vocab()); not a BatchEncoding
        return all(isinstance(k, str) and _is_value(v) for k, v in value.items())
    return False


def _is_batch_encoding(value) -> bool:
    return isinstance(value, Mapping) and callable(getattr(value, "word_ids", None))


def _short(value, limit: int = 40) -> str:
    """A readable, abbreviated argument for messages and the recording's `call` texts."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}…[{len(value)} chars]"
    if isinstance(value, np.ndarray):
        return f"ndarray{list(value.shape)}"
    if isinstance(value, (list, tuple)):
        open_, close = "[]" if isinstance(value, list) else "()"
        inner = ", ".join(_short(v, 16) for v in value[:4]) + (f", …[{len(value)} items]" if len(value) > 4 else "")
        return open_ + inner + close
    return repr(value)


def _call_text(args, kwargs) -> str:
    return "(" + ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]) + ")"


def _canonical_file(name: str, path: str):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not name.endswith(".json"):
        return text.replace("\r\n", "\n")
    data = json.loads(text)
    if name == "tokenizer.json" and isinstance(data.get("model"), dict) and data["model"].get("ignore_merges") is False:
        # tokenizers >= 0.20 writes BPE's `ignore_merges` (default false), releases before it neither write nor read
        # it: the same tokenizer either way.
        del data["model"]["ignore_merges"]
    return data


def _digest(data) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _folder_fingerprint(directory) -> tuple[str, dict[str, str]]:
    """(fingerprint of the tokenizer files of `directory`, {file: digest}): what a folder is to the recording."""
    files = {
        name: _canonical_file(name, os.path.join(directory, name))
        for name in TOKENIZER_FILES
        if os.path.isfile(os.path.join(directory, name))
    }
    return _digest(files), {name: _digest(content) for name, content in files.items()}


@functools.lru_cache(maxsize=None)
def _load_expected() -> dict:
    if not os.path.isfile(EXPECTED_PATH):
        pytest.fail(f"recorded reference: {EXPECTED_PATH} is missing; {REGENERATE}", pytrace=False)
    with open(EXPECTED_PATH, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("format") != EXPECTED_FORMAT:
        pytest.fail(f"recorded reference: {EXPECTED_PATH} has format {data.get('format')!r}, these tests read "
                    f"format {EXPECTED_FORMAT}; {REGENERATE}", pytrace=False)
    return data


class _Book:
    """The recording, and how a step is answered: mode "record", "check" (live, against the recording) or "replay"."""

    def __init__(self, mode: str, data: dict | None = None) -> None:
        self.mode = mode
        data = data or {}
        self.calls: dict[str, dict] = data.get("calls", {})
        self.folders: dict[str, dict] = data.get("folders", {})

    def export(self, meta: dict) -> dict:
        """The recording as the JSON document tools/make_tokenizer_expectations.py writes."""
        return {"format": EXPECTED_FORMAT, **meta, "folders": self.folders, "calls": self.calls}

    def _missing(self, key: str, text: str, folder: str | None) -> None:
        lines = [f"recorded reference: no recording of {text} (key {key}) in {EXPECTED_PATH}."]
        if folder is not None and folder not in self.folders:
            lines.append(f"The folder it was loaded from (fingerprint {folder}) is not in the recording; "
                         "recorded folders:")
            lines += [f"  {fp}: {info['label']}: {info['files']}" for fp, info in self.folders.items()]
        lines.append(f"A test makes a call that was not recorded (or with other arguments / from another folder): "
                     f"{REGENERATE}")
        pytest.fail("\n".join(lines), pytrace=False)

    def resolve(self, node: "_RefNode", step: list, text: str, compute, folder_info=None):
        """The answer to `step` taken from `node`: a plain value, a BatchEncoding-like dict, or a child `_RefNode`."""
        path = [*node._path, step]
        key = _digest(path)
        text = node._text + text
        if self.mode == "replay":
            entry = self.calls.get(key)
            if entry is None:
                self._missing(key, text, folder_info[0] if folder_info else None)
            return self._answer(entry, path, text, None)
        try:
            live, error = compute(), None
        except Exception as exc:  # recorded as its type; re-raised below
            live, error = None, exc
        entry = self._entry(text, live, error)
        if folder_info:
            self.folders.setdefault(folder_info[0], {"label": folder_info[1], "files": folder_info[2]})
        recorded = self.calls.get(key)
        if self.mode == "record":
            if recorded is not None and recorded["result"] != entry["result"]:
                pytest.fail(f"recorded reference: {text} answered differently on a second call", pytrace=False)
            self.calls[key] = entry
        else:  # check
            if recorded is None:
                self._missing(key, text, folder_info[0] if folder_info else None)
            if recorded["result"] != entry["result"]:
                pytest.fail(
                    f"recorded reference: the recording of {text} (key {key}) is stale: transformers now answers "
                    f"{_short(str(entry['result']), 200)}, the recording holds {_short(str(recorded['result']), 200)}; "
                    f"{REGENERATE}",
                    pytrace=False,
                )
        if error is not None:
            raise error
        return self._answer(entry, path, text, live)

    @staticmethod
    def _entry(text: str, live, error) -> dict:
        if error is not None:
            kind = type(error)
            builtin = next(c for c in kind.__mro__ if getattr(builtins, c.__name__, None) is c)
            result = {"raises": f"{kind.__module__}.{kind.__qualname__}", "builtin": builtin.__name__}
        elif _is_batch_encoding(live):
            result = {"encoding": [[k, _encode(_plain(v))] for k, v in live.items()]}
        elif _is_value(live):
            result = {"value": _encode(live)}
        else:
            result = {"object": type(live).__name__}
        return {"call": text, "result": result}

    def _answer(self, entry: dict, path: list, text: str, live):
        result = entry["result"]
        if "raises" in result:  # replay only: live errors are re-raised as they are
            name = result["raises"].rsplit(".", 1)[-1]
            base = getattr(builtins, result["builtin"])
            kind = base if result["raises"] == f"builtins.{base.__name__}" else type(name, (base,), {})
            raise kind(f"recorded reference: {text} raised {result['raises']}")
        if "object" in result:
            return _RefNode(self, path, text, live)
        if "encoding" in result:
            data = dict(live.items()) if live is not None else {k: _decode(v) for k, v in result["encoding"]}
            return _RefEncoding(data, _RefNode(self, path, text, live))
        return live if self.mode != "replay" else _decode(result["value"])


class _RefNode:
    """Something reached from a reference tokenizer (the tokenizer itself, a method, `backend_tokenizer`...)."""

    def __init__(self, book: _Book, path: list, text: str, target=None) -> None:
        object.__setattr__(self, "_book", book)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._book.resolve(self, ["attr", name], f".{name}", lambda: getattr(self._target, name))

    def __call__(self, *args, **kwargs):
        step = ["call", _canon(list(args)), _canon(kwargs)]
        return self._book.resolve(self, step, _call_text(args, kwargs), lambda: self._target(*args, **kwargs))

    def __len__(self) -> int:
        return self._book.resolve(self, ["len"], ".__len__()", lambda: len(self._target))

    def __repr__(self) -> str:
        return f"<reference {self._book.mode}: {self._text}>"


class _RefEncoding(dict):
    """A reference BatchEncoding: its items (nested lists when replayed), and its methods through its node."""

    def __init__(self, data: dict, node: _RefNode) -> None:
        super().__init__(data)
        self._node = node

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._node, name)


class _ReferenceLoader:
    """`load(directory, label, **kwargs)`: the reference tokenizer `loader.from_pretrained(directory, **kwargs)`."""

    def __init__(self, book: _Book, transformers=None) -> None:
        self.book = book
        self.mode = book.mode
        self._transformers = transformers

    def load(self, directory, label: str, loader: str = "LongformerTokenizerFast", **kwargs) -> _RefNode:
        fingerprint, files = _folder_fingerprint(directory)
        root = _RefNode(self.book, [], "")
        step = ["load", loader, fingerprint, _canon(kwargs)]
        text = f"{loader}.from_pretrained(<{label}>{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
        compute = lambda: getattr(self._transformers, loader).from_pretrained(directory, **kwargs)  # noqa: E731
        return self.book.resolve(root, step, text, compute, folder_info=(fingerprint, label, files))


def _recorder(config):
    """The plugin object of tools/make_tokenizer_expectations.py (attribute `tf_longformer_tokenizer_recorder`), if
    it runs these tests: then the `live` tests record into its `book` instead of checking the recording."""
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "tf_longformer_tokenizer_recorder", False):
            if getattr(plugin, "book", None) is None:
                plugin.book = _Book("record")
            return plugin
    return None


# ---------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=[pytest.param("live", marks=pytest.mark.reference), "recorded"])
def reference(request):
    """Loads reference tokenizers: transformers checked against the recording (`live`), or the recording alone."""
    if request.param == "recorded":
        return _ReferenceLoader(_Book("replay", _load_expected()))
    transformers = pytest.importorskip("transformers")
    recorder = _recorder(request.config)
    book = recorder.book if recorder is not None else _Book("check", _load_expected())
    return _ReferenceLoader(book, transformers)


@pytest.fixture(scope="module")
def vocab_merges_dir(tmp_path_factory):
    """A copy of the fixture with only vocab.json + merges.txt (the classic file pair)."""
    directory = tmp_path_factory.mktemp("vocab_merges")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(FIXTURE_DIR, name), directory / name)
    return str(directory)


@pytest.fixture(scope="module", params=["tokenizer.json", "vocab+merges"])
def pair(request, reference, vocab_merges_dir):
    """(ours, reference) loaded from the same folder."""
    directory = FIXTURE_DIR if request.param == "tokenizer.json" else vocab_merges_dir
    return (
        LongformerTokenizerFast.from_pretrained(directory),
        reference.load(directory, request.param),
    )


@pytest.fixture(scope="module", params=["tokenizer.json", "vocab+merges"])
def our_tok(request, vocab_merges_dir):
    """Our tokenizer alone, from the same two folders as `pair`: for the checks that need no reference."""
    directory = FIXTURE_DIR if request.param == "tokenizer.json" else vocab_merges_dir
    return LongformerTokenizerFast.from_pretrained(directory)


@pytest.fixture(scope="module")
def prefix_pair(reference):
    """(ours, reference) with add_prefix_space=True (needed for pre-split words)."""
    return (
        LongformerTokenizerFast.from_pretrained(FIXTURE_DIR, add_prefix_space=True),
        reference.load(FIXTURE_DIR, "tokenizer.json", add_prefix_space=True),
    )


def _plain(value):
    """Lists / tuples / arrays / tensors -> nested Python lists, for comparison."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def assert_same(ours, ref):
    assert list(ours.keys()) == list(ref.keys())
    for key in ref:
        assert _plain(ours[key]) == _plain(ref[key]), key


def both(tokenizers, *args, **kwargs):
    ours, ref = tokenizers
    return ours(*args, **kwargs), ref(*args, **kwargs)


def assert_same_or_both_raise(tokenizers, *args, **kwargs):
    """Equal outputs, or (e.g. the truncated sequence is too short) the reference raises and we raise ValueError."""
    ours, ref = tokenizers
    try:
        expected = ref(*args, **kwargs)
    except Exception:  # the reference lets the tokenizers library's bare Exception through
        with pytest.raises(ValueError):
            ours(*args, **kwargs)
        return
    assert_same(ours(*args, **kwargs), expected)


# ------------------------------------------------------------------------------------------- parity with reference


@pytest.mark.parametrize("index", range(len(TEXTS)))
def test_single_text_matches_reference(pair, index):
    kwargs = dict(
        return_offsets_mapping=True, return_special_tokens_mask=True, return_token_type_ids=True, return_length=True
    )
    assert_same(*both(pair, TEXTS[index], **kwargs))
    assert_same(*both(pair, TEXTS[index], add_special_tokens=False, return_offsets_mapping=True))


def test_batch_matches_reference(pair):
    ours, ref = both(pair, TEXTS, padding=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert_same(ours, ref)
    for i in range(len(TEXTS)):
        assert ours.tokens(i) == ref.tokens(i)
        assert ours.word_ids(i) == ref.word_ids(i)
        assert ours.sequence_ids(i) == ref.sequence_ids(i)
    assert_same(*both(pair, TEXTS))  # unpadded: ragged lists


def test_add_prefix_space_matches_reference(prefix_pair):
    assert_same(*both(prefix_pair, TEXTS, padding=True, return_offsets_mapping=True))


@pytest.mark.parametrize("vocab_merges", [False, True])
def test_trim_offsets_false_matches_reference(reference, vocab_merges_dir, vocab_merges):
    directory = vocab_merges_dir if vocab_merges else FIXTURE_DIR
    ours = LongformerTokenizerFast.from_pretrained(directory, trim_offsets=False, add_prefix_space=True)
    label = "vocab+merges" if vocab_merges else "tokenizer.json"
    ref = reference.load(directory, label, trim_offsets=False, add_prefix_space=True)
    seconds = [PAIRS[i % len(PAIRS)][1] for i in range(len(TEXTS))]
    assert_same(ours(TEXTS, seconds, return_offsets_mapping=True), ref(TEXTS, seconds, return_offsets_mapping=True))


def test_pairs_match_reference(pair):
    for a, b in PAIRS:
        ours, ref = both(pair, a, b, return_offsets_mapping=True, return_token_type_ids=True)
        assert_same(ours, ref)
        assert ours.sequence_ids() == ref.sequence_ids()
    firsts, seconds = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    assert_same(*both(pair, firsts, seconds, padding=True, return_offsets_mapping=True))
    assert_same(*both(pair, PAIRS, padding="longest", return_offsets_mapping=True))  # list of (a, b) tuples


def test_pair_layout(our_tok):
    ours = our_tok("Hello world", "How are you")
    cls, sep = ours_ids = our_tok.cls_token_id, our_tok.sep_token_id
    assert ours_ids == (0, 2)
    assert ours["input_ids"][0] == cls and ours["input_ids"].count(sep) == 3


@pytest.mark.parametrize("strategy", [True, "longest_first", "only_first", "only_second"])
@pytest.mark.parametrize("max_length", [6, 9, 13, 24, 64])
def test_pair_truncation_matches_reference(pair, strategy, max_length):
    for a, b in PAIRS:
        assert_same_or_both_raise(pair, a, b, truncation=strategy, max_length=max_length, return_offsets_mapping=True)


@pytest.mark.parametrize("max_length", [2, 3, 10, 50])
def test_single_truncation_matches_reference(pair, max_length):
    batch = TEXTS[-6:]
    for strategy in (True, "longest_first", "only_first"):
        assert_same(*both(pair, batch, truncation=strategy, max_length=max_length, return_offsets_mapping=True))
    # A max_length alone (padding off, truncation unset) truncates, as in transformers.
    assert_same(*both(pair, batch, max_length=max_length))
    assert_same_or_both_raise(pair, TEXTS[-1], truncation="only_second", max_length=max_length)


def test_only_second_needs_a_pair_in_the_reference_too(pair):
    _, ref = pair
    with pytest.raises(Exception):
        ref(TEXTS[-1], truncation="only_second", max_length=10)


def test_only_second_needs_a_pair(our_tok):
    with pytest.raises(ValueError, match="Second sequence"):
        our_tok(TEXTS[-1], truncation="only_second", max_length=10)


def test_truncation_defaults_to_model_max_length_as_in_the_reference(pair):
    ours, ref = pair
    assert ours.model_max_length == ref.model_max_length
    long_text = TEXTS[-1] * 3
    assert_same(*both(pair, long_text, truncation=True))


def test_truncation_defaults_to_model_max_length(our_tok):
    long_text = TEXTS[-1] * 3
    if our_tok.model_max_length == 4096:  # tokenizer_config.json present
        assert len(our_tok(long_text, truncation=True)["input_ids"]) == 4096


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding=True),
        dict(padding="longest"),
        dict(padding="do_not_pad"),
        dict(padding="max_length", max_length=40),
        dict(padding="max_length", max_length=40, truncation=True),
        dict(padding=True, pad_to_multiple_of=8),
        dict(padding="max_length", max_length=30, pad_to_multiple_of=8),
        dict(padding="max_length", max_length=32, pad_to_multiple_of=8, truncation=True),
        dict(padding=True, truncation="longest_first", max_length=16, pad_to_multiple_of=8),
        dict(pad_to_multiple_of=8),
        dict(padding=True, max_length=5),
    ],
)
def test_padding_matches_reference(pair, kwargs):
    batch = TEXTS[:10]
    assert_same(*both(pair, batch, return_offsets_mapping=True, **kwargs))
    assert_same(*both(pair, TEXTS[0], **kwargs))  # single text
    assert_same(*both(pair, PAIRS, **kwargs))


def test_pad_to_max_length_without_max_length(pair):
    ours, ref = both(pair, ["Hello world", "a"], padding="max_length")
    assert_same(ours, ref)


def test_left_padding_and_truncation_match_reference(reference):
    ours = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR, padding_side="left", truncation_side="left")
    ref = reference.load(FIXTURE_DIR, "tokenizer.json", padding_side="left", truncation_side="left")
    kwargs = dict(padding="max_length", truncation=True, max_length=12, return_offsets_mapping=True)
    assert_same(ours(TEXTS[:8], **kwargs), ref(TEXTS[:8], **kwargs))
    assert_same(ours(PAIRS, **kwargs), ref(PAIRS, **kwargs))


MULTIPLE_OF_NOT_DIVIDING = dict(padding="max_length", max_length=10, truncation=True, pad_to_multiple_of=4)


def test_multiple_of_must_divide_max_length_in_the_reference_too(pair):
    _, ref = pair
    with pytest.raises(ValueError):
        ref("Hello", **MULTIPLE_OF_NOT_DIVIDING)


def test_multiple_of_must_divide_max_length(our_tok):
    with pytest.raises(ValueError, match="multiple of pad_to_multiple_of"):
        our_tok("Hello", **MULTIPLE_OF_NOT_DIVIDING)


def test_pre_split_words_match_reference(prefix_pair):
    kwargs = dict(is_split_into_words=True, return_offsets_mapping=True)
    for words in WORDS:
        ours, ref = both(prefix_pair, words, **kwargs)
        assert_same(ours, ref)
        assert ours.word_ids() == ref.word_ids()
    ours, ref = both(prefix_pair, WORDS, padding=True, **kwargs)
    assert_same(ours, ref)
    for i in range(len(WORDS)):
        assert ours.word_ids(i) == ref.word_ids(i)
    ours, ref = both(prefix_pair, WORDS[0], WORDS[1], **kwargs)  # one pre-split pair
    assert_same(ours, ref)
    assert ours.sequence_ids() == ref.sequence_ids()
    assert_same(*both(prefix_pair, WORDS, WORDS[::-1], padding=True, truncation=True, max_length=9, **kwargs))


def test_pre_split_words_need_prefix_space(our_tok):
    with pytest.raises(ValueError, match="add_prefix_space=True"):
        our_tok(["Hello", "world"], is_split_into_words=True)


@pytest.mark.parametrize("return_tensors", ["np", "tf"])
def test_return_tensors_match_reference(pair, return_tensors):
    ours, ref = both(pair, TEXTS[:6], padding=True, return_tensors=return_tensors, return_offsets_mapping=True)
    assert_same(ours, ref)


@pytest.mark.parametrize("return_tensors", ["np", "tf"])
def test_return_tensors(our_tok, return_tensors):
    ours = our_tok(TEXTS[:6], padding=True, return_tensors=return_tensors, return_offsets_mapping=True)
    if return_tensors == "tf":
        import tensorflow as tf

        assert all(isinstance(v, tf.Tensor) and v.dtype == tf.int32 for v in ours.values())
    else:
        assert all(isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.integer) for v in ours.values())
    assert ours["offset_mapping"].shape[-1] == 2
    single = our_tok("Hello world", return_tensors=return_tensors)
    assert tuple(single["input_ids"].shape) == (1, 9)  # a single input keeps its batch axis
    with pytest.raises(ValueError, match="different lengths"):
        our_tok(["a", "a b c"], return_tensors=return_tensors)


def test_char_to_token_matches_reference(pair):
    ours, ref = both(pair, PAIRS[0][0], PAIRS[0][1])
    for char in range(len(PAIRS[0][0])):
        assert ours.char_to_token(char) == ref.char_to_token(char)
    for char in range(len(PAIRS[0][1])):
        assert ours.char_to_token(char, sequence_index=1) == ref.char_to_token(char, sequence_index=1)
    ours, ref = both(pair, TEXTS[:3], padding=True)
    assert ours.char_to_token(0, 3) == ref.char_to_token(0, 3)


def test_vocab_and_special_tokens_match_reference(pair):
    ours, ref = pair
    assert ours.vocab_size == ref.vocab_size == 400
    assert len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    for name in ("bos", "eos", "sep", "cls", "unk", "pad", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(ref, f"{name}_token")
        assert getattr(ours, f"{name}_token_id") == getattr(ref, f"{name}_token_id")
    assert sorted(ours.all_special_ids) == sorted(ref.all_special_ids)
    ours_added = json.loads(ours.backend_tokenizer.to_str())["added_tokens"]
    assert ours_added == json.loads(ref.backend_tokenizer.to_str())["added_tokens"]


def test_vocab_and_special_tokens(our_tok):
    ours = our_tok
    assert ours.vocab_size == 400
    assert (ours.bos_token_id, ours.pad_token_id, ours.eos_token_id, ours.unk_token_id, ours.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert ours.add_prefix_space is False and ours.padding_side == "right"
    assert ours.convert_tokens_to_ids("<mask>") == 4
    assert ours.convert_ids_to_tokens(3) == "<unk>"
    assert ours.num_special_tokens_to_add(pair=True) == 4


def test_token_conversions_match_reference(pair):
    ours, ref = pair
    for text in TEXTS[:12]:
        assert ours.tokenize(text) == ref.tokenize(text)
        tokens = ours.tokenize(text)
        assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
        assert ours.convert_tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens)
    assert ours.tokenize("a b", "c", add_special_tokens=True) == ref.tokenize("a b", "c", add_special_tokens=True)
    assert ours.convert_tokens_to_ids(["<s>", "never-seen-token", "Ġw"]) == ref.convert_tokens_to_ids(
        ["<s>", "never-seen-token", "Ġw"]
    )
    ids = [*range(0, 400, 7), 0, 1, 2]
    assert ours.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == ref.convert_ids_to_tokens(
        ids, skip_special_tokens=True
    )
    assert ours.convert_ids_to_tokens(3) == ref.convert_ids_to_tokens(3) == "<unk>"
    assert ours.build_inputs_with_special_tokens([5, 6], [7]) == ref.build_inputs_with_special_tokens([5, 6], [7])
    assert ours.num_special_tokens_to_add(pair=True) == ref.num_special_tokens_to_add(pair=True) == 4


def test_encode_decode_match_reference(pair):
    ours, ref = pair
    for text in TEXTS:
        assert ours.encode(text) == ref.encode(text)
        ids = ours.encode(text)
        for skip in (False, True):
            for clean in (False, True):
                kw = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
                assert ours.decode(ids, **kw) == ref.decode(ids, **kw)
    assert ours.encode(*PAIRS[2], truncation="only_second", max_length=12) == ref.encode(
        *PAIRS[2], truncation="only_second", max_length=12
    )
    batch = ours(TEXTS[:6], padding=True, return_tensors="np")["input_ids"]
    assert ours.batch_decode(batch, skip_special_tokens=True) == ref.batch_decode(batch, skip_special_tokens=True)
    assert ours.decode(5) == ref.decode(5)


def test_decode_takes_arrays(our_tok):
    ids = our_tok.encode(TEXTS[-1])
    assert our_tok.decode(np.asarray(ids)) == our_tok.decode(ids)


@pytest.mark.parametrize("text", PLAIN_TEXTS)
def test_decode_encode_round_trip(text):
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_clean_up_tokenization():
    assert clean_up_tokenization("Hello , world . Isn 't it ? I 'm sure , we 're done !") == (
        "Hello, world. Isn 't it? I'm sure, we're done!"
    )


def test_batch_encoding_helpers():
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    enc = tok("Hello world")
    assert isinstance(enc, BatchEncoding) and isinstance(enc, dict)
    assert enc.input_ids == enc["input_ids"] == [0, 44, 73, 309, 83, 273, 282, 295, 2]
    assert enc.attention_mask == [1] * 9
    assert enc.tokens() == ["<s>", "H", "e", "ll", "o", "Ġw", "or", "ld", "</s>"]
    assert enc.word_ids() == [None, 0, 0, 0, 0, 1, 1, 1, None]
    assert enc.sequence_ids() == [None, 0, 0, 0, 0, 0, 0, 0, None]
    with pytest.raises(AttributeError):
        _ = enc.offset_mapping
    assert "attention_mask" not in tok("Hello", return_attention_mask=False)
    restored = pickle.loads(pickle.dumps(enc))
    assert restored == enc and restored.word_ids() == enc.word_ids()
    assert tok([])["input_ids"] == []


def test_long_document_is_fast_and_consistent():
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    doc = TEXTS[-1]
    enc = tok(doc, return_offsets_mapping=True)
    assert len(doc) > 5000 and len(enc["input_ids"]) > 1000
    # Every non-special token's span lies inside the document, and spans never go backwards.
    spans = [
        s for s, special in zip(enc["offset_mapping"], tok.get_special_tokens_mask(enc["input_ids"])) if not special
    ]
    assert all(0 <= a <= b <= len(doc) for a, b in spans)
    assert all(p[0] <= q[0] for p, q in zip(spans, spans[1:]))


# ------------------------------------------------------------------------------------------------ files and config


def test_from_pretrained_reads_config(tmp_path):
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    assert tok.model_max_length == 4096 and tok.trim_offsets
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(os.path.join(FIXTURE_DIR, name), tmp_path / name)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 16, "add_prefix_space": True, "errors": "replace"})
    )
    (tmp_path / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "mask_token": {
                    "content": "<mask>",
                    "lstrip": True,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                }
            }
        )
    )
    tok = LongformerTokenizerFast.from_pretrained(tmp_path)
    assert tok.model_max_length == 16 and tok.add_prefix_space
    assert tok.mask_token == "<mask>"
    assert len(tok("word " * 50, truncation=True)["input_ids"]) == 16
    assert (
        LongformerTokenizerFast.from_pretrained(tmp_path, model_max_length=8, add_prefix_space=False).model_max_length
        == 8
    )


def _saved_after_use(directory):
    """Our tokenizer (add_prefix_space) saved after a padded, truncated call; (tokenizer, written paths)."""
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR, add_prefix_space=True)
    tok("warm up the backend state", padding="max_length", max_length=32, truncation=True)
    return tok, tok.save_pretrained(directory)


def test_save_pretrained_round_trip(tmp_path):
    tok, written = _saved_after_use(tmp_path / "saved")
    names = sorted(os.listdir(tmp_path / "saved"))
    assert names == ["merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
    assert sorted(os.path.basename(p) for p in written) == names  # and no temporary files left behind
    state = json.loads((tmp_path / "saved" / "tokenizer.json").read_text(encoding="utf-8"))
    assert state["truncation"] is None and state["padding"] is None
    with open(os.path.join(FIXTURE_DIR, "vocab.json"), encoding="utf-8") as f:
        assert json.loads((tmp_path / "saved" / "vocab.json").read_text(encoding="utf-8")) == json.load(f)

    kwargs = dict(padding=True, return_offsets_mapping=True)
    for directory in (tmp_path / "saved", _only_vocab_merges(tmp_path / "saved", tmp_path / "vm")):
        again = LongformerTokenizerFast.from_pretrained(directory, add_prefix_space=True)
        assert again.model_max_length == tok.model_max_length and again.add_prefix_space
        assert_same(again(TEXTS, **kwargs), tok(TEXTS, **kwargs))
    reloaded = LongformerTokenizerFast.from_pretrained(tmp_path / "saved")  # add_prefix_space comes from the config
    assert reloaded.add_prefix_space
    assert_same(reloaded(WORDS, is_split_into_words=True, **kwargs), tok(WORDS, is_split_into_words=True, **kwargs))


def test_saved_files_are_read_by_the_reference(tmp_path, reference):
    tok, _ = _saved_after_use(tmp_path / "saved")
    kwargs = dict(padding=True, return_offsets_mapping=True)
    ref = reference.load(tmp_path / "saved", "saved after use")
    assert ref.add_prefix_space and ref.model_max_length == 4096
    assert_same(tok(TEXTS, **kwargs), ref(TEXTS, **kwargs))
    auto = reference.load(tmp_path / "saved", "saved after use", loader="AutoTokenizer")
    assert_same(tok(PAIRS, **kwargs), auto(PAIRS, **kwargs))


def _only_vocab_merges(src, dst):
    os.makedirs(dst)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    return dst


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        LongformerTokenizerFast.from_pretrained(tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match=r"vocab\.json") as info:
        LongformerTokenizerFast.from_pretrained(tmp_path)
    assert "merges.txt" in str(info.value)
    shutil.copy(os.path.join(FIXTURE_DIR, "vocab.json"), tmp_path / "vocab.json")
    with pytest.raises(FileNotFoundError, match=r"merges\.txt"):
        LongformerTokenizerFast.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.json"):
        LongformerTokenizerFast(tokenizer_file=tmp_path / "nothing.json")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("vocab.json", "{not json", "not valid JSON"),
        ("vocab.json", "[1, 2]", "expected a JSON object"),
        ("vocab.json", '{"a": "x"}', "has id"),
        ("merges.txt", "#version: 0.2\nĠ t\nthree parts here\n", "line 3"),
        ("merges.txt", "#version: 0.2\nzz qq\n", "not in the vocabulary"),
        ("tokenizer.json", '{"model": 1', "Corrupt tokenizer file"),
        ("tokenizer_config.json", "{oops", "not valid JSON"),
        ("special_tokens_map.json", '{"mask_token": 5}', "Invalid special token"),
    ],
)
def test_corrupt_files_are_named(tmp_path, name, content, message):
    base = (
        ("tokenizer.json",)
        if name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
        else ("vocab.json", "merges.txt")
    )
    for file in base:
        shutil.copy(os.path.join(FIXTURE_DIR, file), tmp_path / file)
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        LongformerTokenizerFast.from_pretrained(tmp_path)
    assert str(tmp_path / name) in str(info.value)


def test_invalid_call_options():
    tok = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    with pytest.raises(ValueError, match="padding"):
        tok("a", padding="sideways")
    with pytest.raises(ValueError, match="truncation"):
        tok("a", truncation="middle")
    with pytest.raises(ValueError, match="return_tensors"):
        tok("a", return_tensors="pt")
    with pytest.raises(ValueError, match="batch length"):
        tok(["a", "b"], ["c"])
    with pytest.raises(TypeError):
        tok([["a", "b", "c"]])
    with pytest.raises(TypeError):
        tok(3)


# ---------------------------------------------------------------------------------------------------------- training


def _trained():
    corpus = [t for t in TEXTS if "<" not in t] * 3
    return LongformerTokenizerFast.train_new_from_iterator(
        iter(corpus), vocab_size=350, min_frequency=2, model_max_length=128
    )


def test_train_new_from_iterator(tmp_path):
    tok = _trained()
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert 261 < len(tok) <= 350 and tok.model_max_length == 128
    for text in PLAIN_TEXTS:
        ids = tok.encode(text)
        assert ids[0] == 0 and ids[-1] == 2
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.encode("a <mask> b")[2] == 4
    tok.save_pretrained(tmp_path)

    small = train_tokenizer(["hello world"] * 5, vocab_size=270)
    assert small.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["hello"], vocab_size=100)


def test_trained_tokenizer_is_read_by_the_reference(tmp_path, reference):
    tok = _trained()
    tok.save_pretrained(tmp_path)
    ref = reference.load(tmp_path, "trained and saved")
    kwargs = dict(padding=True, truncation=True, return_offsets_mapping=True)
    assert_same(tok(TEXTS, **kwargs), ref(TEXTS, **kwargs))
    assert_same(LongformerTokenizerFast.from_pretrained(tmp_path)(PAIRS, **kwargs), ref(PAIRS, **kwargs))


def test_slow_alias_and_pickling():
    slow = LongformerTokenizer.from_pretrained(FIXTURE_DIR)
    fast = LongformerTokenizerFast.from_pretrained(FIXTURE_DIR)
    assert isinstance(slow, LongformerTokenizerFast)
    assert_same(slow(TEXTS, padding=True), fast(TEXTS, padding=True))
    clone = pickle.loads(pickle.dumps(fast))
    assert_same(clone(PAIRS, padding=True), fast(PAIRS, padding=True))
    assert "vocab_size=400" in repr(fast)
