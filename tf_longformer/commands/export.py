"""`tf-longformer export`."""

from __future__ import annotations

import json
import os

from tf_longformer import registry
from tf_longformer.commands import quiet_tf

TASK_CHOICES = registry.task_names()  # every registered task (importing tf_longformer registered them)
SIGNATURE_CHOICES = ("serving_default", "auto_global", "probabilities", "attentions", "hidden_states")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
EXPORT_DTYPES = ("float32", "bfloat16")  # serving.EXPORT_DTYPES


def _find_tokenizer(directory):
    return directory if any(os.path.isfile(os.path.join(directory, f)) for f in TOKENIZER_FILES) else None


def cmd_export(args) -> int:
    """Exports a checkpoint as a SavedModel for TensorFlow Serving (or ONNX, --format onnx), in a <base>/<version>/ layout."""
    quiet_tf()
    _check_format_options(args)
    from tf_longformer import LongformerConfig, serving
    from tf_longformer.files import resolve_checkpoint_dir

    if args.version is not None and os.path.exists(os.path.join(args.output, str(args.version))) \
            and not args.overwrite:
        raise SystemExit(f"error: Version {args.version} already exists at {os.path.join(args.output, str(args.version))}"
                         "; TF Serving may be serving it. Omit --version to write the next one, or pass --overwrite.")
    directory = resolve_checkpoint_dir(args.model)
    task = args.task
    if task is None:
        config = LongformerConfig.from_pretrained(directory)
        task = serving.task_from_architectures(getattr(config, "architectures", None))
        if task is None:
            raise SystemExit(f"error: {directory}/config.json names no Longformer task in `architectures` "
                             f"({getattr(config, 'architectures', None)}); pass --task (one of {', '.join(TASK_CHOICES)}).")
    tokenizer = args.tokenizer or _find_tokenizer(directory)
    if args.tokenizer is None and tokenizer is None and not args.no_tokenizer:
        raise SystemExit(f"error: no tokenizer files ({' or '.join(TOKENIZER_FILES)}) in {directory}; pass "
                         "--tokenizer DIR, or --no-tokenizer to export without one (clients then need their own).")
    if args.no_tokenizer:
        tokenizer = None
    model = serving.model_class(task).from_pretrained(directory)
    if args.format == "onnx":
        return _export_onnx(model, task, tokenizer, args)
    signatures = args.signatures.split(",") if args.signatures else None
    target = serving.export_for_serving(
        model, args.output, args.version, overwrite=args.overwrite, tokenizer=tokenizer, signatures=signatures,
        int64=not args.no_int64, top_k=args.top_k, warmup=args.warmup, dtype=args.dtype,
    )
    with open(os.path.join(target, serving.EXTRA_DIR, serving.METADATA_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    print(json.dumps({"export": target, "task": task, "version": int(os.path.basename(target)),
                      "signatures": sorted(meta["signatures"]), "tokenizer": meta["tokenizer"],
                      "dtype": meta["dtype"]}, indent=2))
    return 0


SAVED_MODEL_ONLY = {"signatures": "--signatures", "no_int64": "--no-int64", "top_k": "--top-k", "warmup": "--warmup"}


def _check_format_options(args):
    """The SavedModel's options mean nothing for ONNX: refuse them instead of ignoring them."""
    if args.format != "onnx":
        return
    if args.dtype != "float32":
        raise SystemExit(f"error: --format onnx takes only --dtype float32, got --dtype {args.dtype}: ONNX Runtime's "
                         "CPU execution provider has no bfloat16 arithmetic kernels (no bfloat16 MatMul), so a "
                         "bfloat16 ONNX graph would not load there. Export bfloat16 as a SavedModel (--format "
                         "tf_saved_model), or ONNX in float32.")
    given = [flag for key, flag in SAVED_MODEL_ONLY.items()
             if (args.top_k != 10 if key == "top_k" else getattr(args, key) not in (None, False))]
    if given:
        raise SystemExit(f"error: {', '.join(given)} only apply to --format tf_saved_model; the ONNX export writes "
                         "the serving_default and auto_global graphs (see the README, section ONNX).")


def _export_onnx(model, task, tokenizer, args):
    """OUTPUT/<version>/model.onnx, model.auto_global.onnx, model.json, plus config.json and the tokenizer."""
    from tf_longformer import onnx_export, serving

    version = serving.next_version(args.output) if args.version is None else args.version
    target = os.path.join(args.output, str(version))
    if os.path.exists(target) and not args.overwrite:
        raise SystemExit(f"error: Version {version} already exists at {target}; omit --version to write the next "
                         "one, or pass --overwrite.")
    paths = onnx_export.export_onnx(model, os.path.join(target, "model.onnx"), overwrite=True)
    model.hf_config().save_pretrained(target)
    if tokenizer is not None:
        serving._load_tokenizer(tokenizer).save_pretrained(target)
    with open(paths["metadata"], encoding="utf-8") as f:
        meta = json.load(f)
    print(json.dumps({"export": target, "format": "onnx", "task": task, "version": version,
                      "files": sorted(os.path.basename(p) for p in paths.values()), "opset": meta["opset"],
                      "tf2onnx": meta["tf2onnx"], "tokenizer": tokenizer is not None}, indent=2))
    return 0


def _version(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        import argparse

        raise argparse.ArgumentTypeError(f"--version must be a non-negative integer, got {text!r}")
    return value


def _top_k(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"--top-k must be a positive integer, got {text!r}")
    return value


def _signatures(text):
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SIGNATURE_CHOICES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--signatures takes a comma-separated list of {', '.join(SIGNATURE_CHOICES)};"
                                         f" got {text!r}")
    return ",".join(names)


def register(sub) -> None:
    p = sub.add_parser("export", help=cmd_export.__doc__, description=cmd_export.__doc__ + (
        " Writes OUTPUT/<version>/ (saved_model.pb, variables/, assets.extra/ with the tokenizer, config.json and "
        "tf_longformer_export.json). Serve it with: tensorflow_model_server --rest_api_port=8501 "
        "--model_name=NAME --model_base_path=OUTPUT (see the README, section Serving)."))
    p.add_argument("--model", required=True, help="checkpoint directory (config.json + weights) or hub id")
    p.add_argument("--task", choices=TASK_CHOICES,
                   help="the head to export (default: from config.json `architectures`)")
    p.add_argument("--output", required=True, help="the model's base directory; the export goes to OUTPUT/<version>/")
    p.add_argument("--version", type=_version, help="version folder number (default: one more than the largest there)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    p.add_argument("--format", choices=("tf_saved_model", "onnx"), default="tf_saved_model",
                   help="tf_saved_model (default; TF Serving) or onnx: OUTPUT/<version>/model.onnx (with "
                        "global_attention_mask), model.auto_global.onnx (the head's automatic global attention) and "
                        "model.json, for ONNX Runtime (needs the onnx extra)")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--tokenizer", help="tokenizer directory (default: the checkpoint directory, if it has one)")
    tok.add_argument("--no-tokenizer", action="store_true", help="export without tokenizer files")
    p.add_argument("--signatures", type=_signatures,
                   help=f"comma-separated signatures to write (default: all of {', '.join(SIGNATURE_CHOICES)}; "
                        "serving_default is always written)")
    p.add_argument("--no-int64", action="store_true", help="do not write the <name>_int64 signature twins")
    p.add_argument("--top-k", type=_top_k, default=10, help="token candidates per position of the masked LM's "
                                                           "probabilities (default 10)")
    p.add_argument("--dtype", choices=EXPORT_DTYPES, default="float32",
                   help="what the exported graph computes in: float32 (default) or bfloat16 (Keras' mixed_bfloat16 "
                        "policy: bfloat16 matmuls, LayerNorm and softmax in float32; faster on CPUs with AVX-512 "
                        "BF16 or AMX). Outputs stay float32 with the same names; SavedModel only")
    p.add_argument("--warmup", action="store_true",
                   help="write assets.extra/tf_serving_warmup_requests (needs tensorflow-serving-api)")
    p.set_defaults(func=cmd_export)
