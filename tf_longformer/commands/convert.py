"""`tf-longformer convert`: checkpoints from other layouts and formats into ours.

What users bring, and what they get:
- a Hugging Face Longformer in any weight format we read (`model.safetensors`, sharded or not, the HF TF
  `tf_model.h5`, or `pytorch_model.bin`, read only with `torch.load(weights_only=True)`) -> a folder with
  `config.json` + `model.safetensors` (no pickle, no torch needed, loads fast), or a Keras `.keras` file;
- a checkpoint of the ORIGINAL allenai/longformer code (a RoBERTa config with `attention_mode`,
  `attention_dilation` and ONE-SIDED `attention_window` values, weights named `roberta.*`) -> the Hugging
  Face layout, windows doubled to the full-window convention (256 there = 512 here); dilation and
  autoregressive attention, which that code supported only in its CUDA kernel, are refused;
- a "RoBERTa-long" checkpoint made with the Hugging Face `LongformerSelfAttention` inside `RobertaForMaskedLM`
  (`roberta.*` names, `*_global` projections, full windows) -> the Hugging Face Longformer layout;
- a plain RoBERTa-family checkpoint (RoBERTa, XLM-RoBERTa, CamemBERT) or a BERT -> a Longformer to pretrain
  further or fine-tune, the recipe of the Longformer paper: position embeddings extended to `--max-length` by
  copying the learned ones over and over (`--position-init random` draws the new rows instead), and the global
  projections initialised from the local ones (`--attention-window` sets the window, one or one per layer).
  BERT's positions (from 0) move to the Longformer's (from pad_token_id + 1), its token types, MLM head and
  pooler + classifier come along (`tf_longformer.sources` has the mapping); ELECTRA (embedding size = hidden
  size; the generator's MLM head) and DistilBERT (its MLM head) likewise, their classifiers (gelu, ReLU) refused;
- a KerasHub RoBERTa / XLM-RoBERTa preset folder (`save_to_preset`: a backbone, masked LM or text classifier;
  `--source keras-hub`, detected from its metadata.json; needs the `keras-hub` extra) -> the same recipe, its
  positions moved from 0 to pad_token_id + 1 (`tf_longformer.kerashub` has the mapping), its tokenizer written as
  a tokenizer.json.
`--max-length` also extends (or cuts) the positions of any of the others; `--copy-global` sets the global
projections to the local ones again (after continued masked-LM pretraining). Tokenizer files are carried over
(byte-level BPE, Unigram or WordPiece; a SentencePiece model without tokenizer.json becomes one), read back by
`transformers` as the source's family.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tf_longformer import registry
from tf_longformer.commands import quiet_tf
from tf_longformer.sources import (  # noqa: F401 (the names this module has always offered)
    ALLENAI_KEYS,
    POSITION_INITS,
    SOURCES,
    ConversionError,
    convert_state,
    detect_source,
    extend_positions,
    load_source,
)

def heads() -> dict:
    """--head name -> (our class, the Hugging Face architecture), for every registered task."""
    return {task.replace("_", "-"): (cls.__name__, cls.hf_architecture)
            for task, cls in registry.task_classes().items()}


def detect_head(config: dict, state: dict) -> str:
    arch = " ".join(config.get("architectures") or [])
    for head, (_, hf_name) in heads().items():
        suffix = hf_name.replace("Longformer", "")
        if suffix and suffix in arch:
            return head
    if any(k.startswith(("lm_head.", "cls.predictions.")) for k in state):
        return "masked-lm"
    if any(k.startswith("qa_outputs.") for k in state):
        return "question-answering"
    if any(k.startswith("classifier.out_proj.") for k in state) or (
            any(k.startswith(("pooler.", "bert.pooler.")) for k in state) and "classifier.weight" in state):
        return "sequence-classification"
    if any(k.startswith("classifier.") for k in state):
        return "token-classification"
    return "base"


# tokenizer files carried over as they are when our tokenizer class does not read the folder (a slow-only
# folder: vocab.txt, a SentencePiece model), so that transformers still can
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "vocab.txt", "sentencepiece.bpe.model", "spiece.model")


def convert_checkpoint(src: str, dst: str, *, source: str = "auto", head: str = "auto", fmt: str = "safetensors",
                       attention_window=None, max_length: int | None = None, position_init: str = "copy",
                       seed: int | None = 0, copy_global: bool = False) -> dict:
    """Converts the checkpoint folder (or hub id) `src` into `dst`; returns a summary.

    `attention_window`: an int or one per layer (plain sources); `position_init`: "copy" or "random" for the
    positions beyond the source's; `copy_global`: set the global q/k/v projections to the local ones again (a
    Longformer after continued masked-LM pretraining; the plain sources always get them so)."""
    import shutil

    import tf_longformer as T
    from tf_longformer import files, kerashub, sources
    from tf_longformer.config import LongformerConfig

    task = None if head == "auto" else head.replace("-", "_")
    keras_hub_tokenizer = directory = None
    if source in ("keras-hub", "keras_hub") or (source == "auto" and kerashub.is_preset_dir(src)):
        cfg, state, source, weights, raw, keras_hub_tokenizer = kerashub.load(src, attention_window, max_length,
                                                                              position_init, seed, task)
    else:
        directory = files.resolve_checkpoint_dir(src)
        cfg, state, source, weights, raw = load_source(directory, source, attention_window, max_length, position_init,
                                                       seed, task)
    head = detect_head(raw, state) if head == "auto" else head
    if head not in heads():
        raise ConversionError(f"--head must be 'auto' or one of {sorted(heads())}, got {head!r}.")
    try:
        config = LongformerConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"The converted config is not a valid Longformer config: {e}") from None
    cls = registry.task_class(head.replace("-", "_"))
    model = cls(config)
    sources.check_tied_decoder(state, model)
    model.build()
    model.load_hf_state_dict(state, source=weights)
    if copy_global:
        sources.refresh_global_projections(model)
    if fmt == "keras":
        path = dst if dst.endswith(".keras") else os.path.join(dst, "model.keras")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.getpid()}-" + os.path.basename(path))
        try:
            model.save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written = path
    elif fmt == "safetensors":
        model.save_pretrained(dst)
        written = dst
    else:
        raise ConversionError(f"--format must be 'safetensors' or 'keras', got {fmt!r}.")
    tokenizer = None
    out_dir = dst if fmt == "safetensors" else os.path.dirname(os.path.abspath(written))
    if keras_hub_tokenizer is not None:  # its vocabulary (BPE) or SentencePiece proto, as a tokenizer.json
        tokenizer = kerashub.write_tokenizer(keras_hub_tokenizer, out_dir, config.max_sequence_length)
    elif directory is None:
        pass
    elif any(os.path.isfile(os.path.join(directory, n)) for n in ("tokenizer.json", "vocab.json", "vocab.txt",
                                                                   "sentencepiece.bpe.model")):
        try:
            tokenizer = T.LongformerTokenizerFast.from_pretrained(directory)
        except ValueError as e:  # an unreadable tokenizer, or a SentencePiece model of another layout
            raise ConversionError(f"The tokenizer of {src!r} does not convert: {e}") from None
        if max_length is not None or source in sources.PLAIN_SOURCES:
            tokenizer.model_max_length = config.max_sequence_length
        tokenizer.save_pretrained(out_dir)
        for name in ("vocab.txt", "sentencepiece.bpe.model", "spiece.model"):  # for the family's slow tokenizer
            if os.path.isfile(os.path.join(directory, name)):
                shutil.copyfile(os.path.join(directory, name), os.path.join(out_dir, name))
    elif any(os.path.isfile(os.path.join(directory, n)) for n in TOKENIZER_FILES):
        for name in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(directory, name)):
                shutil.copyfile(os.path.join(directory, name), os.path.join(out_dir, name))
    if fmt == "safetensors":  # read back through the strict loader
        back = cls.from_pretrained(dst)
        for a, b in zip(model.weights, back.weights):
            if not np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy())):
                raise ConversionError(f"Read-back check failed for {a.path}: the written file differs.")
    return {"source": source, "from": weights, "head": head, "model": cls.__name__, "written": written,
            "format": fmt, "attention_window": config.attention_window,
            "max_sequence_length": config.max_sequence_length, "position_init": position_init,
            "tokenizer": tokenizer is not None,
            "parameters": int(sum(int(np.prod(w.shape)) for w in model.weights))}


def cmd_convert(args) -> int:
    """Converts a checkpoint (HF in any weight format, original allenai, RoBERTa-long, plain RoBERTa) to ours."""
    quiet_tf()
    from tf_longformer.checkpoints import CheckpointError

    try:
        summary = convert_checkpoint(args.model, args.output, source=args.source, head=args.head, fmt=args.format,
                                     attention_window=args.attention_window, max_length=args.max_length,
                                     position_init=args.position_init, seed=args.seed, copy_global=args.copy_global)
    except (ConversionError, CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"tf-longformer convert: {e}") from None
    print(json.dumps(summary, indent=2))
    return 0


def _windows(text: str):
    import argparse

    try:
        ws = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an even integer or a comma-separated list of them, got {text!r}") \
            from None
    return ws[0] if len(ws) == 1 else ws


def register(sub) -> None:
    import argparse

    p = sub.add_parser("convert", help=cmd_convert.__doc__, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="the checkpoint to convert: a folder or a hub id (--source keras-hub: a KerasHub preset folder "
                        "or name)")
    p.add_argument("--output", required=True, help="output folder (or a .keras file with --format keras)")
    p.add_argument("--source", default="auto", choices=SOURCES, help="layout of the input (default: detected)")
    p.add_argument("--head", default="auto", choices=("auto", *heads()),
                   help="model to build (default: from the config's architectures and the weights)")
    p.add_argument("--format", default="safetensors", choices=("safetensors", "keras"),
                   help="safetensors: config.json + model.safetensors (Hugging Face layout, loads in PyTorch too); "
                        "keras: a .keras file for keras.saving.load_model")
    p.add_argument("--max-length", type=int, help="longest input of the converted model: position embeddings "
                                                  "extended (see --position-init) or cut; default: unchanged (4096 "
                                                  "for the plain sources: roberta, bert, electra, distilbert)")
    p.add_argument("--attention-window", type=_windows, metavar="W[,W...]",
                   help="plain sources (roberta, bert, electra, distilbert): the full window, one for every layer or "
                        "one per layer, comma-separated (default 512)")
    p.add_argument("--position-init", default="copy", choices=POSITION_INITS,
                   help="positions beyond the source's: copies of the learned ones (default; the Longformer paper's "
                        "recipe) or random (for comparison)")
    p.add_argument("--seed", type=int, default=0, help="--position-init random: the seed of the new rows (default 0)")
    p.add_argument("--copy-global", action="store_true",
                   help="set the global q/k/v projections to the local ones again (after continued masked-LM "
                        "pretraining, which leaves the global ones stale); plain sources always get them so")
    p.set_defaults(func=cmd_convert)
