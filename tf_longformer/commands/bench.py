"""`tf-longformer bench`."""

from __future__ import annotations

from tf_longformer.commands import quiet_tf


def _ints(text):
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        scale = 1024 if part.endswith("k") else 1
        try:
            out.append(int(part[:-1] if part.endswith("k") else part) * scale)
        except ValueError:
            raise SystemExit(f"tf-longformer bench: not a length: {part!r} (use e.g. 1024,2k,4096)") from None
    return out


def _batches(text):
    """`--batch 1,4,8`: the batch sizes, each a positive integer (argparse type: a bad one is a usage error)."""
    import argparse

    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"--batch takes positive integers separated by commas (e.g. 1,4,8); "
                                             f"got {part!r} in {text!r}")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError(f"--batch takes positive integers separated by commas (e.g. 1,4,8); "
                                         f"got {text!r}")
    return out


def cmd_bench(args) -> int:
    """Times forward and training steps against peers (dense model, reference TF Longformer); table, JSON, plot."""
    quiet_tf()
    from tf_longformer.apps.bench import run_benchmark, format_report

    config = {}
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "attention_window", "vocab_size"):
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    try:
        report = run_benchmark(
            lengths=_ints(args.lengths), modes=[m.strip() for m in args.modes.split(",") if m.strip()],
            impls=[i.strip() for i in args.impls.split(",") if i.strip()] if args.impls else None,
            peer_python=args.peer_python, config=config, batch=args.batch, global_tokens=args.global_tokens,
            repeats=args.repeats, warmup=args.warmup, passes=args.passes, out_dir=args.out,
            memory_cap_gb=args.memory_cap_gb, timeout_s=args.timeout, matmul_size=args.matmul_size,
            accuracy_length=args.accuracy_length, targets=args.targets, mlm_fraction=args.mlm_fraction,
            memory_profile=args.memory_profile, op_profile=args.op_profile, op_profile_calls=args.op_profile_calls,
            memory_timeline=args.memory_timeline,
        )
    except ValueError as e:
        raise SystemExit(f"tf-longformer bench: {e}") from None
    print()
    print(format_report(report))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help=cmd_bench.__doc__, description=cmd_bench.__doc__ + (
        " Each measurement runs in a fresh process (its peak RSS is its own); implementations alternate back "
        "to back at each length. Defaults: base size (12 layers, hidden 768, 12 heads, window 512), random "
        "weights, batch 1, global attention on token 0."))
    p.add_argument("--lengths", default="1k,2k,4k,8k,16k", help="comma-separated lengths (default: %(default)s)")
    p.add_argument("--modes", default="forward,train",
                   help="comma-separated: forward, train (the masked-LM step), train_cls (a sequence-classification "
                        "step, ours only) (default: %(default)s)")
    p.add_argument("--impls", default=None,
                   help="comma-separated: ours, ours_xla, ours_bf16, ours_gc, ours_xla_gc, onnx (ONNX Runtime, "
                        "forward only), saved_model (our serving SavedModel, forward only), dense, reference, reference_noglobal, "
                        "reference_xla, hf_roberta (default: ours,dense + reference,reference_noglobal "
                        "with --peer-python)")
    p.add_argument("--peer-python", default=None,
                   help="python of an environment with transformers 4.x + tf-keras, to time the reference TF "
                        "Longformer in (e.g. /work/venv-hftf/bin/python)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median; default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (default 1)")
    p.add_argument("--passes", type=int, default=1, help="repeat the whole sweep, pooling times (default 1)")
    p.add_argument("--batch", type=_batches, default=[1], metavar="N[,N...]",
                   help="batch size(s), comma-separated (e.g. 1,4,8): each is measured as its own row, with its "
                        "tokens/s (batch x length / median time); default 1")
    p.add_argument("--global-tokens", type=int, default=1, help="leading tokens made global (default 1)")
    p.add_argument("--mlm-fraction", type=float, default=0.15,
                   help="share of tokens a training step labels for the masked-LM loss (default 0.15)")
    p.add_argument("--memory-profile", action="store_true",
                   help="also print what each of our training steps keeps for its backward pass, per component")
    p.add_argument("--memory-timeline", action="store_true",
                   help="also print, for our training steps, the buffers live at the step's peak, by component "
                        "and op (TensorFlow's allocator events in one more profiled step; our measurements then "
                        "run TensorFlow's BFC allocator, TF_CPU_ALLOCATOR_USE_BFC=true)")
    p.add_argument("--op-profile", action="store_true",
                   help="also print where the time of each of our in-process steps goes: per op kind (matrix "
                        "products against the work around them), op type and component (TensorFlow's profiler, "
                        "on extra calls after the timed ones)")
    p.add_argument("--op-profile-calls", type=int, default=2,
                   help="calls profiled per measurement with --op-profile (default 2)")
    p.add_argument("--memory-cap-gb", type=float, default=None,
                   help="kill a measurement whose RSS passes this (default: 90%% of the memory available)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement (default 3600)")
    p.add_argument("--matmul-size", type=int, default=4096, help="n of the n^3 matmul peak (default 4096)")
    p.add_argument("--accuracy-length", type=int, default=2048, help="length of the bf16 accuracy check")
    p.add_argument("--out", default="bench-out", help="folder for bench.json, bench.md, bench.png")
    p.add_argument("--targets", default=None, metavar="JSON",
                   help="the targets to judge the run by, a file shaped as tf_longformer/apps/bench_targets.json "
                        "(default: that file, the issue's targets)")
    for key, help_ in (("hidden_size", "hidden size"), ("num_hidden_layers", "layers"),
                       ("num_attention_heads", "heads"), ("intermediate_size", "FFN size"),
                       ("attention_window", "full attention window"), ("vocab_size", "vocabulary")):
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=int, default=None,
                       help=f"{help_} (default: base size)")
    p.set_defaults(func=cmd_bench)
