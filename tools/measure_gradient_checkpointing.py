"""Peak memory of a training step with and without gradient checkpointing, on the same batch.

Each variant runs in its own fresh process (so neither sees the other's allocations): it builds the model,
runs one warm-up step on 32 tokens (tracing, optimizer slots, thread pools), records its peak resident set size
(`ru_maxrss`), then runs `--steps` training steps on a `--batch` x `--length` batch with `model.fit` and
records the peak again. The difference is the memory the long training step itself needed: activations kept
for the backward pass, gradients and temporaries. Prints both peaks and the ratio.

    python tools/measure_gradient_checkpointing.py                 # 4096 tokens, hidden 256, 4 layers
    python tools/measure_gradient_checkpointing.py --length 2048 --layers 2

CPU only as written (peak RSS); on a GPU, `tf.config.experimental.get_memory_info("GPU:0")["peak"]` is the
figure to read instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np
    import tensorflow as tf

    import tf_longformer as T

    cfg = T.LongformerConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=4 * args.hidden, attention_window=args.window,
        max_position_embeddings=args.length + 2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        num_labels=2, gradient_checkpointing=args.checkpointing,
    )
    keras.utils.set_random_seed(0)
    model = T.TFLongformerForSequenceClassification(cfg)
    rng = np.random.default_rng(0)

    def batch(length):
        ids = rng.integers(5, args.vocab, size=(args.batch, length))
        ids[:, 0] = 0
        glob = np.zeros_like(ids)
        glob[:, 0] = 1
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "global_attention_mask": glob,
                "labels": rng.integers(0, 2, size=(args.batch,))}

    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    spec = {k: tf.TensorSpec([None, None] if k != "labels" else [None], tf.int64) for k in batch(8)}

    def dataset(length, steps):
        data = [batch(length) for _ in range(steps)]
        return tf.data.Dataset.from_generator(lambda: iter(data), output_signature=spec)

    model.fit(dataset(32, 1), epochs=1, verbose=0)  # warm-up on 32 tokens: traces, optimizer slots, threads
    before = peak_rss_mib()
    start = time.perf_counter()
    history = model.fit(dataset(args.length, args.steps), epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / args.steps
    after = peak_rss_mib()
    print(json.dumps({"checkpointing": args.checkpointing, "peak_before_mib": before, "peak_mib": after,
                      "step_mib": after - before, "seconds_per_step": seconds,
                      "loss": float(history.history["loss"][-1])}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--checkpointing", type=lambda s: s == "True", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.checkpointing is not None:
        return child(args)

    results = {}
    for checkpointing in (False, True):
        cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
               "--checkpointing", str(checkpointing)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[checkpointing] = json.loads(out.stdout.strip().splitlines()[-1])
    off, on = results[False], results[True]
    print(f"batch {args.batch} x {args.length} tokens, hidden {args.hidden}, {args.layers} layers, "
          f"{args.heads} heads, window {args.window}, dropout 0.1, one global token")
    print(f"{'':24}{'peak RSS':>12}{'step (peak - warm-up peak)':>30}{'s/step':>10}")
    for name, r in (("without checkpointing", off), ("with checkpointing", on)):
        print(f"{name:24}{r['peak_mib']:>9.0f} MiB{r['step_mib']:>27.0f} MiB{r['seconds_per_step']:>10.2f}")
    print(f"peak RSS ratio (with / without): {on['peak_mib'] / off['peak_mib']:.2f}; "
          f"step memory ratio: {on['step_mib'] / off['step_mib']:.2f}; "
          f"time ratio: {on['seconds_per_step'] / off['seconds_per_step']:.2f}")
    print(f"loss after the steps (same data, same seeds): {off['loss']:.6f} vs {on['loss']:.6f}")


if __name__ == "__main__":
    main()
