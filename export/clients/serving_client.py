"""Text in, answers out, for a tf-longformer export served by TensorFlow Serving.

The transport (REST in `rest_client.py`, gRPC in `grpc_client.py`) moves named tensors; this module tokenises
with the export's own tokenizer (`assets.extra/` of the export), picks the signature, and decodes the outputs:

    assets = ExportAssets("/models/longformer-qa/1")            # or a copy of its assets.extra/ folder
    client = LongformerClient(RestTransport("http://localhost:8501", "longformer-qa"), assets)
    client.answer("Who wrote it?", "It was written by Ann in 1990.")   # {"answer": "Ann", "score": ..., ...}

Every task uses the export's `auto_global` signature by default: ids and mask in, the head's own global-attention
rule applied by the server, logits and probabilities out.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

META_FILE = "tf_longformer_export.json"
EXTRA_DIR = "assets.extra"


class ServingError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""


class ExportAssets:
    """The files a client needs from an export: tokenizer, labels, task, signatures, limits."""

    def __init__(self, directory: str):
        directory = os.fspath(directory)
        if os.path.isdir(os.path.join(directory, EXTRA_DIR)):
            directory = os.path.join(directory, EXTRA_DIR)
        meta_path = os.path.join(directory, META_FILE)
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(
                f"No {META_FILE} in {directory}: give the export's version folder (e.g. /models/qa/1) or a copy of "
                f"its {EXTRA_DIR}/ folder.")
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        if not self.meta.get("tokenizer"):
            raise FileNotFoundError(f"The export at {directory} has no tokenizer files (exported with "
                                    "--no-tokenizer); re-export with --tokenizer DIR.")
        from tf_longformer.tokenizer import LongformerTokenizerFast

        self.directory = directory
        self.tokenizer = LongformerTokenizerFast.from_pretrained(directory)
        self.task = self.meta["task"]
        self.max_length = int(self.meta["max_sequence_length"])
        self.id2label = {int(k): v for k, v in (self.meta.get("id2label") or {}).items()}
        self.signatures = self.meta["signatures"]

    def outputs_of(self, signature: str) -> list[str]:
        if signature not in self.signatures:
            raise ValueError(f"The export has no signature {signature!r}; it has {sorted(self.signatures)}.")
        return list(self.signatures[signature]["outputs"])


def _softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


class LongformerClient:
    """Task-level calls (`fill_mask`, `classify`, `tag`, `answer`, `choose`, `embed`) over a transport."""

    TASK_METHODS = {
        "masked_lm": "fill_mask", "sequence_classification": "classify", "token_classification": "tag",
        "question_answering": "answer", "multiple_choice": "choose", "base": "embed",
    }

    def __init__(self, transport, assets: ExportAssets | str, signature: str = "auto_global"):
        self.transport = transport
        self.assets = assets if isinstance(assets, ExportAssets) else ExportAssets(assets)
        self.tokenizer = self.assets.tokenizer
        self.signature = signature
        self.assets.outputs_of(signature)  # fails early on a signature the export lacks

    # ---------------------------------------------------------------------------------------------- plumbing
    def predict(self, inputs: dict, signature: str | None = None) -> dict:
        """Sends named int tensors, returns `{output name: np.ndarray}`."""
        signature = signature or self.signature
        needs_global = "global_attention_mask" in self.assets.signatures[signature]["inputs"]
        inputs = {k: np.asarray(v) for k, v in inputs.items()}
        if needs_global and "global_attention_mask" not in inputs:
            inputs["global_attention_mask"] = np.zeros_like(inputs["input_ids"])
        if not needs_global:
            inputs.pop("global_attention_mask", None)
        return self.transport.predict(inputs, signature, self.assets.outputs_of(signature))

    def _encode(self, text, text_pair=None, **kwargs):
        return self.tokenizer(text, text_pair, padding=True, truncation="only_second" if text_pair else True,
                              max_length=self.assets.max_length, return_tensors="np", **kwargs)

    def _require(self, task):
        if self.assets.task != task:
            raise ValueError(f"This export is a {self.assets.task} model; `{self.TASK_METHODS[task]}` needs a "
                             f"{task} export (use `{self.TASK_METHODS[self.assets.task]}`).")

    @staticmethod
    def _texts(texts):
        return [texts] if isinstance(texts, str) else list(texts)

    # ------------------------------------------------------------------------------------------------ tasks
    def fill_mask(self, texts, top_k: int | None = None):
        """For each text, for each `<mask>`: the best tokens `[{token_id, token, score, sequence}]`."""
        self._require("masked_lm")
        texts = self._texts(texts)
        enc = self._encode(texts)
        ids = enc["input_ids"]
        out = self.predict({"input_ids": ids, "attention_mask": enc["attention_mask"]})
        if "top_k_token_ids" in out:
            cand_ids, cand_p = out["top_k_token_ids"], out["top_k_probabilities"]
        else:
            probs = _softmax(out["logits"])
            cand_ids = np.argsort(-probs, axis=-1, kind="stable")[..., : top_k or 10]
            cand_p = np.take_along_axis(probs, cand_ids, axis=-1)
        k = cand_ids.shape[-1] if top_k is None else min(top_k, cand_ids.shape[-1])
        mask_id = self.tokenizer.mask_token_id
        results = []
        for b in range(len(texts)):
            per_text = []
            for pos in np.flatnonzero(ids[b] == mask_id):
                options = []
                for j in range(k):
                    token_id = int(cand_ids[b, pos, j])
                    filled = ids[b][enc["attention_mask"][b] == 1].copy()
                    filled[pos] = token_id
                    options.append({"token_id": token_id, "token": self.tokenizer.decode([token_id]),
                                    "score": float(cand_p[b, pos, j]),
                                    "sequence": self.tokenizer.decode(filled.tolist(), skip_special_tokens=True)})
                per_text.append(options)
            results.append(per_text)
        return results

    def classify(self, texts):
        """For each text: `{label, score, scores}` (multi-label exports: `labels` above 0.5)."""
        self._require("sequence_classification")
        texts = self._texts(texts)
        enc = self._encode(texts)
        out = self.predict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        multi = self.assets.meta.get("probabilities") == "sigmoid"
        probs = out.get("probabilities")
        if probs is None:
            probs = 1 / (1 + np.exp(-out["logits"])) if multi else _softmax(out["logits"])
        results = []
        for p in probs:
            scores = {self.assets.id2label.get(i, f"LABEL_{i}"): float(v) for i, v in enumerate(p)}
            best = int(np.argmax(p))
            item = {"label": self.assets.id2label.get(best, f"LABEL_{best}"), "score": float(p[best]),
                    "scores": scores}
            if multi:
                item["labels"] = [name for name, v in scores.items() if v > 0.5]
            results.append(item)
        return results

    def tag(self, texts):
        """For each text, one entry per (non-special) token: `{token, word, start, end, label, score}`."""
        self._require("token_classification")
        texts = self._texts(texts)
        enc = self._encode(texts, return_offsets_mapping=True, return_special_tokens_mask=True)
        out = self.predict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        probs = out.get("probabilities")
        if probs is None:
            probs = _softmax(out["logits"])
        results = []
        for b, text in enumerate(texts):
            rows = []
            for i, token in enumerate(enc.tokens(b)):
                if enc["attention_mask"][b, i] == 0 or enc["special_tokens_mask"][b, i] == 1:
                    continue
                start, end = (int(x) for x in enc["offset_mapping"][b, i])
                best = int(np.argmax(probs[b, i]))
                rows.append({"token": token, "word": text[start:end], "start": start, "end": end,
                             "label": self.assets.id2label.get(best, f"LABEL_{best}"),
                             "score": float(probs[b, i, best])})
            results.append(rows)
        return results

    def answer(self, question: str, context: str, max_answer_length: int = 30):
        """The best span of `context`: `{answer, start, end, score}` (character offsets into `context`)."""
        self._require("question_answering")
        if max_answer_length < 1:
            raise ValueError(f"max_answer_length must be at least 1, got {max_answer_length}.")
        enc = self._encode([question], [context], return_offsets_mapping=True)
        out = self.predict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        start_logits, end_logits = out["start_logits"][0], out["end_logits"][0]
        if "start_probabilities" in out:
            start_p, end_p = out["start_probabilities"][0], out["end_probabilities"][0]
        else:
            keep = enc["attention_mask"][0] == 1
            start_p = _softmax(np.where(keep, start_logits, -np.inf))
            end_p = _softmax(np.where(keep, end_logits, -np.inf))
        in_context = np.array([s == 1 for s in enc.sequence_ids(0)], bool)
        positions = np.flatnonzero(in_context)
        if positions.size == 0:
            raise ValueError("The context is empty after tokenisation (or truncated away by a too-long question).")
        # Best (start, end) over context tokens with start <= end < start + max_answer_length.
        s, e = positions[:, None], positions[None, :]
        valid = (e >= s) & (e - s < max_answer_length)
        total = np.where(valid, start_logits[positions][:, None] + end_logits[positions][None, :], -np.inf)
        i, j = np.unravel_index(int(np.argmax(total)), total.shape)
        start_tok, end_tok = int(positions[i]), int(positions[j])
        start_char = int(enc["offset_mapping"][0, start_tok, 0])
        end_char = int(enc["offset_mapping"][0, end_tok, 1])
        return {"answer": context[start_char:end_char], "start": start_char, "end": end_char,
                "score": float(start_p[start_tok] * end_p[end_tok]),
                "start_token": start_tok, "end_token": end_tok}

    def choose(self, question: str, choices):
        """The best of `choices` for `question`: `{choice, text, score, scores}`."""
        self._require("multiple_choice")
        choices = list(choices)
        if len(choices) < 2:
            raise ValueError(f"Give at least two choices, got {len(choices)}.")
        enc = self._encode([question] * len(choices), choices)
        out = self.predict({"input_ids": enc["input_ids"][None], "attention_mask": enc["attention_mask"][None]})
        probs = out.get("probabilities")
        probs = _softmax(out["logits"])[0] if probs is None else probs[0]
        best = int(np.argmax(probs))
        return {"choice": best, "text": choices[best], "score": float(probs[best]),
                "scores": [float(p) for p in probs]}

    def embed(self, texts):
        """For each text: `pooler_output` and the mask-weighted mean of `last_hidden_state` (lists of floats)."""
        self._require("base")
        texts = self._texts(texts)
        enc = self._encode(texts)
        out = self.predict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        mask = enc["attention_mask"][..., None].astype(np.float64)
        mean = (out["last_hidden_state"] * mask).sum(1) / np.maximum(mask.sum(1), 1)
        return [{"pooler_output": out["pooler_output"][b].tolist(), "mean_pooled": mean[b].tolist()}
                for b in range(len(texts))]

    def run(self, text=None, question=None, context=None, choices=None, top_k=None, max_answer_length=30):
        """Dispatches on the export's task (what the command-line clients call)."""
        task = self.assets.task
        if task == "question_answering":
            if question is None or context is None:
                raise ValueError("A question-answering export needs --question and --context.")
            return self.answer(question, context, max_answer_length=max_answer_length)
        if task == "multiple_choice":
            if question is None or not choices:
                raise ValueError("A multiple-choice export needs --question and two or more --choice.")
            return self.choose(question, choices)
        if not text:
            raise ValueError(f"A {task} export needs one or more --text.")
        if task == "masked_lm":
            return self.fill_mask(text, top_k=top_k)
        return getattr(self, self.TASK_METHODS[task])(text)


# ------------------------------------------------------------------------------------------ command line
def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the model name the server serves it under")
    parser.add_argument("--version", type=int, help="a model version (default: the server's latest)")
    parser.add_argument("--assets", required=True,
                        help="the export's version folder, or a copy of its assets.extra/ folder (tokenizer, labels)")
    parser.add_argument("--signature", default="auto_global", help="signature to call (default auto_global)")
    parser.add_argument("--text", action="append", help="input text (repeat for a batch); fill-mask: include <mask>")
    parser.add_argument("--question", help="question (question answering, multiple choice)")
    parser.add_argument("--context", help="context to find the answer in (question answering)")
    parser.add_argument("--choice", action="append", help="a choice (multiple choice; repeat)")
    parser.add_argument("--top-k", type=int, help="fill-mask candidates per <mask>")
    parser.add_argument("--max-answer-length", type=int, default=30, help="longest answer in tokens (default 30)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")


def run_from_args(args, transport) -> int:
    client = LongformerClient(transport, args.assets, signature=args.signature)
    try:
        result = client.run(text=args.text, question=args.question, context=args.context, choices=args.choice,
                            top_k=args.top_k, max_answer_length=args.max_answer_length)
    except (ServingError, ValueError) as e:
        print(f"error: {e}")
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
