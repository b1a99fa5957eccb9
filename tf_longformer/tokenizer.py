"""Tokenizers for the Longformer on the `tokenizers` library: byte-level BPE (the RoBERTa / GPT-2 vocabulary), and
the Unigram (XLM-RoBERTa, CamemBERT) and WordPiece (BERT) tokenizers of models converted from those families.

`LongformerTokenizerFast` reads the Hugging Face tokenizer files of a Longformer or RoBERTa checkpoint
(`tokenizer.json`, or `vocab.json` + `merges.txt`, plus `tokenizer_config.json` / `special_tokens_map.json`) and
encodes exactly like `transformers.LongformerTokenizerFast` / `RobertaTokenizerFast` on the same files: the same
ids, attention masks and (trimmed) character offsets, with the RoBERTa layout `<s> A </s>` and
`<s> A </s></s> B </s>`. A folder whose `tokenizer.json` holds another family's tokenizer (Unigram, WordPiece) is
read with that family's pipeline, post-processor and special tokens as its files give them (no RoBERTa defaults),
and encodes as that family's transformers fast tokenizer (`XLMRobertaTokenizerFast`, `BertTokenizerFast`, ...),
token types included where the family's models take them. With the real `allenai/longformer-base-4096` files,
`tokenizer("Hello world")` gives `input_ids == [0, 31414, 232, 2]` (per the transformers documentation; those files
are not shipped here).

`LongformerTokenizer` is the same class under the name of the slow transformers tokenizer (there is no separate
pure-Python implementation). `train_tokenizer` / `LongformerTokenizerFast.train_new_from_iterator` train a new
vocabulary from raw texts with the special tokens `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4.

>>> tok = train_tokenizer(["hello world, hello tokenizer"] * 10, vocab_size=300)
>>> enc = tok("hello world")
>>> enc["input_ids"][0], enc["input_ids"][-1], enc["attention_mask"] == [1] * len(enc["input_ids"])
(0, 2, True)
>>> tok.decode(enc["input_ids"], skip_special_tokens=True)
'hello world'
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, models, pre_tokenizers, trainers

logger = logging.getLogger(__name__)

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
TOKENIZER_FILE = "tokenizer.json"
WORDPIECE_VOCAB_FILE = "vocab.txt"  # BERT's vocabulary, one token a line (id = line number)
SENTENCEPIECE_FILE = "sentencepiece.bpe.model"  # XLM-R's / CamemBERT's SentencePiece model (see tf_longformer.spm)
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

#: `model_max_length` when none is known (the transformers convention: effectively "no limit").
VERY_LARGE_INTEGER = int(1e30)
_LARGE_INTEGER = int(1e20)

#: Special-token attributes, in the order transformers registers them (matters only for tokens not in the vocab).
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}
#: Special tokens of a freshly trained vocabulary, in id order (RoBERTa's first four, then `<mask>`).
TRAINING_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

#: `tokenizer.json` models this class reads: byte-level BPE (RoBERTa, Longformer), Unigram (XLM-R, CamemBERT),
#: WordPiece (BERT) and WordLevel.
MODEL_TYPES = ("BPE", "Unigram", "WordPiece", "WordLevel")

_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
_TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
_TENSOR_TYPES = ("tf", "np")
# Keys of tokenizer_config.json this class interprets itself; everything else is kept and written back.
_INIT_CONFIG_KEYS = (
    "add_prefix_space",
    "trim_offsets",
    "model_max_length",
    "clean_up_tokenization_spaces",
    "padding_side",
    "truncation_side",
    *SPECIAL_TOKEN_ATTRIBUTES,
)
# Keys of a foreign tokenizer_config.json that describe files or state we do not keep.
_DROPPED_CONFIG_KEYS = (
    "added_tokens_decoder",
    "tokenizer_file",
    "vocab_file",
    "merges_file",
    "name_or_path",
    "special_tokens_map_file",
)
# transformers' `clean_up_tokenization`: spaces dropped before punctuation and English contractions.
_CLEANUP_REPLACEMENTS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)

TextInput = str
PreTokenizedInput = Sequence[str]
EncodeInput = str | Sequence[str] | Sequence[Sequence[str]]
_T = TypeVar("_T", bound="LongformerTokenizerFast")


# ----------------------------------------------------------------------------------------------------------------------
# BatchEncoding
# ----------------------------------------------------------------------------------------------------------------------


class BatchEncoding(dict):
    """The output of a tokenizer call: a `dict` of model inputs with attribute access and alignment helpers.

    Keys are `input_ids`, `attention_mask` and, on request, `token_type_ids`, `special_tokens_mask`,
    `offset_mapping`, `length`. Values are Python lists (flat for a single unbatched input), or `np.ndarray` /
    `tf.Tensor` with `return_tensors`. `tokens()`, `word_ids()`, `sequence_ids()` and `char_to_token()` read the
    underlying `tokenizers.Encoding` of one batch item (index 0 for a single input).
    """

    def __init__(self, data: dict[str, Any] | None = None, encodings: Sequence[Encoding] | None = None) -> None:
        super().__init__(data or {})
        self._encodings = list(encodings) if encodings is not None else None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": dict(self), "encodings": self._encodings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._encodings = state["encodings"]

    def __reduce__(self):  # dict subclasses pickle their items separately; keep it all in the state
        return (self.__class__, (), self.__getstate__())

    @property
    def encodings(self) -> list[Encoding] | None:
        """The `tokenizers.Encoding` of each batch item (None for an encoding built by hand)."""
        return self._encodings

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index: int) -> Encoding:
        if self._encodings is None:
            raise ValueError("This BatchEncoding holds no tokenizers.Encoding (it was not produced by a tokenizer).")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of batch item `batch_index` (special and padding tokens included)."""
        return list(self._encoding(batch_index).tokens)

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token, the index of the word it comes from in its sequence; None for special/padding tokens.

        Words are the pre-tokenizer's words, or the given words with `is_split_into_words=True`.
        """
        return list(self._encoding(batch_index).word_ids)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token, 0 (first text), 1 (second text of a pair) or None (special/padding tokens)."""
        return list(self._encoding(batch_index).sequence_ids)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """Index of the token covering character `char_index` of sequence `sequence_index`, or None.

        `char_to_token(c)` uses batch item 0; `char_to_token(b, c)` batch item `b`.
        """
        if char_index is None:
            batch_index, char_index = 0, batch_or_char_index
        else:
            batch_index = batch_or_char_index
        return self._encoding(batch_index).char_to_token(char_index, sequence_index)


# ----------------------------------------------------------------------------------------------------------------------
# File helpers
# ----------------------------------------------------------------------------------------------------------------------


def _atomic_write_text(path: str, text: str) -> None:
    """Write `text` (UTF-8, `\n` line ends) to `path` atomically, as the checkpoint files are written."""
    from tf_longformer.files import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def _read_json_object(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"Tokenizer file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Corrupt tokenizer file {path}: not valid JSON ({e}).") from e
    if not isinstance(data, dict):
        raise ValueError(f"Corrupt tokenizer file {path}: expected a JSON object, got {type(data).__name__}.")
    return data


BERT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                       "mask_token": "[MASK]"}


def _wordpiece_tokenizer(path: str, config: dict[str, Any]) -> Tokenizer:
    """BERT's pipeline from its `vocab.txt` and tokenizer_config.json settings, as transformers builds it for a
    folder without tokenizer.json: BertNormalizer (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`),
    BertPreTokenizer, WordPiece with `##`, `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` with token types 0 / 1."""
    try:
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"Cannot read the vocabulary {path}: {e}") from e
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    names = {a: _token_content(config[a], path)[0] for a in BERT_SPECIAL_TOKENS if config.get(a) is not None}
    missing = [names[a] for a in ("unk_token", "cls_token", "sep_token") if names.get(a) not in vocab]
    if missing:
        raise ValueError(f"The vocabulary {path} lacks the special tokens {missing}.")
    lowercase = bool(config.get("do_lower_case", True))
    strip_accents = config.get("strip_accents")
    unk = names["unk_token"]
    state = json.loads(Tokenizer(models.WordPiece(vocab={unk: 0}, unk_token=unk)).to_str())
    state["model"].update(vocab=vocab, unk_token=names["unk_token"], continuing_subword_prefix="##")
    state["normalizer"] = {"type": "BertNormalizer", "clean_text": True,
                           "handle_chinese_chars": bool(config.get("tokenize_chinese_chars", True)),
                           "strip_accents": None if strip_accents is None else bool(strip_accents),
                           "lowercase": lowercase}
    state["pre_tokenizer"] = {"type": "BertPreTokenizer"}
    state["decoder"] = {"type": "WordPiece", "prefix": "##", "cleanup": True}
    cls, sep = names["cls_token"], names["sep_token"]

    def item(kind: str, name: str, type_id: int) -> dict[str, Any]:
        return {kind: {"id": name, "type_id": type_id}}

    state["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [item("SpecialToken", cls, 0), item("Sequence", "A", 0), item("SpecialToken", sep, 0)],
        "pair": [item("SpecialToken", cls, 0), item("Sequence", "A", 0), item("SpecialToken", sep, 0),
                 item("Sequence", "B", 1), item("SpecialToken", sep, 1)],
        "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in (cls, sep)},
    }
    return Tokenizer.from_str(json.dumps(state))


def _read_vocab(path: str) -> dict[str, int]:
    vocab = _read_json_object(path)
    for token, index in vocab.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"Corrupt vocabulary file {path}: token {token!r} has id {index!r}, expected an int >= 0.")
    if len(set(vocab.values())) != len(vocab):
        raise ValueError(f"Corrupt vocabulary file {path}: several tokens share an id.")
    return vocab


def _read_merges(path: str, vocab: dict[str, int]) -> list[tuple[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"Tokenizer file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"Corrupt merges file {path}: not UTF-8 ({e}).") from e
    merges: list[tuple[str, str]] = []
    for line_no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line or (line_no == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"Corrupt merges file {path}: line {line_no} is {line!r}, expected two tokens separated by one space."
            )
        for token in (parts[0], parts[1], parts[0] + parts[1]):
            if token not in vocab:
                raise ValueError(
                    f"Corrupt merges file {path}: line {line_no} uses {token!r}, which is not in the vocabulary."
                )
        merges.append((parts[0], parts[1]))
    return merges


def _byte_level_state(add_prefix_space: bool) -> dict[str, Any]:
    """The serialized byte-level pre-tokenizer / decoder (the same JSON in every `tokenizers` release)."""
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": True}


def _bpe_tokenizer(
    vocab: dict[str, int], merges: Sequence[tuple[str, str]], pre_tokenizer: dict[str, Any] | None = None
) -> Tokenizer:
    """A `Tokenizer` holding a byte-level BPE model of `vocab` + `merges`, built from its serialized form.

    The model's JSON starts from what the installed release itself writes for an empty BPE model (so every field
    it knows is present), with merges as `"a b"` strings, the one spelling every release reads (merges.txt tokens
    never hold a space). `pre_tokenizer` (serialized) also sets the byte-level decoder, as training needs.
    """
    state = json.loads(Tokenizer(models.BPE()).to_str())
    if pre_tokenizer is not None:
        state.update(pre_tokenizer=pre_tokenizer, decoder=_byte_level_state(True))
    state["model"].update(
        vocab=vocab,
        merges=[f"{a} {b}" for a, b in merges],
        dropout=None,
        unk_token=None,
        continuing_subword_prefix="",
        end_of_word_suffix="",
        fuse_unk=False,
    )
    return Tokenizer.from_str(json.dumps(state))


def _read_with_string_merges(path: str) -> Tokenizer | None:
    """`tokenizer.json` with its BPE merges as `"a b"` strings, or None when that does not make it readable.

    Releases since 0.20 write merges as `["a", "b"]` pairs; older ones (the floor we support) read only strings.
    Both spellings mean the same merges whenever no token holds a space, as in every byte-level vocabulary.
    """
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        merges = state["model"]["merges"]
        if any(not isinstance(m, str) and (len(m) != 2 or " " in m[0] or " " in m[1]) for m in merges):
            return None
        state["model"]["merges"] = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in merges]
        return Tokenizer.from_str(json.dumps(state))
    except Exception:  # not JSON, no BPE model, or still unreadable: the caller reports the original error
        return None


_TOKEN_TYPE_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
# tokenizer classes of families whose models take token types (transformers returns them by default)
_TOKEN_TYPE_CLASSES = ("Bert", "Electra", "Albert", "MobileBert", "Funnel")


def _uses_token_types(tokenizer_class: str | None) -> bool:
    return bool(tokenizer_class) and any(tokenizer_class.startswith(c + "Tokenizer") for c in _TOKEN_TYPE_CLASSES)


def _is_byte_level(state: dict[str, Any]) -> bool:
    """Whether a serialized tokenizer is the byte-level BPE of RoBERTa / GPT-2 (or a bare BPE to make one of)."""
    if state.get("model", {}).get("type") != "BPE":
        return False
    pre = state.get("pre_tokenizer")
    return pre is None or "ByteLevel" in json.dumps(pre)


def _token_content(value: Any, source: str) -> tuple[str, dict[str, bool]]:
    """A special token given as a string or as a serialized AddedToken dict -> (content, flags given)."""
    if isinstance(value, AddedToken):
        return value.content, {k: getattr(value, k) for k in ("lstrip", "rstrip", "single_word", "normalized")}
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        flags = {k: bool(value[k]) for k in ("lstrip", "rstrip", "single_word", "normalized") if k in value}
        return value["content"], flags
    raise ValueError(f"Invalid special token {value!r} in {source}: expected a string or an object with a 'content'.")


def _default_added_token(attribute: str, content: str, flags: dict[str, bool]) -> AddedToken:
    """The AddedToken RoBERTa uses: `<mask>` swallows the space before it (lstrip) and is not normalized."""
    is_mask = attribute == "mask_token"
    options = {"lstrip": is_mask, "rstrip": False, "single_word": False, "normalized": not is_mask}
    options.update(flags)
    return AddedToken(content, special=True, **options)


def _to_id_list(ids: Any) -> list[int]:
    if hasattr(ids, "numpy"):  # tf.Tensor / EagerTensor
        ids = ids.numpy()
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    return [int(i) for i in ids]


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces before punctuation and English contractions (transformers' `clean_up_tokenization`)."""
    for old, new in _CLEANUP_REPLACEMENTS:
        text = text.replace(old, new)
    return text


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------------------


class LongformerTokenizerFast:
    """Longformer / RoBERTa byte-level BPE tokenizer backed by a `tokenizers.Tokenizer`.

    Build it with `from_pretrained(directory)`, `train_new_from_iterator(texts, vocab_size)`, or directly from
    files: `LongformerTokenizerFast(vocab_file=..., merges_file=...)` / `(tokenizer_file=...)`, or from a
    `tokenizers.Tokenizer` (`tokenizer_object=`, copied). The backend pipeline is the RoBERTa one: byte-level
    pre-tokenizer (regex split, optional prefix space), BPE, `RobertaProcessing` post-processor
    (`<s> A </s>` / `<s> A </s></s> B </s>`, `trim_offsets`), byte-level decoder.

    Args:
        add_prefix_space: prepend a space to each text (and each word with `is_split_into_words=True`, which
            requires it), so the first word is encoded like a word inside a sentence.
        trim_offsets: exclude the leading space of a token from its character offsets.
        model_max_length: the model's maximum input length; `truncation=True` / `padding="max_length"` without
            `max_length` use it.
        clean_up_tokenization_spaces: default for `decode(clean_up_tokenization_spaces=None)`.
        padding_side, truncation_side: "right" (default) or "left".
        bos_token ... mask_token: the special tokens, as strings (or serialized AddedToken dicts / AddedTokens);
            `<mask>` absorbs the space before it (lstrip), as in RoBERTa.
        tokenizer_class: the family's transformers class (`tokenizer_config.json`), written back for a tokenizer that
            is not byte-level BPE so that transformers reads the folder as that family.
        model_input_names: the inputs a call returns by default; "token_type_ids" is among them for the families
            whose models take token types (BERT, ELECTRA, ALBERT, ...), from `tokenizer_class`.
        extra_config: other tokenizer_config.json entries, kept and written back by `save_pretrained`.
    """

    model_input_names: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    pad_token_type_id = 0
    is_fast = True

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        merges_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        *,
        tokenizer_object: Tokenizer | None = None,
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        model_max_length: int = VERY_LARGE_INTEGER,
        clean_up_tokenization_spaces: bool = False,
        padding_side: str = "right",
        truncation_side: str = "right",
        bos_token: str | dict[str, Any] | AddedToken = "<s>",
        eos_token: str | dict[str, Any] | AddedToken = "</s>",
        sep_token: str | dict[str, Any] | AddedToken = "</s>",
        cls_token: str | dict[str, Any] | AddedToken = "<s>",
        unk_token: str | dict[str, Any] | AddedToken = "<unk>",
        pad_token: str | dict[str, Any] | AddedToken = "<pad>",
        mask_token: str | dict[str, Any] | AddedToken = "<mask>",
        tokenizer_class: str | None = None,
        model_input_names: Sequence[str] | None = None,
        **extra_config: Any,
    ) -> None:
        if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length <= 0:
            raise ValueError(f"`model_max_length` must be a positive integer, got {model_max_length!r}.")
        self.model_max_length = model_max_length
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.name_or_path = ""
        self._add_prefix_space = bool(add_prefix_space)
        self._trim_offsets = bool(trim_offsets)
        self._extra_config = {k: v for k, v in extra_config.items() if k not in _DROPPED_CONFIG_KEYS}
        self._tokenizer_class = tokenizer_class
        if model_input_names is None:
            model_input_names = _TOKEN_TYPE_INPUTS if _uses_token_types(tokenizer_class) else self.model_input_names
        names = tuple(model_input_names)
        if not names or "input_ids" not in names or not set(names) <= set(_TOKEN_TYPE_INPUTS):
            raise ValueError(f"`model_input_names` must hold 'input_ids' and only names among {_TOKEN_TYPE_INPUTS}, "
                             f"got {model_input_names!r}.")
        self.model_input_names = names
        self._lock = threading.Lock()
        self._warned_too_long = False

        given = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        self._special_tokens: dict[str, AddedToken] = {}
        for attribute in SPECIAL_TOKEN_ATTRIBUTES:
            if given[attribute] is None:  # a family without it (BERT has no bos/eos)
                continue
            content, flags = _token_content(given[attribute], f"argument `{attribute}`")
            self._special_tokens[attribute] = _default_added_token(attribute, content, flags)

        if tokenizer_object is not None:
            backend = Tokenizer.from_str(tokenizer_object.to_str())
        elif tokenizer_file is not None:
            backend = self._load_tokenizer_file(os.fspath(tokenizer_file))
        elif vocab_file is not None and merges_file is not None:
            vocab = _read_vocab(os.fspath(vocab_file))
            merges = _read_merges(os.fspath(merges_file), vocab)
            backend = _bpe_tokenizer(vocab, merges)
        else:
            raise ValueError("Give `tokenizer_file`, or both `vocab_file` and `merges_file`, or `tokenizer_object`.")
        self._tokenizer = backend
        self._configure_backend()

    # ------------------------------------------------------------------------------------------------ construction

    @staticmethod
    def _load_tokenizer_file(path: str) -> Tokenizer:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Tokenizer file not found: {path}")
        try:
            backend = Tokenizer.from_file(path)
        except Exception as e:  # the tokenizers library raises a bare Exception on malformed files
            backend = _read_with_string_merges(path)
            if backend is None:
                raise ValueError(f"Corrupt tokenizer file {path}: {e}") from e
        model_type = json.loads(backend.model.__getstate__()).get("type")
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"Tokenizer file {path} holds a {model_type!r} model; supported models are {MODEL_TYPES}."
            )
        return backend

    def _configure_backend(self) -> None:
        """Bring the backend pipeline in line with `add_prefix_space` / `trim_offsets` and the special tokens.

        The pipeline is edited in the serialized `tokenizer.json` form and rebuilt with `Tokenizer.from_str`, never
        through the Python constructors of `tokenizers.pre_tokenizers` / `processors` / `decoders`: that format is
        versioned and read by every release (every checkpoint on the hub depends on it), while the constructors'
        keyword names change between releases (0.23 renamed `RobertaProcessing(cls=...)` to `cls_token`).
        """
        tok = self._tokenizer
        tok.no_truncation()
        tok.no_padding()

        # Special tokens missing from the backend's added vocabulary (always the case for vocab.json + merges.txt).
        present = {t.content for t in tok.get_added_tokens_decoder().values()}
        missing: list[AddedToken] = []
        for token in self._special_tokens.values():
            if token.content not in present:
                present.add(token.content)
                missing.append(token)
        if missing:
            tok.add_special_tokens(missing)

        state = json.loads(tok.to_str())
        self._byte_level = _is_byte_level(state)
        if not self._byte_level:
            return  # Unigram / WordPiece pipelines (XLM-R, BERT) are complete in their tokenizer.json: kept as they are
        before = json.dumps(state, sort_keys=True)
        pre = state.get("pre_tokenizer")
        if pre is None:
            state["pre_tokenizer"] = _byte_level_state(self._add_prefix_space)
        elif pre.get("type") == "ByteLevel":
            pre["add_prefix_space"] = self._add_prefix_space
        if state.get("decoder") is None:
            state["decoder"] = _byte_level_state(True)
        post = state.get("post_processor")
        if post is None:
            sep, cls = self.sep_token, self.cls_token
            state["post_processor"] = {
                "type": "RobertaProcessing",
                "sep": [sep, tok.token_to_id(sep)],
                "cls": [cls, tok.token_to_id(cls)],
                "trim_offsets": self._trim_offsets,
                "add_prefix_space": self._add_prefix_space,
            }
        elif post.get("type") == "RobertaProcessing":
            post.update(add_prefix_space=self._add_prefix_space, trim_offsets=self._trim_offsets)
        if json.dumps(state, sort_keys=True) != before:
            self._tokenizer = Tokenizer.from_str(json.dumps(state))

    @classmethod
    def from_pretrained(cls: type[_T], pretrained_path: str | os.PathLike, **kwargs: Any) -> _T:
        """Load from a folder with `tokenizer.json` and/or `vocab.json` + `merges.txt`.

        `tokenizer_config.json` and `special_tokens_map.json` are read when present (e.g. `add_prefix_space`,
        `model_max_length`, special tokens); keyword arguments override them. `tokenizer.json` is preferred over
        `vocab.json` + `merges.txt` when both exist. Raises `FileNotFoundError` / `ValueError` naming the missing or
        corrupt file.
        """
        path = os.fspath(pretrained_path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"Tokenizer directory not found: {path}")
        config: dict[str, Any] = {}
        config_path = os.path.join(path, TOKENIZER_CONFIG_FILE)
        if os.path.isfile(config_path):
            config.update(_read_json_object(config_path))
        sources = dict.fromkeys(config, config_path)  # which file each setting came from, for error messages
        map_path = os.path.join(path, SPECIAL_TOKENS_MAP_FILE)
        if os.path.isfile(map_path):
            for key, value in _read_json_object(map_path).items():
                if key in SPECIAL_TOKEN_ATTRIBUTES:
                    config[key] = value
                    sources[key] = map_path
        for attribute in SPECIAL_TOKEN_ATTRIBUTES:  # validate here, where the file is known
            if attribute in config:
                _token_content(config[attribute], f"{config_path} / {map_path}")
        for key in ("auto_map", "errors"):
            config.pop(key, None)
        if config.get("tokenizer_class") in ("LongformerTokenizer", "LongformerTokenizerFast"):
            config.pop("tokenizer_class")
        for key in kwargs:
            sources.pop(key, None)
        config.update(kwargs)

        tokenizer_file = os.path.join(path, TOKENIZER_FILE)
        vocab_file = os.path.join(path, VOCAB_FILE)
        merges_file = os.path.join(path, MERGES_FILE)
        wordpiece_file = os.path.join(path, WORDPIECE_VOCAB_FILE)
        if (not os.path.isfile(tokenizer_file) and not os.path.isfile(vocab_file)
                and os.path.isfile(wordpiece_file)):  # a BERT folder with vocab.txt only (older checkpoints)
            for attribute, content in BERT_SPECIAL_TOKENS.items():
                value = config.get(attribute, content)
                if isinstance(value, str):  # as transformers registers them: matched in the raw text, kept whole
                    value = {"content": value, "lstrip": False, "rstrip": False, "normalized": False,
                             "single_word": False}
                config[attribute] = value
            for attribute in ("bos_token", "eos_token"):
                config.setdefault(attribute, None)
            config.setdefault("tokenizer_class", "BertTokenizer")
            backend = _wordpiece_tokenizer(wordpiece_file, config)
            try:
                tokenizer = cls(tokenizer_object=backend, **config)  # do_lower_case & co. are kept and written back
            except (ValueError, TypeError) as e:
                raise type(e)(f"Invalid setting in {config_path} / {map_path}: {e}") from e
            tokenizer.name_or_path = path
            return tokenizer
        spm_file = os.path.join(path, SENTENCEPIECE_FILE)
        if not os.path.isfile(tokenizer_file) and not os.path.isfile(vocab_file) and os.path.isfile(spm_file):
            return cls._from_sentencepiece(path, spm_file, config)
        if not os.path.isfile(tokenizer_file):
            missing = [p for p in (vocab_file, merges_file) if not os.path.isfile(p)]
            if missing:
                raise FileNotFoundError(
                    f"Tokenizer file not found: {' and '.join(missing)} (a tokenizer folder needs {TOKENIZER_FILE}, "
                    f"or {VOCAB_FILE} and {MERGES_FILE}, or BERT's {WORDPIECE_VOCAB_FILE})."
                )
        try:
            foreign = os.path.isfile(tokenizer_file) and not _is_byte_level(_read_json_object(tokenizer_file))
        except ValueError:
            foreign = False  # a corrupt file: the constructor says so
        if foreign:
            # another family's tokenizer: its special tokens are those its files name, no RoBERTa defaults
            for attribute in SPECIAL_TOKEN_ATTRIBUTES:
                config.setdefault(attribute, None)
        try:
            if os.path.isfile(tokenizer_file):
                tokenizer = cls(tokenizer_file=tokenizer_file, **config)
            else:
                tokenizer = cls(vocab_file=vocab_file, merges_file=merges_file, **config)
        except (ValueError, TypeError) as e:
            # a bad setting read from tokenizer_config.json / special_tokens_map.json: say which file
            bad = [key for key in sources if f"`{key}`" in str(e)]
            if bad:
                raise type(e)(f"Invalid setting in {sources[bad[0]]}: {e}") from e
            raise
        tokenizer.name_or_path = path
        return tokenizer

    @classmethod
    def _from_sentencepiece(cls: type[_T], path: str, spm_file: str, config: dict[str, Any]) -> _T:
        """An XLM-R / CamemBERT folder with the SentencePiece model only (no `tokenizer.json`): the pipeline
        transformers' fast tokenizer builds from it (`tf_longformer.spm`), the family from `tokenizer_class` or the
        folder's `config.json` `model_type`."""
        from tf_longformer import spm

        tokenizer_class = config.get("tokenizer_class")
        if tokenizer_class is None:
            model_config = os.path.join(path, "config.json")
            model_type = _read_json_object(model_config).get("model_type") if os.path.isfile(model_config) else None
            tokenizer_class = "CamembertTokenizer" if model_type == "camembert" else "XLMRobertaTokenizer"
        family = spm.FAMILIES.get(tokenizer_class)
        if family is None:
            raise ValueError(
                f"{spm_file} is a SentencePiece model of a {tokenizer_class!r} tokenizer; only the XLM-RoBERTa and "
                f"CamemBERT layouts ({', '.join(sorted(set(spm.FAMILIES)))}) convert without transformers. Write its "
                f"{TOKENIZER_FILE} with transformers: python -c \"from transformers import AutoTokenizer; "
                f"AutoTokenizer.from_pretrained('{path}').save_pretrained('{path}')\"")
        try:
            backend = spm.unigram_tokenizer(spm.read_model(spm_file), family)
        except ValueError as e:
            raise ValueError(f"{e} Write its {TOKENIZER_FILE} with transformers: python -c \"from transformers "
                             f"import AutoTokenizer; AutoTokenizer.from_pretrained('{path}').save_pretrained("
                             f"'{path}')\"") from None
        settings = spm.special_tokens(family)
        extra = settings.get("additional_special_tokens") or []
        backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in extra])
        # the folder's own settings (tokenizer_config.json, special_tokens_map.json) win
        settings.update({k: v for k, v in config.items() if v is not None or k not in SPECIAL_TOKEN_ATTRIBUTES})
        tokenizer = cls(tokenizer_object=backend, **settings)
        tokenizer.name_or_path = path
        return tokenizer

    @classmethod
    def train_new_from_iterator(
        cls: type[_T],
        texts: Iterable[str] | Iterable[list[str]],
        vocab_size: int,
        min_frequency: int = 2,
        *,
        length: int | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> _T:
        """Train a new byte-level BPE vocabulary on `texts` (strings, or batches of strings).

        The vocabulary starts with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4, then the 256 byte symbols,
        then the merges; `vocab_size` (at least 261) is an upper bound. `length` (number of items) only feeds the
        progress bar. Other keyword arguments (`add_prefix_space`, `model_max_length`, ...) go to the constructor.
        """
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        minimum = len(TRAINING_SPECIAL_TOKENS) + len(alphabet)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
            raise ValueError(
                f"`vocab_size` must be an integer >= {minimum} (5 special tokens + 256 bytes), got {vocab_size!r}."
            )
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 0:
            raise ValueError(f"`min_frequency` must be a non-negative integer, got {min_frequency!r}.")
        attributes = {
            "<s>": "bos_token",
            "<pad>": "pad_token",
            "</s>": "eos_token",
            "<unk>": "unk_token",
            "<mask>": "mask_token",
        }
        special = [_default_added_token(attributes[t], t, {}) for t in TRAINING_SPECIAL_TOKENS]
        add_prefix_space = bool(kwargs.get("add_prefix_space", False))

        backend = _bpe_tokenizer({}, [], pre_tokenizer=_byte_level_state(add_prefix_space))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=special,
            initial_alphabet=alphabet,
            show_progress=show_progress,
        )
        backend.train_from_iterator(texts, trainer=trainer, length=length)
        return cls(tokenizer_object=backend, **kwargs)

    # ----------------------------------------------------------------------------------------------------- saving

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, ...]:
        """Write vocab.json, merges.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json.

        Each file is written atomically (temporary file + `os.replace`). Returns the written paths. The folder
        loads back with `from_pretrained` here and with `transformers.AutoTokenizer.from_pretrained`.
        """
        directory = os.fspath(save_directory)
        if os.path.isfile(directory):
            raise ValueError(f"Cannot save a tokenizer to {directory}: it is a file, not a directory.")
        os.makedirs(directory, exist_ok=True)

        state = json.loads(self._tokenizer.to_str())
        state["truncation"] = None  # per-call settings are not part of the tokenizer
        state["padding"] = None
        model = state["model"]
        byte_level = _is_byte_level(state)
        files: dict[str, str] = {}
        config: dict[str, Any] = dict(self._extra_config)
        if byte_level:
            vocab = dict(sorted(model["vocab"].items(), key=lambda item: item[1]))
            merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
            if not any(" " in token for m in model["merges"] if not isinstance(m, str) for token in m):
                model["merges"] = merges  # `"a b"`: read by every tokenizers release (pairs only by 0.20+)
            files[VOCAB_FILE] = json.dumps(vocab, ensure_ascii=False)
            files[MERGES_FILE] = "#version: 0.2\n" + "".join(f"{m}\n" for m in merges)
            config.update(tokenizer_class="LongformerTokenizer", add_prefix_space=self._add_prefix_space,
                          trim_offsets=self._trim_offsets, errors="replace")
        else:  # another family's tokenizer (XLM-R, BERT): transformers reads the folder with that family's class
            config["tokenizer_class"] = self._tokenizer_class or "PreTrainedTokenizerFast"
        if self.model_input_names != type(self).model_input_names:
            config["model_input_names"] = list(self.model_input_names)
        config.update(
            model_max_length=self.model_max_length,
            clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
            padding_side=self.padding_side,
            truncation_side=self.truncation_side,
        )
        config.update(self.special_tokens_map)
        special_map: dict[str, Any] = {}
        for attribute, token in self._special_tokens.items():
            if attribute == "mask_token" or token.lstrip or token.rstrip or token.single_word:
                special_map[attribute] = {
                    "content": token.content,
                    "lstrip": token.lstrip,
                    "normalized": token.normalized,
                    "rstrip": token.rstrip,
                    "single_word": token.single_word,
                }
            else:
                special_map[attribute] = token.content

        files.update({
            TOKENIZER_FILE: json.dumps(state, ensure_ascii=False, indent=2),
            TOKENIZER_CONFIG_FILE: json.dumps(config, ensure_ascii=False, indent=2) + "\n",
            SPECIAL_TOKENS_MAP_FILE: json.dumps(special_map, ensure_ascii=False, indent=2) + "\n",
        })
        written = []
        for name, text in files.items():
            target = os.path.join(directory, name)
            _atomic_write_text(target, text)
            written.append(target)
        return tuple(written)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> LongformerTokenizerFast:
        new = self.__class__.__new__(self.__class__)
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, add_prefix_space={self._add_prefix_space}, "
            f"padding_side={self.padding_side!r})"
        )

    # ------------------------------------------------------------------------------------------------- properties

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The underlying `tokenizers.Tokenizer` (shared, not a copy)."""
        return self._tokenizer

    @property
    def add_prefix_space(self) -> bool:
        return self._add_prefix_space

    @add_prefix_space.setter
    def add_prefix_space(self, value: bool) -> None:
        self._add_prefix_space = bool(value)
        self._configure_backend()

    @property
    def trim_offsets(self) -> bool:
        return self._trim_offsets

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without tokens added on top of it)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the full vocabulary, added tokens included."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def _content(self, attribute: str) -> str | None:
        token = self._special_tokens.get(attribute)
        return None if token is None else token.content

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {attribute: token.content for attribute, token in self._special_tokens.items()}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys(self.special_tokens_map.values()))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def bos_token(self) -> str | None:
        """Beginning-of-sequence token (`<s>`)."""
        return self._content("bos_token")

    @property
    def eos_token(self) -> str | None:
        """End-of-sequence token (`</s>`)."""
        return self._content("eos_token")

    @property
    def sep_token(self) -> str:
        """Separator token (`</s>`)."""
        return self._content("sep_token")

    @property
    def cls_token(self) -> str:
        """Classifier token, first of every sequence (`<s>`)."""
        return self._content("cls_token")

    @property
    def unk_token(self) -> str:
        """Unknown token (`<unk>`)."""
        return self._content("unk_token")

    @property
    def pad_token(self) -> str:
        """Padding token (`<pad>`)."""
        return self._content("pad_token")

    @property
    def mask_token(self) -> str:
        """Mask token for masked language modelling (`<mask>`; it absorbs the space before it)."""
        return self._content("mask_token")

    @property
    def bos_token_id(self) -> int | None:
        return None if self.bos_token is None else self.convert_tokens_to_ids(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return None if self.eos_token is None else self.convert_tokens_to_ids(self.eos_token)

    @property
    def sep_token_id(self) -> int | None:
        return None if self.sep_token is None else self.convert_tokens_to_ids(self.sep_token)

    @property
    def cls_token_id(self) -> int | None:
        return None if self.cls_token is None else self.convert_tokens_to_ids(self.cls_token)

    @property
    def unk_token_id(self) -> int | None:
        return None if self.unk_token is None else self._tokenizer.token_to_id(self.unk_token)

    @property
    def pad_token_id(self) -> int | None:
        return None if self.pad_token is None else self.convert_tokens_to_ids(self.pad_token)

    @property
    def mask_token_id(self) -> int | None:
        return None if self.mask_token is None else self.convert_tokens_to_ids(self.mask_token)

    # ---------------------------------------------------------------------------------------------- conversions

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token string(s) -> id(s); tokens not in the vocabulary map to `unk_token_id`."""
        if isinstance(tokens, str):
            index = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if index is None else index
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | list[str | None] | None:
        """Id(s) -> token string(s) (None for an id outside the vocabulary)."""
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(i) for i in _to_id_list(ids) if i not in special]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join byte-level token strings back into text."""
        return self._tokenizer.decoder.decode(list(tokens))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens encoding adds: 2 for one text, 4 for a pair."""
        return self._tokenizer.num_special_tokens_to_add(pair)

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """`<s> A </s>` or `<s> A </s></s> B </s>` from token ids without special tokens (or the layout of the
        tokenizer's own post-processor: `[CLS] A [SEP] B [SEP]` for BERT)."""
        post = json.loads(self._tokenizer.to_str()).get("post_processor") or {}
        if post.get("type") == "TemplateProcessing":
            out: list[int] = []
            for item in post["pair" if token_ids_1 is not None else "single"]:
                if "Sequence" in item:
                    out += list(token_ids_0 if item["Sequence"]["id"] == "A" else token_ids_1)
                else:
                    out += post["special_tokens"][item["SpecialToken"]["id"]]["ids"]
            return out
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if post.get("type") == "BertProcessing":
            return cls + list(token_ids_0) + sep + ([] if token_ids_1 is None else list(token_ids_1) + sep)
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + sep + list(token_ids_1) + sep

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """The token types of `build_inputs_with_special_tokens(token_ids_0, token_ids_1)`: all 0 for RoBERTa's
        layout, 0 for `[CLS] A [SEP]` and 1 for `B [SEP]` in BERT's (as its post-processor gives them)."""
        post = json.loads(self._tokenizer.to_str()).get("post_processor") or {}
        n = len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))
        if post.get("type") == "TemplateProcessing":
            out: list[int] = []
            for item in post["pair" if token_ids_1 is not None else "single"]:
                kind, spec = next(iter(item.items()))
                if kind == "Sequence":
                    out += [spec["type_id"]] * len(token_ids_0 if spec["id"] == "A" else token_ids_1)
                else:
                    out += [spec["type_id"]] * len(post["special_tokens"][spec["id"]]["ids"])
            return out
        if post.get("type") == "BertProcessing" and token_ids_1 is not None:
            return [0] * (len(token_ids_0) + 2) + [1] * (len(token_ids_1) + 1)
        return [0] * n

    def get_special_tokens_mask(self, token_ids: Sequence[int]) -> list[int]:
        """1 where `token_ids` (already with special tokens) holds a special token, else 0."""
        special = set(self.all_special_ids)
        return [1 if i in special else 0 for i in _to_id_list(token_ids)]

    # ------------------------------------------------------------------------------------------------- encoding

    def _strategies(
        self, padding: bool | str, truncation: bool | str | None, max_length: int | None, pad_to_multiple_of: int | None
    ) -> tuple[str, str, int | None]:
        """Resolve the call options like transformers does -> (padding strategy, truncation strategy, max_length)."""
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
        ):
            raise ValueError(f"`max_length` must be a non-negative integer or None, got {max_length!r}.")
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool) or not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0
        ):
            raise ValueError(f"`pad_to_multiple_of` must be a positive integer or None, got {pad_to_multiple_of!r}.")
        # transformers: a max_length alone (no padding, truncation unspecified) truncates longest_first.
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"

        if padding is False or padding is None:
            pad = "do_not_pad"
        elif padding is True:
            pad = "longest"
        elif padding in _PADDING_STRATEGIES:
            pad = padding
        else:
            raise ValueError(f"Invalid `padding` {padding!r}: use True/False or one of {_PADDING_STRATEGIES}.")
        if truncation is None or truncation is False:
            trunc = "do_not_truncate"
        elif truncation is True:
            trunc = "longest_first"
        elif truncation in _TRUNCATION_STRATEGIES:
            trunc = truncation
        else:
            raise ValueError(f"Invalid `truncation` {truncation!r}: use True/False or one of {_TRUNCATION_STRATEGIES}.")

        if max_length is None:
            if pad == "max_length":
                if self.model_max_length > _LARGE_INTEGER:
                    logger.warning("padding='max_length' without max_length and no model_max_length: not padding.")
                    pad = "do_not_pad"
                else:
                    max_length = self.model_max_length
            if trunc != "do_not_truncate":
                if self.model_max_length > _LARGE_INTEGER:
                    logger.warning("Truncation without max_length and no model_max_length: not truncating.")
                    trunc = "do_not_truncate"
                else:
                    max_length = self.model_max_length
        if (
            trunc != "do_not_truncate"
            and pad != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                f"Truncation and padding are both activated but truncation length ({max_length}) is not a multiple "
                f"of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return pad, trunc, max_length

    def _batch_inputs(self, text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list[Any], bool]:
        """Normalize the call's text arguments -> (inputs for `Tokenizer.encode_batch`, batched?)."""

        def is_words(x: Any) -> bool:
            return isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x)

        def check_single(x: Any, name: str) -> Any:
            if is_split_into_words:
                if not is_words(x):
                    raise TypeError(
                        f"`{name}` must be a list of word strings with is_split_into_words=True, got {x!r:.80}."
                    )
                return list(x)
            if not isinstance(x, str):
                raise TypeError(f"`{name}` must be a string, got {type(x).__name__}.")
            return x

        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))

        if not batched:
            first = check_single(text, "text")
            if text_pair is None:
                return [first], False
            return [(first, check_single(text_pair, "text_pair"))], False

        if text_pair is not None:
            if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
                n = len(text_pair) if isinstance(text_pair, (list, tuple)) else type(text_pair).__name__
                raise ValueError(
                    f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: {n}."
                )
            return [
                (check_single(a, "text"), check_single(b, "text_pair")) for a, b in zip(text, text_pair, strict=True)
            ], True

        inputs: list[Any] = []
        for item in text:
            if is_split_into_words or isinstance(item, str):
                inputs.append(check_single(item, "text"))
            elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(s, str) for s in item):
                inputs.append((item[0], item[1]))  # a (text, text_pair) pair
            else:
                raise TypeError(
                    f"Each batch item must be a string or a (text, text_pair) pair of strings, got {item!r:.80}."
                )
        return inputs, True

    def __call__(
        self,
        text: EncodeInput | Sequence[tuple[str, str]],
        text_pair: EncodeInput | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        is_split_into_words: bool = False,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        return_token_type_ids: bool | None = None,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
    ) -> BatchEncoding:
        """Encode one text, a pair, or a batch, like `transformers.LongformerTokenizerFast.__call__`.

        Inputs: a string; `text` + `text_pair` (one pair); a list of strings; a list of `(text, text_pair)` pairs or
        two parallel lists; with `is_split_into_words=True` (needs `add_prefix_space=True`), a list of words or a
        list of such lists. Pairs are laid out `<s> A </s></s> B </s>`.

        `padding`: False / "do_not_pad", True / "longest" (longest in the batch), "max_length" (to `max_length`, or
        `model_max_length`); rounded up to a multiple of `pad_to_multiple_of`. `truncation`: True /
        "longest_first", "only_first", "only_second", or False; `max_length` defaults to `model_max_length`. As in
        transformers, `max_length` with `padding=False` and `truncation` unset truncates (longest_first).

        Returns a `BatchEncoding` with `input_ids`, `attention_mask` (unless `return_attention_mask=False`) and the
        requested extras (`token_type_ids`, all zeros; `special_tokens_mask`; `offset_mapping`, (start, end)
        character spans, (0, 0) for special/padding tokens, relative to each word with pre-split words; `length`).
        Values are lists (flat for a single input), or int32 `tf.Tensor` (`return_tensors="tf"`) / int64
        `np.ndarray` (`"np"`) of shape (batch, length[, 2]).
        """
        if return_tensors not in (None, *_TENSOR_TYPES):
            raise ValueError(f"Unsupported return_tensors {return_tensors!r}: use None, 'tf' or 'np'.")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"`padding_side` must be 'right' or 'left', got {self.padding_side!r}.")
        if self.truncation_side not in ("right", "left"):
            raise ValueError(f"`truncation_side` must be 'right' or 'left', got {self.truncation_side!r}.")
        if is_split_into_words and self._byte_level and not self._add_prefix_space:
            raise ValueError(
                f"{self.__class__.__name__} needs add_prefix_space=True for is_split_into_words=True "
                "(e.g. from_pretrained(path, add_prefix_space=True))."
            )
        pad, trunc, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        inputs, batched = self._batch_inputs(text, text_pair, is_split_into_words)

        with self._lock:
            backend = self._tokenizer
            try:
                if trunc == "do_not_truncate":
                    backend.no_truncation()
                else:
                    backend.enable_truncation(max_length, stride=0, strategy=trunc, direction=self.truncation_side)
                if pad == "do_not_pad":
                    backend.no_padding()
                else:
                    backend.enable_padding(
                        length=max_length if pad == "max_length" else None,
                        direction=self.padding_side,
                        pad_id=self.pad_token_id,
                        pad_type_id=self.pad_token_type_id,
                        pad_token=self.pad_token,
                        pad_to_multiple_of=pad_to_multiple_of,
                    )
                encodings = backend.encode_batch(
                    inputs, is_pretokenized=is_split_into_words, add_special_tokens=add_special_tokens
                )
            except Exception as e:  # the tokenizers library raises bare Exceptions (e.g. "Truncation error: ...")
                if isinstance(e, (TypeError, ValueError)):
                    raise
                raise ValueError(str(e)) from e
            finally:
                backend.no_truncation()
                backend.no_padding()

        if trunc == "do_not_truncate" and not self._warned_too_long:
            longest = max((len(e.ids) for e in encodings), default=0)
            if longest > self.model_max_length:
                self._warned_too_long = True
                logger.warning(
                    "Token indices sequence length is longer than the specified maximum sequence length for this "
                    f"model ({longest} > {self.model_max_length}). Running it through the model will fail."
                )

        data: dict[str, list[Any]] = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in encodings]
        if return_length:
            data["length"] = [len(e.ids) for e in encodings]

        if return_tensors is not None:
            return BatchEncoding({k: self._as_tensor(k, v, return_tensors) for k, v in data.items()}, encodings)
        if not batched:  # single input: drop the batch level (`length` stays a one-element list, as in transformers)
            data = {k: (v[0] if k != "length" else v) for k, v in data.items()}
        return BatchEncoding(data, encodings)

    @staticmethod
    def _as_tensor(key: str, value: list[Any], return_tensors: str) -> Any:
        lengths = {len(v) for v in value} if key != "length" else {0}
        if len(lengths) > 1:
            raise ValueError(
                f"Cannot make a tensor of `{key}`: the sequences have different lengths {sorted(lengths)}. "
                "Use padding=True (and truncation=True) to get rectangular batches."
            )
        array = np.asarray(value, dtype=np.int64)
        if key == "offset_mapping" and array.size == 0:
            array = array.reshape(len(value), 0, 2)
        if return_tensors == "np":
            return array
        import tensorflow as tf  # lazy: TensorFlow is only needed when tensors are asked for

        return tf.constant(array.astype(np.int32))

    def encode(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        is_split_into_words: bool = False,
        return_tensors: str | None = None,
    ) -> Any:
        """The `input_ids` of one text (or pair): a list of ints, or a (1, length) tensor with `return_tensors`."""
        if not isinstance(text, str) and not is_split_into_words:
            raise TypeError("`encode` takes one text (a string); call the tokenizer on a list for a batch.")
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            is_split_into_words=is_split_into_words,
            return_tensors=return_tensors,
            return_attention_mask=False,
        )["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """The byte-level token strings of `text` (`'Ġ'` marks a leading space), without special tokens by default."""
        return self(text, pair, add_special_tokens=add_special_tokens).tokens()

    # ------------------------------------------------------------------------------------------------- decoding

    def decode(
        self,
        token_ids: int | Sequence[int] | Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Ids (list, NumPy array or tf tensor) -> text. Invalid UTF-8 byte sequences become U+FFFD.

        `clean_up_tokenization_spaces` (default: the tokenizer's setting, False) removes the spaces before
        punctuation and contractions, like transformers.
        """
        text = self._tokenizer.decode(_to_id_list(token_ids), skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """`decode` each row of a batch (list of lists, 2-D array or tensor)."""
        if hasattr(sequences, "numpy"):
            sequences = sequences.numpy()
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]


class LongformerTokenizer(LongformerTokenizerFast):
    """Alias of `LongformerTokenizerFast` under the name of transformers' slow tokenizer (same implementation,
    same outputs; offsets are supported too)."""


def train_tokenizer(
    texts: Iterable[str] | Iterable[list[str]], vocab_size: int, min_frequency: int = 2, **kwargs: Any
) -> LongformerTokenizerFast:
    """Train a new Longformer tokenizer from raw texts; see `LongformerTokenizerFast.train_new_from_iterator`."""
    return LongformerTokenizerFast.train_new_from_iterator(texts, vocab_size, min_frequency, **kwargs)


__all__ = [
    "BatchEncoding",
    "LongformerTokenizer",
    "LongformerTokenizerFast",
    "clean_up_tokenization",
    "train_tokenizer",
]
