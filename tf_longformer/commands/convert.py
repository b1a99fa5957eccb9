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
- a plain RoBERTa checkpoint -> a Longformer to pretrain further or fine-tune, the recipe of the Longformer
  paper: position embeddings extended to `--max-length` by copying the 512 learned ones over and over, and
  the global projections initialised from the local ones (`--attention-window` sets the window).
`--max-length` also extends (or cuts) the positions of any of the others. Tokenizer files are carried over.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from tf_longformer import registry
from tf_longformer.commands import quiet_tf

SOURCES = ("auto", "hf", "allenai", "roberta-long", "roberta")
def heads() -> dict:
    """--head name -> (our class, the Hugging Face architecture), for every registered task."""
    return {task.replace("_", "-"): (cls.__name__, cls.hf_architecture)
            for task, cls in registry.task_classes().items()}
# keys of the original allenai LongformerConfig that have no meaning in the Hugging Face layout
ALLENAI_KEYS = ("attention_mode", "attention_dilation", "autoregressive")


class ConversionError(ValueError):
    """A checkpoint that cannot be converted as asked."""


def detect_source(config: dict, state: dict) -> str:
    """Which layout a checkpoint is in (see the module docstring)."""
    if any(k in config for k in ALLENAI_KEYS):
        return "allenai"
    if config.get("model_type") == "longformer":
        return "hf"
    if any(".query_global." in k for k in state):
        return "roberta-long"
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert") or any(k.startswith("roberta.")
                                                                                   for k in state):
        return "roberta"
    raise ConversionError(
        f"Cannot tell the layout of this checkpoint (model_type {config.get('model_type')!r}); give --source "
        f"(one of {SOURCES[1:]}).")


def detect_head(config: dict, state: dict) -> str:
    arch = " ".join(config.get("architectures") or [])
    for head, (_, hf_name) in heads().items():
        suffix = hf_name.replace("Longformer", "")
        if suffix and suffix in arch:
            return head
    if any(k.startswith("lm_head.") for k in state):
        return "masked-lm"
    if any(k.startswith("qa_outputs.") for k in state):
        return "question-answering"
    if any(k.startswith("classifier.out_proj.") for k in state):
        return "sequence-classification"
    if any(k.startswith("classifier.") for k in state):
        return "token-classification"
    return "base"


def _extend_positions(table: np.ndarray, new_rows: int, offset: int) -> np.ndarray:
    """RoBERTa positions start at `offset` (pad id + 1); the rows after it are copied over and over (the
    Longformer paper's initialisation), or cut."""
    if new_rows <= table.shape[0]:
        return table[:new_rows].copy()
    learned = table[offset:]
    out = np.empty((new_rows, table.shape[1]), table.dtype)
    out[:offset] = table[:offset]
    k = offset
    while k < new_rows:
        n = min(len(learned), new_rows - k)
        out[k:k + n] = learned[:n]
        k += n
    return out


def convert_state(config: dict, state: dict, source: str = "auto", attention_window: int | None = None,
                  max_length: int | None = None) -> tuple[dict, dict, str]:
    """(config, state) of any supported layout -> (Hugging Face Longformer config dict, state dict, source)."""
    config = dict(config)
    if source == "auto":
        source = detect_source(config, state)
    if source not in SOURCES[1:]:
        raise ConversionError(f"--source must be one of {SOURCES}, got {source!r}.")
    if attention_window is not None and source != "roberta":
        raise ConversionError("--attention-window sets the window of a plain RoBERTa checkpoint; a Longformer "
                              "checkpoint was trained with its own windows and keeps them.")
    state = {re.sub(r"^roberta\.", "longformer.", k): v for k, v in state.items()}
    n_layers = int(config.get("num_hidden_layers", 12))
    if source == "allenai":
        dil = config.get("attention_dilation")
        if dil is not None and any(int(d) != 1 for d in (dil if isinstance(dil, list) else [dil])):
            raise ConversionError(f"attention_dilation {dil} is not supported (only the original CUDA kernel had "
                                  "dilation; the Hugging Face Longformer has none).")
        if config.get("autoregressive"):
            raise ConversionError("autoregressive (one-sided) attention is not supported by the Hugging Face "
                                  "Longformer.")
        w = config.get("attention_window")
        if w is None:
            raise ConversionError("The allenai config has no attention_window.")
        config["attention_window"] = [2 * int(x) for x in w] if isinstance(w, list) else 2 * int(w)
    elif source == "roberta":
        if any(".query_global." in k for k in state):
            raise ConversionError("This RoBERTa checkpoint already has global projections: use --source "
                                  "roberta-long.")
        config["attention_window"] = attention_window or 512
        for i in range(n_layers):
            for kind in ("query", "key", "value"):
                for p in ("weight", "bias"):
                    for prefix in ("longformer.", ""):
                        name = f"{prefix}encoder.layer.{i}.attention.self.{kind}.{p}"
                        if name in state:
                            state[f"{prefix}encoder.layer.{i}.attention.self.{kind}_global.{p}"] = state[name].copy()
        if max_length is None:
            max_length = 4096
    for key in ALLENAI_KEYS + ("_name_or_path", "transformers_version", "architectures", "position_embedding_type",
                               "use_cache", "classifier_dropout", "is_decoder", "add_cross_attention"):
        config.pop(key, None)
    config["model_type"] = "longformer"
    if max_length is not None:
        pad = int(config.get("pad_token_id", 1))
        rows = max_length + pad + 1
        for name in [k for k in state if k.endswith("embeddings.position_embeddings.weight")]:
            state[name] = _extend_positions(np.asarray(state[name]), rows, pad + 1)
        for name in [k for k in state if k.endswith("embeddings.position_ids")]:
            state.pop(name)
        config["max_position_embeddings"] = rows
    return config, state, source


def convert_checkpoint(src: str, dst: str, *, source: str = "auto", head: str = "auto", fmt: str = "safetensors",
                       attention_window: int | None = None, max_length: int | None = None) -> dict:
    """Converts the checkpoint folder (or hub id) `src` into `dst`; returns a summary."""
    import tf_longformer as T
    from tf_longformer import checkpoints, files
    from tf_longformer.config import LongformerConfig

    directory = files.resolve_checkpoint_dir(src)
    config_path = os.path.join(directory, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConversionError(f"Cannot read {config_path!r}: {e}") from None
    if not isinstance(raw, dict):
        raise ConversionError(f"{config_path!r} does not hold a JSON object.")
    state, weights = checkpoints.read_state_dict(directory)
    head = detect_head(raw, state) if head == "auto" else head
    if head not in heads():
        raise ConversionError(f"--head must be 'auto' or one of {sorted(heads())}, got {head!r}.")
    cfg, state, source = convert_state(raw, state, source, attention_window, max_length)
    try:
        config = LongformerConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"The converted config is not a valid Longformer config: {e}") from None
    cls = registry.task_class(head.replace("-", "_"))
    model = cls(config)
    model.build()
    model.load_hf_state_dict(state, source=weights)
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
    if any(os.path.isfile(os.path.join(directory, n)) for n in ("tokenizer.json", "vocab.json")):
        tokenizer = T.LongformerTokenizerFast.from_pretrained(directory)
        if max_length is not None:
            tokenizer.model_max_length = max_length
        tokenizer.save_pretrained(dst if fmt == "safetensors" else os.path.dirname(os.path.abspath(written)))
    if fmt == "safetensors":  # read back through the strict loader
        back = cls.from_pretrained(dst)
        for a, b in zip(model.weights, back.weights):
            if not np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy())):
                raise ConversionError(f"Read-back check failed for {a.path}: the written file differs.")
    return {"source": source, "from": weights, "head": head, "model": cls.__name__, "written": written,
            "format": fmt, "attention_window": config.attention_window,
            "max_sequence_length": config.max_sequence_length, "tokenizer": tokenizer is not None,
            "parameters": int(sum(int(np.prod(w.shape)) for w in model.weights))}


def cmd_convert(args) -> int:
    """Converts a checkpoint (HF in any weight format, original allenai, RoBERTa-long, plain RoBERTa) to ours."""
    quiet_tf()
    from tf_longformer.checkpoints import CheckpointError

    try:
        summary = convert_checkpoint(args.model, args.output, source=args.source, head=args.head, fmt=args.format,
                                     attention_window=args.attention_window, max_length=args.max_length)
    except (ConversionError, CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"tf-longformer convert: {e}") from None
    print(json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    import argparse

    p = sub.add_parser("convert", help=cmd_convert.__doc__, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the checkpoint to convert: a folder or a hub id")
    p.add_argument("--output", required=True, help="output folder (or a .keras file with --format keras)")
    p.add_argument("--source", default="auto", choices=SOURCES, help="layout of the input (default: detected)")
    p.add_argument("--head", default="auto", choices=("auto", *heads()),
                   help="model to build (default: from the config's architectures and the weights)")
    p.add_argument("--format", default="safetensors", choices=("safetensors", "keras"),
                   help="safetensors: config.json + model.safetensors (Hugging Face layout, loads in PyTorch too); "
                        "keras: a .keras file for keras.saving.load_model")
    p.add_argument("--max-length", type=int, help="longest input of the converted model: position embeddings "
                                                  "extended by copying (or cut); default: unchanged (4096 for "
                                                  "--source roberta)")
    p.add_argument("--attention-window", type=int, help="--source roberta: the full window (default 512)")
    p.set_defaults(func=cmd_convert)
