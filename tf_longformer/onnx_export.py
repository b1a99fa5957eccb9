"""ONNX export: `model.export(path, format="onnx")`, checked to run in ONNX Runtime without TensorFlow.

Two files per export, the two main SavedModel signatures (`tf_longformer.serving`), traced by the same functions:

| file | inputs (int32) | outputs (float32) |
|---|---|---|
| `<name>.onnx` (`serving_default`) | `input_ids`, `attention_mask`, `global_attention_mask` | the head's outputs |
| `<name>.auto_global.onnx` (`auto_global`) | `input_ids`, `attention_mask` | the same, the head's automatic global rule in the graph |

and `<name>.json` beside them (task, files, inputs, outputs, limits, labels, opset and converter versions; the
same facts are in each model's `metadata_props`). Every axis is dynamic: `batch`, `length` (and `choices` for
multiple choice). Two files, not one graph with an optional input: an ONNX graph input cannot be absent (an
input backed by an initializer is only a default value, and runtimes such as TensorRT freeze it as a constant),
so "no global_attention_mask" would need a sentinel value; two graphs say it with the inputs themselves.

The exported variant (the numbers are the Keras model's; the suite's test_onnx.py checks them in ONNX Runtime):
- the band: the blocked band (`blocked_band_attention`), whose chunk loop (`tf.map_fn`) becomes an ONNX `Loop`;
  the length is unknown at trace time, so this is the path every length takes, as in the SavedModel.
- the global tokens: ONE path with the batch's own global count (`attention.SINGLE_GLOBAL_PATH`, set while
  tracing), not the SavedModel's `tf.cond` chain over the buckets: tf2onnx 1.17 loses the tensor shapes inside
  the converted `If` branches and cannot convert their slices (measured), and the chain's selector, an int32
  `AddN`, becomes a `Sum` that ONNX Runtime refuses for int32. The global projections are not folded there
  (folding changes the numbers only by rounding).
- tf2onnx converts TensorFlow's integer `FloorMod` / `FloorDiv` into a truncating `Div`, wrong for negative
  operands (the padding to a window multiple is `(-length) % window`): `_floor_mod` / `_floor_div` below convert
  them with ONNX's `Mod` (floor semantics for integers).

Bad input: ONNX has no assertion op (tf2onnx drops TensorFlow's), and without a check the graph would run on
out-of-range ids or over-long inputs and return wrong numbers (measured). So the graph carries trip-wires
(`_checked`): for each check, a `Gather` from a one-element tensor whose index is 0 when the input is right and
out of range otherwise. ONNX Runtime then refuses the run with the node's name, which says what was wrong and
what is allowed, and the index, which is the value seen where there is one, e.g. `Name:'input_ids_longer_than_128'
... idx=140 must be within the inclusive range [-1,0]`. The outputs add the wires' value (0) so they always run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from tf_longformer import registry

OPSET = 17
MIN_OPSET = 13  # Softmax over one axis (opset 13) and the integer `Mod` the floor operations need (opset 10)
FORMAT_VERSION = 1
AUTO_SUFFIX = ".auto_global"
VARIANT = "blocked band (ONNX Loop), single global path (no tf.cond)"
INSTALL_HINT = "pip install 'tf-longformer[onnx]' (tf2onnx, onnx, onnxruntime)"


def _requirements():
    try:
        import onnx
        import tf2onnx
    except ImportError as e:
        raise ImportError(f"ONNX export needs tf2onnx and onnx ({e}); {INSTALL_HINT}.") from None
    return onnx, tf2onnx


def max_opset() -> int:
    _, tf2onnx = _requirements()
    return max(tf2onnx.constants.OPSET_TO_IR_VERSION)


def paths_for(filepath) -> dict:
    """`{"with_global": ..., "auto_global": ..., "metadata": ...}` for an export at `filepath` (`*.onnx`)."""
    filepath = os.path.abspath(os.fspath(filepath))
    if not filepath.endswith(".onnx") or os.path.basename(filepath) == ".onnx":
        raise ValueError(f"An ONNX export goes to a file named *.onnx, got {filepath!r}.")
    stem = filepath[:-len(".onnx")]
    return {"with_global": filepath, "auto_global": stem + AUTO_SUFFIX + ".onnx", "metadata": stem + ".json"}


@contextlib.contextmanager
def single_global_path():
    """While tracing for ONNX: the attention's global tokens on one path, with no `tf.cond` (module docstring)."""
    from tf_longformer.layers import attention, utils

    before = attention.SINGLE_GLOBAL_PATH, utils.ONNX_TRACE
    attention.SINGLE_GLOBAL_PATH = utils.ONNX_TRACE = True  # and the LayerNorms as plain ops
    try:
        yield
    finally:
        attention.SINGLE_GLOBAL_PATH, utils.ONNX_TRACE = before


# ------------------------------------------------------------------------------- converter corrections
def _is_float(ctx, name):
    from onnx import TensorProto

    return ctx.get_dtype(name) in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _replace(ctx, node, op_type, inputs, attr=None):
    """Replaces `node` by one `op_type` node with its name, outputs, shapes and types."""
    shapes, dtypes, outputs, name = node.output_shapes, node.output_dtypes, node.output, node.name
    ctx.remove_node(name)
    ctx.make_node(op_type, inputs, attr=attr or {}, name=name, outputs=outputs, shapes=shapes, dtypes=dtypes)


def _floor_mod(ctx, node, name, args):
    """TensorFlow `FloorMod` (the result has the divisor's sign)."""
    x, y = node.input
    if _is_float(ctx, x):
        q = ctx.make_node("Floor", [ctx.make_node("Div", [x, y]).output[0]])
        _replace(ctx, node, "Sub", [x, ctx.make_node("Mul", [q.output[0], y]).output[0]])
    else:
        _replace(ctx, node, "Mod", [x, y], {"fmod": 0})  # integer Mod: floor semantics


def _floor_div(ctx, node, name, args):
    """TensorFlow `FloorDiv` (rounds toward minus infinity): `(x - x mod y) / y` is exact for integers."""
    x, y = node.input
    if _is_float(ctx, x):
        _replace(ctx, node, "Floor", [ctx.make_node("Div", [x, y]).output[0]])
    else:
        r = ctx.make_node("Mod", [x, y], attr={"fmod": 0})
        _replace(ctx, node, "Div", [ctx.make_node("Sub", [x, r.output[0]]).output[0], y])


CUSTOM_HANDLERS = {"FloorMod": (_floor_mod, []), "FloorDiv": (_floor_div, [])}


# ---------------------------------------------------------------------------------------------- checks
def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def check_standard_ops(proto, opset):
    """Raises unless every node (subgraphs included) is a standard ONNX op of `opset`: tf2onnx leaves an op it
    cannot convert in the graph under its TensorFlow name and only logs it."""
    import onnx

    bad = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in _nodes(proto.graph)
                  if n.domain not in ("", "ai.onnx") or not onnx.defs.has(n.op_type, max_inclusive_version=opset)})
    if bad:
        raise RuntimeError(f"tf2onnx left ops that are not standard ONNX (opset {opset}) in the graph: {bad}. "
                           "The export is incomplete; nothing was written.")
    onnx.checker.check_model(proto, full_check=True)


def _name_axes(proto, rank):
    """Names the dynamic axes of the inputs and outputs (`batch`, `choices`, `length`) instead of `unk__N`."""
    names = ["batch", "choices", "length"] if rank == 3 else ["batch", "length"]
    inputs = {i.name: i for i in proto.graph.input}
    symbols = {}
    for value in inputs.values():
        for dim, name in zip(value.type.tensor_type.shape.dim, names):
            if dim.dim_param:
                symbols[dim.dim_param] = name
            dim.ClearField("dim_value")
            dim.dim_param = name
    for value in proto.graph.output:  # every output is batch-first; other axes keep the converter's names
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


# ---------------------------------------------------------------------------------------------- export
def _versions(opset):
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    from tf_longformer.version import __version__

    return {"opset": opset, "ir_version": None, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__, "tf_longformer": __version__}


def _checked(fn, model, task, takes_global):
    """`fn` behind trip-wires for the SavedModel's input checks (module docstring): same inputs, same outputs."""
    import tensorflow as tf

    from tf_longformer import serving

    c = model.config
    big = 2**30  # the index of a check with no value to show (made inside the graph: a captured tensor is an input)

    def wire(ok, index, name):
        index = tf.where(ok, tf.constant(0, tf.int32), tf.cast(index, tf.int32))
        return tf.gather(tf.zeros([1], tf.float32), tf.reshape(index, [1]), name=name)

    def body(input_ids, attention_mask, global_attention_mask=None):
        length = tf.shape(input_ids)[-1]
        top, low = tf.reduce_max(input_ids), tf.reduce_min(input_ids)
        empty = tf.equal(tf.size(input_ids), 0)
        wires = [
            wire(length <= c.max_sequence_length, length, f"input_ids_longer_than_{c.max_sequence_length}"),
            wire(empty | (top < c.vocab_size), top, f"input_ids_above_the_vocabulary_max_{c.vocab_size - 1}"),
            wire(empty | (low >= 0), big, "input_ids_negative"),
        ]
        masks = [("attention_mask", attention_mask)]
        if takes_global:
            masks.append(("global_attention_mask", global_attention_mask))
        for name, mask in masks:
            same = tf.reduce_all(tf.equal(tf.shape(mask), tf.shape(input_ids)))
            binary = tf.reduce_all(tf.equal(mask, 0) | tf.equal(mask, 1))
            wires += [wire(same, big, f"{name}_not_the_shape_of_input_ids"), wire(binary, big, f"{name}_not_0_or_1")]
        guard = tf.reshape(tf.add_n(wires), [])
        out = fn(*([input_ids, attention_mask] + ([global_attention_mask] if takes_global else [])))
        return {k: v + guard for k, v in out.items()}

    if takes_global:
        traced = body
    else:
        def traced(input_ids, attention_mask):
            return body(input_ids, attention_mask)
    return tf.function(traced, input_signature=serving._specs(task, tf.int32, takes_global), autograph=False)


def _convert(fn, specs, opset):
    _, tf2onnx = _requirements()
    with single_global_path():
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset,
                                                 custom_op_handlers=CUSTOM_HANDLERS)
    return proto


def export_onnx(model, filepath, *, opset=OPSET, auto_global=True, overwrite=True, verbose=None, dtype=None):
    """Writes `model` as two ONNX files and a JSON beside them (see the module docstring).

    Args:
        filepath: the `*.onnx` path of the model with `global_attention_mask`; the automatic-global model goes to
            `<name>.auto_global.onnx`, the metadata to `<name>.json`.
        opset: the ONNX opset (`MIN_OPSET` to what the installed tf2onnx supports).
        auto_global: also write `<name>.auto_global.onnx` (`False`: only the model with `global_attention_mask`,
            half the conversion time; the benchmark's choice).
        overwrite: replace existing files; otherwise `FileExistsError` before any work.
        dtype: None or `"float32"`; bfloat16 is refused (ONNX Runtime's CPU provider cannot run it).
    Returns:
        `{"with_global": path, "auto_global": path, "metadata": path}` (no `auto_global` when not written).
    """
    import tensorflow as tf

    from tf_longformer import serving

    task = serving.task_of(model)
    if serving.export_dtype(dtype) not in (None, "float32"):
        raise ValueError(f"The ONNX export is float32 only, got dtype={dtype!r}: ONNX Runtime's CPU execution "
                         "provider has no bfloat16 arithmetic kernels (no bfloat16 MatMul), so a bfloat16 graph "
                         "would not load there. Export bfloat16 as a SavedModel (format='tf_saved_model').")
    paths = paths_for(filepath)
    if not isinstance(auto_global, bool):
        raise ValueError(f"`auto_global` must be True or False, got {auto_global!r}.")
    if not auto_global:
        del paths["auto_global"]
    onnx, _ = _requirements()
    top = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"`opset` must be an integer from {MIN_OPSET} to {top} (what the installed tf2onnx "
                         f"converts to), got {opset!r}.")
    existing = [p for p in paths.values() if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist(s); choose another path or pass overwrite=True.")
    if not model.built:
        model.build()
    cls = registry.task_class(task)
    rank, outputs = cls.input_rank, list(cls.output_names)
    versions = _versions(opset)
    c = model.config
    meta = {
        "format_version": FORMAT_VERSION,
        "task": task,
        "model_class": type(model).__name__,
        "variant": VARIANT,
        "files": {k: os.path.basename(v) for k, v in paths.items() if k != "metadata"},
        "inputs": {k: list(serving.INPUT_NAMES[:3 if k == "with_global" else 2]) for k in paths if k != "metadata"},
        "input_dtype": "int32",
        "input_axes": ["batch", "choices", "length"] if rank == 3 else ["batch", "length"],
        "outputs": outputs,
        "max_sequence_length": c.max_sequence_length,
        "vocab_size": c.vocab_size,
        "pad_token_id": c.pad_token_id,
        "sep_token_id": c.sep_token_id,
        "id2label": {str(k): v for k, v in c.id2label.items()} if cls.id2label_outputs else None,
        **versions,
    }
    core = serving._core_functions(model, task)
    parent = os.path.dirname(paths["with_global"])
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-onnx-")
    try:
        for key, takes_global in (("with_global", True), ("auto_global", False))[:len(meta["inputs"])]:
            proto = _convert(_checked(core[key], model, task, takes_global),
                             serving._specs(task, tf.int32, takes_global), opset)
            check_standard_ops(proto, opset)
            got_in = [i.name for i in proto.graph.input]
            got_out = sorted(o.name for o in proto.graph.output)
            want_in = meta["inputs"][key]
            if got_in != want_in or got_out != sorted(outputs):
                raise RuntimeError(f"The converted graph has inputs {got_in} and outputs {got_out}; expected "
                                   f"{want_in} and {sorted(outputs)}. Nothing was written.")
            _name_axes(proto, rank)
            used = {n.domain or "" for n in _nodes(proto.graph)} | {""}
            kept = [o for o in proto.opset_import if (o.domain or "") in used]  # tf2onnx also declares ai.onnx.ml
            del proto.opset_import[:]
            proto.opset_import.extend(kept)
            meta["ir_version"] = proto.ir_version
            props = {**{k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()},
                     "signature": "serving_default" if takes_global else "auto_global"}
            del proto.metadata_props[:]
            for k, v in props.items():
                proto.metadata_props.add(key=k, value=v)
            proto.producer_name = "tf-longformer (tf2onnx " + versions["tf2onnx"] + ")"
            onnx.save(proto, os.path.join(tmp, key + ".onnx"))
        with open(os.path.join(tmp, "metadata.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        for key in paths:
            os.replace(os.path.join(tmp, "metadata.json" if key == "metadata" else key + ".onnx"), paths[key])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        models = ", ".join(p for k, p in paths.items() if k != "metadata")
        print(f"Saved ONNX models for {task} (opset {opset}, tf2onnx {versions['tf2onnx']}): {models}; "
              f"metadata {paths['metadata']}")
    return paths
