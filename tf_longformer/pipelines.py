"""Pipelines: text in, answers out, for the four tasks users run a Longformer on.

`pipeline(task, model=..., tokenizer=...)` gives a callable for `"fill-mask"`, `"question-answering"`,
`"text-classification"` and `"token-classification"` (aliases `"sentiment-analysis"`, `"ner"`). `model` is a
checkpoint directory, a hub id, or a model object; `tokenizer` a tokenizer folder or object (default: the
model's own folder). Inputs are batched (`batch_size`, sorted by length so padding is small), run through one
`tf.function` trace that serves every length, and a progress bar goes to stderr on long jobs.

Texts longer than the model's limit are handled the way each task needs: question answering and token
classification slide overlapping windows over the text (`doc_stride` / `stride` tokens of overlap) and map
answers back to character offsets of the original text; text classification reads the first `max_length`
tokens (and says so); fill-mask refuses with an error naming the length.

>>> import tempfile, tf_longformer as T
>>> from tf_longformer.pipelines import pipeline
>>> tok = T.LongformerTokenizerFast.train_new_from_iterator(["the cat sat on the mat"] * 20, vocab_size=280)
>>> cfg = T.LongformerConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
...                          intermediate_size=32, attention_window=4, max_position_embeddings=66)
>>> fill = pipeline("fill-mask", model=T.TFLongformerForMaskedLM(cfg), tokenizer=tok)
>>> len(fill("the cat <mask> on the mat", top_k=3))
3
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "FillMaskPipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "TASKS",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "group_entities",
    "pipeline",
]

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


# ------------------------------------------------------------------------------------------------- progress bar
class _Progress:
    """A progress bar on stderr (stdout stays clean for results). Redraws in place on a terminal; elsewhere
    (logs, notebooks, CI) prints a line about every 10%."""

    def __init__(self, total: int, label: str, enabled: bool, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def update(self, n: int) -> None:
        if not self.enabled:
            return
        self.done += n
        elapsed = time.perf_counter() - self.start
        frac = self.done / max(self.total, 1)
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "=" * int(24 * frac)
        line = (f"{self.label}: {self.done}/{self.total} [{bar:<24s}] {100 * frac:3.0f}% "
                f"{elapsed:5.1f}s elapsed, {eta:5.1f}s left")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done >= self.total else ""))
        elif int(10 * frac) > self._last_decile or self.done >= self.total:
            self._last_decile = int(10 * frac)
            self.stream.write(line + "\n")
        self.stream.flush()


# ----------------------------------------------------------------------------------------------------- helpers
def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _windows(n: int, room: int, overlap: int) -> list[tuple[int, int]]:
    """Token spans `[start, end)` of at most `room` tokens covering `[0, n)`, consecutive spans sharing
    `overlap` tokens."""
    if n <= room:
        return [(0, n)]
    spans, start = [], 0
    while True:
        end = min(start + room, n)
        spans.append((start, end))
        if end == n:
            return spans
        start = end - overlap


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ------------------------------------------------------------------------------------------------------ base
class Pipeline:
    """Base of the task pipelines: holds the model and tokenizer, batches features, runs the model.

    Args:
        model: a model of the task's class (`TFLongformerForMaskedLM`, ...).
        tokenizer: a `LongformerTokenizerFast`.
        batch_size: features (texts or windows) per model call.
        max_length: the longest sequence fed to the model, special tokens included (default: the smaller of
            the model's limit, `max_position_embeddings - 2`, and the tokenizer's `model_max_length`).
        progress: True / False, or None for a progress bar only on long jobs (more than `progress_after`
            batches).
        compile: run the model through one `tf.function` trace (True), eagerly (False), or None: eagerly
            until a call has more than 2 batches, then traced (a few seconds once, then much faster).
    """

    task = ""
    model_class_name = ""
    progress_after = 8

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_length: int | None = None,
                 progress: bool | None = None, compile: bool | None = None):
        import tf_longformer as T

        expected = getattr(T, self.model_class_name)
        if not isinstance(model, expected):
            raise TypeError(f"The {self.task!r} pipeline needs a {expected.__name__}, got {type(model).__name__}.")
        if tokenizer is None or not hasattr(tokenizer, "backend_tokenizer"):
            raise TypeError(f"`tokenizer` must be a LongformerTokenizerFast, got {type(tokenizer).__name__}.")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        config = model.config
        if len(tokenizer) > config.vocab_size:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary has {config.vocab_size}: "
                "they do not belong together (ids past the model's vocabulary would crash or mean nothing)."
            )
        limit = min(config.max_sequence_length, tokenizer.model_max_length)
        if max_length is None:
            max_length = limit
        elif not _is_int(max_length) or not 4 <= max_length <= limit:
            raise ValueError(f"`max_length` must be an integer in [4, {limit}] (the model's and tokenizer's limit), "
                             f"got {max_length!r}.")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.progress = progress
        self.compile = compile
        self._graph = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self.model).__name__}, max_length={self.max_length}, "
                f"batch_size={self.batch_size})")

    # -------------------------------------------------------------------------------------------- running
    output_names: tuple[str, ...] = ("logits",)
    per_token: tuple[str, ...] = ()

    def _forward(self, input_ids, attention_mask, global_attention_mask, extra, token_type_ids=None):
        """The model call for this task on one padded batch -> {name: tensor}."""
        types = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids, attention_mask=attention_mask, global_attention_mask=global_attention_mask,
                         training=False, **types)
        return {k: out[k] for k in self.output_names}

    def _extra_tensor(self, extra):
        return None

    @property
    def _uses_token_types(self) -> bool:
        """The tokenizer's family has token types (a model converted from BERT): the pipeline passes them on."""
        return "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())

    def _call_model(self, ids, mask, glob, extra, n_batches, types=None):
        """Eager for short jobs; from the first job of more than 2 batches on, one `tf.function` trace (its
        signature serves every batch size and length) that is much faster per batch but costs a few seconds
        to trace. `types`: token type ids, for models converted from a family that has them (BERT)."""
        import tensorflow as tf

        extra = self._extra_tensor(extra)
        use_graph = self.compile if self.compile is not None else (self._graph is not None or n_batches > 2)
        if not use_graph:
            return self._forward(ids, mask, glob, extra, token_type_ids=types)
        # which optional inputs a task's calls carry is fixed (its extra, its tokenizer's token types)
        optional = [t for t in (extra, types) if t is not None]
        if self._graph is None:
            spec = tf.TensorSpec([None, None], tf.int32)
            names = ["extra"] * (extra is not None) + ["types"] * (types is not None)

            def forward(ids, mask, glob, *rest):
                given = dict(zip(names, rest))
                return self._forward(ids, mask, glob, given.get("extra"), token_type_ids=given.get("types"))

            self._graph = tf.function(forward, input_signature=[spec] * (3 + len(names)))
        return self._graph(ids, mask, glob, *optional)

    def _run(self, features: list[dict]) -> list[dict[str, np.ndarray]]:
        """Runs the model on `features` (each with `input_ids`, optional `global` positions and `extra`),
        longest first in batches, and returns each feature's outputs cut back to its own length."""
        import tensorflow as tf

        pad = self.tokenizer.pad_token_id
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        show = self.progress if self.progress is not None else len(batches) > self.progress_after
        bar = _Progress(len(features), self.task, bool(show))
        results: list[dict[str, np.ndarray] | None] = [None] * len(features)
        for batch in batches:
            length = max(len(features[i]["input_ids"]) for i in batch)
            ids = np.full((len(batch), length), pad, np.int32)
            mask = np.zeros((len(batch), length), np.int32)
            glob = np.zeros((len(batch), length), np.int32)
            types = np.zeros((len(batch), length), np.int32) if self._uses_token_types else None
            for row, i in enumerate(batch):
                f = features[i]
                n = len(f["input_ids"])
                ids[row, :n] = f["input_ids"]
                mask[row, :n] = 1
                glob[row, list(f.get("global", ()))] = 1
                if types is not None and f.get("types") is not None:
                    types[row, :n] = f["types"]
            extra = [features[i].get("extra") for i in batch]
            out = self._call_model(tf.constant(ids), tf.constant(mask), tf.constant(glob), extra, len(batches),
                                   None if types is None else tf.constant(types))
            out = {k: v.numpy() for k, v in out.items()}
            for row, i in enumerate(batch):
                n = len(features[i]["input_ids"])
                results[i] = {k: (v[row, :n] if v.ndim >= 2 and v.shape[1] == length and k in self.per_token
                                  else v[row]) for k, v in out.items()}
            bar.update(len(batch))
        return results  # type: ignore[return-value]

    # ---------------------------------------------------------------------------------------------- inputs
    @staticmethod
    def _as_list(inputs, is_single) -> tuple[list, bool]:
        if is_single(inputs):
            return [inputs], True
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError("Got an empty list of inputs.")
            return list(inputs), False
        return [inputs], True


# ------------------------------------------------------------------------------------------------ fill-mask
class FillMaskPipeline(Pipeline):
    """Predicts the token behind each `<mask>`: for one mask, a list of `top_k` dicts
    `{"score", "token", "token_str", "sequence"}` (best first); for several masks in one text, one such list
    per mask. `score` is the softmax over the vocabulary at the mask; `sequence` the text with that mask
    filled (special tokens dropped). `targets` restricts the candidates to the given single-token words."""

    task = "fill-mask"
    model_class_name = "TFLongformerForMaskedLM"

    def _forward(self, input_ids, attention_mask, global_attention_mask, positions, token_type_ids=None):
        import tensorflow as tf

        # Only the masked positions go through the LM head: the full (batch, length, vocab) logits of a long
        # document would take gigabytes for nothing.
        model = self.model
        types = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        h = model.backbone(input_ids=input_ids, attention_mask=attention_mask,
                           global_attention_mask=global_attention_mask, training=False, **types)["last_hidden_state"]
        return {"logits": model.token_logits(tf.gather(h, positions, batch_dims=1))}

    def _extra_tensor(self, extra):
        import tensorflow as tf

        k = max(len(e) for e in extra)
        positions = np.zeros((len(extra), k), np.int32)
        for row, e in enumerate(extra):
            positions[row, :len(e)] = e
        return tf.constant(positions)

    def _target_ids(self, targets) -> np.ndarray | None:
        if targets is None:
            return None
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"`targets` must be a word or a non-empty list of words, got {targets!r}.")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for t in targets:
            if t in vocab:
                ids.append(vocab[t])
                continue
            pieces = self.tokenizer(t, add_special_tokens=False)["input_ids"]
            if len(pieces) != 1:
                raise ValueError(
                    f"Target {t!r} is {len(pieces)} tokens {self.tokenizer.convert_ids_to_tokens(pieces)}; "
                    "fill-mask scores single tokens. Give targets that are one token (mind the leading space: "
                    "' Paris' and 'Paris' are different tokens)."
                )
            ids.append(pieces[0])
        return np.array(sorted(set(ids)), np.int64)

    def __call__(self, inputs: str | Sequence[str], *, top_k: int = 5, targets: str | Sequence[str] | None = None):
        """`inputs`: a text with one or more `<mask>` tokens, or a list of such texts."""
        if not _is_int(top_k) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
        texts, single = self._as_list(inputs, lambda x: isinstance(x, str))
        tok = self.tokenizer
        features = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"fill-mask takes texts (strings), got {type(text).__name__}.")
            ids = tok(text)["input_ids"]
            masks = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
            if not masks:
                raise ValueError(f"No mask token ({tok.mask_token}) in the input {text[:80]!r}.")
            if len(ids) > self.max_length:
                raise ValueError(f"The input is {len(ids)} tokens; this model reads at most {self.max_length}. "
                                 "Shorten the text around the mask.")
            features.append({"input_ids": ids, "extra": masks})
        outputs = self._run(features)
        target_ids = self._target_ids(targets)
        n_vocab = len(tok)
        results = []
        for f, out in zip(features, outputs):
            per_mask = []
            for j, pos in enumerate(f["extra"]):
                probs = _softmax(out["logits"][j])
                candidates = np.arange(min(n_vocab, probs.shape[0])) if target_ids is None else target_ids
                best = candidates[np.argsort(-probs[candidates], kind="stable")[:top_k]]
                rows = []
                for token in best:
                    filled = list(f["input_ids"])
                    filled[pos] = int(token)
                    rows.append({"score": float(probs[token]), "token": int(token),
                                 "token_str": tok.decode([int(token)]),
                                 "sequence": tok.decode(filled, skip_special_tokens=True)})
                per_mask.append(rows)
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results[0] if single else results


# -------------------------------------------------------------------------------------- question answering
class QuestionAnsweringPipeline(Pipeline):
    """Extractive question answering: `{"score", "start", "end", "answer"}`, `answer == context[start:end]`.

    A context longer than the model's limit is read in overlapping windows (`<s> question </s></s> part of
    the context </s>`, consecutive parts sharing `doc_stride` tokens); each window scores spans with the
    product of its start and end probabilities over its context tokens, and the best spans over all windows
    win. The question is given global attention (the model's own rule).
    """

    task = "question-answering"
    model_class_name = "TFLongformerForQuestionAnswering"
    output_names = ("start_logits", "end_logits")
    per_token = ("start_logits", "end_logits")

    @staticmethod
    def _pairs(args, kwargs) -> tuple[list[tuple[str, str]], bool]:
        question, context = kwargs.pop("question", None), kwargs.pop("context", None)
        if args:
            if len(args) > 1 or question is not None or context is not None:
                raise TypeError("Give the inputs once: a {'question', 'context'} dict (or a list of them), "
                                "or question= and context=.")
            inputs = args[0]
        elif question is not None or context is not None:
            if question is None or context is None:
                raise ValueError("question-answering needs both `question` and `context`.")
            if isinstance(question, str) and isinstance(context, str):
                return [(question, context)], True
            qs = [question] if isinstance(question, str) else list(question)
            cs = [context] if isinstance(context, str) else list(context)
            if len(qs) == 1:
                qs = qs * len(cs)
            if len(cs) == 1:
                cs = cs * len(qs)
            if len(qs) != len(cs):
                raise ValueError(f"Got {len(qs)} questions and {len(cs)} contexts; give as many of each, or one "
                                 "of either.")
            return list(zip(qs, cs)), False
        else:
            raise ValueError("question-answering needs a question and a context.")

        def pair(x):
            if isinstance(x, Mapping):
                missing = [k for k in ("question", "context") if k not in x]
                if missing:
                    raise ValueError(f"A question-answering input needs keys 'question' and 'context'; missing "
                                     f"{missing} in {sorted(x)}.")
                return x["question"], x["context"]
            if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(s, str) for s in x):
                return x[0], x[1]
            raise TypeError(f"A question-answering input is a {{'question', 'context'}} dict, got {x!r:.80}.")

        if isinstance(inputs, Mapping):
            return [pair(inputs)], True
        if isinstance(inputs, (list, tuple)) and inputs and not isinstance(inputs[0], str):
            return [pair(x) for x in inputs], False
        return [pair(inputs)], True

    def __call__(self, *args, top_k: int = 1, doc_stride: int | None = None, max_answer_len: int = 15,
                 max_seq_len: int | None = None, handle_impossible_answer: bool = False, **kwargs):
        """`qa(question=..., context=...)`, `qa({"question": ..., "context": ...})`, or a list of such dicts.

        Args:
            top_k: answers per question (a dict for 1, a list otherwise).
            doc_stride: tokens shared by consecutive windows of a long context (default: 128, at most half
                a window).
            max_answer_len: the longest answer, in tokens.
            max_seq_len: window length, special tokens and question included (default: the model's limit).
            handle_impossible_answer: allow the empty answer (scored on `<s>`) when it beats every span.
        """
        pairs, single = self._pairs(args, kwargs)
        if kwargs:
            raise TypeError(f"Unknown arguments {sorted(kwargs)}.")
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        seq_len = self.max_length if max_seq_len is None else max_seq_len
        if not _is_int(seq_len) or not 8 <= seq_len <= self.max_length:
            raise ValueError(f"`max_seq_len` must be an integer in [8, {self.max_length}], got {max_seq_len!r}.")
        tok = self.tokenizer
        features, owners = [], []
        encoded = []
        for k, (question, context) in enumerate(pairs):
            if not isinstance(question, str) or not isinstance(context, str):
                raise TypeError("`question` and `context` must be strings.")
            if not question.strip():
                raise ValueError("The question is empty.")
            if not context.strip():
                raise ValueError(f"The context of question {question[:80]!r} is empty.")
            q = tok(question, add_special_tokens=False)["input_ids"]
            c = tok(context, add_special_tokens=False, return_offsets_mapping=True)
            room = seq_len - len(q) - tok.num_special_tokens_to_add(pair=True)  # <s> q </s></s> c </s>
            if room < 1:
                raise ValueError(f"The question is {len(q)} tokens; with max_seq_len={seq_len} no room is left for "
                                 "the context. Shorten the question or raise max_seq_len.")
            if doc_stride is None:
                overlap = min(128, room // 2)
            elif not _is_int(doc_stride) or not 0 <= doc_stride < room:
                raise ValueError(f"`doc_stride` must be an integer in [0, {room}) (the context tokens a window "
                                 f"holds next to this question), got {doc_stride!r}.")
            else:
                overlap = doc_stride
            encoded.append((q, c["input_ids"], c["offset_mapping"]))
            for start, end in _windows(len(c["input_ids"]), room, overlap):
                window = c["input_ids"][start:end]
                ids = tok.build_inputs_with_special_tokens(q, window)  # <s> q </s></s> c </s>, [CLS] q [SEP] c [SEP]
                offset = tok.build_inputs_with_special_tokens(q, [-1]).index(-1)
                features.append({"input_ids": ids, "global": range(len(q) + 1), "span": (start, end),
                                 "offset": offset, "types": tok.create_token_type_ids_from_sequences(q, window)})
                owners.append(k)
        outputs = self._run(features)
        results = []
        for k, (question, context) in enumerate(pairs):
            _, c_ids, offsets = encoded[k]
            spans, null = [], None
            for f, out, owner in zip(features, outputs, owners):
                if owner != k:
                    continue
                start, end = f["span"]
                lo, m = f["offset"], end - start
                keep = np.zeros(len(f["input_ids"]), bool)
                keep[lo:lo + m] = True
                if handle_impossible_answer:
                    keep[0] = True
                ps = _softmax(np.where(keep, out["start_logits"], -np.inf))
                pe = _softmax(np.where(keep, out["end_logits"], -np.inf))
                if handle_impossible_answer:
                    score = ps[0] * pe[0]
                    null = score if null is None else min(null, score)
                s_p, e_p = ps[lo:lo + m], pe[lo:lo + m]
                # scores[s, d] = P(start = s) * P(end = s + d), 0 <= d < max_answer_len, s + d inside the window
                width = min(max_answer_len, m)
                padded = np.concatenate([e_p, np.zeros(width)])
                ends = np.lib.stride_tricks.sliding_window_view(padded, width)[:m]
                scores = s_p[:, None] * ends
                flat = np.argsort(-scores, axis=None, kind="stable")[:top_k]
                for idx in flat:
                    s, d = divmod(int(idx), width)
                    if s + d >= m or scores[s, d] <= 0:
                        continue
                    a, b = start + s, start + s + d
                    spans.append((float(scores[s, d]), int(offsets[a][0]), int(offsets[b][1])))
            best: dict[tuple[int, int], float] = {}
            for score, a, b in spans:
                if score > best.get((a, b), -1.0):
                    best[(a, b)] = score
            ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
            answers = [{"score": s, "start": a, "end": b, "answer": context[a:b]} for (a, b), s in ranked]
            if null is not None:
                answers.append({"score": float(null), "start": 0, "end": 0, "answer": ""})
                answers.sort(key=lambda x: -x["score"])
            answers = answers[:top_k]
            results.append(answers[0] if top_k == 1 else answers)
        return results[0] if single else results


# -------------------------------------------------------------------------------------- text classification
class TextClassificationPipeline(Pipeline):
    """Labels a text (or a `{"text", "text_pair"}` pair): `{"label", "score"}` for `top_k=1`, the `top_k`
    best as a list otherwise (`top_k=None`: every label). Scores: softmax, or sigmoid for a single-output or
    multi-label model (`function_to_apply` overrides: "softmax", "sigmoid", "none"). A text longer than
    `max_length` tokens is cut to its first `max_length` tokens, with a warning; `truncation=False` makes it
    an error instead. `<s>` gets global attention (the model's own rule)."""

    task = "text-classification"
    model_class_name = "TFLongformerForSequenceClassification"

    def __call__(self, inputs, *, top_k: int | None = 1, function_to_apply: str | None = None,
                 truncation: bool = True):
        if top_k is not None and (not _is_int(top_k) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive integer or None (every label), got {top_k!r}.")
        config = self.model.config
        if function_to_apply is None:
            function_to_apply = ("sigmoid" if config.num_labels == 1
                                 or config.problem_type == "multi_label_classification" else "softmax")
        if function_to_apply not in ("softmax", "sigmoid", "none"):
            raise ValueError(f"`function_to_apply` must be 'softmax', 'sigmoid' or 'none', got {function_to_apply!r}.")

        def one(x):
            return isinstance(x, (str, Mapping))

        items, single = self._as_list(inputs, one)
        tok = self.tokenizer
        features, cut = [], 0
        for x in items:
            if isinstance(x, Mapping):
                if "text" not in x or set(x) - {"text", "text_pair"}:
                    raise ValueError(f"A text-classification dict has keys 'text' and optionally 'text_pair', "
                                     f"got {sorted(x)}.")
                text, pair = x["text"], x.get("text_pair")
            else:
                text, pair = x, None
            if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
                raise TypeError(f"text-classification takes strings, got {type(text).__name__}.")
            enc = tok(text, pair, truncation=True, max_length=self.max_length)
            if enc.encodings[0].overflowing:
                if not truncation:
                    full = len(tok(text, pair, add_special_tokens=False)["input_ids"])
                    raise ValueError(f"The input is more than {self.max_length} tokens ({full} without the special "
                                     f"tokens); this model reads at most {self.max_length} (pass truncation=True to "
                                     "read only the first part).")
                cut += 1
            ids = enc["input_ids"]
            features.append({"input_ids": ids, "global": (0,), "types": enc.get("token_type_ids")})
        if cut:
            warnings.warn(f"{cut} of {len(features)} inputs were longer than {self.max_length} tokens and were "
                          f"truncated to their first {self.max_length} tokens.", stacklevel=2)
        outputs = self._run(features)
        labels = [config.id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
        results = []
        for out in outputs:
            logits = out["logits"]
            scores = (_softmax(logits) if function_to_apply == "softmax"
                      else _sigmoid(logits) if function_to_apply == "sigmoid" else np.asarray(logits, np.float64))
            order = np.argsort(-scores, kind="stable")
            ranked = [{"label": labels[i], "score": float(scores[i])} for i in order]
            results.append(ranked[0] if top_k == 1 else ranked if top_k is None else ranked[:top_k])
        return results[0] if single else results


# ------------------------------------------------------------------------------------- token classification
def _split_tag(label: str) -> tuple[str, str]:
    """`B-PER` -> ("B", "PER"), `I-PER` -> ("I", "PER"), anything else -> ("I", label) (no BIO prefix)."""
    if label.startswith(("B-", "I-", "E-", "S-")):
        return ("B" if label[0] in "BS" else "I"), label[2:]
    return "I", label


def group_entities(text: str, offsets: Sequence[tuple[int, int]], probs: np.ndarray, id2label: Mapping[int, str],
                   aggregation_strategy: str = "simple", ignore_labels: Sequence[str] = ("O",)) -> list[dict]:
    """Per-token probabilities -> entities, as the token-classification pipeline returns them.

    `offsets[i]` is token i's character span in `text` (special tokens excluded); `probs[i]` its label
    probabilities. Strategies: "none" (one dict per token: `entity`, `score`, `index`, `word`, `start`, `end`);
    "simple" (consecutive tokens of one entity type are merged; `B-` starts a new entity); "first" /
    "average" / "max" (first the tokens of each whitespace-delimited word agree on one label: the first
    token's, the average over the word's tokens, or the most confident token's; then words are merged like
    "simple"). Merged entities are `{"entity_group", "score" (mean), "word" (the text span), "start", "end"}`.
    Entities whose label (or group) is in `ignore_labels` are left out.
    """
    if aggregation_strategy not in AGGREGATION_STRATEGIES:
        raise ValueError(f"`aggregation_strategy` must be one of {AGGREGATION_STRATEGIES}, "
                         f"got {aggregation_strategy!r}.")
    probs = np.asarray(probs, np.float64)
    ignore = set(ignore_labels or ())
    if aggregation_strategy == "none":
        out = []
        for i, ((a, b), p) in enumerate(zip(offsets, probs)):
            k = int(np.argmax(p))
            label = id2label[k]
            if label in ignore:
                continue
            out.append({"entity": label, "score": float(p[k]), "index": i + 1, "word": text[a:b], "start": int(a),
                        "end": int(b)})
        return out

    # units: tokens ("simple") or whitespace-delimited words, each with a label, a score and a span
    units: list[tuple[str, float, int, int]] = []
    if aggregation_strategy == "simple":
        for (a, b), p in zip(offsets, probs):
            k = int(np.argmax(p))
            units.append((id2label[k], float(p[k]), int(a), int(b)))
    else:
        words: list[list[int]] = []
        prev_end = None
        for i, (a, b) in enumerate(offsets):
            continues = prev_end is not None and a == prev_end and a > 0 and not text[a - 1].isspace()
            if continues:
                words[-1].append(i)
            else:
                words.append([i])
            prev_end = b
        for w in words:
            p = probs[w]
            if aggregation_strategy == "first":
                k = int(np.argmax(p[0]))
                score = float(p[0, k])
            elif aggregation_strategy == "average":
                mean = p.mean(axis=0)
                k = int(np.argmax(mean))
                score = float(mean[k])
            else:  # max
                t = int(np.argmax(p.max(axis=1)))
                k = int(np.argmax(p[t]))
                score = float(p[t, k])
            units.append((id2label[k], score, int(offsets[w[0]][0]), int(offsets[w[-1]][1])))

    groups: list[dict] = []
    current: list[tuple[str, float, int, int]] = []

    def flush():
        if current:
            _, tag = _split_tag(current[0][0])
            a, b = current[0][2], current[-1][3]
            groups.append({"entity_group": tag, "score": float(np.mean([u[1] for u in current])),
                           "word": text[a:b], "start": a, "end": b})

    for unit in units:
        bi, tag = _split_tag(unit[0])
        if current and (bi == "B" or tag != _split_tag(current[-1][0])[1]):
            flush()
            current = []
        current.append(unit)
    flush()
    return [g for g in groups if g["entity_group"] not in ignore]


class TokenClassificationPipeline(Pipeline):
    """Labels each token (named entities, ...), grouped into entities by `aggregation_strategy` (see
    `group_entities`). Offsets are character positions in the input text; `word` is the text between them.

    A text longer than the model's limit is read in overlapping windows (`stride` tokens shared by
    neighbours); each token takes its labels from the window where it has the most context on both sides.
    """

    task = "token-classification"
    model_class_name = "TFLongformerForTokenClassification"
    per_token = ("logits",)

    def __call__(self, inputs: str | Sequence[str], *, aggregation_strategy: str = "none",
                 ignore_labels: Sequence[str] = ("O",), stride: int | None = None):
        if aggregation_strategy not in AGGREGATION_STRATEGIES:
            raise ValueError(f"`aggregation_strategy` must be one of {AGGREGATION_STRATEGIES}, "
                             f"got {aggregation_strategy!r}.")
        texts, single = self._as_list(inputs, lambda x: isinstance(x, str))
        tok = self.tokenizer
        room = self.max_length - 2
        if stride is None:
            overlap = min(128, room // 2)
        elif not _is_int(stride) or not 0 <= stride < room:
            raise ValueError(f"`stride` must be an integer in [0, {room}), got {stride!r}.")
        else:
            overlap = stride
        features, owners, encoded = [], [], []
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"token-classification takes texts (strings), got {type(text).__name__}.")
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            encoded.append(enc)
            for start, end in _windows(len(enc["input_ids"]), room, overlap):
                features.append({"input_ids": tok.build_inputs_with_special_tokens(enc["input_ids"][start:end]),
                                 "span": (start, end)})
                owners.append(k)
        outputs = self._run(features)
        config = self.model.config
        id2label = {i: config.id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)}
        results = []
        for k, text in enumerate(texts):
            n = len(encoded[k]["input_ids"])
            logits = np.zeros((n, config.num_labels))
            centrality = np.full(n, -1)
            for f, out, owner in zip(features, outputs, owners):
                if owner != k:
                    continue
                start, end = f["span"]
                pos = np.arange(start, end)
                c = np.minimum(pos - start, end - 1 - pos)
                better = c > centrality[start:end]
                logits[start:end][better] = out["logits"][1:1 + end - start][better]
                centrality[start:end] = np.maximum(c, centrality[start:end])
            results.append(group_entities(text, encoded[k]["offset_mapping"], _softmax(logits, axis=-1), id2label,
                                          aggregation_strategy, ignore_labels))
        return results[0] if single else results


# ---------------------------------------------------------------------------------------------- the factory
TASKS: dict[str, type[Pipeline]] = {
    "fill-mask": FillMaskPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "text-classification": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def pipeline(task: str, model=None, tokenizer=None, *, batch_size: int = 8, max_length: int | None = None,
             progress: bool | None = None, compile: bool | None = None) -> Pipeline:
    """A ready-to-call pipeline for `task`.

    Args:
        task: "fill-mask", "question-answering", "text-classification" (alias "sentiment-analysis") or
            "token-classification" (alias "ner").
        model: a checkpoint directory or hub id (loaded into the task's model class), or a model object.
        tokenizer: a tokenizer folder or a `LongformerTokenizerFast`; default: the model's folder.
        batch_size, max_length, progress, compile: see `Pipeline`.
    """
    import tf_longformer as T
    from tf_longformer import files

    name = ALIASES.get(task, task)
    if name not in TASKS:
        raise ValueError(f"Unknown task {task!r}; use one of {sorted(TASKS) + sorted(ALIASES)}.")
    cls = TASKS[name]
    if model is None:
        raise ValueError(f"Give `model=`: a checkpoint directory, a hub id, or a {cls.model_class_name} object "
                         "(no default model is downloaded).")
    directory = None
    if isinstance(model, (str, os.PathLike)):
        directory = files.resolve_checkpoint_dir(model)
        model = getattr(T, cls.model_class_name).from_pretrained(directory)
    if tokenizer is None:
        if directory is None:
            raise ValueError("Give `tokenizer=` (a folder or a LongformerTokenizerFast) with a model object.")
        tokenizer = directory
    if isinstance(tokenizer, (str, os.PathLike)):
        try:
            tokenizer = T.LongformerTokenizerFast.from_pretrained(tokenizer)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"No tokenizer files in {os.fspath(tokenizer)!r} ({e}). Pass `tokenizer=` "
                                    "with the folder of the model's tokenizer.") from e
    return cls(model, tokenizer, batch_size=batch_size, max_length=max_length, progress=progress, compile=compile)
