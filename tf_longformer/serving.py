"""Export for serving: a SavedModel that TensorFlow Serving loads with no Python, no Keras, no tf_longformer.

`model.export(path)` (Keras' own entry point, overridden by every Longformer model) writes a SavedModel whose
signatures take named int32 tensors of ANY batch size and sequence length (nothing is fixed at trace time) and
return named outputs:

| signature | inputs | outputs |
|---|---|---|
| `serving_default` (= `serve`) | `input_ids`, `attention_mask`, `global_attention_mask` | the head's outputs (below) |
| `auto_global` | `input_ids`, `attention_mask` | the same + probabilities, with the head's automatic global attention |
| `probabilities` (not for the bare model) | as `serving_default` | the head's outputs + probabilities |
| `attentions` | as `serving_default` | the head's outputs + `attentions_<i>`, `global_attentions_<i>` per layer |
| `hidden_states` | as `serving_default` | the head's outputs + `hidden_states` |
| `<any of the above>_int64` | the same names, int64 | the same (cast to int32 inside, after range checks) |

Head outputs: `last_hidden_state` + `pooler_output` (bare model), `logits` (masked LM, sequence / token
classification, multiple choice), `start_logits` + `end_logits` (question answering). Inputs are
`(batch, length)`, or `(batch, choices, length)` for multiple choice. Bad inputs (length above the model's limit,
ids outside the vocabulary, masks that are not 0/1 or not of the ids' shape) fail with a message naming the
input, the value seen and what is allowed; TF Serving passes it back to the client.

`dtype="bfloat16"` exports a model that computes in bfloat16 (Keras' `mixed_bfloat16` policy: float32 variables,
bfloat16 matmuls and activations, LayerNorm and the attention softmax in float32); every output is still float32,
with the same names and shapes as the float32 export's, so clients need no change.

Next to the graph, under `assets.extra/` (the SavedModel folder for files the graph does not load; TF Serving
reads only its `tf_serving_warmup_requests` there): the tokenizer files (`tokenizer.json`, `vocab.json`,
`merges.txt`, ...), the Hugging Face `config.json` (labels) and `tf_longformer_export.json` (task, signatures,
limits), so a client tokenises and decodes exactly as the model expects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tf_longformer import registry

INPUT_NAMES = ("input_ids", "attention_mask", "global_attention_mask")
SIGNATURES = ("serving_default", "auto_global", "probabilities", "attentions", "hidden_states")
DEFAULT_SIGNATURE = "serving_default"
METADATA_FILE = "tf_longformer_export.json"
EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
EXPORT_FORMAT_VERSION = 1
EXPORT_DTYPES = ("float32", "bfloat16")
# bfloat16 is Keras' mixed_bfloat16 policy, not bfloat16 variables: on an AMD EPYC (AVX-512 BF16) the policy
# was no slower (random hidden-512, 4-layer model, 2048 tokens, median forward: 0.55 s, bfloat16 variables 0.64 s,
# float32 0.88 s), and bfloat16 variables put 25 times more error in the main job's classifier's logits (2.0e-2
# against 8.5e-4 at 4096 tokens).
# `mixed_bfloat16`, Keras' name for it, is accepted as an alias.
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16"}


# ------------------------------------------------------------------------------------------------ helpers
def __getattr__(name):
    # The task tables, computed from the registered task classes (`tf_longformer.registry`) when first read.
    if name == "TASKS":
        return registry.task_names()
    if name == "TASK_CLASSES":
        return {task: cls.__name__ for task, cls in registry.task_classes().items()}
    if name == "HEAD_OUTPUTS":
        return {task: cls.output_names for task, cls in registry.task_classes().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def task_of(model) -> str:
    """The task name of a Longformer model (`TASKS`), from its class."""
    task = getattr(type(model), "task", None)
    if not task or registry.task_classes().get(task) is None or not isinstance(model, registry.task_class(task)):
        raise TypeError(f"Cannot export {type(model).__name__}: expected one of "
                        f"{sorted(cls.__name__ for cls in registry.task_classes().values())}.")
    return task


def model_class(task: str):
    return registry.task_class(task)


def task_from_architectures(architectures) -> str | None:
    """The task of a Hugging Face `config.architectures` entry (`LongformerForQuestionAnswering`, ...)."""
    return registry.task_for_architecture(architectures)


def probability_kind(model, task: str | None = None) -> str | None:
    """How the `probabilities` signature turns logits into probabilities (None: no such signature)."""
    return model.probability_kind()


def _rank(task: str) -> int:
    return registry.task_class(task).input_rank


def _specs(task: str, dtype, with_global: bool):
    shape = [None] * _rank(task)
    names = INPUT_NAMES if with_global else INPUT_NAMES[:2]
    return [tf.TensorSpec(shape, dtype, name=n) for n in names]


def export_dtype(dtype) -> str | None:
    """The export dtype `dtype` names (`EXPORT_DTYPES`; None stays None: the model's own policy)."""
    if dtype is None:
        return None
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None)
    canonical = {"mixed_bfloat16": "bfloat16"}.get(name, name)
    if canonical not in EXPORT_DTYPES:
        raise ValueError(f"`dtype` must be one of {list(EXPORT_DTYPES)} (or 'mixed_bfloat16', the same as "
                         f"'bfloat16'), got {dtype!r}.")
    return canonical


def model_in_dtype(model, dtype):
    """`model` computing in `dtype` (`EXPORT_DTYPES`): itself when its policy already is that, else a copy under
    that policy holding the same weights (float32 variables either way)."""
    policy = _POLICIES[export_dtype(dtype)]
    if model.dtype_policy.name == policy:
        return model
    if not model.built:
        model.build()
    copy = type(model).from_config({**model.get_config(), "dtype": policy})
    copy.build()
    if len(copy.weights) != len(model.weights):
        raise RuntimeError(f"The {policy} copy of {type(model).__name__} has {len(copy.weights)} weights, the "
                           f"model {len(model.weights)}: cannot carry the weights over.")
    for target, source in zip(copy.weights, model.weights):
        if tuple(target.shape) != tuple(source.shape):
            raise RuntimeError(f"Weight {source.path} has shape {tuple(source.shape)} but its {policy} copy "
                               f"{tuple(target.shape)}.")
        target.assign(tf.cast(source, target.dtype))
    return copy


# --------------------------------------------------------------------------------------- input validation
def _validated(model, task, input_ids, attention_mask, global_attention_mask=None):
    """The inputs, gated on in-graph checks whose failures say what was wrong, the value seen, what is allowed."""
    c = model.config
    rank = _rank(task)
    limit = c.max_sequence_length
    where = "(batch, choices, length)" if rank == 3 else "(batch, length)"
    ids_shape = tf.shape(input_ids, out_type=tf.int64)
    checks = [
        tf.debugging.assert_less_equal(
            ids_shape[-1], tf.constant(limit, tf.int64),
            message=f"input_ids is longer than this model allows: the last axis of input_ids {where} must be at "
                    f"most {limit} (max_position_embeddings - pad_token_id - 1); split the text or truncate it. "
                    "Length seen:"),
        tf.debugging.assert_greater_equal(
            input_ids, tf.zeros([], input_ids.dtype),
            message=f"input_ids must be token ids in [0, {c.vocab_size}); found a negative id:"),
        tf.debugging.assert_less(
            input_ids, tf.constant(c.vocab_size, input_ids.dtype),
            message=f"input_ids must be token ids in [0, {c.vocab_size}) (the vocabulary size); found a larger id:"),
    ]
    for name, mask in (("attention_mask", attention_mask), ("global_attention_mask", global_attention_mask)):
        if mask is None:
            continue
        checks += [
            tf.debugging.assert_equal(
                tf.shape(mask, out_type=tf.int64), ids_shape,
                message=f"{name} must have the shape of input_ids {where}; shapes seen ({name}, input_ids):"),
            tf.debugging.assert_non_negative(mask, message=f"{name} must hold only 0 and 1; found a negative value:"),
            tf.debugging.assert_less_equal(mask, tf.ones([], mask.dtype),
                                           message=f"{name} must hold only 0 and 1; found a value above 1:"),
        ]
    with tf.control_dependencies(checks):
        out = [tf.cast(tf.identity(input_ids), tf.int32), tf.cast(tf.identity(attention_mask), tf.int32)]
        if global_attention_mask is not None:
            out.append(tf.cast(tf.identity(global_attention_mask), tf.int32))
    return out


# -------------------------------------------------------------------------------------- signature bodies
def _float32(x):
    # Mixed-precision models compute in float16 / bfloat16; clients get float32 whatever the policy.
    return tf.cast(x, tf.float32) if x.dtype.is_floating else x


def _head_outputs(task, out):
    return {k: _float32(out[k]) for k in registry.task_class(task).output_names}


def _per_row(task, input_ids, x):
    """Multiple choice runs `(batch*choices)` rows: give per-row extras back their `(batch, choices)` axes."""
    if _rank(task) == 2:
        return x
    return tf.reshape(x, tf.concat([tf.shape(input_ids)[:2], tf.shape(x)[1:]], 0))


def _core_functions(model, task):
    """The three traced graphs every signature is built from (each traced once, for int32 inputs)."""

    def with_global(input_ids, attention_mask, global_attention_mask):
        ids, mask, glob = _validated(model, task, input_ids, attention_mask, global_attention_mask)
        return _head_outputs(task, model(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                                         training=False))

    def auto_global(input_ids, attention_mask):
        ids, mask = _validated(model, task, input_ids, attention_mask)
        return _head_outputs(task, model(input_ids=ids, attention_mask=mask, training=False))

    def extras(input_ids, attention_mask, global_attention_mask):
        ids, mask, glob = _validated(model, task, input_ids, attention_mask, global_attention_mask)
        out = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True,
                    output_hidden_states=True, training=False)
        result = _head_outputs(task, out)
        # Per-layer windows may differ, so the band widths differ: one output per layer.
        for i, (a, g) in enumerate(zip(out["attentions"], out["global_attentions"])):
            result[f"attentions_{i}"] = _float32(_per_row(task, ids, a))
            result[f"global_attentions_{i}"] = _float32(_per_row(task, ids, g))
        stacked = _float32(tf.stack(out["hidden_states"], axis=1))  # (rows, layers + 1, length, hidden)
        result["hidden_states"] = _per_row(task, ids, stacked)
        return result

    fns = {
        "with_global": tf.function(with_global, input_signature=_specs(task, tf.int32, True), autograph=False),
        "auto_global": tf.function(auto_global, input_signature=_specs(task, tf.int32, False), autograph=False),
        "extras": tf.function(extras, input_signature=_specs(task, tf.int32, True), autograph=False),
    }
    return fns


def _probabilities(model, task, kind, top_k, out, attention_mask):
    return model.serving_probabilities(out, attention_mask, top_k)


def _signature_bodies(model, task, core, kind, top_k):
    """`{signature name: (python function, takes_global)}` for the int32 signatures."""

    def serve(input_ids, attention_mask, global_attention_mask):
        return core["with_global"](input_ids, attention_mask, global_attention_mask)

    def auto_global(input_ids, attention_mask):
        # The "just send ids" signature: the head's own global-attention rule, and probabilities where they exist.
        out = core["auto_global"](input_ids, attention_mask)
        return out if kind is None else _probabilities(model, task, kind, top_k, out, attention_mask)

    def probabilities(input_ids, attention_mask, global_attention_mask):
        out = core["with_global"](input_ids, attention_mask, global_attention_mask)
        return _probabilities(model, task, kind, top_k, out, attention_mask)

    def attentions(input_ids, attention_mask, global_attention_mask):
        out = core["extras"](input_ids, attention_mask, global_attention_mask)
        return {k: v for k, v in out.items() if k != "hidden_states"}

    def hidden_states(input_ids, attention_mask, global_attention_mask):
        out = core["extras"](input_ids, attention_mask, global_attention_mask)
        return {k: v for k, v in out.items() if not k.startswith(("attentions_", "global_attentions_"))}

    return {"serving_default": (serve, True), "auto_global": (auto_global, False),
            "probabilities": (probabilities, True), "attentions": (attentions, True),
            "hidden_states": (hidden_states, True)}


def _int64_twin(model, task, body, takes_global):
    """The same signature for clients that send int64 (e.g. numpy's default): checked in int64, then cast."""
    if takes_global:
        def twin(input_ids, attention_mask, global_attention_mask):
            return body(*_validated(model, task, input_ids, attention_mask, global_attention_mask))
    else:
        def twin(input_ids, attention_mask):
            return body(*_validated(model, task, input_ids, attention_mask))
    return twin


def _check_signature_names(names, task, kind):
    names = list(SIGNATURES if names is None else names)
    unknown = [n for n in names if n not in SIGNATURES]
    if unknown:
        raise ValueError(f"Unknown signature(s) {unknown}; choose among {list(SIGNATURES)}.")
    if "serving_default" not in names:
        names.insert(0, "serving_default")
    if kind is None and "probabilities" in names:
        names.remove("probabilities")  # the bare model and regression have no probabilities
    return [n for n in SIGNATURES if n in names]


# ------------------------------------------------------------------------------------------------ writing
def _replace_dir(tmp: str, target: str, overwrite: bool) -> None:
    """Moves the finished `tmp` folder to `target` with renames, so no reader ever sees half an export."""
    if os.path.lexists(target):
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{target} already exists; choose another path or pass overwrite=True.")
        if not os.path.isdir(target):
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{target} exists and is not a directory; refusing to replace it.")
        old = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".old-export-")
        os.replace(target, os.path.join(old, "x"))
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _load_tokenizer(tokenizer):
    if tokenizer is None:
        return None
    from tf_longformer.tokenizer import LongformerTokenizerFast

    if isinstance(tokenizer, (str, os.PathLike)):
        return LongformerTokenizerFast.from_pretrained(tokenizer)
    if not hasattr(tokenizer, "save_pretrained"):
        raise TypeError(f"`tokenizer` must be a LongformerTokenizerFast or a directory, got {type(tokenizer).__name__}.")
    return tokenizer


def _write_extras(model, task, directory, signature_info, tokenizer, kind, top_k):
    from tf_longformer.version import __version__

    extra = os.path.join(directory, EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    model.hf_config().save_pretrained(extra)
    if tokenizer is not None:
        tokenizer.save_pretrained(extra)
    c = model.config
    meta = {
        "format_version": EXPORT_FORMAT_VERSION,
        "tf_longformer_version": __version__,
        "task": task,
        "model_class": type(model).__name__,
        "default_signature": DEFAULT_SIGNATURE,
        "signatures": signature_info,
        "input_rank": _rank(task),
        "max_sequence_length": c.max_sequence_length,
        "vocab_size": c.vocab_size,
        "pad_token_id": c.pad_token_id,
        "sep_token_id": c.sep_token_id,
        "probabilities": kind,
        "top_k": min(int(top_k), c.vocab_size) if type(model).serving_top_k else None,
        "id2label": {str(k): v for k, v in c.id2label.items()} if type(model).id2label_outputs else None,
        "tokenizer": tokenizer is not None,
        # What the graph computes in (outputs are float32 whatever it is) and the Keras policy behind it.
        "dtype": keras.backend.standardize_dtype(model.compute_dtype),
        "dtype_policy": model.dtype_policy.name,
    }
    with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def export_saved_model(model, filepath, *, tokenizer=None, signatures=None, int64=True, top_k=10,
                       warmup=False, overwrite=True, verbose=None, dtype=None):
    """Writes `model` to `filepath` as a SavedModel for TF Serving (see the module docstring).

    Args:
        tokenizer: a `LongformerTokenizerFast` or a tokenizer directory, written under `assets.extra/`.
        signatures: the signature names to write (`SIGNATURES`; `serving_default` is always written).
        int64: also write an `<name>_int64` twin of every signature, for clients that send int64 tensors.
        top_k: how many token candidates the masked LM's `probabilities` signature returns per position.
        warmup: write `assets.extra/tf_serving_warmup_requests` (needs `tensorflow-serving-api`) so the
            server runs every signature once at load time, not on the first user's request.
        overwrite: replace an existing `filepath` (atomically); otherwise raise `FileExistsError`.
        dtype: what the graph computes in: `"float32"` or `"bfloat16"` (Keras' `mixed_bfloat16` policy; the
            name `"mixed_bfloat16"` is accepted too), on a copy of `model` with its weights; None (default): the
            model's own policy. The outputs are float32 either way; the metadata records the dtype.
    Returns:
        the export directory.
    """
    task = task_of(model)
    dtype = export_dtype(dtype)
    kind = probability_kind(model, task)
    names = _check_signature_names(signatures, task, kind)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
    if warmup:
        _serving_protos()  # fail before the work, not after it
    tokenizer = _load_tokenizer(tokenizer)
    if tokenizer is not None and len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary has "
                         f"{model.config.vocab_size}: they do not belong together.")
    if not model.built:
        model.build()
    filepath = os.path.abspath(os.fspath(filepath))
    parent = os.path.dirname(filepath)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(filepath) and not overwrite:
        raise FileExistsError(f"{filepath} already exists; choose another path or pass overwrite=True.")
    if dtype is not None:
        model = model_in_dtype(model, dtype)

    core = _core_functions(model, task)
    bodies = _signature_bodies(model, task, core, kind, top_k)
    # Every signature is traced here, once, and saved as a concrete function. (Saving `tf.function`s would let the
    # SavedModel writer trace them all again inside its save context, whose cache key differs.)
    root = tf.Module(name="longformer_export")
    signature_fns, info = {}, {}
    order = [(n, n, tf.int32) for n in names]
    if int64:
        order += [(f"{n}_int64", n, tf.int64) for n in names]
    for key, base, dtype in order:
        body, takes_global = bodies[base]
        fn = body if dtype == tf.int32 else _int64_twin(model, task, body, takes_global)
        concrete = tf.function(fn, input_signature=_specs(task, dtype, takes_global),
                               autograph=False).get_concrete_function()
        signature_fns[key] = concrete
        info[key] = {"inputs": [n for n in INPUT_NAMES if takes_global or n != "global_attention_mask"],
                     "dtype": dtype.name, "outputs": sorted(concrete.structured_outputs)}
    # Keras' exports call their endpoint `serve`: `tf.saved_model.load(path).serve(...)` works here too.
    signature_fns["serve"] = signature_fns["serving_default"]
    info["serve"] = info["serving_default"]
    for key, concrete in signature_fns.items():
        setattr(root, key, concrete)
    seen = {}
    for concrete in signature_fns.values():
        for v in concrete.variables:
            seen.setdefault(id(v), v)
    root.model_variables = list(seen.values())

    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    try:
        # No gradient functions: a serving export is for inference, and tracing the band's custom gradient for
        # the SavedModel took about a fifth of an export's time (tiny config, every signature: 4.8 s of 22 s).
        tf.saved_model.save(root, tmp, signatures=signature_fns,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        if verbose:
            print(f"Saved a SavedModel for {task} at {filepath}; signatures: {sorted(signature_fns)}")
        _write_extras(model, task, tmp, info, tokenizer, kind, top_k)
        if warmup:
            write_warmup_requests(tmp, task, names, model.config)
        _replace_dir(tmp, filepath, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return filepath


# ------------------------------------------------------------------------------------------ TF Serving
def next_version(base: str) -> int:
    """The next TF Serving version number under `base`: one more than the largest numeric folder, or 1."""
    if not os.path.isdir(base):
        return 1
    versions = [int(n) for n in os.listdir(base) if re.fullmatch(r"\d+", n) and os.path.isdir(os.path.join(base, n))]
    return max(versions, default=0) + 1


def export_for_serving(model, base, version=None, *, overwrite=False, **kwargs) -> str:
    """Writes `<base>/<version>/` (the layout TF Serving watches); `version` defaults to the next free one."""
    if version is None:
        version = next_version(base)
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
        raise ValueError(f"`version` must be a non-negative integer (TF Serving's version folders), got {version!r}.")
    target = os.path.join(os.fspath(base), str(int(version)))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists at {target}; TF Serving may be serving it. Omit the version to "
            "write the next one, or pass overwrite (--overwrite) to replace it.")
    return export_saved_model(model, target, overwrite=overwrite, **kwargs)


def warmup_examples(task, config, lengths=(8, 64, 512)):
    """Small valid int32 inputs (`<s> x x ... </s>`, token 0 global) at a few lengths, for warm-up requests."""
    limit = config.max_sequence_length
    lengths = sorted({max(2, min(limit, int(n))) for n in lengths})
    examples = []
    for n in lengths:
        ids = np.full((1, n), 5 % config.vocab_size, np.int32)
        ids[0, 0] = config.bos_token_id if config.bos_token_id is not None else 0
        ids[0, -1] = config.sep_token_id
        mask = np.ones_like(ids)
        glob = np.zeros_like(ids)
        glob[0, 0] = 1
        if _rank(task) == 3:
            ids, mask, glob = (np.stack([x, x], 1) for x in (ids, mask, glob))
        examples.append({"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob})
    return examples


def _serving_protos():
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        raise ImportError("Warm-up requests need the TF Serving protos: pip install 'tf-longformer[serving]' "
                          "(or: pip install --no-deps tensorflow-serving-api).") from None
    return model_pb2, predict_pb2, prediction_log_pb2


def write_warmup_requests(directory, task, names, config, model_name="longformer"):
    """`assets.extra/tf_serving_warmup_requests`: one PredictRequest per signature and warm-up length."""
    model_pb2, predict_pb2, prediction_log_pb2 = _serving_protos()
    path = os.path.join(directory, EXTRA_DIR, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for name in names:
            for example in warmup_examples(task, config):
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
                for key, value in example.items():
                    if name == "auto_global" and key == "global_attention_mask":
                        continue
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
    return path


# --------------------------------------------------------------------------------------------- dispatch
def export(model, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
    """`model.export(...)`: our serving SavedModel for `tf_saved_model`; Keras' own export otherwise. (`onnx` is
    dispatched by the model's `export` to `tf_longformer.onnx_export`, which builds on this module.)"""
    if format == "tf_saved_model" and input_signature is None:
        return export_saved_model(model, filepath, verbose=verbose, **kwargs)
    if "dtype" in kwargs:
        raise ValueError(f"`dtype` applies to our serving SavedModel (format='tf_saved_model' without an "
                         f"`input_signature`) and to format='onnx'; got format={format!r} with an input_signature "
                         f"{'given' if input_signature is not None else 'absent'}.")
    return keras.Model.export(model, filepath, format=format, verbose=verbose, input_signature=input_signature,
                              **kwargs)
