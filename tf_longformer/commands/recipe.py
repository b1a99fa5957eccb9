"""`tf-longformer recipe`."""

from __future__ import annotations

import argparse

from tf_longformer.commands import quiet_tf
from tf_longformer.commands.train import add_data_arguments, add_size_arguments

DESCRIPTION = """\
The Longformer paper's recipe (long from short), in miniature, on real text: a small RoBERTa pretrained with
masked LM at 512 tokens on the training addresses of the State of the Union corpus, written as a Hugging Face
RoBERTa folder, converted to 4096 tokens with `from_source` (positions copied, and for comparison drawn at
random), the copied one pretrained further at 4096; the held-out masked-LM loss (bits per token, the same masked
tokens for every model) of RoBERTa reading 512-token pieces and of the long models reading 4096 tokens at once;
then the continued model fine-tuned on the era task of `tf-longformer train` (the main job's settings, one seed).

The defaults are the full-size run (about 25 minutes on 2 CPU cores). With --data FILE (.jsonl or .csv with
`text` and `label` columns) the same on your documents.

Writes into --output: roberta-512/ (the RoBERTa folder), longformer-4096/ (the continued model with its
tokenizer), finetune/ (the train job's report and checkpoint), report.json, report.md (the table) and
report.png."""


def cmd_recipe(args) -> int:
    """Long from short: RoBERTa -> Longformer by the paper's recipe on the State of the Union corpus, scored."""
    quiet_tf()
    from tf_longformer.apps import recipe_job, train_job

    values = dict(output=args.output, short_length=args.short_length, long_length=args.long_length,
                  attention_window=args.window, short_steps=args.short_steps, long_steps=args.long_steps,
                  tokens_per_step=args.tokens_per_step, short_learning_rate=args.short_learning_rate,
                  long_learning_rate=args.long_learning_rate, eval_documents=args.eval_documents,
                  finetune_epochs=args.finetune_epochs, seed=args.seed, pretrain_dropout=args.pretrain_dropout,
                  vocab_size=args.vocab_size,
                  hidden_size=args.hidden_size, num_layers=args.layers, num_heads=args.heads,
                  intermediate_size=args.intermediate_size)
    settings = recipe_job.RecipeSettings(**{k: v for k, v in values.items() if v is not None})
    try:
        settings.validate()  # before the corpus is read
    except ValueError as e:
        raise SystemExit(f"tf-longformer recipe: {e}") from None
    if args.data:
        if args.limit:
            raise SystemExit("tf-longformer recipe: --limit applies to the default corpus only.")
        try:
            corpus = train_job.read_table(args.data, args.text_column, args.label_column, args.group_column)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"tf-longformer recipe: {e}") from None
    else:
        from tf_longformer.apps import sotu_job

        try:
            corpus = sotu_job.load_sotu(limit=args.limit)
        except (ImportError, ValueError) as e:
            raise SystemExit(f"tf-longformer recipe: {e}") from None
    try:
        recipe_job.Recipe(corpus, settings).run()
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"tf-longformer recipe: {e}") from None
    return 0


def register(sub) -> None:
    p = sub.add_parser("recipe", help=cmd_recipe.__doc__, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data = add_data_arguments(p)
    data.add_argument("--eval-documents", type=int,
                      help="score the masked LM on the first N held-out documents only (default: all)")
    model = p.add_argument_group("model (the main job's sizes by default)")
    add_size_arguments(model)
    model.add_argument("--short-length", type=int, help="RoBERTa's length (default 512)")
    model.add_argument("--long-length", type=int, help="the Longformer's length, a multiple of it (default 4096)")
    model.add_argument("--window", type=int, help="the Longformer's attention window, both sides (default 256)")
    fit = p.add_argument_group("training")
    fit.add_argument("--short-steps", type=int, help="masked-LM steps at --short-length (default 2500)")
    fit.add_argument("--long-steps", type=int, help="continued masked-LM steps at --long-length (default 300)")
    fit.add_argument("--tokens-per-step", type=int, help="tokens per masked-LM step (default 4096: 8 x 512, 1 x 4096)")
    fit.add_argument("--short-learning-rate", type=float, help="peak learning rate at --short-length (default 2e-3)")
    fit.add_argument("--long-learning-rate", type=float, help="peak learning rate at --long-length (default 3e-4)")
    fit.add_argument("--pretrain-dropout", type=float, help="dropout of the masked-LM pretraining (default 0; the "
                                                           "fine-tuning keeps the main job's 0.1)")
    fit.add_argument("--finetune-epochs", type=int, help="epochs of the era task (default 6, the main job's; 0: none)")
    fit.add_argument("--seed", type=int, help="seed of initialisation, masking, shuffling (default 0)")
    out = p.add_argument_group("output")
    out.add_argument("--output", help="output folder (default: tf-longformer-recipe)")
    p.set_defaults(func=cmd_recipe)
