"""Long from short, shown on real text: the Longformer paper's recipe in miniature (`tf-longformer recipe`).

On the State of the Union corpus (the main job's corpus, split, tokenizer and model sizes, `train_job`):

1. a small RoBERTa is pretrained with masked LM on the training addresses cut into `short_length`-token
   sequences. It is our `TFLongformerForMaskedLM` configured to compute exactly RoBERTa: `short_length + 2`
   positions, a window that covers the whole input (`2 * short_length`: every token sees `short_length` tokens on
   each side, more than the input holds), no global token. It is written as a Hugging Face RoBERTa folder
   (`sources.save_as_roberta`);
2. that folder is converted to `long_length` tokens with the path users run, `TFLongformerForMaskedLM.
   from_source(folder, source="roberta", max_length=long_length, attention_window=window, position_init=...)`,
   once with the learned positions copied over and over (the paper's initialisation) and once with the new rows
   drawn at random;
3. the copied-positions model continues masked-LM pretraining on the training addresses cut into
   `long_length`-token sequences, then its global projections are set from the local ones
   (`refresh_global_projections`: masked LM makes no token global, so they were never trained);
4. every model is scored on the held-out addresses with the SAME masked positions (`heldout_examples`): the
   first `(long_length // short_length) * (short_length - 2)` tokens of each address's body (4080 at 512/4096),
   15% of them masked with a fixed seed; the long models read them at once as `<s> body </s>`, RoBERTa as
   consecutive `short_length`-token inputs `<s> piece </s>` (`short_length - 2` body tokens each; 8 at
   512/4096), so every model predicts the same tokens from the same masked text, the specials are never scored,
   and each model sees what it can: RoBERTa one piece, the long models the whole body.
   The figure is bits per token: the mean cross-entropy over the masked positions, divided by ln 2;
5. the continued model is fine-tuned on the era task with the main job's settings (`train_job.Trainer` with the
   checkpoint as `model`), to set its held-out accuracy beside the from-scratch Longformer of the main job.

Pretraining runs without dropout (`pretrain_dropout`: a tiny model on a few million tokens is far from
over-fitting, and it left the unigram plateau sooner without, measured); the checkpoint fine-tuned carries the main
job's dropout (0.1) in its config.

Masking (`mask_tokens`): of the tokens that are not special, exactly round(15%) are chosen; of those, 80% become
`<mask>`, 10% a random ordinary token, 10% stay; the loss is on all the chosen ones. Every draw comes from NumPy
generators seeded by (seed, pass, sequence), so a run repeats exactly and training sees new masks on each pass.

Writes into `output`: `roberta-<short>/` (the RoBERTa folder), `longformer-<long>/` (the continued model, with
its tokenizer), `finetune/` (the train job's report and checkpoint), `report.json`, `report.md` (the table) and
`report.png`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy as np

from tf_longformer.apps.train_job import (Corpus, Settings, Trainer, _fmt_time, _say, model_config,
                                          split_corpus)
from tf_longformer.files import atomic_write_bytes, save_figure

IGNORE = -100
LN2 = math.log(2.0)
#: the rows of the table, in order
ROWS = ("roberta", "long_random", "long_copied", "long_copied_continued")


# ------------------------------------------------------------------------------------------------ settings
@dataclasses.dataclass
class RecipeSettings:
    """Everything a recipe run depends on (written into report.json). The defaults are the full-size run: about
    25 minutes on 2 idle CPU cores (README, "Long from short: the recipe")."""

    output: str = "tf-longformer-recipe"
    short_length: int = 512
    long_length: int = 4096
    attention_window: int = 256  # the long model's full window (each side sees 128)
    short_steps: int = 2500  # masked-LM steps at short_length, from scratch
    long_steps: int = 300  # continued masked-LM steps at long_length
    tokens_per_step: int = 4096  # batch: 8 sequences of 512, 1 of 4096
    short_learning_rate: float = 2e-3
    long_learning_rate: float = 3e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    mask_rate: float = 0.15
    vocab_size: int = 8000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    dropout: float = 0.1  # the fine-tuning's (the main job's); the checkpoint's config carries it
    pretrain_dropout: float = 0.0  # masked-LM pretraining's, at both lengths
    eval_documents: int | None = None  # score only the first N held-out addresses (None: all)
    finetune_epochs: int = 6  # the main job's; 0: no fine-tuning
    seed: int = 0

    def validate(self) -> None:
        for name in ("short_length", "long_length", "attention_window", "short_steps", "tokens_per_step",
                     "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")
        if isinstance(self.long_steps, bool) or not isinstance(self.long_steps, int) or self.long_steps < 0:
            raise ValueError(f"`long_steps` must be a whole number (0: no continued pretraining), got "
                             f"{self.long_steps!r}.")
        if self.short_length < 8 or self.long_length % self.short_length or self.long_length < 2 * self.short_length:
            raise ValueError(f"`long_length` ({self.long_length}) must be a multiple of `short_length` "
                             f"({self.short_length}, at least 8) and at least twice it.")
        if self.attention_window % 2:
            raise ValueError(f"`attention_window` is the full window and must be even, got {self.attention_window}.")
        for name in ("dropout", "pretrain_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)!r}.")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"`mask_rate` must be in (0, 1), got {self.mask_rate!r}.")
        if self.tokens_per_step < self.long_length:
            raise ValueError(f"`tokens_per_step` ({self.tokens_per_step}) must hold at least one "
                             f"{self.long_length}-token sequence.")

    def train_settings(self, **overrides) -> Settings:
        """The train job's settings with this run's sizes (tokenizer, config) and the main job's fine-tuning."""
        from tf_longformer.apps.sotu_job import SOTU_SETTINGS

        values = dict(SOTU_SETTINGS)
        values.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                      num_heads=self.num_heads, intermediate_size=self.intermediate_size, dropout=self.dropout,
                      seed=self.seed, max_length=self.long_length, attention_window=self.attention_window,
                      baseline_length=0, export=False, chunk_baseline=False)
        values.update(overrides)
        return Settings(**values)


# ---------------------------------------------------------------------------------------------- the maths
def mask_tokens(ids, rng: np.random.Generator, mask_id: int, special_ids, vocab_size: int,
                rate: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of one sequence: `(input_ids, labels)`. Of the tokens not in `special_ids`, exactly
    `round(rate * n)` (at least one when there is any) are chosen; of those 80% become `mask_id`, 10% a random
    token that is not special, 10% stay as they are. `labels` holds the original ids at the chosen positions and
    -100 elsewhere."""
    ids = np.asarray(ids, np.int64)
    special = np.asarray(sorted(set(int(i) for i in special_ids)), np.int64)
    candidates = np.flatnonzero(~np.isin(ids, special))
    out, labels = ids.copy(), np.full_like(ids, IGNORE)
    if candidates.size == 0:
        return out, labels
    k = max(1, int(round(rate * candidates.size)))
    chosen = np.sort(rng.choice(candidates, size=k, replace=False))
    labels[chosen] = ids[chosen]
    u = rng.random(k)
    out[chosen[u < 0.8]] = mask_id
    swap = chosen[(u >= 0.8) & (u < 0.9)]
    ordinary = np.setdiff1d(np.arange(vocab_size), special)
    out[swap] = rng.choice(ordinary, size=swap.size)
    return out, labels


def cover_document(seq, length: int, bos: int, eos: int) -> list[list[int]]:
    """A document (`<s> body </s>`) as full `length`-token inputs `<s> piece </s>` that cover every body token:
    consecutive pieces of `length - 2`, the last one ending at the body's end (it overlaps the one before rather
    than being a short, mostly padded input). A body that fits is one input."""
    body = list(seq[1:-1]) if len(seq) >= 2 and seq[0] == bos and seq[-1] == eos else list(seq)
    step = length - 2
    if len(body) <= step:
        return [[bos] + body + [eos]]
    starts = list(range(0, len(body) - step + 1, step))
    if starts[-1] + step < len(body):
        starts.append(len(body) - step)
    return [[bos] + body[s:s + step] + [eos] for s in starts]


@dataclasses.dataclass
class HeldOut:
    """The held-out masked-LM examples: each address's body, masked once, as the long models and RoBERTa read it.

    `long_ids` / `long_labels`: one row per address, `<s> body </s>` (ragged); `short_ids` / `short_labels`: the
    same body as consecutive `<s> piece </s>` inputs, in order; `targets`: the masked tokens in reading order
    (the same for both readings)."""

    long_ids: list
    long_labels: list
    short_ids: list
    short_labels: list
    targets: np.ndarray
    documents: int


def heldout_examples(docs, tok, short_length: int, long_length: int, seed: int, rate: float = 0.15) -> HeldOut:
    """The held-out evaluation set (see the module docstring, step 4). `docs`: the addresses encoded
    (`<s> ... </s>`). Each body is masked with its own generator, seeded by (seed, "held out", address index)."""
    body_length = (long_length // short_length) * (short_length - 2)
    piece = short_length - 2
    bos, eos = tok.bos_token_id, tok.eos_token_id
    out = HeldOut([], [], [], [], None, len(docs))
    targets = []
    for k, doc in enumerate(docs):
        body = list(doc[1:-1])[:body_length]
        rng = np.random.default_rng([seed, 7, k])  # 7: the held-out stream, apart from training's passes
        ids, labels = mask_tokens(body, rng, tok.mask_token_id, tok.all_special_ids, len(tok), rate)
        out.long_ids.append(np.concatenate([[bos], ids, [eos]]))
        out.long_labels.append(np.concatenate([[IGNORE], labels, [IGNORE]]))
        for s in range(0, len(body), piece):
            out.short_ids.append(np.concatenate([[bos], ids[s:s + piece], [eos]]))
            out.short_labels.append(np.concatenate([[IGNORE], labels[s:s + piece], [IGNORE]]))
        targets.append(labels[labels != IGNORE])
    out.targets = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    return out


def _padded(rows, pad_id, length=None):
    width = length or max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = r, 1
    return ids, mask


def masked_token_losses(model, ids_rows, label_rows, pad_id: int, batch_size: int = 1):
    """The cross-entropy (nats) of `model` (a `TFLongformerForMaskedLM`) at every labelled position of the rows,
    in reading order (row by row, left to right), and the labels there: `(losses, targets)`. The vocabulary
    logits are computed at the labelled positions only."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def step(ids, mask, labels):
        h = model.backbone(input_ids=ids, attention_mask=mask, training=False)["last_hidden_state"]
        where = tf.where(labels != IGNORE)
        logits = tf.cast(model.token_logits(tf.gather_nd(h, where)[tf.newaxis])[0], tf.float32)  # the head takes (b, l, h)
        target = tf.gather_nd(labels, where)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits), target

    losses, targets = [], []
    for b in range(0, len(ids_rows), batch_size):
        ids, mask = _padded(ids_rows[b:b + batch_size], pad_id)
        labels, _ = _padded(label_rows[b:b + batch_size], IGNORE, ids.shape[1])
        loss, target = step(ids, mask, labels)
        losses.append(loss.numpy().astype(np.float64))
        targets.append(target.numpy())
    return np.concatenate(losses), np.concatenate(targets)


def bits_per_token(losses) -> float:
    """The mean cross-entropy in nats over the scored tokens, in bits: mean / ln 2."""
    return float(np.mean(losses) / LN2)


def _part_times(start: float, cpu0: float, marks) -> dict:
    """Wall and CPU seconds of each part of a `fit` (one Keras epoch), from the (wall, CPU) marks at their ends."""
    walls = np.diff([start] + [m[0] for m in marks])
    cpus = np.diff([cpu0] + [m[1] for m in marks])
    return {"wall": [round(float(x), 2) for x in walls], "cpu": [round(float(x), 2) for x in cpus]}


# ------------------------------------------------------------------------------------------------ the run
class Recipe:
    """One run of the recipe over a `Corpus` with `RecipeSettings`; `run()` returns the report dict."""

    def __init__(self, corpus: Corpus, settings: RecipeSettings):
        settings.validate()
        self.corpus, self.s = corpus, settings
        self.report: dict = {"settings": dataclasses.asdict(settings), "seconds_by_phase": {},
                             "cpu_seconds_by_phase": {}}
        self._cpu = time.process_time()

    def _phase(self, name: str, start: float) -> None:
        """Records a phase's wall time, and its CPU time (for estimates on other machines: on a shared machine the
        wall time says more about the neighbours than about the job)."""
        took = time.perf_counter() - start
        cpu, self._cpu = time.process_time() - self._cpu, time.process_time()
        self.report["seconds_by_phase"][name] = round(took, 1)
        self.report["cpu_seconds_by_phase"][name] = round(cpu, 1)
        _say(f"      ({_fmt_time(took)}, {_fmt_time(cpu)} of CPU time)")

    # ------------------------------------------------------------------------------------------- data
    def prepare(self) -> None:
        """The main job's split and tokenizer (trained on the training addresses only); every address encoded."""
        s, c = self.s, self.corpus
        t = time.perf_counter()
        os.makedirs(s.output, exist_ok=True)
        ts = s.train_settings(output=os.path.join(s.output, "finetune"))
        test = split_corpus(c, ts.eval_fraction, ts.seed)
        self.train_idx, self.test_idx = np.flatnonzero(~test), np.flatnonzero(test)
        self.tok, how = Trainer(c, ts)._tokenizer([c.texts[i] for i in self.train_idx])
        self.docs = self.tok(c.texts)["input_ids"]
        _say(f"tf-longformer recipe: {c.description}")
        _say(f"[1/6] {len(self.train_idx)} training / {len(self.test_idx)} held-out addresses; tokenizer: {how}")
        heldout = list(self.test_idx if s.eval_documents is None else self.test_idx[:s.eval_documents])
        self.heldout = heldout_examples([self.docs[i] for i in heldout], self.tok, s.short_length, s.long_length,
                                        s.seed, s.mask_rate)
        train_tokens = int(sum(len(self.docs[i]) for i in self.train_idx))
        self.report.update(corpus=c.name, description=c.description, split_note=c.split_note,
                           n_train=int(len(self.train_idx)), n_test=int(len(self.test_idx)),
                           tokenizer=how, training_tokens=train_tokens,
                           heldout={"documents": self.heldout.documents, "scored_tokens": int(self.heldout.targets.size),
                                    "body_tokens_per_document": (s.long_length // s.short_length) * (s.short_length - 2),
                                    "short_inputs": len(self.heldout.short_ids)})
        self._phase("data", t)

    def _sequences(self, length: int) -> list[list[int]]:
        return [x for i in self.train_idx for x in cover_document(self.docs[i], length, self.tok.bos_token_id,
                                                                  self.tok.eos_token_id)]

    def _dataset(self, seqs, length: int, batch: int, stream: int):
        """Endless batches of masked `length`-token sequences (padded to `length`: static shapes), reshuffled and
        re-masked on every pass (generators seeded by (seed, stream, pass, sequence))."""
        import tensorflow as tf

        s, tok = self.s, self.tok

        def gen():
            p = 0
            while True:
                order = np.random.default_rng([s.seed, stream, p]).permutation(len(seqs))
                for i in order:
                    ids, labels = mask_tokens(seqs[i], np.random.default_rng([s.seed, stream, p, int(i)]),
                                              tok.mask_token_id, tok.all_special_ids, len(tok), s.mask_rate)
                    n = len(ids)
                    x = np.full(length, tok.pad_token_id, np.int32)
                    m = np.zeros(length, np.int32)
                    y = np.full(length, IGNORE, np.int32)
                    x[:n], m[:n], y[:n] = ids, 1, labels
                    yield {"input_ids": x, "attention_mask": m}, y
                p += 1

        spec = ({"input_ids": tf.TensorSpec([length], tf.int32), "attention_mask": tf.TensorSpec([length], tf.int32)},
                tf.TensorSpec([length], tf.int32))
        return tf.data.Dataset.from_generator(gen, output_signature=spec).batch(batch, drop_remainder=True).prefetch(2)

    def _pretrain(self, model, length: int, steps: int, learning_rate: float, stream: int) -> dict:
        """Masked-LM `fit` for `steps` steps of `tokens_per_step // length` sequences; the history has one entry
        per tenth of the steps."""
        import keras

        from tf_longformer import training

        s = self.s
        seqs = self._sequences(length)
        batch = max(1, s.tokens_per_step // length)
        warmup = max(1, int(s.warmup_fraction * steps))
        schedule = keras.optimizers.schedules.CosineDecay(0.0, max(1, steps - warmup), alpha=0.0,
                                                          warmup_target=learning_rate, warmup_steps=warmup)
        model.compile(optimizer=training.default_optimizer(learning_rate=schedule, weight_decay=s.weight_decay))
        parts = min(10, steps)
        _say(f"      model.fit: {steps} steps of {batch} x {length} tokens ({steps * batch / len(seqs):.1f} passes "
             f"over {len(seqs)} sequences), peak learning rate {learning_rate:g}")
        marks = []  # (wall, CPU) at the end of each part: the first part holds the tracing, the others are steps
        clock = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_: marks.append((time.perf_counter(), time.process_time())))
        start, cpu0 = time.perf_counter(), time.process_time()
        cpu = cpu0
        hist = model.fit(self._dataset(seqs, length, batch, stream), epochs=parts, steps_per_epoch=steps // parts,
                         shuffle=False, verbose=2, callbacks=[clock])
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        done = (steps // parts) * parts
        return {"steps": done, "batch": batch, "sequences": len(seqs), "passes": round(done * batch / len(seqs), 2),
                "seconds": round(took, 1), "seconds_per_step": round(took / max(1, done), 3),
                "cpu_seconds": round(cpu, 1), "part_seconds": _part_times(start, cpu0, marks),
                "loss": [float(v) for v in hist.history["loss"]],
                "accuracy": [float(v) for v in hist.history.get("accuracy", [])]}

    def _score(self, key: str, model, short: bool) -> None:
        h = self.heldout
        rows = (h.short_ids, h.short_labels) if short else (h.long_ids, h.long_labels)
        losses, targets = masked_token_losses(model, *rows, self.tok.pad_token_id, batch_size=8 if short else 1)
        if not np.array_equal(targets, h.targets):  # the same tokens for every model, in the same order
            raise AssertionError(f"{key}: scored other positions than the held-out set's.")
        bpt = bits_per_token(losses)
        self.report.setdefault("bits_per_token", {})[key] = bpt
        self.report.setdefault("scored_tokens", {})[key] = int(losses.size)
        _say(f"      held-out masked LM, {key}: {bpt:.3f} bits per token over {losses.size} masked tokens")

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> dict:
        import keras

        import tf_longformer as T
        from tf_longformer.sources import refresh_global_projections, save_as_roberta

        s = self.s
        t0, cpu0 = time.perf_counter(), time.process_time()
        self._cpu = cpu0
        self.report["machine"] = {"cpu_count": os.cpu_count(),
                                  "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
        self.prepare()

        t = time.perf_counter()
        keras.utils.set_random_seed(s.seed)
        # RoBERTa: positions for short_length tokens, a window of 2 * short_length (each token sees short_length
        # on each side, past both ends of any input), no global token: full attention.
        config = model_config(s.train_settings(dropout=s.pretrain_dropout), self.tok, max_length=s.short_length,
                              attention_window=2 * s.short_length)
        short = T.TFLongformerForMaskedLM(config)
        short.build()
        n_params = int(sum(np.prod(v.shape) for v in short.weights if "_global" not in v.path))
        _say(f"[2/6] RoBERTa from scratch at {s.short_length} tokens ({s.num_layers} layers, hidden {s.hidden_size}, "
             f"{n_params / 1e6:.2f}M parameters): masked LM on the training addresses")
        self.report["roberta"] = {"parameters": n_params, "pretraining": self._pretrain(
            short, s.short_length, s.short_steps, s.short_learning_rate, stream=1)}
        folder = os.path.join(s.output, f"roberta-{s.short_length}")
        self.tok.model_max_length = s.short_length
        save_as_roberta(short, folder, self.tok)
        self.report["roberta"]["folder"] = folder
        self._score("roberta", short, short=True)
        self._phase("pretrain_short", t)
        del short

        t = time.perf_counter()
        _say(f"[3/6] converted to {s.long_length} tokens, window {s.attention_window} (from_source, source=roberta)")
        kw = dict(source="roberta", max_length=s.long_length, attention_window=s.attention_window, seed=s.seed)
        random_model = T.TFLongformerForMaskedLM.from_source(folder, position_init="random", **kw)
        self._score("long_random", random_model, short=False)
        del random_model
        long_model = T.TFLongformerForMaskedLM.from_source(folder, position_init="copy", **kw)
        self._score("long_copied", long_model, short=False)
        self._phase("convert_and_score", t)

        t = time.perf_counter()
        _say(f"[4/6] continued masked-LM pretraining at {s.long_length} tokens")
        if s.long_steps:
            self.report["continued_pretraining"] = self._pretrain(long_model, s.long_length, s.long_steps,
                                                                  s.long_learning_rate, stream=2)
            self._score("long_copied_continued", long_model, short=False)
        refresh_global_projections(long_model)
        # Pretrained with `pretrain_dropout` (the RoBERTa folder's, hence the conversion's), fine-tuned with the
        # main job's: the config written is what the fine-tuned model is built from.
        long_model.config.hidden_dropout_prob = long_model.config.attention_probs_dropout_prob = s.dropout
        ckpt = os.path.join(s.output, f"longformer-{s.long_length}")
        long_model.save_pretrained(ckpt)
        self.tok.model_max_length = s.long_length
        self.tok.save_pretrained(ckpt)
        self.report["checkpoint"] = ckpt
        self._phase("pretrain_long", t)
        del long_model

        t = time.perf_counter()
        if s.finetune_epochs:
            _say(f"[5/6] fine-tuning {ckpt} on the era task (the main job's settings, {s.finetune_epochs} epochs)")
            ts = s.train_settings(output=os.path.join(s.output, "finetune"), model=ckpt, epochs=s.finetune_epochs,
                                  eval_lengths=(s.long_length,))
            rep = Trainer(self.corpus, ts).run()
            self.report["finetune"] = {"accuracy": rep["accuracy"]["long_model"],
                                       "majority_class": rep["accuracy"]["majority_class"],
                                       "n_test": rep["n_test"], "seed": ts.seed,
                                       "fit_seconds": rep["long_model"]["fit_seconds"],
                                       "report": os.path.join(ts.output, "report.json")}
        else:
            _say("[5/6] no fine-tuning (finetune_epochs 0)")
        self._phase("finetune", t)

        self.report["seconds"] = round(time.perf_counter() - t0, 1)
        self.report["cpu_seconds"] = round(time.process_time() - cpu0, 1)
        self.report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.write_report()
        return self.report

    def write_report(self) -> None:
        """[6/6] `report.json`, `report.md` (the table) and `report.png`."""
        s, rep = self.s, self.report
        atomic_write_bytes(os.path.join(s.output, "report.json"), (json.dumps(rep, indent=2) + "\n").encode())
        table = markdown_table(rep)
        atomic_write_bytes(os.path.join(s.output, "report.md"), (table + "\n").encode())
        plotted = write_plot(rep, os.path.join(s.output, "report.png"))
        _say(f"[6/6] report: {os.path.join(s.output, 'report.json')}, report.md"
             + (", report.png" if plotted else " (no plot: matplotlib is not installed)"))
        _say("")
        _say(table)
        _say(f"Total {_fmt_time(rep['seconds'])} on {rep['machine']['cpu_count']} CPU cores "
             f"(by phase: {', '.join(f'{k} {_fmt_time(v)}' for k, v in rep['seconds_by_phase'].items())}).")


def row_names(settings: dict) -> dict:
    short, long, w = settings["short_length"], settings["long_length"], settings["attention_window"]
    return {"roberta": f"RoBERTa, {short}-token pieces read one at a time",
            "long_random": f"Longformer {long}, window {w}, random new positions",
            "long_copied": f"Longformer {long}, window {w}, copied positions",
            "long_copied_continued": f"Longformer {long}, copied positions + {settings['long_steps']} steps of "
                                     f"masked LM at {long}"}


def markdown_table(rep: dict) -> str:
    """The recipe's table: held-out masked-LM bits per token of every model (and the fine-tuned accuracy)."""
    names = row_names(rep["settings"])
    bpt = rep.get("bits_per_token", {})
    lines = [f"Held-out masked LM, {rep['heldout']['documents']} addresses, the same "
             f"{rep['heldout']['scored_tokens']} masked tokens for every model:", "",
             "| model | bits per token | scored tokens |", "|---|---:|---:|"]
    for key in ROWS:
        if key in bpt:
            lines.append(f"| {names[key]} | {bpt[key]:.3f} | {rep['scored_tokens'][key]} |")
    ft = rep.get("finetune")
    if ft:
        lines += ["", f"Era task, {ft['n_test']} held-out addresses: the continued Longformer fine-tuned "
                      f"{100 * ft['accuracy']:.1f}% (one seed, {ft['seed']}; majority class "
                      f"{100 * ft['majority_class']:.1f}%)."]
    return "\n".join(lines)


def write_plot(rep: dict, path: str) -> bool:
    """Bits per token of every model (bars) and the masked-LM training losses of both phases, as one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = row_names(rep["settings"])
    bpt = rep.get("bits_per_token", {})
    keys = [k for k in ROWS if k in bpt]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    colors = ["#d9822b", "#a0a0a0", "#1f5fa8", "#2e8b57"]
    ax.barh(range(len(keys)), [bpt[k] for k in keys], color=colors[:len(keys)])
    ax.set_yticks(range(len(keys)), [names[k].replace(", ", ",\n", 1) for k in keys], fontsize=7)
    ax.invert_yaxis()
    for i, k in enumerate(keys):
        ax.text(bpt[k], i, f" {bpt[k]:.2f}", va="center", fontsize=8)
    ax.set(xlabel="held-out masked-LM bits per token (lower is better)",
           title=f"{rep['heldout']['scored_tokens']} masked tokens of {rep['heldout']['documents']} held-out addresses")
    ax = axes[1]
    for key, label, color in (("roberta", f"at {rep['settings']['short_length']} (from scratch)", colors[0]),
                              ("continued_pretraining", f"at {rep['settings']['long_length']} (continued)",
                               colors[3])):
        hist = rep[key]["pretraining"] if key == "roberta" else rep.get(key)
        if not hist:
            continue
        per = hist["steps"] / max(1, len(hist["loss"]))
        offset = 0 if key == "roberta" else rep["roberta"]["pretraining"]["steps"]
        xs = offset + per * np.arange(1, len(hist["loss"]) + 1)
        ax.plot(xs, np.array(hist["loss"]) / LN2, "-o", ms=3, color=color, label=label)
    ax.set(xlabel="masked-LM step", ylabel="training loss (bits per token)", title="Masked-LM pretraining")
    ax.legend(fontsize=8)
    fig.suptitle(rep["description"], fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return True
