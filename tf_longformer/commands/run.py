"""`tf-longformer run`."""

from __future__ import annotations

import argparse
import json
import sys

from tf_longformer.commands import quiet_tf

DESCRIPTION = """\
Runs a pipeline on text read from stdin (or --input) and writes one JSON result per input to stdout (or
--output).

Input formats (--format):
  lines  (default) one input per non-empty line; question-answering: `question<TAB>context`;
         text-classification: `text` or `text<TAB>text_pair`
  jsonl  one JSON object per line: {"text": ...} ({"text", "text_pair"}), or {"question", "context"}
  text   all of the input is ONE document (a long one, say); question-answering takes the questions
         from --question (repeat it for several)

Examples:
  echo "Paris is the <mask> of France." | tf-longformer run --task fill-mask --model DIR
  tf-longformer run --task question-answering --model DIR --format text --question "Who won?" < report.txt
  tf-longformer run --task text-classification --model tf-longformer-sotu/checkpoint --format text < speech.txt"""


def _read_inputs(args, text: str) -> list:
    task = args.task
    if args.format == "text":
        if not text.strip():
            raise SystemExit("tf-longformer run: the input is empty.")
        if task == "question-answering":
            if not args.question:
                raise SystemExit("tf-longformer run: --format text with question-answering needs --question.")
            return [{"question": q, "context": text} for q in args.question]
        return [text]
    if args.question:
        raise SystemExit("tf-longformer run: --question goes with --format text (the whole input is the context).")
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if args.format == "jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"tf-longformer run: line {n} is not valid JSON ({e.msg}).") from None
            if isinstance(obj, str):
                obj = {"text": obj}
            if not isinstance(obj, dict):
                raise SystemExit(f"tf-longformer run: line {n}: expected a JSON object, got {type(obj).__name__}.")
            if task == "question-answering":
                if not {"question", "context"} <= set(obj):
                    raise SystemExit(f"tf-longformer run: line {n}: question-answering needs \"question\" and "
                                     f"\"context\", got {sorted(obj)}.")
                items.append({"question": obj["question"], "context": obj["context"]})
            else:
                if "text" not in obj:
                    raise SystemExit(f"tf-longformer run: line {n}: no \"text\" field (got {sorted(obj)}).")
                if task == "text-classification" and obj.get("text_pair") is not None:
                    items.append({"text": obj["text"], "text_pair": obj["text_pair"]})
                else:
                    items.append(obj["text"])
        else:
            if task == "question-answering":
                if "\t" not in line:
                    raise SystemExit(f"tf-longformer run: line {n}: question-answering reads "
                                     "`question<TAB>context` lines (or use --format jsonl / text).")
                question, context = line.split("\t", 1)
                items.append({"question": question, "context": context})
            elif task == "text-classification" and "\t" in line:
                a, b = line.split("\t", 1)
                items.append({"text": a, "text_pair": b})
            else:
                items.append(line)
    if not items:
        raise SystemExit("tf-longformer run: no input (nothing on stdin?).")
    return items


def cmd_run(args) -> int:
    """Runs fill-mask, question-answering, text- or token-classification on text from stdin."""
    quiet_tf()
    unused = [name for name, ok in (("--targets", args.task == "fill-mask"),
                                    ("--aggregation-strategy", args.task == "token-classification"),
                                    ("--max-answer-len", args.task == "question-answering"),
                                    ("--handle-impossible-answer", args.task == "question-answering"),
                                    ("--stride", args.task in ("question-answering", "token-classification")))
              if not ok and getattr(args, name[2:].replace("-", "_")) != _DEFAULTS[name]]
    if unused:
        raise SystemExit(f"tf-longformer run: {' and '.join(unused)} {'does' if len(unused) == 1 else 'do'} not "
                         f"apply to {args.task}.")
    if args.input and args.input != "-":
        try:
            with open(args.input, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SystemExit(f"tf-longformer run: cannot read --input {args.input!r}: {e.strerror}.") from None
    else:
        if sys.stdin.isatty():
            print("(reading from stdin; end with Ctrl-D)", file=sys.stderr)
        text = sys.stdin.read()
    inputs = _read_inputs(args, text)

    from tf_longformer.pipelines import pipeline

    try:
        pipe = pipeline(args.task, model=args.model, tokenizer=args.tokenizer, batch_size=args.batch_size,
                        max_length=args.max_length, progress=None if args.progress is None else args.progress)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise SystemExit(f"tf-longformer run: {e}") from None
    kwargs = {}
    if args.task == "fill-mask":
        kwargs["top_k"] = args.top_k or 5
        if args.targets:
            kwargs["targets"] = args.targets
    elif args.task == "question-answering":
        kwargs.update(top_k=args.top_k or 1, max_answer_len=args.max_answer_len,
                      handle_impossible_answer=args.handle_impossible_answer)
        if args.stride is not None:
            kwargs["doc_stride"] = args.stride
    elif args.task == "text-classification":
        kwargs["top_k"] = args.top_k or 1
    else:
        kwargs["aggregation_strategy"] = args.aggregation_strategy
        if args.stride is not None:
            kwargs["stride"] = args.stride
    try:
        results = pipe(inputs, **kwargs)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"tf-longformer run: {e}") from None
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if args.output:
        from tf_longformer.files import atomic_write_bytes

        atomic_write_bytes(args.output, lines.encode("utf-8"))
    else:
        sys.stdout.write(lines)
    return 0


_DEFAULTS = {"--targets": None, "--aggregation-strategy": "none", "--max-answer-len": 15,
             "--handle-impossible-answer": False, "--stride": None}


def register(sub) -> None:
    p = sub.add_parser("run", help=cmd_run.__doc__, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=("fill-mask", "question-answering", "text-classification",
                                                      "token-classification"))
    p.add_argument("--model", required=True, help="checkpoint directory or hub id")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the checkpoint's)")
    p.add_argument("--input", help="read from this file instead of stdin")
    p.add_argument("--output", help="write the JSON lines to this file (atomically) instead of stdout")
    p.add_argument("--format", choices=("lines", "jsonl", "text"), default="lines", help="input format (see above)")
    p.add_argument("--question", action="append", help="question-answering with --format text: a question "
                                                       "(repeatable)")
    p.add_argument("--top-k", type=int, help="answers per input (fill-mask 5, others 1)")
    p.add_argument("--targets", nargs="+", help="fill-mask: score only these tokens")
    p.add_argument("--aggregation-strategy", default="none",
                   choices=("none", "simple", "first", "average", "max"),
                   help="token-classification: how tokens are grouped into entities (default: none)")
    p.add_argument("--max-answer-len", type=int, default=15, help="question-answering: longest answer in tokens")
    p.add_argument("--handle-impossible-answer", action="store_true",
                   help="question-answering: allow the empty answer")
    p.add_argument("--stride", type=int, help="question-answering / token-classification: tokens shared by "
                                              "overlapping windows of a long text (default: 128, at most half a window)")
    p.add_argument("--max-length", type=int, help="longest sequence fed to the model (default: the model's limit)")
    p.add_argument("--batch-size", type=int, default=8, help="inputs (or windows) per model call (default 8)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on long jobs)")
    p.set_defaults(func=cmd_run)
