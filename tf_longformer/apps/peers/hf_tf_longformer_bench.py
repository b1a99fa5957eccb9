"""Times the reference TF Longformer (Hugging Face `transformers` 4.x + `tf-keras`) for `tf-longformer bench`.

It runs in ANOTHER Python environment (tf-keras and Keras 3 cannot share a process), e.g. one made with

    python -m venv /work/venv-hftf
    /work/venv-hftf/bin/pip install tensorflow-cpu tf-keras "transformers==4.57.*"

and `tf-longformer bench --peer-python /work/venv-hftf/bin/python` starts it once per measurement, in a fresh
process, with one JSON spec as its argument. It prints one line `BENCH_RESULT {json}` (also on failure: the
reference is known to fail some paths, and a failure is a result). Before the first measurement the bench runs
it once with `--check`: it prints `BENCH_PEER {json}` with `ok` and the versions, or the import that failed.

Standalone on purpose: it is shipped inside tf_longformer (tf_longformer/apps/peers/) so an installed package has
it, but it is run as a FILE by the peer's python and imports nothing from tf_longformer (whose Keras 3 code
cannot share a process with tf-keras). Importing it has no side effects: `main()` sets its environment
(`TF_USE_LEGACY_KERAS=1`, unless set).

Spec keys: model ("longformer" or "roberta": a dense model of the same size, for comparison), mode
("forward" or "train": MaskedLM loss + Adam step), length, batch, global_tokens (first tokens of each row made
global), xla (jit_compile), repeats, warmup, seed, and the config: vocab_size, hidden_size,
num_hidden_layers, num_attention_heads, intermediate_size, attention_window.

Run by hand:  python "$(python -c 'import tf_longformer.apps.peers as p; print(p.script_path())')" \
                  '{"mode": "forward", "length": 1024}'
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback

PEER_PREFIX = "BENCH_PEER "
DEFAULTS = {
    "model": "longformer", "mode": "forward", "length": 1024, "batch": 1, "global_tokens": 1, "xla": False,
    "repeats": 3, "warmup": 1, "seed": 0, "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "attention_window": 512,
}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # TF errors are long; the first line and the lines naming shapes are the useful ones
    keep = lines[:2] + [ln for ln in lines[2:] if "shape" in ln.lower() or "Incompatible" in ln][:3]
    return " | ".join(keep)[:600]


def run(spec: dict) -> dict:
    import numpy as np
    import tensorflow as tf
    import transformers

    s = {**DEFAULTS, **spec}
    length, batch = int(s["length"]), int(s["batch"])
    result = {"tensorflow": tf.__version__, "transformers": transformers.__version__, "input_shape": [batch, length]}
    kw = dict(vocab_size=s["vocab_size"], hidden_size=s["hidden_size"], num_hidden_layers=s["num_hidden_layers"],
              num_attention_heads=s["num_attention_heads"], intermediate_size=s["intermediate_size"],
              max_position_embeddings=length + 2, type_vocab_size=1, pad_token_id=1)
    tf.keras.utils.set_random_seed(int(s["seed"]))
    if s["model"] == "longformer":
        from transformers import LongformerConfig, TFLongformerForMaskedLM, TFLongformerModel

        config = LongformerConfig(attention_window=s["attention_window"], **kw)
        model = (TFLongformerForMaskedLM if s["mode"] == "train" else TFLongformerModel)(config)
    elif s["model"] == "roberta":
        from transformers import RobertaConfig, TFRobertaForMaskedLM, TFRobertaModel

        config = RobertaConfig(**kw)
        model = (TFRobertaForMaskedLM if s["mode"] == "train" else TFRobertaModel)(config)
    else:
        raise ValueError(f"unknown model {s['model']!r}; use 'longformer' or 'roberta'")

    rng = np.random.default_rng(int(s["seed"]))
    ids = rng.integers(5, min(1000, s["vocab_size"]), size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 0, 2
    inputs = {"input_ids": tf.constant(ids), "attention_mask": tf.ones_like(ids)}
    if s["model"] == "longformer":
        glob = np.zeros_like(ids)
        glob[:, : int(s["global_tokens"])] = 1
        inputs["global_attention_mask"] = tf.constant(glob)
    model(**{k: v[:, :8] for k, v in inputs.items()})  # build the weights eagerly, outside the timed function
    result["rss_after_build_bytes"] = current_rss_bytes()

    if s["mode"] == "forward":
        @tf.function(jit_compile=bool(s["xla"]))
        def call(inputs):
            return model(**inputs, training=False)[0]
    elif s["mode"] == "train":
        optimizer = tf.keras.optimizers.Adam(1e-4)
        # the token at a random `mlm_fraction` of the positions (as tf_longformer.apps.bench.mlm_labels), -100
        # elsewhere: the reference's loss ignores -100, its head computes every position's logits regardless
        picked = np.random.default_rng(int(s["seed"]) + 1).random(ids.shape) < float(s.get("mlm_fraction", 1.0))
        picked[:, 1] = True
        labels = tf.constant(np.where(picked, ids, -100).astype(np.int32))

        @tf.function(jit_compile=bool(s["xla"]))
        def call(inputs):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(**inputs, labels=labels, training=True).loss)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
    else:
        raise ValueError(f"unknown mode {s['mode']!r}; use 'forward' or 'train'")

    t0 = time.perf_counter()
    call(inputs).numpy()
    result["first_call_s"] = time.perf_counter() - t0
    for _ in range(int(s["warmup"])):
        call(inputs).numpy()
    times = []
    for _ in range(int(s["repeats"])):
        t0 = time.perf_counter()
        call(inputs).numpy()
        times.append(time.perf_counter() - t0)
    result["times"] = times
    return result


def check() -> dict:
    """What the bench needs here, step by step: TensorFlow, tf-keras as `tf.keras`, the TF Longformer of
    transformers 4.x. `{"ok": True, versions}` or `{"ok": False, "error": what is missing and why}`."""
    info = {"python": sys.version.split()[0], "executable": sys.executable}
    what = "tensorflow"
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        what = "tf-keras"
        import tf_keras

        info["keras"] = tf_keras.__version__
        what = "tf.keras from tf-keras (TF_USE_LEGACY_KERAS=1)"
        module = getattr(tf.keras, "__name__", "")
        if not module.startswith("tf_keras"):
            raise ImportError(f"tf.keras is {module!r}, not tf-keras")
        what = "transformers 4.x with its TF models"
        import transformers

        info["transformers"] = transformers.__version__
        from transformers import TFLongformerModel  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure means: not a usable peer environment
        return {"ok": False, "error": f"{what}: {short_error(e)}", **info}
    return {"ok": True, **info}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv and argv[0] == "--check":
        print(PEER_PREFIX + json.dumps(check()), flush=True)
        return 0
    spec = json.loads(argv[0]) if argv else {}
    try:
        result = {"ok": True, **run(spec)}
    except Exception as e:  # a failure of the reference is a measurement: report it, do not crash
        result = {"ok": False, "error": short_error(e), "traceback_tail": traceback.format_exc()[-2000:]}
    result["peak_rss_bytes"] = peak_rss_bytes()
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
