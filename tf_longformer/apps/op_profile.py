"""Where a step's time goes, per op kind, op type and model component: `tf-longformer bench --op-profile`.

The step (already traced and warmed up) is run `calls` times under TensorFlow's profiler
(`tf.profiler.experimental`), and the host trace it writes (an XSpace protobuf, read with the protobuf classes
TensorFlow ships) is summed: every executed TensorFlow op is one event on one of the executor's threads, named
`<op name>:<op type>`. Wrappers (the executor's `Process` regions, thread-pool markers, the Python call) are not
ops and are left out, so each op's time is its own. Times are CPU time summed over the threads that ran ops, per
call; their sum beside the wall time says how busy the cores were.

Three views of the same events:
- kind: the matrix products (`MatMul`, `BatchMatMul`, oneDNN's `_Mkl*MatMul*`, `Einsum`: the work the FLOP count
  counts) against everything around them: element-wise arithmetic, casts, reductions and exponentials (softmax,
  LayerNorm), layout (transposes, reshapes that copy, pads, slices, gathers, concatenations), the chunk loop's own
  control ops (`while` frames, tensor lists) and the rest;
- op type: the 20 most expensive;
- component: read off the op names as `memory_profile` reads them (`layer <i>` / `attention`,
  `intermediate_dense`, `output_layer_norm`, ..., pooled over the layers).

Under XLA (`jit_compile=True`) the compiled cluster runs as a few opaque ops: the profile then says little more
than that.
"""

from __future__ import annotations

import re
from collections import defaultdict

from tf_longformer.apps.memory_profile import component_of, profiled

KINDS = ("matrix products", "element-wise", "casts", "reductions, exp, log (softmax, LayerNorm)",
         "layout (transpose, pad, slice, gather, concat, copy)", "loop control (while, tensor lists)",
         "random (dropout masks)", "other")
_ELEMENTWISE = {"AddV2", "Add", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum", "SelectV2",
                "Select", "Neg", "Square", "SquaredDifference", "Sqrt", "Rsqrt", "Tanh", "Erf", "Erfc", "Relu",
                "Gelu", "Sigmoid", "Pow", "Abs", "Sign", "Floor", "FloorMod", "FloorDiv", "Equal", "NotEqual",
                "Less", "LessEqual", "Greater", "GreaterEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "BiasAdd",
                "AddN", "ZerosLike", "OnesLike", "Fill", "_MklAdd", "_MklAddV2", "_MklMul", "_MklSub",
                "_MklMaximum", "_MklSquaredDifference", "ClipByValue", "Reciprocal", "Inv", "Softplus"}
_REDUCE = {"Max", "Min", "Sum", "Mean", "Prod", "Exp", "Log", "Log1p", "Expm1", "Softmax", "LogSoftmax",
           "ArgMax", "ArgMin", "All", "Any", "Cumsum", "SparseSoftmaxCrossEntropyWithLogits",
           "FusedBatchNormV3", "_MklLayerNorm", "_MklSoftmax"}
_LAYOUT = {"Transpose", "_MklTranspose", "ConjugateTranspose", "Reshape", "Pad", "PadV2", "MirrorPad", "Slice",
           "StridedSlice", "StridedSliceGrad", "GatherV2", "GatherNd", "ResourceGather", "ConcatV2", "Concat",
           "Pack", "Unpack", "Split", "SplitV", "Tile", "BroadcastTo", "Reverse", "ReverseV2", "ScatterNd",
           "TensorScatterUpdate", "TensorScatterAdd", "UnsortedSegmentSum", "OneHot", "Range", "ExpandDims",
           "Squeeze", "Identity", "IdentityN", "Snapshot", "Copy", "DeepCopy", "_MklToTf", "_MklReshape",
           "InplaceUpdate", "CheckNumerics", "EnsureShape"}
_LOOP = {"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "While", "StatelessWhile", "If",
         "StatelessIf", "_SwitchN", "ControlTrigger", "NoOp", "Const", "HostConst", "_Retval", "_Arg",
         "_Recv", "_Send", "_HostRecv", "_HostSend", "PartitionedCall", "StatefulPartitionedCall"}


def kind_of(op_type: str) -> str:
    """The kind (one of `KINDS`) of an op type."""
    if "MatMul" in op_type or "Einsum" in op_type or op_type.startswith(("Conv", "_MklConv", "_MklFusedConv")):
        return KINDS[0]
    if op_type == "Cast" or op_type == "_MklCast":
        return KINDS[2]
    if op_type in _ELEMENTWISE or op_type.startswith("_MklFused") or op_type.startswith("_Fused"):
        return KINDS[1]
    if op_type in _REDUCE:
        return KINDS[3]
    if op_type in _LAYOUT:
        return KINDS[4]
    if op_type in _LOOP or op_type.startswith(("TensorList", "TensorArray", "Stack")):
        return KINDS[5]
    if "Random" in op_type or op_type.startswith("Stateless"):
        return KINDS[6]
    return KINDS[7]


_OP_EVENT = re.compile(r"^(?P<name>[^:]+):(?P<type>[A-Za-z0-9_]+)$")


def op_events(xspace_path: str):
    """`(op name, op type, duration in seconds)` of every TensorFlow op event on the host plane of one trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        meta = plane.event_metadata
        for line in plane.lines:
            if line.name == "python":
                continue  # the Python thread: the call's wrappers, not ops
            for e in line.events:
                m = _OP_EVENT.match(meta[e.metadata_id].name)
                if m is None:  # executor regions, thread-pool markers
                    continue
                yield m.group("name"), m.group("type"), e.duration_ps * 1e-12


def op_component(name: str) -> str:
    """The component an op's time is counted under: `memory_profile.component_of`'s, with the optimizer's ops
    and loops outside any layer's name scope named as such."""
    layer, comp = component_of(name)
    if layer != "-":
        return "encoder layer: " + comp
    first = name.split("/", 1)[0].lower()
    if re.match(r"(adam|adamw|sgd|lamb|.*optimizer|.*adam_w)(_\d+)*$", first):
        return "optimizer update"
    if comp in ("embeddings", "lm_head", "pooler", "classifier", "qa_outputs"):
        return comp
    if "/while/" in name or name.startswith("while/"):
        return "loops outside any layer's name scope"
    return "outside the layers (loss, masks, gathers, grappler's rewrites)"


def summarize(events, calls: int, wall_s: float, top: int = 20) -> dict:
    """Totals per kind, op type and component, per call, from `op_events` of `calls` calls that took `wall_s`."""
    by_kind, by_type, by_comp, counts = defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(int)
    total = 0.0
    for name, op_type, seconds in events:
        total += seconds
        by_kind[kind_of(op_type)] += seconds
        by_type[op_type] += seconds
        counts[op_type] += 1
        by_comp[op_component(name)] += seconds
    if total <= 0:
        raise ValueError("the trace holds no TensorFlow op events: was anything run while the profiler was on?")

    def rows(d, limit=None):
        items = sorted(d.items(), key=lambda kv: -kv[1])[:limit]
        return [{"name": k, "seconds_per_call": v / calls, "share": v / total} for k, v in items]

    types = rows(by_type, top)
    for r in types:
        r["kind"] = kind_of(r["name"])
        r["ops_per_call"] = counts[r["name"]] / calls
    return {"calls": calls, "wall_s_per_call": wall_s / calls, "op_s_per_call": total / calls,
            "ops_per_call": sum(counts.values()) / calls, "kinds": rows(by_kind), "op_types": types,
            "components": rows(by_comp, 16)}


def profile_step(step, calls: int = 2, logdir: str | None = None) -> dict:
    """Runs `step()` (traced and warmed up already) `calls` times under the profiler; returns `summarize`'s dict."""
    with profiled(step, calls, logdir) as (trace, wall):
        return summarize(op_events(trace), calls, wall)


def format_op_profile(summary: dict, title: str = "") -> str:
    """The profile as text: kinds, then op types, then components (seconds per call and share of op time)."""
    lines = [title] if title else []
    busy = summary["op_s_per_call"] / summary["wall_s_per_call"]
    lines.append(f"per call: {summary['wall_s_per_call']:.3f} s wall, {summary['op_s_per_call']:.3f} s of op time "
                 f"over the threads ({busy:.2f} cores busy), {summary['ops_per_call']:.0f} ops")
    for title_, key, width in (("kind", "kinds", 52), ("op type (top 20)", "op_types", 30),
                               ("component", "components", 52)):
        lines.append(f"  {title_:{width}s} {'s/call':>8s} {'share':>7s}" + (
            f" {'ops/call':>9s}  kind" if key == "op_types" else ""))
        for r in summary[key]:
            extra = f" {r['ops_per_call']:9.0f}  {r['kind']}" if key == "op_types" else ""
            lines.append(f"  {r['name'][:width]:{width}s} {r['seconds_per_call']:8.3f} {100 * r['share']:6.1f}%{extra}")
    return "\n".join(lines)
