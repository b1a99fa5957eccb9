"""The benchmark behind `tf-longformer bench`: speed, memory and FLOP efficiency against peers, side by side.

Every measurement runs in a FRESH subprocess (so its peak RSS is its own), and the implementations are
measured back to back for each length and mode, so the ratios of one run share the same machine state.

Implementations (`impls`):
- `ours`: this package, `tf.function`, float32. `ours_xla`: the same under `jit_compile=True`.
  `ours_bf16`: the Keras `mixed_bfloat16` policy. `ours_gc`: float32 with gradient checkpointing
  (`gradient_checkpointing=True`: each layer's activations recomputed in the backward pass; less memory).
  `ours_xla_gc`: both. Our training step is `fit`'s: vocabulary logits at the labelled positions only.
- `onnx`: `ours` (the same weights) exported with `model.export(path, format="onnx")` and run in ONNX Runtime
  (forward only), in a grandchild process that holds ONNX Runtime and numpy only
  (`tf_longformer/apps/peers/onnx_runtime_bench.py`): its times and peak memory are ONNX Runtime's; the
  export's time and the exporting worker's peak are recorded beside them (`export_s`, `export_peak_rss_bytes`).
- `saved_model`: the same, exported as our serving SavedModel (`model.export(path)`) and run as TF Serving runs
  it: `tf.saved_model.load`, `serving_default` with named int32 tensors, in a grandchild process that imports
  TensorFlow only (`tf_longformer/apps/peers/saved_model_bench.py`).
- `dense`: a dense full-attention encoder of the same size (Keras 3 `MultiHeadAttention`), the baseline a
  long-input model must beat.
- `reference`: the Hugging Face TF Longformer (`transformers` 4.x + `tf-keras`) in ANOTHER Python
  environment (`peer_python`), run by `tf_longformer/apps/peers/hf_tf_longformer_bench.py` (a file the peer's
  python runs; it imports nothing from tf_longformer), after a `--check` of that environment that stops the
  run at once, with the reason, when tf-keras or transformers is missing there. Its training step fails with a
  global token (a known bug), so `train` is also measured there without one (`reference_noglobal`), the
  only graph-mode step it can run; failures are recorded as failures. `reference_xla` times its XLA path.
  `hf_roberta`: the Hugging Face TF RoBERTa of the same size, in the same peer environment.

Batch sizes: `batch` is one size or a list (`--batch 1,4,8`); each size is a row of its own per implementation,
mode and length, with its tokens/s (`batch * length / median time`), so a run shows what batching buys.

Modes: `forward` (the base model, `last_hidden_state`) and `train` (MaskedLM loss, gradients, an Adam step), with
labels on a random `mlm_fraction` of the tokens (default 0.15, masked-LM pretraining's share; -100 elsewhere).
`memory_profile=True` adds, for our training steps, what the step keeps for its backward pass per layer and
component (`tf_longformer.apps.memory_profile`). `op_profile=True` adds, for our in-process steps (`ours*`,
`dense`), where the time of a call goes: per op kind (the matrix products against the work around them), op
type and component, from TensorFlow's profiler (`tf_longformer.apps.op_profile`), over `op_profile_calls` calls
made after the timed ones (so the profiler's own cost never reaches the timings).

Python entry point:

    from tf_longformer.apps.bench import run_benchmark
    report = run_benchmark(lengths=[1024, 2048], modes=["forward"], batch=[1, 8], out_dir="bench-out")

Worker entry point (one measurement, used by the parent): `python -m tf_longformer.apps.bench --worker SPEC_JSON`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback

from tf_longformer.apps.peers import ONNX_RUNTIME_BENCH, SAVED_MODEL_BENCH, script_path

RESULT_PREFIX = "BENCH_RESULT "
BASE_CONFIG = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "attention_window": 512,
}
DEFAULT_LENGTHS = (1024, 2048, 4096, 8192, 16384)
DEFAULT_MODES = ("forward", "train")
# `train_cls`: a sequence-classification training step (2 classes, global attention on <s>, one label per row),
# ours only (the 16k classification target); asked for by name, never run by default.
MODES = DEFAULT_MODES + ("train_cls",)
TRAIN_MODES = ("train", "train_cls")
OUR_IMPLS = ("ours", "ours_xla", "ours_bf16", "ours_gc", "ours_xla_gc", "onnx", "saved_model", "dense")
FORWARD_ONLY = ("onnx", "saved_model")  # implementations without a training step
PEER_IMPLS = ("reference", "reference_noglobal", "reference_xla", "hf_roberta")
ALL_IMPLS = OUR_IMPLS + PEER_IMPLS
PEER_PREFIX = "BENCH_PEER "
PEER_SETUP = ('python -m venv /tmp/hftf && /tmp/hftf/bin/pip install "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" '
              '"transformers==4.57.*"')

PEER_SCRIPT = script_path()  # the reference's runner, shipped in the package (tf_longformer/apps/peers/)
TARGETS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_targets.json")  # package data


# ---------------------------------------------------------------------------------------------- FLOP counts
def ideal_flops(config: dict, length: int, mode: str = "forward", global_tokens: int = 1, dense: bool = False,
                batch: int = 1, mlm_fraction: float = 1.0) -> float:
    """The FLOPs a perfect implementation needs (multiply-add = 2), no padding, no wasted band entries.

    Forward, per layer: the Q, K, V projections and the global K, V over all tokens (5 matmuls of
    hidden x hidden), the global queries, the output projection, the FFN, and attention: a band of `2w+1` keys
    per local query (scores and values), the global keys of every local query, every key of a global query.
    `dense=True` counts a full-attention model instead (no global projections, `length` keys per query).
    `train` adds the MaskedLM head (its vocabulary product at the `mlm_fraction` of labelled positions) and counts
    the backward pass as twice the forward (the usual 3x rule).
    """
    h, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    n = length
    g = 0 if dense else min(global_tokens, n)
    if dense:
        proj = 4 * 2 * n * h * h
        attn = 2 * 2 * n * n * h
    else:
        w = config["attention_window"] // 2
        band_keys = min(2 * w + 1, n)  # an ideal implementation skips keys outside the sequence only roughly
        # q, k, v and the output over all tokens; with global tokens also kg, vg over all tokens and qg for them
        proj = 4 * 2 * n * h * h + (2 * 2 * n * h * h + 2 * g * h * h if g else 0)
        attn = 2 * 2 * (n - g) * (band_keys + g) * h + 2 * 2 * g * n * h
    ffn = 2 * 2 * n * h * inter
    total = layers * (proj + attn + ffn)
    if mode == "train":
        head = 2 * n * h * h + 2 * n * mlm_fraction * h * config["vocab_size"]
        total = 3 * (total + head)
    elif mode == "train_cls":
        total = 3 * (total + 2 * h * h + 2 * h * 2)  # the pooler and classifier read one token
    return float(total * batch)


# ---------------------------------------------------------------------------------------------- machine facts
def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = set()
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        info["avx512f"] = "avx512f" in flags
        info["avx512_bf16"] = "avx512_bf16" in flags
        info["amx"] = sorted(f for f in flags if f.startswith("amx"))
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return info


def _mem_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------------- worker
def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _dense_model(config: dict, length: int, mlm: bool):
    """A dense post-LayerNorm encoder of the same size (RoBERTa-like), from stock Keras 3 layers."""
    import keras

    h, heads = config["hidden_size"], config["num_attention_heads"]

    def gelu(x):
        return keras.activations.gelu(x, approximate=False)

    class DenseEncoder(keras.Model):
        def __init__(self):
            super().__init__()
            self.word = keras.layers.Embedding(config["vocab_size"], h)
            self.pos = keras.layers.Embedding(length + 2, h)
            self.norm = keras.layers.LayerNormalization(epsilon=1e-5)
            self.blocks = []
            for _ in range(config["num_hidden_layers"]):
                self.blocks.append((
                    keras.layers.MultiHeadAttention(heads, h // heads, dropout=0.1),
                    keras.layers.LayerNormalization(epsilon=1e-5),
                    keras.layers.Dense(config["intermediate_size"], activation=gelu),
                    keras.layers.Dense(h),
                    keras.layers.LayerNormalization(epsilon=1e-5),
                ))
            self.drop = keras.layers.Dropout(0.1)
            if mlm:
                self.head_dense = keras.layers.Dense(h, activation=gelu)
                self.head_norm = keras.layers.LayerNormalization(epsilon=1e-5)
                self.decoder = keras.layers.Dense(config["vocab_size"])

        def call(self, ids, training=False):
            positions = keras.ops.arange(keras.ops.shape(ids)[1])[None] + 2
            x = self.drop(self.norm(self.word(ids) + self.pos(positions)), training=training)
            for attn, n1, d1, d2, n2 in self.blocks:
                x = n1(x + self.drop(attn(x, x, training=training), training=training))
                x = n2(x + self.drop(d2(d1(x)), training=training))
            if mlm:
                return self.decoder(self.head_norm(self.head_dense(x)))
            return x

    return DenseEncoder()


def _worker(spec: dict) -> dict:
    """One measurement in this process: builds the model, warms up, times `repeats` calls."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import keras

    result = {"tensorflow": tf.__version__, "keras": keras.__version__}
    impl, mode = spec["impl"], spec.get("mode", "forward")
    if impl == "matmul":
        return {**result, **_matmul_peak(spec)}
    if impl == "accuracy":
        return {**result, **_bf16_accuracy(spec)}
    config = {**BASE_CONFIG, **spec.get("config", {})}
    length, batch, n_global = int(spec["length"]), int(spec.get("batch", 1)), int(spec.get("global_tokens", 1))
    keras.utils.set_random_seed(int(spec.get("seed", 0)))
    if impl == "ours_bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    ids = rng.integers(5, min(1000, config["vocab_size"]), size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 0, 2
    glob = np.zeros_like(ids)
    glob[:, :n_global] = 1
    labels = mlm_labels(ids, float(spec.get("mlm_fraction", 1.0)), int(spec.get("seed", 0)))
    row_labels = tf.constant(np.arange(batch) % 2, tf.int32)  # train_cls: one of 2 classes per row
    ids, glob, labels = tf.constant(ids), tf.constant(glob), tf.constant(labels)
    feed = {"ids": ids, "glob": glob, "labels": labels, "row_labels": row_labels}  # what the steps read (`_traced`)
    result["input_shape"] = [batch, length]
    jit = impl in ("ours_xla", "ours_xla_gc")

    if impl in FORWARD_ONLY:
        return {**result, **_exported(impl, spec, config, ids.numpy(), glob.numpy())}
    if impl in ("ours", "ours_xla", "ours_bf16", "ours_gc", "ours_xla_gc"):
        import tf_longformer as T
        from tf_longformer import training as T_training

        # Under XLA the masked-LM step's slots must be static: as many as the most labelled row has (what a user
        # sets as BERT's max_predictions_per_seq); without it XLA computes the vocabulary logits at every token.
        slots = {"max_predictions_per_seq": int(np.max(np.sum(labels.numpy() >= 0, axis=1)))} if (
            jit and mode == "train") else {}
        cfg = T.LongformerConfig(max_position_embeddings=length + 2, type_vocab_size=1,
                                 gradient_checkpointing=impl in ("ours_gc", "ours_xla_gc"), **slots, **config)
        model = {"train": T.TFLongformerForMaskedLM, "train_cls": T.TFLongformerForSequenceClassification}.get(
            mode, T.TFLongformerModel)(cfg)
        model(ids[:, :8], global_attention_mask=glob[:, :8])  # weights exist before anything is timed
        loss_fn = T_training.SparseCrossentropy()

        def forward(training):
            ids, glob, labels, row_labels = (feed[k] for k in ("ids", "glob", "labels", "row_labels"))
            if mode == "train_cls":  # the head's own loss over one label per row
                return model(ids, global_attention_mask=glob, labels=row_labels, training=training).loss
            if mode != "train":
                return model(ids, global_attention_mask=glob, training=training).last_hidden_state
            # `fit`'s masked-LM step: the vocabulary logits at the labelled positions only
            hidden = model.backbone(input_ids=ids, global_attention_mask=glob, training=training)
            slot_labels, logits, _ = model.labelled_logits(labels, hidden["last_hidden_state"])
            return loss_fn(slot_labels, logits)
    elif impl == "dense" and mode == "train_cls":
        raise ValueError("the dense model has no classification step; train_cls is ours only")
    elif impl == "dense":
        model = _dense_model(config, length, mlm=mode == "train")
        model(ids[:, :8])

        def forward(training):
            out = model(ids, training=training)
            if mode == "train":
                counted = tf.cast(labels >= 0, tf.float32)
                ce = keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), out, from_logits=True)
                return tf.reduce_sum(ce * counted) / tf.reduce_sum(counted)
            return out
    else:
        raise ValueError(f"unknown implementation {impl!r} for this process; choose from {OUR_IMPLS}")
    result["rss_after_build_bytes"] = _rss_of(os.getpid())

    if mode == "forward":
        step = _traced(lambda: forward(False), jit, feed)
    elif mode in TRAIN_MODES:
        optimizer = keras.optimizers.Adam(1e-4)
        optimizer.build(model.trainable_variables)

        def train_step():
            with tf.GradientTape() as tape:
                loss = forward(True)
                scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        step = _traced(train_step, jit, feed)
    else:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")

    if mode in TRAIN_MODES and spec.get("memory_profile") and impl != "dense":
        from tf_longformer.apps import memory_profile

        graph = step.get_concrete_function().graph
        kept = memory_profile.kept_tensors(graph, graph.outputs[0])
        result["memory_profile"] = memory_profile.summarize(kept, length * batch)
    t0 = time.perf_counter()
    step().numpy()
    result["first_call_s"] = time.perf_counter() - t0
    for _ in range(int(spec.get("warmup", 1))):
        step().numpy()
    times = []
    for _ in range(int(spec.get("repeats", 3))):
        t0 = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - t0)
    result["times"] = times
    if spec.get("memory_timeline") and mode in TRAIN_MODES:
        from tf_longformer.apps import memory_profile

        result["memory_timeline"] = memory_profile.timeline(step)
    if spec.get("op_profile"):
        from tf_longformer.apps import op_profile

        result["op_profile"] = op_profile.profile_step(step, calls=int(spec.get("op_profile_calls", 2)))
    return result


def _traced(body, jit, feed):
    """`body()` (which reads its inputs from the dict `feed`) as a `tf.function` step called with no argument.

    Without XLA the inputs are captured constants (as the reference's bench has them). Under XLA they are the
    compiled function's arguments, as in `fit`'s compiled step: XLA folds whatever it can compute at compile time,
    so with constant inputs every mask and index derived from them (per layer and bucket path) would be folded
    into literals of the compiled program, which a training step on real batches never has."""
    import tensorflow as tf

    if not jit:
        return tf.function(body)
    constants = dict(feed)

    @tf.function(jit_compile=True)
    def compiled(inputs):
        feed.update(inputs)  # at trace time: the symbolic arguments
        try:
            return body()
        finally:
            feed.update(constants)

    def step():
        return compiled(constants)

    step.get_concrete_function = lambda: compiled.get_concrete_function(constants)
    return step


def mlm_labels(ids, fraction, seed):
    """Masked-LM labels: the token at a random `fraction` of the positions (at least one), -100 elsewhere."""
    import numpy as np

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mlm_fraction must be in (0, 1], got {fraction}.")
    picked = np.random.default_rng(seed + 1).random(ids.shape) < fraction
    picked[:, 1] = True
    return np.where(picked, ids, -100).astype(np.int32)


def _exported(impl, spec, config, ids, glob):
    """`ours` (the bare model, the same seed) exported here, then timed in a fresh process that loads the export as
    a server would: `onnx` in ONNX Runtime (`peers/onnx_runtime_bench.py`, no TensorFlow), `saved_model` with
    `tf.saved_model.load` (`peers/saved_model_bench.py`, no tf_longformer). That process's times and peak memory
    are the result."""
    import numpy as np

    import tf_longformer as T

    if spec.get("mode", "forward") != "forward":
        raise ValueError(f"the {impl} implementation measures the forward pass only")
    length = ids.shape[1]
    cfg = T.LongformerConfig(max_position_embeddings=length + 2, type_vocab_size=1, **config)
    model = T.TFLongformerModel(cfg)
    model(ids[:, :8], global_attention_mask=glob[:, :8])
    with tempfile.TemporaryDirectory(prefix=f"bench-{impl}-") as tmp:
        t0 = time.perf_counter()
        if impl == "onnx":
            exported = model.export(os.path.join(tmp, "model.onnx"), format="onnx", auto_global=False)["with_global"]
            script = ONNX_RUNTIME_BENCH
        else:
            exported = os.path.join(tmp, "saved_model")
            model.export(exported)
            script = SAVED_MODEL_BENCH
        export_s = time.perf_counter() - t0
        export_peak = _peak_rss_bytes()
        del model
        inputs = os.path.join(tmp, "inputs.npz")
        np.savez(inputs, input_ids=ids, attention_mask=np.ones_like(ids), global_attention_mask=glob)
        run = {"model": exported, "inputs": inputs, "warmup": int(spec.get("warmup", 1)),
               "repeats": int(spec.get("repeats", 3))}
        proc = subprocess.run([sys.executable, script_path(script), json.dumps(run)],
                              capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                  if k != "PYTHONPATH"})
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            out = json.loads(line[len(RESULT_PREFIX):])
            break
    else:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])[-400:]
        raise RuntimeError(f"the {impl} runner exited with status {proc.returncode} and no result: {tail}")
    return {**out, "export_s": export_s, "export_peak_rss_bytes": export_peak}


def _matmul_peak(spec: dict) -> dict:
    """The machine's measured matmul peak: median GFLOP/s of n^3 products after a warm-up, fp32 and bf16."""
    import tensorflow as tf

    n = int(spec.get("matmul_size", 4096))
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal([n, n], dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.cast(tf.random.normal([n, n], dtype=tf.float32), dtype)
        f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))
        f().numpy()
        times = []
        for _ in range(int(spec.get("repeats", 5))):
            t0 = time.perf_counter()
            f().numpy()
            times.append(time.perf_counter() - t0)
        times.sort()
        out[f"{dtype}_gflops"] = 2 * n**3 / times[len(times) // 2] / 1e9
        out[f"{dtype}_times"] = times
    out["matmul_size"] = n
    return out


def _bf16_accuracy(spec: dict) -> dict:
    """What bf16 costs in accuracy: the same random MaskedLM in float32 and mixed_bfloat16, same inputs, each
    traced (`tf.function`)."""
    import numpy as np
    import tensorflow as tf

    import keras
    import tf_longformer as T

    config = {**BASE_CONFIG, **spec.get("config", {})}
    length = int(spec["length"])
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    ids = rng.integers(5, min(1000, config["vocab_size"]), size=(1, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 0, 2
    glob = np.zeros_like(ids)
    glob[:, :int(spec.get("global_tokens", 1))] = 1
    labels = np.full_like(ids, -100)
    picked = rng.random(ids.shape) < 0.15
    labels[picked] = ids[picked]
    cfg = T.LongformerConfig(max_position_embeddings=length + 2, type_vocab_size=1, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0, **config)
    outs = {}
    weights = None
    for policy in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        model = T.TFLongformerForMaskedLM(cfg)
        model(ids[:, :8], global_attention_mask=glob[:, :8])
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        @tf.function  # in a graph, as `fit`, `predict` and a SavedModel run it (Grappler's rewrites included)
        def run():
            with tf.GradientTape() as tape:
                out = model(ids, global_attention_mask=glob, labels=labels, training=False)
            grads = tape.gradient(out.loss, model.trainable_variables)
            flat = tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads if g is not None], 0)
            return out.logits, out.loss, flat

        logits, loss, flat = run()
        outs[policy] = (logits.numpy().astype(np.float64), float(loss), flat.numpy().astype(np.float64))
    keras.config.set_dtype_policy("float32")
    (l32, loss32, g32), (l16, loss16, g16) = outs["float32"], outs["mixed_bfloat16"]
    rel = float(np.linalg.norm(l16 - l32) / np.linalg.norm(l32))
    cos = float(g16 @ g32 / (np.linalg.norm(g16) * np.linalg.norm(g32)))
    return {
        "length": length,
        "logits_relative_error": rel,
        "logits_max_abs_error": float(np.abs(l16 - l32).max()),
        "top1_agreement": float(np.mean(l16.argmax(-1) == l32.argmax(-1))),
        "loss_float32": loss32,
        "loss_bfloat16": loss16,
        "gradient_cosine": cos,
        "gradient_relative_error": float(np.linalg.norm(g16 - g32) / np.linalg.norm(g32)),
    }


def _worker_main(spec_json: str) -> int:
    try:
        result = {"ok": True, **_worker(json.loads(spec_json))}  # `onnx` brings ONNX Runtime's own peak
    except Exception as e:  # reported to the parent, which records it as a failed measurement
        result = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:600],
                  "traceback_tail": traceback.format_exc()[-2000:]}
    result.setdefault("peak_rss_bytes", _peak_rss_bytes())
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------- parent
def _run_subprocess(cmd, env, timeout_s, memory_cap_bytes):
    """Runs one worker; kills it past the time limit or the memory cap. Returns the worker's result dict."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        killed, peak_seen = None, 0
        while proc.poll() is None:
            time.sleep(0.1)
            peak_seen = max(peak_seen, _rss_of(proc.pid))
            if memory_cap_bytes and peak_seen > memory_cap_bytes:
                killed = f"killed: resident memory passed the cap of {memory_cap_bytes / 2**30:.1f} GiB"
            elif time.perf_counter() - t0 > timeout_s:
                killed = f"killed: ran past the time limit of {timeout_s:.0f} s"
            if killed:
                proc.kill()
                proc.wait()
                break
        out.seek(0)
        text = out.read()
    wall = time.perf_counter() - t0
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            break
    else:
        tail = " | ".join(text.strip().splitlines()[-3:])[-400:]
        reason = killed or f"the worker exited with status {proc.returncode} and no result"
        result = {"ok": False, "error": f"{reason}; output tail: {tail}", "peak_rss_bytes": peak_seen}
    result["process_wall_s"] = wall
    return result


def _spec_for(impl, mode, length, common, batch=None):
    """(command, spec) of one measurement at `batch` rows (default `common["batch"]`), or None when the
    implementation does not apply."""
    spec = {"mode": mode, "length": length,
            **{k: common[k] for k in ("batch", "repeats", "warmup", "seed", "mlm_fraction")}}
    if batch is not None:
        spec["batch"] = int(batch)
    if impl in OUR_IMPLS:
        spec.update(impl=impl, config=common["config"], global_tokens=common["global_tokens"],
                    memory_profile=common["memory_profile"], op_profile=common["op_profile"],
                    op_profile_calls=common["op_profile_calls"], memory_timeline=common.get("memory_timeline", False))
        return [sys.executable, "-m", "tf_longformer.apps.bench", "--worker", json.dumps(spec)], spec
    if common["peer_python"] is None:
        return None
    spec.update({k: v for k, v in common["config"].items()})
    spec.update(model="roberta" if impl == "hf_roberta" else "longformer",
                global_tokens=0 if impl == "reference_noglobal" else common["global_tokens"],
                xla=impl == "reference_xla")
    return [common["peer_python"], common["peer_script"], json.dumps(spec)], spec


def _worker_env() -> dict:
    """The environment of our measurements: they must import the same tf_longformer as this process."""
    import site

    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # above tf_longformer
    installed = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if os.path.realpath(package_root) not in installed:  # a source tree: put it first (never site-packages)
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _peer_env() -> dict:
    """The environment of the peer: its own python's packages only (no PYTHONPATH of ours: our TensorFlow and
    Keras 3 must not shadow its tf-keras)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def check_peer(peer_python, peer_script=PEER_SCRIPT, env=None, timeout_s=600.0) -> dict:
    """Runs the peer script's `--check` in `peer_python`: `{"ok": ..., "error": ..., versions}`."""
    try:
        proc = subprocess.run([peer_python, peer_script, "--check"], capture_output=True, text=True,
                              env=_peer_env() if env is None else env, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(PEER_PREFIX):
            return json.loads(line[len(PEER_PREFIX):])
    tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])[-400:]
    return {"ok": False, "error": f"{peer_script} --check exited with status {proc.returncode} and no answer"
                                  f"{'; output tail: ' + tail if tail else ''}"}


def _check_input_shape(result, batch, length):
    """A measurement whose runner reports the inputs it timed (`input_shape`, batch first) at another batch size
    or length than asked is a failure, not a row: its times would be filed under the wrong size."""
    shape = result.get("input_shape")
    if result.get("ok") and shape is not None and (int(shape[0]) != batch or int(shape[-1]) != length):
        result["ok"] = False
        result["error"] = (f"the runner timed inputs of shape {list(shape)}, not batch {batch} x length {length}: "
                           "it did not take the batch size it was given")
    return result


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def batch_sizes(batch) -> list[int]:
    """The batch sizes of a run: `batch` is one positive integer or a sequence of them (duplicates dropped)."""
    values = [batch] if isinstance(batch, (numbers.Integral, str)) or not hasattr(batch, "__iter__") else list(batch)
    out = []
    for b in values:
        if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r}.")
        if int(b) not in out:
            out.append(int(b))
    if not out:
        raise ValueError("give at least one batch size.")
    return out


def run_benchmark(lengths=DEFAULT_LENGTHS, modes=DEFAULT_MODES, impls=None, peer_python=None, config=None,
                  batch=1, global_tokens=1, repeats=3, warmup=1, passes=1, seed=0, out_dir=None,
                  memory_cap_gb=None, timeout_s=3600.0, matmul_size=4096, accuracy_length=2048,
                  measure_matmul=True, peer_script=PEER_SCRIPT, targets=None, log=print, mlm_fraction=0.15,
                  memory_profile=False, op_profile=False, op_profile_calls=2, memory_timeline=False) -> dict:
    """Measures every (length, mode, batch size, implementation) in a fresh process; returns (and writes) the report.

    `impls`: default `ours` and `dense`, plus `reference` and `reference_noglobal` (train only) when
    `peer_python` is given. The matmul peak is measured at the start and the end of the run (the higher is
    the peak; `measure_matmul=False` skips it). `batch`: one batch size or a list; each is measured as rows of
    its own (every implementation back to back at each length, mode and batch size). `ours_bf16` in `impls`
    also measures bf16's accuracy cost at `accuracy_length`.
    `targets`: what the run is judged by (`load_targets`; default the package's `bench_targets.json`).
    `mlm_fraction`: the share of tokens a training step labels. `memory_profile`: also report, for our training
    steps, what each keeps for its backward pass (`tf_longformer.apps.memory_profile`). `op_profile`: also
    report, for our in-process implementations, where the time of a call goes (`tf_longformer.apps.op_profile`),
    over `op_profile_calls` profiled calls after the timed ones. `memory_timeline`: also report, for our training
    steps, the buffers live at the peak of one more step, by component and op (`memory_profile.timeline`); our
    processes then run TensorFlow's BFC allocator (`memory_profile.TIMELINE_ENV`, which the profiler's allocator
    events need): their peak RSS and times are that allocator's.
    Writes `bench.json`, `bench.md` and `bench.png` (if matplotlib is installed) into `out_dir`.
    """
    lengths = [int(x) for x in lengths]
    for x in lengths:
        if x <= 0:
            raise ValueError(f"lengths must be positive integers, got {x}.")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; choose from {MODES}.")
    if impls is None:
        impls = ["ours", "dense"] + (["reference", "reference_noglobal"] if peer_python else [])
    for i in impls:
        if i not in ALL_IMPLS:
            raise ValueError(f"unknown implementation {i!r}; choose from {ALL_IMPLS}.")
        if i in PEER_IMPLS and not peer_python:
            raise ValueError(f"implementation {i!r} runs in the peer environment: give `peer_python`.")
    if peer_python and not os.path.exists(peer_python):
        raise ValueError(f"peer_python {peer_python!r} does not exist.")
    if peer_python and not os.path.isfile(peer_script):
        raise ValueError(f"the peer script {peer_script!r} is missing (a broken install of tf-longformer?).")
    if not 0.0 < float(mlm_fraction) <= 1.0:
        raise ValueError(f"mlm_fraction must be in (0, 1], got {mlm_fraction}.")
    if op_profile and (isinstance(op_profile_calls, bool) or not isinstance(op_profile_calls, int)
                       or op_profile_calls < 1):
        raise ValueError(f"op_profile_calls must be a whole number of at least 1, got {op_profile_calls!r}.")
    batches = batch_sizes(batch)
    if repeats < 1 or passes < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1, passes >= 1, warmup >= 0; got {repeats}, {passes}, {warmup}.")
    targets = load_targets(targets)  # a bad targets file stops the run before it starts
    config = {**BASE_CONFIG, **(config or {})}
    if memory_cap_gb is None:
        avail = _mem_available_bytes()
        memory_cap_bytes = int(0.9 * avail) if avail else None
    else:
        memory_cap_bytes = int(memory_cap_gb * 2**30) if memory_cap_gb else None
    common = dict(batch=batches[0], repeats=repeats, warmup=warmup, seed=seed, config=config,
                  global_tokens=global_tokens, peer_python=peer_python, peer_script=peer_script,
                  mlm_fraction=float(mlm_fraction), memory_profile=bool(memory_profile),
                  op_profile=bool(op_profile), op_profile_calls=int(op_profile_calls),
                  memory_timeline=bool(memory_timeline))
    env = _worker_env()
    if memory_timeline:
        from tf_longformer.apps.memory_profile import TIMELINE_ENV

        env.update(TIMELINE_ENV)
    peer_env = _peer_env()
    if peer_python and any(i in PEER_IMPLS for i in impls):
        check = check_peer(peer_python, peer_script, peer_env, min(timeout_s, 600.0))
        if not check.get("ok"):
            raise ValueError(f"the peer environment {peer_python} cannot run the reference: {check.get('error')}. "
                             f"Make one with: {PEER_SETUP}")
        log(f"peer {peer_python}: python {check.get('python')}, tensorflow {check.get('tensorflow')}, "
            f"tf-keras {check.get('keras')}, transformers {check.get('transformers')}")

    def matmul():
        spec = {"impl": "matmul", "matmul_size": matmul_size, "repeats": 5}
        r = _run_subprocess([sys.executable, "-m", "tf_longformer.apps.bench", "--worker", json.dumps(spec)], env,
                            timeout_s, memory_cap_bytes)
        if r.get("ok"):
            log(f"matmul {matmul_size}^3: fp32 {r['float32_gflops']:.0f} GFLOP/s, bf16 {r['bfloat16_gflops']:.0f} GFLOP/s")
        else:
            log(f"matmul peak failed: {r.get('error')}")
        return r

    # `batch`: the int of a one-size run (as before lists existed), else the list; `batches`: always the list.
    report = {"machine": machine_info(), "config": config, "batch": batches[0] if len(batches) == 1 else batches,
              "batches": batches, "global_tokens": global_tokens,
              "mlm_fraction": float(mlm_fraction),
              "repeats": repeats, "warmup": warmup, "passes": passes, "lengths": lengths, "modes": list(modes),
              "impls": list(impls), "peer_python": peer_python, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "load_average_start": os.getloadavg(), "memory_cap_bytes": memory_cap_bytes,
              "op_profile": bool(op_profile)}
    started = time.perf_counter()
    peaks = [matmul()] if measure_matmul else []
    raw = []

    def _measure(impl, mode, length, b, p):
        if impl == "reference_noglobal" and mode != "train":
            return  # its forward is not a target; the global-token forward works
        if impl in FORWARD_ONLY and mode != "forward":
            return
        if mode == "train_cls" and (impl in PEER_IMPLS or impl == "dense"):
            return  # ours only
        made = _spec_for(impl, mode, length, common, b)
        if made is None:
            return
        cmd, spec = made
        load = os.getloadavg()[0]
        r = _run_subprocess(cmd, peer_env if impl in PEER_IMPLS else env, timeout_s, memory_cap_bytes)
        _check_input_shape(r, b, length)
        r.update(impl=impl, mode=mode, length=length, batch=b, pass_index=p, load_average_1min=load)
        raw.append(r)
        what = (f"[{time.perf_counter() - started:7.0f} s] pass {p + 1} {mode:7s} {length:6d} batch {b:<3d} "
                f"{impl:18s}")
        if r.get("ok"):
            med = _median(r["times"])
            log(f"{what} median {med:8.3f} s  {tokens_per_s(b, length, med):9.0f} tokens/s  "
                f"peak {r['peak_rss_bytes'] / 2**30:5.2f} GiB  (load {load:.1f})")
            if r.get("memory_profile"):
                from tf_longformer.apps.memory_profile import format_profile

                log(format_profile(r["memory_profile"], f"kept for the backward pass: {impl}, "
                                                        f"{length} tokens, batch {b}"))
            if r.get("memory_timeline"):
                from tf_longformer.apps.memory_profile import format_timeline

                log(format_timeline(r["memory_timeline"], f"live at the peak: {impl}, {length} tokens, batch {b}"))
            if r.get("op_profile"):
                from tf_longformer.apps.op_profile import format_op_profile

                log(format_op_profile(r["op_profile"], f"where the time goes: {impl}, {mode}, "
                                                       f"{length} tokens, batch {b}"))
        else:
            log(f"{what} FAILED: {r.get('error')}")
    for p in range(passes):
        for length in lengths:
            for mode in modes:
                for b in batches:
                    for impl in impls:
                        _measure(impl, mode, length, b, p)
    if measure_matmul:
        peaks.append(matmul())
    if "ours_bf16" in impls:
        spec = {"impl": "accuracy", "length": accuracy_length, "config": config, "global_tokens": global_tokens}
        acc = _run_subprocess([sys.executable, "-m", "tf_longformer.apps.bench", "--worker", json.dumps(spec)], env,
                              timeout_s, memory_cap_bytes)
        report["bf16_accuracy"] = acc
        if acc.get("ok"):
            log(f"bf16 accuracy at {accuracy_length}: logits relative error {acc['logits_relative_error']:.2e}, "
                f"top-1 agreement {acc['top1_agreement']:.4f}, gradient cosine {acc['gradient_cosine']:.5f}")
    report["matmul"] = peaks
    good = [p for p in peaks if p.get("ok")]
    report["matmul_peak_gflops"] = max((p["float32_gflops"] for p in good), default=None)
    report["matmul_peak_bf16_gflops"] = max((p["bfloat16_gflops"] for p in good), default=None)
    report["results"] = summarize(raw, config, global_tokens, batches[0], report["matmul_peak_gflops"],
                                  report["matmul_peak_bf16_gflops"], mlm_fraction=float(mlm_fraction))
    report["raw"] = raw
    report["targets"] = evaluate_targets(report["results"], targets)
    report["load_average_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - started
    if out_dir:
        write_outputs(report, out_dir, log=log)
    return report


def summarize(raw, config, global_tokens, batch, peak_fp32, peak_bf16, mlm_fraction=1.0):
    """One row per (impl, mode, length, batch): all passes' times pooled, medians, tokens/s (`batch * length /
    median`), GFLOP/s, % of peak. `batch`: the batch size of raw results that do not carry their own."""
    rows = {}
    for r in raw:
        key = (r["impl"], r["mode"], r["length"], int(r.get("batch", batch)))
        row = rows.setdefault(key, {"times": [], "peak_rss": [], "after_build_rss": [], "first_call": [],
                                    "errors": []})
        if r.get("ok"):
            row["times"] += r["times"]
            row["peak_rss"].append(r["peak_rss_bytes"])
            row["after_build_rss"].append(r.get("rss_after_build_bytes", 0))
            row["first_call"].append(r.get("first_call_s"))
        else:
            row["errors"].append(r.get("error"))
    out = []
    order = sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], ALL_IMPLS.index(kv[0][0])))
    for (impl, mode, length, batch), row in order:
        med = _median(row["times"])
        rec = {"impl": impl, "mode": mode, "length": length, "batch": batch, "ok": med is not None,
               "times": row["times"], "median_s": med, "errors": row["errors"]}
        if med is not None:
            dense = impl in ("dense", "hf_roberta")
            g = 0 if impl == "reference_noglobal" else global_tokens
            flops = ideal_flops(config, length, mode, g, dense=dense, batch=batch, mlm_fraction=mlm_fraction)
            peak = peak_bf16 if impl == "ours_bf16" else peak_fp32
            rec.update(
                tokens_per_s=tokens_per_s(batch, length, med),
                peak_rss_bytes=_median(row["peak_rss"]),
                rss_after_build_bytes=_median(row["after_build_rss"]),
                first_call_s=_median([x for x in row["first_call"] if x is not None]),
                ideal_gflop=flops / 1e9,
                achieved_gflops=flops / med / 1e9,
                fraction_of_matmul_peak=(flops / med / 1e9 / peak) if peak else None,
            )
        out.append(rec)
    return out


def tokens_per_s(batch, length, median_s):
    """Throughput of one call on `batch` rows of `length` tokens that took `median_s` seconds."""
    return batch * length / median_s


def _find(results, impl, mode, length, batch=None):
    """The row of (impl, mode, length) at `batch` rows; `batch` None: the smallest batch size measured for it
    (the only one in a one-size run; a row from before batch lists counts as batch 1)."""
    found = [r for r in results if r["impl"] == impl and r["mode"] == mode and r["length"] == length
             and (batch is None or r.get("batch", 1) == batch)]
    return min(found, key=lambda r: r.get("batch", 1)) if found else None


def _quantity(row, name):
    """A quantity of a result row; `working_bytes`: the memory the measurement itself needed (peak RSS - RSS
    with the model built)."""
    if name == "working_bytes":
        return row["peak_rss_bytes"] - row["rss_after_build_bytes"]
    return row.get(name)


def _measured(results, where):
    """`(row, quantity)` of `where` = [impl, mode, length, quantity] or [impl, mode, length, quantity, batch]
    (without a batch: the row of the smallest batch measured) when that row is in `results` and ran."""
    row = _find(results, *where[:3], where[4] if len(where) > 4 else None)
    return (row, _quantity(row, where[3])) if row is not None and row["ok"] else (row, None)


def _ratio(results, t):
    """`of` / `over`, two quantities of two rows."""
    (_, a), (_, b) = _measured(results, t["of"]), _measured(results, t["over"])
    return a / b if a is not None and b is not None and b > 0 else None


def _value(results, t):
    """The quantity `of` itself."""
    return _measured(results, t["of"])[1]


def _per_token_growth(results, t):
    """(`of` / its length) / (`over` / its length), the denominator no less than `floor` when one is given."""
    (_, a), (_, b) = _measured(results, t["of"]), _measured(results, t["over"])
    if a is None or b is None:
        return None
    below = b / t["over"][2]
    below = max(t["floor"], below) if "floor" in t else below
    return (a / t["of"][2]) / below if below > 0 else None


def _slowest_ratio_from(results, t):
    """The smallest `of` / `over` over the lengths from `over`'s up where `over`'s implementation ran (a failed
    `of` there counts as infinitely slower)."""
    impl, mode, shortest, quantity = t["over"][:4]
    batch = t["over"][4] if len(t["over"]) > 4 else None
    ratios = []
    for r in results:
        if r["impl"] != impl or r["mode"] != mode or r["length"] < shortest or not r["ok"]:
            continue
        if r is not _find(results, impl, mode, r["length"], batch):
            continue  # another batch size's row
        other = _find(results, t["of"][0], t["of"][1], r["length"], r.get("batch", 1))
        if other is not None:
            ratios.append(_quantity(other, t["of"][3]) / _quantity(r, quantity) if other["ok"] else math.inf)
    return min(ratios) if ratios else None


MEASURES = {"ratio": _ratio, "value": _value, "per_token_growth": _per_token_growth,
            "slowest_ratio_from": _slowest_ratio_from}


def load_targets(source=None) -> list[dict]:
    """The targets a run is judged by: `source` is a JSON file shaped as the package's `bench_targets.json`
    (the default), its parsed content, or a list of targets. Groups with `modes` are expanded, one target per
    mode (`{mode}` in its strings replaced)."""
    if source is None or isinstance(source, (str, os.PathLike)):
        path = TARGETS_FILE if source is None else source
        try:
            with open(path, encoding="utf-8") as f:
                source = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read the targets file {path}: {e}") from None
    entries = source["targets"] if isinstance(source, dict) else source
    targets = []
    for entry in entries:
        if "modes" in entry:
            group = json.dumps(entry["targets"])
            for mode in entry["modes"]:
                targets += json.loads(group.replace("{mode}", mode))
        else:
            targets.append(entry)
    for t in targets:
        if t.get("measure") not in MEASURES or t.get("better") not in ("higher", "lower"):
            raise ValueError(f"target {t.get('target')!r}: `measure` must be one of {sorted(MEASURES)} and "
                             f"`better` 'higher' or 'lower'.")
    return targets


def evaluate_targets(results, targets=None):
    """The targets (`load_targets(targets)`: by default the issue's, from `bench_targets.json`), each `met`
    True/False, or None when the run lacks what it needs (with why)."""
    out = []
    for t in load_targets(targets):
        value, threshold = MEASURES[t["measure"]](results, t), t["threshold"]
        if value is None:
            out.append({"target": t["target"], "met": None, "value": None, "threshold": threshold,
                        "detail": f"not measured in this run ({t['needs']})"})
            continue
        met = value >= threshold if t["better"] == "higher" else value <= threshold
        out.append({"target": t["target"], "met": bool(met), "value": value, "threshold": threshold,
                    "detail": t["detail"]})
    return out


# --------------------------------------------------------------------------------------------------- output
def format_table(report) -> str:
    """A Markdown table of the results, with the ratios the targets use."""
    res = report["results"]
    lines = ["| mode | length | batch | implementation | median s | tokens/s | peak RSS GiB | GFLOP/s (ideal) | % matmul peak | vs dense | vs reference |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res:
        if not r["ok"]:
            err = (r["errors"][0] if r["errors"] else "no result") or "failed"
            lines.append(f"| {r['mode']} | {r['length']} | {r.get('batch', 1)} | {r['impl']} | "
                         f"failed: {err[:120].replace('|', '/')} | | | | | | |")
            continue
        d = _find(res, "dense", r["mode"], r["length"], r.get("batch", 1))
        ref_impl = "reference_noglobal" if r["mode"] == "train" else "reference"
        ref = _find(res, ref_impl, r["mode"], r["length"], r.get("batch", 1))
        vs_d = f"{d['median_s'] / r['median_s']:.2f}x" if d and d["ok"] and r["impl"] != "dense" else ""
        vs_r = f"{ref['median_s'] / r['median_s']:.2f}x" if ref and ref["ok"] and not r["impl"].startswith("reference") else ""
        frac = r.get("fraction_of_matmul_peak")
        lines.append(
            f"| {r['mode']} | {r['length']} | {r.get('batch', 1)} | {r['impl']} | {r['median_s']:.3f} | "
            f"{r['tokens_per_s']:.0f} | "
            f"{r['peak_rss_bytes'] / 2**30:.2f} | {r['achieved_gflops']:.0f} | "
            f"{'' if frac is None else f'{100 * frac:.0f}%'} | {vs_d} | {vs_r} |")
    return "\n".join(lines)


def format_targets(report) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        if t["met"] is None:
            lines.append(f"| {t['target']} | {t['detail']} | n/a |")
        else:
            v = t["value"]
            shown = "inf" if v == math.inf else f"{v:.2f}"
            lines.append(f"| {t['target']} | {shown} ({t['detail']}) | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines)


def format_report(report) -> str:
    m = report["machine"]
    amx = ", ".join(m.get("amx") or []) or "none"
    head = [
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus')} CPUs, {m.get('memory_bytes', 0) / 2**30:.0f} GiB; "
        f"AVX-512 {'yes' if m.get('avx512f') else 'no'}, AVX-512 BF16 {'yes' if m.get('avx512_bf16') else 'no'}, "
        f"AMX {amx}. Load average at start {report['load_average_start'][0]:.1f}, "
        f"at end {report['load_average_end'][0]:.1f}.",
    ]
    if report.get("matmul_peak_gflops"):
        head.append(f"Measured matmul peak ({report['matmul'][0].get('matmul_size')}^3): fp32 "
                    f"{report['matmul_peak_gflops']:.0f} GFLOP/s, bf16 {report['matmul_peak_bf16_gflops']:.0f} GFLOP/s.")
    acc = report.get("bf16_accuracy")
    if acc and acc.get("ok"):
        head.append(f"bf16 accuracy at {acc['length']} tokens (vs fp32, same weights): logits relative error "
                    f"{acc['logits_relative_error']:.2e}, top-1 agreement {100 * acc['top1_agreement']:.2f}%, "
                    f"MLM loss {acc['loss_float32']:.4f} -> {acc['loss_bfloat16']:.4f}, gradient cosine "
                    f"{acc['gradient_cosine']:.5f}.")
    head.append(f"Total run time {report['total_s'] / 60:.1f} min; per measurement, a fresh process, one untimed "
                f"first call (tracing), {report['warmup']} more untimed call(s), then the median of "
                f"{report['repeats']} timed calls; {report['passes']} pass(es), "
                f"batch {', '.join(str(b) for b in report.get('batches', [report['batch']]))}, "
                f"{report['global_tokens']} global token(s).")
    return "\n\n".join([" ".join(head), format_table(report), format_targets(report)] + format_op_profiles(report))


def format_op_profiles(report) -> list[str]:
    """The op profiles of a run (`op_profile=True`), one block per measurement, in fixed-width text."""
    from tf_longformer.apps.op_profile import format_op_profile

    blocks = []
    for r in report.get("raw", []):
        if r.get("ok") and r.get("op_profile"):
            title = (f"Where the time goes: {r['impl']}, {r['mode']}, {r['length']} tokens, "
                     f"batch {r.get('batch', report['batch'])} "
                     f"(pass {r.get('pass_index', 0) + 1})")
            blocks.append("```\n" + format_op_profile(r["op_profile"], title) + "\n```")
    return blocks


def plot(report, path) -> bool:
    """Time and peak memory against length, per mode and implementation (log-log). False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    modes = report["modes"]
    fig, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 8), squeeze=False)
    batches = report.get("batches", [report["batch"]])
    for col, mode in enumerate(modes):
        for impl in report["impls"]:
            for b in batches:
                mine = [r for r in report["results"] if r["impl"] == impl and r["mode"] == mode
                        and r.get("batch", batches[0]) == b]
                rows = [r for r in mine if r["ok"]]
                if not rows:
                    continue
                label = impl if len(batches) == 1 else f"{impl}, batch {b}"
                xs = [r["length"] for r in rows]
                axes[0][col].plot(xs, [r["median_s"] for r in rows], "o-", label=label)
                axes[1][col].plot(xs, [r["peak_rss_bytes"] / 2**30 for r in rows], "o-", label=label)
                for r in mine:
                    if not r["ok"]:
                        axes[0][col].axvline(r["length"], color="0.85", lw=0.8)
        for row, label in ((0, "median time (s)"), (1, "peak RSS (GiB)")):
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length (tokens)")
            ax.set_ylabel(label)
            ax.set_title(f"{mode}: {label.split(' (')[0]}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.suptitle(f"tf-longformer bench: {report['machine'].get('cpu', '')}, {report['machine'].get('cpus')} CPUs")
    fig.tight_layout()
    from tf_longformer.files import save_figure

    save_figure(fig, path)
    return True


def _atomic_write(path, text):
    from tf_longformer.files import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def write_outputs(report, out_dir, log=print):
    os.makedirs(out_dir, exist_ok=True)
    _atomic_write(os.path.join(out_dir, "bench.json"), json.dumps(report, indent=1, default=float))
    _atomic_write(os.path.join(out_dir, "bench.md"), format_report(report) + "\n")
    if plot(report, os.path.join(out_dir, "bench.png")):
        log(f"wrote {out_dir}/bench.json, bench.md, bench.png")
    else:
        log(f"wrote {out_dir}/bench.json, bench.md (no plot: `pip install matplotlib` for bench.png)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2]))
    from tf_longformer.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
