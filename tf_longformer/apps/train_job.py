"""Train a long-document classifier end to end: data, split, tokenizer, `model.fit`, evaluation, export, report.

`tf-longformer train` runs this on a JSONL / CSV file (`text`, `label`) or, by default, on the State of the
Union corpus (`tf_longformer.apps.sotu_job`). One run:

1. splits the documents into training and held-out sets (by group when groups are given, so that no author,
   say, is on both sides; otherwise stratified by label);
2. trains a byte-level BPE tokenizer on the training texts (or takes the checkpoint's);
3. trains a Longformer classifier with `model.fit` on the first `max_length` tokens of each document (from
   scratch, or from a checkpoint), with the held-out accuracy after every epoch for the curves; `compile()`
   keeps the model's own defaults (loss, accuracy, `LongformerAdamW`) but for the learning rate (a warm-up then
   a cosine decay) and the weight decay;
4. trains the same model on the first `baseline_length` tokens only, as the "short model" baseline, and on
   every `baseline_length`-token chunk of the first `max_length` tokens, as the chunk-and-pool baseline (a
   document predicted by the mean of its chunks' logits: `chunk_document`, `pool_chunk_logits`);
5. measures held-out accuracy: majority class, the models at several reading lengths, by document length;
   steps 3-5 run once per seed with `seeds` > 1 (seeds `seed` .. `seed + seeds - 1`; one split and one tokenizer
   for all), and the figures are summarised as mean, sample sd, min and max (`summarize_seeds`);
6. saves the checkpoint of the first seed's long model (Hugging Face layout + tokenizer, loadable by
   `pipeline("text-classification")`), exports a SavedModel, reloads it with `tf.saved_model.load` and queries
   `serving_default`;
7. writes `report.json` (every figure) and `report.png` (training curves, accuracy against tokens read and
   against document length) and prints the figures.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from tf_longformer.files import atomic_write_bytes, save_figure


# -------------------------------------------------------------------------------------------------- the data
@dataclasses.dataclass
class Corpus:
    """Documents with a label each; `groups` (optional) keeps related documents on one side of the split;
    `titles` name documents in the printout."""

    name: str
    texts: list[str]
    labels: list[str]
    label_names: list[str]
    groups: list[str] | None = None
    titles: list[str] | None = None
    description: str = ""
    split_note: str = ""
    test_mask: np.ndarray | None = None  # a fixed split, when the corpus defines one

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels.")
        unknown = sorted(set(self.labels) - set(self.label_names))
        if unknown:
            raise ValueError(f"Labels {unknown} are not in label_names {self.label_names}.")


def _label_order(labels: Sequence[str]) -> list[str]:
    names = sorted(set(labels))
    try:
        return sorted(names, key=float)  # numeric labels in numeric order
    except ValueError:
        return names


def read_table(path: str, text_column: str = "text", label_column: str = "label",
               group_column: str | None = None) -> Corpus:
    """Reads a `.jsonl` (one JSON object per line) or `.csv` (header row) file of documents and labels."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No data file at {path!r}.")
    ext = os.path.splitext(path)[1].lower()
    rows: list[tuple[int, dict]] = []
    if ext in (".jsonl", ".json", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg}). A .jsonl file holds one JSON "
                                     "object per line.") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}, line {n}: expected a JSON object, got {type(row).__name__}.")
                rows.append((n, row))
    elif ext in (".csv", ".tsv"):
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents are long
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if ext == ".tsv" else ",")
            for n, row in enumerate(reader, 2):
                rows.append((n, row))
    else:
        raise ValueError(f"Unsupported data file {path!r}: use .jsonl or .csv (or .tsv).")
    if not rows:
        raise ValueError(f"{path} holds no rows.")
    texts, labels, groups = [], [], []
    for n, row in rows:
        for col in (text_column, label_column) + ((group_column,) if group_column else ()):
            if col not in row or row[col] is None:
                raise ValueError(f"{path}, row at line {n}: no {col!r} column (it has {sorted(row)}). Name the "
                                 "columns with --text-column / --label-column.")
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}, line {n}: the {text_column!r} field is empty or not text.")
        label = row[label_column]
        if isinstance(label, (dict, list)) or (isinstance(label, str) and not label.strip()):
            raise ValueError(f"{path}, line {n}: the label {label!r} is not a single value.")
        texts.append(text)
        labels.append(str(label).strip())
        if group_column:
            groups.append(str(row[group_column]))
    names = _label_order(labels)
    if len(names) < 2:
        raise ValueError(f"{path}: every row has the label {names[0]!r}; a classifier needs at least two labels.")
    return Corpus(name=os.path.basename(path), texts=texts, labels=labels, label_names=names,
                  groups=groups if group_column else None,
                  titles=[f"row {i + 1}" for i in range(len(texts))],
                  description=f"{len(texts)} documents from {path}")


def split_corpus(corpus: Corpus, eval_fraction: float, seed: int) -> np.ndarray:
    """A boolean held-out mask: whole groups when the corpus has groups, else stratified by label."""
    n = len(corpus.texts)
    if corpus.test_mask is not None:
        return np.asarray(corpus.test_mask, bool)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"`eval_fraction` must be in (0, 1), got {eval_fraction!r}.")
    rng = random.Random(seed)
    test = np.zeros(n, bool)
    if corpus.groups is not None:
        names = sorted(set(corpus.groups))
        if len(names) < 2:
            raise ValueError("Every document is in one group; a split by group needs at least two groups.")
        rng.shuffle(names)
        target, taken = eval_fraction * n, 0
        members = {g: [i for i, x in enumerate(corpus.groups) if x == g] for g in names}
        for g in names:
            if taken >= target or len(names) - sum(test[members[h][0]] for h in names) <= 1:
                break
            test[members[g]] = True
            taken += len(members[g])
    else:
        for label in corpus.label_names:
            idx = [i for i, x in enumerate(corpus.labels) if x == label]
            rng.shuffle(idx)
            k = int(round(eval_fraction * len(idx)))
            k = min(k, len(idx) - 1)  # keep one of each class for training
            test[idx[:k]] = True
    if test.all() or not test.any():
        raise ValueError(f"The split left {'no training' if test.all() else 'no held-out'} documents "
                         f"({n} documents, eval_fraction={eval_fraction}); give more data.")
    missing = sorted(set(corpus.label_names) - {corpus.labels[i] for i in np.flatnonzero(~test)})
    if missing:
        raise ValueError(f"No training document has the label(s) {missing}; give more documents of them.")
    return test


# ------------------------------------------------------------------------------------------------ settings
PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass
class Settings:
    """Everything a run depends on (written into report.json)."""

    output: str = "tf-longformer-train"
    max_length: int = 4096
    baseline_length: int = 512  # 0: no short-model baseline
    epochs: int = 6
    batch_size: int = 4
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    vocab_size: int = 8000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    attention_window: int = 128
    dropout: float = 0.1
    eval_fraction: float = 0.25
    seed: int = 0
    model: str | None = None  # start from this checkpoint instead of from scratch
    tokenizer: str | None = None
    export: bool = True
    eval_lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    seeds: int = 1  # train every model over seeds seed, seed + 1, ..., seed + seeds - 1
    chunk_baseline: bool = True  # with a baseline_length: also the chunk-and-pool baseline
    # "bfloat16": every model computes in bfloat16 (Keras' mixed_bfloat16 policy: float32 weights and optimizer,
    # bf16 products, LayerNorm and softmax in float32, float32 logits and loss)
    precision: str = "float32"

    def validate(self) -> None:
        for name in ("max_length", "epochs", "batch_size", "vocab_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "attention_window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")
        if self.max_length < 16:
            raise ValueError(f"`max_length` must be at least 16 tokens, got {self.max_length}.")
        if self.baseline_length and not 4 <= self.baseline_length < self.max_length:
            raise ValueError(f"`baseline_length` must be 0 (no baseline) or in [4, max_length={self.max_length}), "
                             f"got {self.baseline_length}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"`precision` (--precision) must be one of {', '.join(PRECISIONS)}, got "
                             f"{self.precision!r}.")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"`seeds` (--seeds) must be a whole number of at least 1, got {self.seeds!r}: it is how "
                             "many seeds every model is trained over (1: one run, the default).")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= 2**32 - self.seeds:
            raise ValueError(f"`seed` (--seed) must be a whole number in [0, 2**32 - seeds = {2**32 - self.seeds}] "
                             f"(seeds {self.seed} to {self.seed} + {self.seeds} - 1 are used), got {self.seed!r}.")


# -------------------------------------------------------------------------------------------------- helpers
def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def truncate(ids: list[int], length: int, eos: int) -> list[int]:
    """The first `length` tokens of an encoded document, ending with `</s>` (what truncation would give)."""
    return ids if len(ids) <= length else ids[:length - 1] + [eos]


def chunk_document(seq: Sequence[int], chunk_length: int, bos: int, eos: int) -> list[list[int]]:
    """A document's input cut into model inputs of at most `chunk_length` tokens each.

    `seq` is the document as the long model reads it (`<s>` tokens `</s>`, what `truncate` gives). The tokens
    between its `<s>` and `</s>` are cut, in order, into consecutive pieces of `chunk_length - 2` tokens, and each
    piece becomes a full input `<s>` piece `</s>` (the classification head makes its `<s>` global, as on any
    input). Every token of `seq` between `<s>` and `</s>` is in exactly one chunk; the last chunk holds what is
    left (it may be short); a document that fits in `chunk_length` tokens is one chunk, `seq` itself."""
    if isinstance(chunk_length, bool) or not isinstance(chunk_length, int) or chunk_length < 3:
        raise ValueError(f"`chunk_length` must be an integer of at least 3 (<s>, one token, </s>), got "
                         f"{chunk_length!r}.")
    body = list(seq)
    if body and body[0] == bos:
        body = body[1:]
    if body and body[-1] == eos:
        body = body[:-1]
    if not body:
        return [[bos, eos]]
    step = chunk_length - 2
    return [[bos] + body[k:k + step] + [eos] for k in range(0, len(body), step)]


def pool_chunk_logits(logits: np.ndarray, doc_of_chunk: np.ndarray, n_docs: int,
                      how: str = "mean_logits") -> np.ndarray:
    """One row per document from one row of logits per chunk: the mean over ALL of a document's chunks.

    `how`: "mean_logits" (the job's choice), "mean_log_probs" (the mean of each chunk's log-softmax; it differs
    from the mean of the logits by one constant per document, the same for every class, so it gives the same
    prediction and, after a softmax, the same probabilities) or "mean_probs" (the mean of each chunk's
    softmax: a soft vote, where a chunk's confidence counts for less)."""
    logits = np.asarray(logits, np.float64)
    doc_of_chunk = np.asarray(doc_of_chunk, np.int64)
    if logits.ndim != 2 or doc_of_chunk.shape != logits.shape[:1]:
        raise ValueError(f"Expected logits (chunks, classes) and one document index per chunk, got shapes "
                         f"{logits.shape} and {doc_of_chunk.shape}.")
    if doc_of_chunk.size and (doc_of_chunk.min() < 0 or doc_of_chunk.max() >= n_docs):
        raise ValueError(f"Document indices must be in [0, {n_docs}), got {doc_of_chunk.min()}..{doc_of_chunk.max()}.")
    counts = np.bincount(doc_of_chunk, minlength=n_docs)
    if (counts == 0).any():
        raise ValueError(f"Documents {np.flatnonzero(counts == 0).tolist()[:10]} have no chunk.")
    shifted = logits - logits.max(-1, keepdims=True)
    if how == "mean_logits":
        values = logits
    elif how == "mean_log_probs":
        values = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    elif how == "mean_probs":
        values = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    else:
        raise ValueError(f"`how` must be 'mean_logits', 'mean_log_probs' or 'mean_probs', got {how!r}.")
    sums = np.zeros((n_docs, logits.shape[1]))
    np.add.at(sums, doc_of_chunk, values)
    return sums / counts[:, None]


def chunk_model_name(chunk_length: int, max_length: int) -> str:
    """The chunk-and-pool baseline's plain name, in the printout, the plot and report.json."""
    return f"{chunk_length}-token chunks of the first {max_length}, mean-pooled logits"


def _spread(values) -> dict:
    """Mean, sample standard deviation (n - 1; None for one value), min, max and the values themselves."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}


MODELS = ("long_model", "short_model", "chunk_model")


def model_config(settings: Settings, tok, max_length: int | None = None, attention_window: int | None = None,
                 **extra):
    """The `LongformerConfig` of a model trained from scratch with `settings` and tokenizer `tok` (the job's
    sizes; `max_length` and `attention_window` default to the settings'); `extra` goes into the config as is."""
    import tf_longformer as T

    s = settings
    return T.LongformerConfig(
        vocab_size=len(tok), hidden_size=s.hidden_size, num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads, intermediate_size=s.intermediate_size,
        attention_window=attention_window or s.attention_window,
        max_position_embeddings=(max_length or s.max_length) + 2, type_vocab_size=1,
        layer_norm_eps=1e-5, hidden_dropout_prob=s.dropout, attention_probs_dropout_prob=s.dropout,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        sep_token_id=tok.sep_token_id, **extra)


def summarize_seeds(per_seed: list[dict]) -> dict:
    """The figures of every seed's run as mean / sd / min / max: overall accuracy, accuracy against tokens read,
    by document length (the buckets are the same for every seed: one tokenizer, one split) and fit times."""
    first = per_seed[0]
    acc = {"majority_class": first["accuracy"]["majority_class"],
           "majority_label": first["accuracy"]["majority_label"]}
    for key in first["accuracy"]:
        if key not in acc:
            acc[key] = _spread([r["accuracy"][key] for r in per_seed])
    curves = {m: {n: _spread([r["accuracy_vs_tokens_read"][m][n] for r in per_seed]) for n in c}
              for m, c in first["accuracy_vs_tokens_read"].items()}
    buckets = []
    for b, row in enumerate(first["accuracy_by_document_length"]):
        out = {"tokens": row["tokens"], "documents": row["documents"], "majority_class": row["majority_class"]}
        for m in MODELS:
            if m in row:
                out[m] = _spread([r["accuracy_by_document_length"][b][m] for r in per_seed])
        buckets.append(out)
    return {"seeds": [r["seed"] for r in per_seed],
            "note": "mean, sample standard deviation (n - 1; null with one seed), min and max over the seeds",
            "accuracy": acc, "accuracy_vs_tokens_read": curves, "accuracy_by_document_length": buckets,
            "fit_seconds": {m: _spread([r[m]["fit_seconds"] for r in per_seed]) for m in MODELS if m in first}}


def _dataset(seqs, labels, batch_size, pad_id, shuffle_seed=None):
    import tensorflow as tf

    def gen():
        for s, y in zip(seqs, labels):
            yield {"input_ids": np.asarray(s, np.int32), "attention_mask": np.ones(len(s), np.int32)}, np.int32(y)

    spec = ({"input_ids": tf.TensorSpec([None], tf.int32), "attention_mask": tf.TensorSpec([None], tf.int32)},
            tf.TensorSpec([], tf.int32))
    ds = tf.data.Dataset.from_generator(gen, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(seqs)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(seqs), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.padded_batch(batch_size, padding_values=({"input_ids": np.int32(pad_id), "attention_mask": np.int32(0)},
                                                     np.int32(0)))
    return ds.prefetch(2)


def export_classifier(model, directory: str) -> str:
    """Writes a SavedModel whose `serving_default` takes int32 `input_ids` and `attention_mask` of any batch and
    length and returns `logits`; written next to `directory` and renamed into place, so a crash never leaves
    half an export where the last one was."""
    import tensorflow as tf

    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".export-")
    try:
        spec = {"input_ids": tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                "attention_mask": tf.TensorSpec([None, None], tf.int32, name="attention_mask")}
        model.export(os.path.join(tmp, "m"), format="tf_saved_model", input_signature=[spec], verbose=False)
        _replace_dir(os.path.join(tmp, "m"), directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _replace_dir(new: str, target: str) -> None:
    old = None
    if os.path.exists(target):
        old = target + f".old-{os.getpid()}"
        os.replace(target, old)
    os.replace(new, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _accuracy_by_length(test_len, y_test, majority, preds) -> list[dict]:
    """Held-out accuracy in terciles of the documents' full token counts: majority class and each model."""
    edges = np.quantile(test_len, [0, 1 / 3, 2 / 3, 1]).astype(int)
    buckets = []
    for b in range(3):
        lo, hi = edges[b], edges[b + 1]
        sel = (test_len >= lo) & ((test_len < hi) if b < 2 else (test_len <= hi))
        if not sel.any():
            continue
        row = {"tokens": [int(lo), int(hi)], "documents": int(sel.sum()),
               "majority_class": float(np.mean(y_test[sel] == majority))}
        for key in MODELS:
            if key in preds:
                row[key] = float(np.mean(preds[key].argmax(-1)[sel] == y_test[sel]))
        buckets.append(row)
    return buckets


@dataclasses.dataclass
class _Data:
    """What the steps of one run share: labels as ids, the split, the tokenizer and the encoded documents."""

    y: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    tok: object = None
    full: list = None  # every document, all its tokens
    lengths: np.ndarray = None  # their token counts
    seqs: list = None  # the first `max_length` tokens of each
    pad: int = None
    eos: int = None
    bos: int = None
    chunks: list = None  # each document's `seqs` entry cut into `baseline_length`-token inputs (chunk_document)


# ------------------------------------------------------------------------------------------------ the run
class Trainer:
    """One training run over a `Corpus` with `Settings`; `run()` returns the report dict."""

    def __init__(self, corpus: Corpus, settings: Settings):
        settings.validate()
        self.corpus, self.s = corpus, settings
        self.report: dict = {}
        self._predictors: dict = {}
        self.seed = settings.seed  # the seed of the models being trained (settings.seed + i for the i-th)

    # ------------------------------------------------------------------------------------------- tokenizer
    def _tokenizer(self, train_texts):
        from tf_longformer import LongformerTokenizerFast

        s = self.s
        if s.tokenizer or s.model:
            path = s.tokenizer or s.model
            try:
                tok = LongformerTokenizerFast.from_pretrained(path)
            except FileNotFoundError as e:
                raise FileNotFoundError(f"{e} Pass --tokenizer with the checkpoint's tokenizer folder.") from None
            return tok, f"the tokenizer of {path} ({len(tok)} tokens)"
        tok = LongformerTokenizerFast.train_new_from_iterator(train_texts, vocab_size=s.vocab_size)
        return tok, (f"byte-level BPE, {len(tok)} tokens, trained on the {len(train_texts)} training documents "
                     "only")

    # --------------------------------------------------------------------------------------------- model
    def _new_model(self, tok):
        """A model to train, from the checkpoint or from scratch, in the job's precision."""
        model = self._new_float32_model(tok)
        if self.s.precision == "float32":
            return model
        from tf_longformer.serving import model_in_dtype

        return model_in_dtype(model, self.s.precision)  # the same initial weights, computing in bfloat16

    def _new_float32_model(self, tok):
        import keras

        import tf_longformer as T

        s, names = self.s, self.corpus.label_names
        id2label = dict(enumerate(names))
        label2id = {v: k for k, v in id2label.items()}
        keras.utils.set_random_seed(self.seed)  # weights, dropout and (in _fit) shuffling: all from this run's seed
        if s.model:
            config = T.LongformerConfig.from_pretrained(s.model)
            if s.max_length > config.max_sequence_length:
                raise ValueError(f"--max-length {s.max_length} is longer than the checkpoint's limit "
                                 f"({config.max_sequence_length} tokens).")
            import warnings

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*newly initialised.*")
                return T.TFLongformerForSequenceClassification.from_pretrained(
                    s.model, id2label=id2label, label2id=label2id, num_labels=len(names), problem_type=None)
        config = model_config(s, tok, id2label=id2label, label2id=label2id)
        model = T.TFLongformerForSequenceClassification(config)
        model.build()
        return model

    def _optimizer(self, n_train, batch_size=None):
        """The package's default optimizer (`training.default_optimizer`: AdamW without decay on biases and
        LayerNorm, gradients clipped to a global norm) with this job's learning rate, a linear warm-up to
        `learning_rate` then a cosine decay to 0, and its weight decay."""
        import keras

        from tf_longformer import training

        s = self.s
        steps = math.ceil(n_train / (batch_size or s.batch_size)) * s.epochs
        warmup = max(1, int(s.warmup_fraction * steps))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=max(1, steps - warmup), alpha=0.0, warmup_target=s.learning_rate,
            warmup_steps=warmup)
        return training.default_optimizer(learning_rate=schedule, weight_decay=s.weight_decay)

    def _fit(self, model, train_seqs, y_train, test_seqs, y_test, pad_id, tag, batch_size=None, unit="documents"):
        """`model.compile` with the model's own defaults (its loss, its accuracy) but this job's optimizer, then
        `model.fit` with the held-out figures after every epoch. Returns `(history, seconds)`."""
        s = self.s
        batch_size = batch_size or s.batch_size
        model.compile(optimizer=self._optimizer(len(train_seqs), batch_size))
        train_ds = _dataset(train_seqs, y_train, batch_size, pad_id, shuffle_seed=self.seed)
        test_ds = _dataset(test_seqs, y_test, batch_size, pad_id)
        _say(f"      model.fit: {s.epochs} epochs x {math.ceil(len(train_seqs) / batch_size)} steps of "
             f"{batch_size} {unit}, {tag}; held-out accuracy after each epoch")
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=test_ds, epochs=s.epochs, shuffle=False,
                            verbose=1 if sys.stdout.isatty() else 2)
        took = time.perf_counter() - start
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}, took

    def _predict(self, model, seqs, batch_size, pad_id):
        """Logits of `model` on `seqs`, through one `tf.function` trace that serves every length."""
        import tensorflow as tf

        fn = self._predictors.get(id(model))
        if fn is None:
            spec = tf.TensorSpec([None, None], tf.int32)
            fn = tf.function(
                lambda ids, mask: model({"input_ids": ids, "attention_mask": mask}, training=False)["logits"],
                input_signature=[spec, spec])
            self._predictors[id(model)] = fn
        out = []
        for x, _ in _dataset(seqs, [0] * len(seqs), batch_size, pad_id):
            out.append(fn(x["input_ids"], x["attention_mask"]).numpy())
        return np.concatenate(out)

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> dict:
        """The whole job: split, [1/6] tokenizer (one, shared by every seed), then for each seed [2/6] long model,
        [3/6] baselines (short model, chunk-and-pool), [4/6] evaluation; [5/6] checkpoint and export of the
        first seed's long model, [6/6] report; prints as it goes and returns the report.

        report.json holds the first seed's figures where a one-seed run always had them (`accuracy`,
        `accuracy_vs_tokens_read`, ...: the checkpoint's), every seed's under `per_seed`, and their mean, sample
        standard deviation, min and max under `across_seeds`."""
        t0, cpu0 = time.perf_counter(), time.process_time()
        s = self.s
        data = self._split()
        self._tokenize(data)
        seeds = [s.seed + i for i in range(s.seeds)]
        per_seed, first = [], None
        for i, seed in enumerate(seeds):
            self.seed = seed
            if len(seeds) > 1:
                _say(f"== seed {seed} ({i + 1} of {len(seeds)}"
                     + (": its long model is the checkpoint and the export)" if i == 0 else ")"))
            run = {"seed": seed}
            model = self._train_long_model(data, run)
            short = self._train_short_model(data, run)
            chunked = self._train_chunk_model(data, run)
            preds = self._evaluate(data, run, model, short, chunked)
            per_seed.append(run)
            self._predictors.clear()  # the traced predictors hold their models
            if i == 0:
                first = (model, preds)
                self.report.update({k: v for k, v in run.items() if k != "seed"})
            del model, short, chunked
        self.report["seeds"] = seeds
        if len(seeds) > 1:
            self.report["first_seed_note"] = (
                f"accuracy, accuracy_vs_tokens_read, accuracy_by_document_length, the confusion matrices and the "
                f"histories at the top level are seed {seeds[0]}'s (the checkpoint's); per_seed holds every seed's, "
                "across_seeds their mean, sd, min and max")
        self.report["per_seed"] = per_seed
        self.report["across_seeds"] = summarize_seeds(per_seed)
        self._save_and_export(data, *first)
        self._write_report(t0, cpu0)
        self.print_summary()
        return self.report

    def _split(self) -> _Data:
        """The labels as ids and the held-out split, printed and written into the report's header."""
        import tensorflow as tf

        s, c = self.s, self.corpus
        os.makedirs(s.output, exist_ok=True)
        label_id = {n: i for i, n in enumerate(c.label_names)}
        y = np.array([label_id[x] for x in c.labels])
        test = split_corpus(c, s.eval_fraction, s.seed)
        data = _Data(y=y, train_idx=np.flatnonzero(~test), test_idx=np.flatnonzero(test))
        _say(f"tf-longformer train: {c.description}")
        _say(f"  labels: {', '.join(f'{n} ({int((y == i).sum())})' for i, n in enumerate(c.label_names))}")
        _say(f"  split: {len(data.train_idx)} training / {len(data.test_idx)} held-out documents. "
             f"{c.split_note}".rstrip())
        self.report.update(corpus=c.name, description=c.description, labels=c.label_names, split_note=c.split_note,
                           n_train=int(len(data.train_idx)), n_test=int(len(data.test_idx)),
                           settings=dataclasses.asdict(s))
        self.report["machine"] = {"cpu_count": os.cpu_count(),
                                  "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                                  "tensorflow": tf.__version__}
        return data

    def _tokenize(self, data: _Data) -> None:
        """[1/6] The tokenizer, every document encoded, and the model's inputs (the first `max_length` tokens)."""
        s, c = self.s, self.corpus
        step = time.perf_counter()
        data.tok, how = self._tokenizer([c.texts[i] for i in data.train_idx])
        data.full = data.tok(c.texts)["input_ids"]
        lengths = data.lengths = np.array([len(x) for x in data.full])
        _say(f"[1/6] tokenizer: {how} ({_fmt_time(time.perf_counter() - step)})")
        _say(f"      documents: median {int(np.median(lengths))} tokens, {100 * np.mean(lengths > s.max_length):.0f}% "
             f"longer than {s.max_length} (the model reads the first {s.max_length})")
        self.report["tokens"] = {"median": int(np.median(lengths)), "min": int(lengths.min()),
                                 "max": int(lengths.max()),
                                 "share_longer_than_max_length": float(np.mean(lengths > s.max_length))}
        data.pad, data.eos, data.bos = data.tok.pad_token_id, data.tok.eos_token_id, data.tok.bos_token_id
        data.seqs = [truncate(x, s.max_length, data.eos) for x in data.full]
        if s.baseline_length and s.chunk_baseline:
            data.chunks = [chunk_document(x, s.baseline_length, data.bos, data.eos) for x in data.seqs]

    def _train_long_model(self, data: _Data, run: dict):
        """[2/6] The Longformer on the first `max_length` tokens of each document."""
        s = self.s
        model = self._new_model(data.tok)
        n_params = int(sum(np.prod(v.shape) for v in model.weights))
        cfg = model.config
        arch = (f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
                f"window {cfg.attention_windows[0]}, {n_params / 1e6:.2f}M parameters")
        _say(f"[2/6] Longformer {'from ' + s.model if s.model else 'from scratch'}: {arch} (seed {self.seed})")
        self.report["model"] = {"architecture": arch, "parameters": n_params, "from": s.model or "scratch"}
        hist, took = self._fit(model, [data.seqs[i] for i in data.train_idx], data.y[data.train_idx],
                               [data.seqs[i] for i in data.test_idx], data.y[data.test_idx], data.pad,
                               f"up to {s.max_length} tokens each")
        run["long_model"] = {"history": hist, "fit_seconds": round(took, 1)}
        _say(f"      trained in {_fmt_time(took)}")
        return model

    def _train_short_model(self, data: _Data, run: dict):
        """[3/6] The same model on the first `baseline_length` tokens only (the baseline), or None."""
        s = self.s
        if not s.baseline_length:
            _say("[3/6] no baselines (--baseline-length 0)")
            return None
        _say(f"[3/6] the same model trained on the first {s.baseline_length} tokens only (baseline)")
        short = self._new_model(data.tok)
        seqs = [truncate(x, s.baseline_length, data.eos) for x in data.full]
        hist, took = self._fit(short, [seqs[i] for i in data.train_idx], data.y[data.train_idx],
                               [seqs[i] for i in data.test_idx], data.y[data.test_idx], data.pad,
                               f"{s.baseline_length} tokens each")
        run["short_model"] = {"history": hist, "fit_seconds": round(took, 1)}
        _say(f"      trained in {_fmt_time(took)}")
        return short

    def _chunk_batch_size(self) -> int:
        """Chunks per step: as many tokens per step as the long model's batches (batch_size x max_length)."""
        s = self.s
        return max(1, s.batch_size * s.max_length // s.baseline_length)

    def _chunks_of(self, data: _Data, docs) -> tuple[list, np.ndarray]:
        """The chunks of documents `docs`, flat, and the position in `docs` of each chunk's document."""
        flat, owner = [], []
        for k, i in enumerate(docs):
            flat.extend(data.chunks[i])
            owner.extend([k] * len(data.chunks[i]))
        return flat, np.asarray(owner, np.int64)

    def _train_chunk_model(self, data: _Data, run: dict):
        """[3/6] The chunk-and-pool baseline: what one does without a long-input model. The same model as the
        short one, trained on EVERY `baseline_length`-token chunk of the first `max_length` tokens of each training
        document (`chunk_document`: <s> chunk </s>, each labelled with its document's label), so it sees the same
        tokens per epoch as the long model; same epochs and optimizer, and batches of the same number of tokens as
        the long model's (batch_size x max_length / baseline_length chunks). A document's prediction pools its
        chunks' logits (`_evaluate`). The per-epoch held-out accuracy in its history is per chunk, not pooled."""
        s = self.s
        if not (s.baseline_length and s.chunk_baseline):
            if s.baseline_length:
                _say("      no chunk-and-pool baseline (--no-chunk-baseline)")
            return None
        name = chunk_model_name(s.baseline_length, s.max_length)
        _say(f"[3/6] chunk-and-pool baseline: {name}")
        model = self._new_model(data.tok)
        train, owner = self._chunks_of(data, data.train_idx)
        test, test_owner = self._chunks_of(data, data.test_idx)
        batch = self._chunk_batch_size()
        hist, took = self._fit(model, train, data.y[data.train_idx][owner], test, data.y[data.test_idx][test_owner],
                               data.pad, f"{len(train)} chunks of up to {s.baseline_length} tokens from "
                               f"{len(data.train_idx)} documents", batch_size=batch, unit="chunks")
        run["chunk_model"] = {
            "name": name, "history": hist, "fit_seconds": round(took, 1), "batch_size_chunks": batch,
            "training_chunks": len(train), "chunks_per_document": _spread([len(data.chunks[i]) for i in
                                                                           data.train_idx]),
            "pooling": "mean of the chunks' logits over every chunk of the document's first max_length tokens "
                       "(the mean of log-probabilities gives the same prediction)",
            "history_note": "val_accuracy / val_loss are per held-out chunk, not per pooled document"}
        _say(f"      trained in {_fmt_time(took)}")
        return model

    def _evaluate(self, data: _Data, run: dict, model, short, chunked) -> dict:
        """[4/6] Held-out accuracy: majority class, the long and short models read at several lengths, the
        chunk-and-pool baseline on the first `max_length` tokens, all by document length, and the confusion
        matrices. Returns each model's held-out logits (the chunk model's pooled) at its own length."""
        s, c = self.s, self.corpus
        step = time.perf_counter()
        test_idx, y_test = data.test_idx, data.y[data.test_idx]
        _say(f"[4/6] evaluation on the {len(test_idx)} held-out documents")
        majority = int(np.bincount(data.y[data.train_idx], minlength=len(c.label_names)).argmax())
        acc = {"majority_class": float(np.mean(y_test == majority)), "majority_label": c.label_names[majority]}
        read_lengths = sorted({n for n in s.eval_lengths if n < s.max_length} | {s.max_length})
        curves: dict[str, dict[int, float]] = {"long_model": {}, "short_model": {}}
        preds = {}
        for n in read_lengths:
            cut = [truncate(data.full[i], n, data.eos) for i in test_idx]
            logits = self._predict(model, cut, s.batch_size, data.pad)
            curves["long_model"][n] = float(np.mean(logits.argmax(-1) == y_test))
            if n == s.max_length:
                preds["long_model"] = logits
            if short is not None and n <= s.max_length:
                logits_s = self._predict(short, cut, s.batch_size, data.pad)
                curves["short_model"][n] = float(np.mean(logits_s.argmax(-1) == y_test))
                if n == s.baseline_length:
                    preds["short_model"] = logits_s
        if short is not None and "short_model" not in preds:
            cut = [truncate(data.full[i], s.baseline_length, data.eos) for i in test_idx]
            preds["short_model"] = self._predict(short, cut, s.batch_size, data.pad)
        if chunked is not None:
            flat, owner = self._chunks_of(data, test_idx)
            chunk_logits = self._predict(chunked, flat, self._chunk_batch_size(), data.pad)
            # Mean of the logits: a document is predicted from the average of its chunks' scores, every chunk
            # weighing the same. Averaging in log space (logits, or log-probabilities: the same prediction, they
            # differ by a per-chunk constant shared by all classes) combines the chunks as independent evidence,
            # the way their training loss scores them, and the division by the number of chunks keeps a long
            # document from being more confident merely for having more chunks. The mean of probabilities (a soft
            # vote) is reported beside it.
            preds["chunk_model"] = pool_chunk_logits(chunk_logits, owner, len(test_idx), "mean_logits")
            soft = pool_chunk_logits(chunk_logits, owner, len(test_idx), "mean_probs")
            acc["chunk_model_mean_probabilities"] = float(np.mean(soft.argmax(-1) == y_test))
            acc["chunk_model_single_chunks"] = float(np.mean(chunk_logits.argmax(-1) == y_test[owner]))
        for key in MODELS:
            if key in preds:
                acc[key] = float(np.mean(preds[key].argmax(-1) == y_test))
        run["accuracy"] = acc
        run["accuracy_vs_tokens_read"] = {k: {str(n): v for n, v in d.items()} for k, d in curves.items() if d}
        run["accuracy_by_document_length"] = _accuracy_by_length(data.lengths[test_idx], y_test, majority, preds)
        for key in ("long_model", "chunk_model"):
            if key in preds:
                confusion = np.zeros((len(c.label_names),) * 2, int)
                for t, p in zip(y_test, preds[key].argmax(-1)):
                    confusion[t, p] += 1
                run[f"confusion_{key}"] = confusion.tolist()
        _say(f"      ({_fmt_time(time.perf_counter() - step)})")
        return preds

    def _save_and_export(self, data: _Data, model, preds: dict) -> None:
        """[5/6] The checkpoint (with its tokenizer) and, unless `export=False`, the SavedModel, reloaded with
        `tf.saved_model.load` and queried through `serving_default` on a few held-out documents."""
        s = self.s
        step = time.perf_counter()
        ckpt = os.path.join(s.output, "checkpoint")
        model.save_pretrained(ckpt)
        data.tok.model_max_length = s.max_length
        data.tok.save_pretrained(ckpt)
        self.report["checkpoint"] = ckpt
        if s.export:
            saved = export_classifier(model, os.path.join(s.output, "saved_model"))
            data.tok.save_pretrained(os.path.join(saved, "assets", "tokenizer"))
            k = min(4, len(data.test_idx))
            diff, queries = self._query_export(saved, data, preds["long_model"][:k])
            self.report["export"] = {"saved_model": saved,
                                     "signature": "serving_default(input_ids, attention_mask) -> logits",
                                     "max_abs_diff_vs_keras": diff, "queries": queries}
            _say(f"[5/6] checkpoint: {ckpt}; SavedModel: {saved}, reloaded with tf.saved_model.load and queried "
                 f"through serving_default on {k} held-out documents (largest difference from Keras: {diff:.1e}):")
            for q in queries:
                _say(f"        {q['document']:<28s} true {q['true']:<12s} predicted {q['predicted']:<12s} "
                     f"p={q['probability']:.2f}")
        else:
            _say(f"[5/6] checkpoint: {ckpt} (export skipped: --no-export)")
        _say(f"      ({_fmt_time(time.perf_counter() - step)})")

    def _query_export(self, saved: str, data: _Data, keras_logits: np.ndarray):
        """The reloaded SavedModel on the first held-out documents: its largest difference from `keras_logits`
        (the Keras model's on the same documents) and its answers."""
        import tensorflow as tf

        c = self.corpus
        served = tf.saved_model.load(saved).signatures["serving_default"]
        k = len(keras_logits)
        batch = [data.seqs[i] for i in data.test_idx[:k]]
        width = max(len(x) for x in batch)
        ids = np.full((k, width), data.pad, np.int32)
        mask = np.zeros((k, width), np.int32)
        for r, x in enumerate(batch):
            ids[r, :len(x)], mask[r, :len(x)] = x, 1
        out = served(input_ids=tf.constant(ids), attention_mask=tf.constant(mask))["logits"].numpy()
        diff = float(np.abs(out - keras_logits).max())
        probs = np.exp(out - out.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        queries = []
        for r, i in enumerate(data.test_idx[:k]):
            p = int(probs[r].argmax())
            queries.append({"document": (c.titles or [str(j) for j in range(len(c.texts))])[i],
                            "true": c.labels[i], "predicted": c.label_names[p],
                            "probability": round(float(probs[r, p]), 3)})
        return diff, queries

    def _write_report(self, t0: float, cpu0: float) -> None:
        """[6/6] `report.json` (every figure, the run's time included) and `report.png`."""
        s, rep = self.s, self.report
        rep["seconds"] = round(time.perf_counter() - t0, 1)
        rep["cpu_seconds"] = round(time.process_time() - cpu0, 1)
        rep["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        path_json = os.path.join(s.output, "report.json")
        atomic_write_bytes(path_json, (json.dumps(rep, indent=2) + "\n").encode())
        path_png = os.path.join(s.output, "report.png")
        plotted = write_plot(rep, path_png)
        _say(f"[6/6] report: {path_json}" + (f", {path_png}" if plotted else " (no plot: matplotlib is not "
                                                                            "installed)"))

    def print_summary(self) -> None:
        """The figures, as mean +- sample sd (min-max) over the seeds when there are several."""
        rep, s = self.report, self.s
        agg = rep["across_seeds"]
        acc = agg["accuracy"]
        seeds = agg["seeds"]
        several = len(seeds) > 1

        def pct(v, width=5):
            if not several:
                return f"{100 * v['values'][0]:{width}.1f}%"
            return (f"{100 * v['mean']:{width}.1f}% ± {100 * v['sd']:.1f} "
                    f"(min {100 * v['min']:.1f}, max {100 * v['max']:.1f})")

        def short_pct(v):
            if not several:
                return f"{100 * v['values'][0]:.0f}%"
            return f"{100 * v['mean']:.0f}% ± {100 * v['sd']:.0f} ({100 * v['min']:.0f}-{100 * v['max']:.0f})"

        _say("")
        over = (f" over {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}): mean ± sample sd (min, max)" if several else "")
        _say(f"Held-out accuracy{over} ({rep['n_test']} documents"
             f"{'; ' + rep['split_note'] if rep['split_note'] else ''}):")
        _say(f"  majority class ({acc['majority_label']}){'':<14s} {100 * acc['majority_class']:5.1f}%")
        if "short_model" in acc:
            _say(f"  Longformer, first {s.baseline_length:>5d} tokens{'':<9s} {pct(acc['short_model'])}")
        if "chunk_model" in acc:
            _say(f"  Longformer, {chunk_model_name(s.baseline_length, s.max_length)}: "
                 f"{pct(acc['chunk_model'], 1)}")
        _say(f"  Longformer, first {s.max_length:>5d} tokens{'':<9s} {pct(acc['long_model'])}")
        curve = agg["accuracy_vs_tokens_read"]["long_model"]
        _say(f"  long model reading only the first N tokens{' (mean)' if several else ''}: "
             + ", ".join(f"{n}: {100 * v['mean']:.0f}%" for n, v in curve.items()))
        for b in agg["accuracy_by_document_length"]:
            extra = "".join(f", {label} {short_pct(b[key])}" for key, label in
                            (("chunk_model", "chunks"), ("short_model", "short model")) if key in b)
            _say(f"  documents of {b['tokens'][0]}-{b['tokens'][1]} tokens ({b['documents']}): long model "
                 f"{short_pct(b['long_model'])}{extra}")
        if several:
            _say(f"  (the checkpoint{' and the export' if s.export else ''} {'are' if s.export else 'is'} seed {seeds[0]}'s long model; report.json has every seed's "
                 "figures under per_seed)")
        load = rep["machine"]
        _say(f"Total {_fmt_time(rep['seconds'])} on {load['cpu_count']} CPU cores, {_fmt_time(rep['cpu_seconds'])} of CPU "
             f"time (load average {load['load_average_at_start'][0]:.1f} at the start, "
             f"{load['load_average_at_end'][0]:.1f} at the end).")


# --------------------------------------------------------------------------------------------------- plot
def write_plot(rep: dict, path: str) -> bool:
    """Training curves, accuracy against tokens read and against document length, as one PNG. With several
    seeds: curves are the mean over the seeds with their min-max as a band, accuracies the mean with the sample
    min-max as error bars, and each seed's figure as a dot on the length buckets (the sample sd is in the
    printout and report.json)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    agg = rep["across_seeds"]
    acc = agg["accuracy"]
    s = rep["settings"]
    runs = rep["per_seed"]
    seeds = agg["seeds"]
    several = len(seeds) > 1
    colors = {"long_model": "#1f5fa8", "short_model": "#d9822b", "chunk_model": "#2e8b57"}
    major = "#7f7f7f"
    chunk_name = chunk_model_name(s["baseline_length"], s["max_length"])
    names = {"long_model": f"first {s['max_length']} tokens", "short_model": f"first {s['baseline_length']} tokens",
             "chunk_model": chunk_name}
    seeds_note = (f"\n{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}): lines and bars = the mean, bands and error bars = "
                  "min to max, dots = each seed" if several else f"; seed {seeds[0]}")
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(f"{rep['description']}\n{rep['model']['architecture']}; {rep['n_test']} held-out documents"
                 + (f" ({rep['split_note']})" if rep["split_note"] else "") + seeds_note, fontsize=10)

    def history(key, metric):
        h = np.array([r[key]["history"][metric] for r in runs])
        return np.arange(1, h.shape[1] + 1), h.mean(0), h.min(0), h.max(0)

    for ax, metric, title in ((axes[0, 0], "loss", "Loss (cross-entropy)"),
                              (axes[0, 1], "accuracy", "Accuracy during training")):
        for key in MODELS:
            if key not in runs[0]:
                continue
            per = " (per chunk)" if key == "chunk_model" else ""
            for m, style, where in ((metric, "-o", "training"), (f"val_{metric}", "--s", "held out")):
                epochs, mean, lo, hi = history(key, m)
                ax.plot(epochs, mean, style, color=colors[key], ms=4, label=f"{where}{per}, {names[key]}")
                if several:
                    ax.fill_between(epochs, lo, hi, color=colors[key], alpha=0.12)
        if metric == "accuracy":
            ax.axhline(acc["majority_class"], color=major, ls=":", label="majority class")
            ax.set(ylim=(0, 1.02))
        ax.set(title=title, xlabel="epoch", xticks=np.arange(1, len(runs[0]["long_model"]["history"]["loss"]) + 1))
        ax.legend(fontsize=7)
    ax = axes[1, 0]
    for key, label in (("long_model", f"trained on {s['max_length']} tokens"),
                       ("short_model", f"trained on {s['baseline_length']} tokens")):
        curve = agg["accuracy_vs_tokens_read"].get(key)
        if curve:
            xs = [int(n) for n in curve]
            ys = [v["mean"] for v in curve.values()]
            err = [[v["mean"] - v["min"] for v in curve.values()], [v["max"] - v["mean"] for v in curve.values()]]
            ax.errorbar(xs, ys, yerr=err if several else None, fmt="-o", color=colors[key], capsize=3, label=label)
    if "chunk_model" in acc:
        v = acc["chunk_model"]
        ax.errorbar([s["max_length"]], [v["mean"]], yerr=[[v["mean"] - v["min"]], [v["max"] - v["mean"]]] if several
                    else None, fmt="D",
                    color=colors["chunk_model"], capsize=3, ms=7, label=chunk_name)
    ax.axhline(acc["majority_class"], color=major, ls=":", label="majority class")
    ax.set_xscale("log", base=2)
    ticks = [int(n) for n in agg["accuracy_vs_tokens_read"]["long_model"]]
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.set(title="Held-out accuracy vs tokens read per document", xlabel="tokens read (the first N)",
           ylim=(0, 1.02))
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    buckets = agg["accuracy_by_document_length"]
    x = np.arange(len(buckets))
    shown = [k for k in ("short_model", "chunk_model", "long_model") if k in acc]
    width = 0.8 / (len(shown) + 1)
    ax.bar(x - 0.4 + width / 2, [b["majority_class"] for b in buckets], width, color=major, label="majority class")
    for j, key in enumerate(shown, 1):
        pos = x - 0.4 + width / 2 + j * width
        means = [b[key]["mean"] for b in buckets]
        ax.bar(pos, means, width, color=colors[key], label=names[key])
        if several:
            for p, b in zip(pos, buckets):
                ax.plot([p] * len(b[key]["values"]), b[key]["values"], "o", color="black", ms=2.5, alpha=0.7)
    ax.set_xticks(x, [f"{b['tokens'][0]}-{b['tokens'][1]}\n({b['documents']} docs)" for b in buckets])
    ax.set(title="Held-out accuracy by document length (tokens)", ylim=(0, 1.25), yticks=np.linspace(0, 1, 6))
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
    return True

