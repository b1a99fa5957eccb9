"""`tf-longformer train`."""

from __future__ import annotations

import argparse

from tf_longformer.commands import quiet_tf

DESCRIPTION = """\
Trains a long-document classifier with model.fit, evaluates it on held-out documents and exports it.

Without --data: the main job. The State of the Union addresses (the `sotu` package, 1790-2026) labelled by
era, a tokenizer trained on the training split, a small Longformer trained from scratch on the first 4096
tokens of each address, compared on the addresses of presidents it never saw with the majority class and with
the same model trained on 512 tokens and with a chunk-and-pool baseline (the 512-token model trained on every
512-token chunk of the first 4096 tokens, a document predicted by the mean of its chunks' logits); then a
SavedModel is exported, reloaded and queried. --seeds N trains every model over N seeds and reports the mean,
sample sd, min and max (the checkpoint and export are the first seed's long model).

With --data FILE (.jsonl or .csv with `text` and `label` columns): the same on your documents, from scratch
(a tokenizer trained on your training split) or from a checkpoint (--model DIR).

Writes into --output: checkpoint/ (Hugging Face layout with the tokenizer: `tf-longformer run --task
text-classification --model OUTPUT/checkpoint` uses it), saved_model/ (serving_default(input_ids,
attention_mask) -> logits), report.json (every figure) and report.png (curves)."""


def cmd_train(args) -> int:
    """Trains a long-document classifier (default: the State of the Union era job), evaluates and exports it."""
    quiet_tf()
    from tf_longformer.apps import train_job

    sizes = {"vocab_size": args.vocab_size, "hidden_size": args.hidden_size, "num_layers": args.layers,
             "num_heads": args.heads, "intermediate_size": args.intermediate_size,
             "attention_window": args.window}
    if args.model:
        given = [f"--{k.replace('_', '-')}" for k, v in sizes.items() if v is not None]
        if given:
            raise SystemExit(f"tf-longformer train: {', '.join(given)} set the size of a model trained from scratch; "
                             "with --model the checkpoint's sizes are used. Drop one or the other.")
    overrides = dict(output=args.output, max_length=args.max_length, baseline_length=args.baseline_length,
                     epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                     eval_fraction=args.eval_fraction, seed=args.seed, seeds=args.seeds, model=args.model,
                     tokenizer=args.tokenizer, precision=args.precision, **sizes)
    if args.seeds is not None and args.seeds < 1:  # before the corpus is loaded; Settings.validate says it too
        raise SystemExit(f"tf-longformer train: --seeds must be a whole number of at least 1 (how many seeds every "
                         f"model is trained over; 1, the default, is one run), got {args.seeds}.")
    if args.no_export:
        overrides["export"] = False
    if args.no_chunk_baseline:
        overrides["chunk_baseline"] = False
    if args.data:
        corpus = train_job.read_table(args.data, args.text_column, args.label_column, args.group_column)
        if args.limit:
            raise SystemExit("tf-longformer train: --limit applies to the default corpus only.")
        values = {k: v for k, v in overrides.items() if v is not None}
        settings = train_job.Settings(**values)
    else:
        from tf_longformer.apps import sotu_job

        if args.group_column or args.text_column != "text" or args.label_column != "label":
            raise SystemExit("tf-longformer train: --text-column / --label-column / --group-column need --data.")
        try:
            corpus = sotu_job.load_sotu(mask_years=not args.keep_years, limit=args.limit)
        except (ImportError, ValueError) as e:
            raise SystemExit(f"tf-longformer train: {e}") from None
        settings = sotu_job.default_settings(**overrides)
    try:
        train_job.Trainer(corpus, settings).run()
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"tf-longformer train: {e}") from None
    return 0


def add_data_arguments(p):
    """The "data" option group that `train` and `recipe` share (a corpus file and its columns, or the default
    corpus); returns the group, for a command's own data options."""
    data = p.add_argument_group("data")
    data.add_argument("--data", help="a .jsonl or .csv file of documents (default: the State of the Union corpus)")
    data.add_argument("--text-column", default="text", help="column holding the document (default: text)")
    data.add_argument("--label-column", default="label", help="column holding the label (default: label)")
    data.add_argument("--group-column", help="keep documents of one group (author, source, ...) on one side of "
                                             "the split (default: a split stratified by label)")
    data.add_argument("--limit", type=int, help="default corpus only: use this many addresses (a quick smoke run)")
    return data


def add_size_arguments(group, prefix=""):
    """The model-size options that `train` and `recipe` share (the main job's sizes are the defaults)."""
    for flag, kind, what in (("--vocab-size", "BPE vocabulary size", 8000), ("--hidden-size", "hidden size", 64),
                             ("--layers", "layers", 2), ("--heads", "attention heads", 4),
                             ("--intermediate-size", "feed-forward size", 128)):
        group.add_argument(flag, type=int, help=f"{prefix}{kind} (default {what})")


def register(sub) -> None:
    p = sub.add_parser("train", help=cmd_train.__doc__, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data = add_data_arguments(p)
    data.add_argument("--eval-fraction", type=float, help="share of documents held out (default 0.25)")
    data.add_argument("--keep-years", action="store_true",
                      help="default corpus only: keep four-digit years in the text (by default they are masked so "
                           "the model cannot read the date)")
    model = p.add_argument_group("model")
    model.add_argument("--model", help="start from this checkpoint directory (default: from scratch)")
    model.add_argument("--tokenizer", help="tokenizer folder (default: the checkpoint's, or one trained on the data)")
    add_size_arguments(model, "from scratch: ")
    model.add_argument("--window", type=int, help="from scratch: attention window, both sides (default 64 on the default corpus, 128 otherwise)")
    fit = p.add_argument_group("training")
    fit.add_argument("--max-length", type=int, help="tokens read per document (default 4096)")
    fit.add_argument("--baseline-length", type=int,
                     help="also train the same model on this many tokens, and on chunks of this many tokens "
                          "pooled, as baselines (default 512; 0: none)")
    fit.add_argument("--epochs", type=int, help="epochs (default 6)")
    fit.add_argument("--batch-size", type=int, help="documents per step (default 4)")
    fit.add_argument("--learning-rate", type=float, help="peak learning rate of AdamW (default 1e-3)")
    fit.add_argument("--precision", choices=("float32", "bfloat16"),
                     help="float32 (default) or bfloat16: every model computes in bfloat16 (Keras' mixed_bfloat16 "
                          "policy: float32 weights, optimizer, logits and loss)")
    fit.add_argument("--seed", type=int, help="seed of the initialisation, dropout, shuffling and random split "
                                              "(default 0); with --seeds N, the first of seeds SEED..SEED+N-1")
    fit.add_argument("--seeds", type=int, help="train every model over this many seeds and report the mean, sample "
                                               "sd, min and max (default 1); one tokenizer and one split for all, "
                                               "the checkpoint and export are the first seed's long model")
    fit.add_argument("--no-chunk-baseline", action="store_true",
                     help="skip the chunk-and-pool baseline (the --baseline-length model trained on every chunk of "
                          "the first --max-length tokens, a document's chunks' logits averaged)")
    out = p.add_argument_group("output")
    out.add_argument("--output", help="output folder (default: tf-longformer-sotu, or tf-longformer-train "
                                      "with --data)")
    out.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    p.set_defaults(func=cmd_train)
