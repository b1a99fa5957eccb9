"""What a training step keeps for its backward pass, per layer and component: `tf-longformer bench --memory-profile`.

The step is traced at one static shape; every tensor the forward pass computes (an ancestor of the loss) that an
op of the backward pass reads is "kept": it lives from its forward op until the backward op that last reads it.
Views (reshapes, identities, a custom gradient's `IdentityN`) are counted once, as the tensor they view. The sum
is a floor of the step's activation memory (TensorFlow may hold more at once: temporaries, its allocator's
slack; while-loop accumulators of unknown size are counted apart), and the breakdown says where it goes.

Components are read off the op names: `layer_<i>/attention`, `layer_<i>/intermediate_dense`, ... Everything of
an encoder layer is reported per component, summed over the layers, and per layer on average.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict

import numpy as np

VIEW_OPS = {"Reshape", "Identity", "IdentityN", "ExpandDims", "Squeeze", "StopGradient", "Snapshot"}
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
FREE_OPS = {"ReadVariableOp", "Const", "Placeholder", "VarHandleOp", "Shape", "ShapeN", "Size", "Rank"}


def _source(tensor):
    """The tensor a view (`Reshape`, `Identity`, ...) looks at, followed back to the first real producer."""
    seen = 0
    while tensor.op.type in VIEW_OPS and tensor.op.inputs and seen < 64:
        index = tensor.value_index if tensor.op.type == "IdentityN" else 0
        tensor = tensor.op.inputs[min(index, len(tensor.op.inputs) - 1)]
        seen += 1
    return tensor


def _ancestors(ops, control):
    """`ops` and every op they depend on, through data inputs (and control inputs when `control`)."""
    found, stack = set(), list(ops)
    while stack:
        op = stack.pop()
        if op in found:
            continue
        found.add(op)
        stack.extend(t.op for t in op.inputs)
        if control:
            stack.extend(op.control_inputs)
    return found


def _live_ops(graph):
    """The ops that run: ancestors (data and control) of the graph's outputs and control outputs. Others are
    pruned (e.g. the unused `Identity` a custom gradient leaves on its output)."""
    return _ancestors([t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", [])), control=True)


def _forward_ops(loss):
    """Every op the loss's value depends on: its ancestors through data inputs. (Not control inputs: a
    `tf.function` chains every stateful op, the optimizer's updates included, before its outputs.)"""
    return _ancestors([loss.op], control=False)


def component_of(name: str) -> tuple[str, str]:
    """`(layer, component)` of an op name: `("layer 3", "attention")`, `("-", "embeddings")`, ..."""
    raw = name.split("/")[:-1]
    parts = [re.sub(r"(_\d+)+$", "", p) for p in raw]  # numbered names: "dropout_12_1" is a dropout
    for i, part in enumerate(raw):
        m = re.fullmatch(r"layer_(\d+)(?:_\d+)?", part)
        if m:
            rest = parts[i + 1:]
            comp = rest[0] if rest else "residuals, dropout"
            return f"layer {m.group(1)}", comp
    for part in parts:
        if part in ("embeddings", "lm_head", "pooler", "classifier", "qa_outputs"):
            return "-", part
    return "-", parts[-1] if parts else "(top level: loss, masks, gathers)"


def kept_tensors(graph, loss):
    """`[(name, shape, dtype, bytes or None)]` of the forward tensors the backward pass reads (views resolved)."""
    forward = _forward_ops(loss)
    live = _live_ops(graph)
    kept = {}
    for op in graph.get_operations():
        if op in forward or op not in live or op.type in SHAPE_OPS:  # reading a shape keeps no buffer
            continue
        for t in op.inputs:
            if t.op not in forward or t.op.type in FREE_OPS:
                continue
            src = _source(t)
            if src.op.type in FREE_OPS:
                continue
            kept[src.name] = src
    rows = []
    for name, t in kept.items():
        size = None
        if t.shape.is_fully_defined() and t.dtype.name not in ("variant", "resource"):
            size = int(np.prod(t.shape.as_list(), dtype=np.int64)) * t.dtype.size
        rows.append((name, tuple(t.shape.as_list()) if t.shape.rank is not None else None, t.dtype.name, size))
    return rows


def summarize(rows, tokens: int):
    """Totals per component (layers pooled) and per layer: `{"components": [...], "total_bytes", ...}`."""
    by_comp = defaultdict(lambda: [0, 0, 0])  # bytes, tensors, unknown-size tensors
    layers = set()
    for name, _, _, size in rows:
        layer, comp = component_of(name)
        key = ("encoder layer: " + comp) if layer != "-" else comp
        if layer != "-":
            layers.add(layer)
        entry = by_comp[key]
        entry[1] += 1
        if size is None:
            entry[2] += 1
        else:
            entry[0] += size
    n_layers = max(1, len(layers))
    total = sum(v[0] for v in by_comp.values())
    comps = [{"component": k, "bytes": v[0], "tensors": v[1], "unknown_size": v[2],
              "bytes_per_layer": v[0] / n_layers if k.startswith("encoder layer") else None,
              "bytes_per_token": v[0] / tokens}
             for k, v in sorted(by_comp.items(), key=lambda kv: -kv[1][0])]
    return {"components": comps, "total_bytes": total, "bytes_per_token": total / tokens, "layers": n_layers,
            "tensors": len(rows)}


def format_profile(summary, title=""):
    lines = [title] if title else []
    lines.append(f"{'component':48s} {'MiB':>9s} {'MiB/layer':>10s} {'KB/token':>9s} {'tensors':>8s}")
    for c in summary["components"]:
        per_layer = "" if c["bytes_per_layer"] is None else f"{c['bytes_per_layer'] / 2**20:10.1f}"
        unknown = f" (+{c['unknown_size']} of unknown size)" if c["unknown_size"] else ""
        lines.append(f"{c['component'][:48]:48s} {c['bytes'] / 2**20:9.1f} {per_layer:>10s} "
                     f"{c['bytes_per_token'] / 1e3:9.1f} {c['tensors']:8d}{unknown}")
    lines.append(f"{'total kept for the backward pass':48s} {summary['total_bytes'] / 2**20:9.1f} {'':>10s} "
                 f"{summary['bytes_per_token'] / 1e3:9.1f} {summary['tensors']:8d}")
    return "\n".join(lines)


# ------------------------------------------------------------------- what is live at the peak (allocator timeline)
TIMELINE_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}  # the allocator whose allocations the profiler records


def live_at_peak(events, top: int = 16) -> dict:
    """The buffers live when the step's allocations peaked, from the profiler's allocator events in time order:
    `(kind, stats)` with kind `"MemoryAllocation"` / `"MemoryDeallocation"` and stats `addr`,
    `allocation_bytes`, `bytes_allocated` (the allocator's total in use after the event) and `tf_op` (the op that
    asked). Buffers allocated before the profiled step (weights, optimizer slots) are in `before_bytes`, not in
    the lists. Returns `{"peak_bytes", "peak_op", "before_bytes", "live_bytes", "components": [...], "ops": [...]}`
    (components as `component_of` reads the op names, layers pooled; ops with layer numbers pooled)."""
    live, peak, snapshot, peak_op, before = {}, -1, {}, None, None
    for kind, st in events:
        in_use = int(st.get("bytes_allocated") or 0)
        if kind == "MemoryAllocation":
            size = int(st.get("allocation_bytes") or 0)
            if before is None:
                before = in_use - size
            live[st.get("addr")] = (size, str(st.get("tf_op") or "?"))
        else:
            if before is None:
                before = in_use + int(st.get("allocation_bytes") or 0)
            live.pop(st.get("addr"), None)
        if in_use > peak:
            peak, snapshot, peak_op = in_use, dict(live), st.get("tf_op")
    if peak < 0:
        raise ValueError("the trace holds no allocator events: run the step with TensorFlow's BFC allocator on CPU "
                         "(TF_CPU_ALLOCATOR_USE_BFC=true in the environment before TensorFlow starts).")
    by_comp, by_op = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for size, op in snapshot.values():
        layer, comp = component_of(op + "/x")
        for table, key in ((by_comp, ("encoder layer: " + comp) if layer != "-" else comp),
                           (by_op, re.sub(r"layer_\d+(_\d+)?", "layer_<i>", op))):
            table[key][0] += size
            table[key][1] += 1

    def rows(table, limit=None):
        return [{"name": k, "bytes": v[0], "buffers": v[1]}
                for k, v in sorted(table.items(), key=lambda kv: -kv[1][0])[:limit]]

    return {"peak_bytes": peak, "peak_op": peak_op, "before_bytes": max(0, before or 0),
            "live_bytes": sum(size for size, _ in snapshot.values()), "components": rows(by_comp, top),
            "ops": rows(by_op, top)}


def allocator_events(xspace_path):
    """`(kind, stats)` of every allocator event of one profiler trace, in time order (see `live_at_peak`)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    found = []
    for plane in space.planes:
        names = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for e in line.events:
                kind = plane.event_metadata[e.metadata_id].name
                if kind not in ("MemoryAllocation", "MemoryDeallocation"):
                    continue
                st = {}
                for s in e.stats:
                    value = s.uint64_value or s.int64_value or s.str_value
                    if s.ref_value:
                        value = plane.stat_metadata[s.ref_value].name
                    st[names.get(s.metadata_id, "?")] = value
                found.append((line.timestamp_ns * 1000 + e.offset_ps, kind, st))
    found.sort(key=lambda r: r[0])
    return [(kind, st) for _, kind, st in found]


@contextlib.contextmanager
def profiled(step, calls: int = 1, logdir: str | None = None, host_tracer_level: int | None = None):
    """Runs `step()` (traced and warmed up already) `calls` times under TensorFlow's profiler; yields `(path of the
    trace's XSpace file, wall seconds of the calls)`. A temporary `logdir` (None) is removed afterwards. Shared by
    `timeline` and `op_profile.profile_step`."""
    import glob
    import os
    import shutil
    import tempfile
    import time

    import tensorflow as tf

    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}.")
    own = logdir is None
    logdir = logdir or tempfile.mkdtemp(prefix="tf-longformer-profile-")
    options = (None if host_tracer_level is None
               else tf.profiler.experimental.ProfilerOptions(host_tracer_level=host_tracer_level))
    try:
        tf.profiler.experimental.start(logdir, options=options)
        try:
            t0 = time.perf_counter()
            for _ in range(calls):
                out = step()
                if hasattr(out, "numpy"):
                    out.numpy()
            wall = time.perf_counter() - t0
        finally:
            tf.profiler.experimental.stop()
        found = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
        if not found:
            raise RuntimeError(f"the profiler wrote no trace under {logdir}")
        yield found[-1], wall
    finally:
        if own:
            shutil.rmtree(logdir, ignore_errors=True)


def timeline(step, top: int = 16, logdir: str | None = None) -> dict:
    """Runs `step()` (traced and run once already) once under TensorFlow's profiler with its allocator events, and
    returns `live_at_peak` of them. Needs the BFC allocator on CPU (`TIMELINE_ENV`, set before TensorFlow
    starts; `tf-longformer bench --memory-timeline` sets it for its measurements)."""
    with profiled(step, 1, logdir, host_tracer_level=3) as (trace, _):
        return live_at_peak(allocator_events(trace), top)


def format_timeline(summary, title="") -> str:
    """`live_at_peak`'s summary as fixed-width text."""
    lines = [title] if title else []
    lines.append(f"peak of live tensors {summary['peak_bytes'] / 2**30:.2f} GiB at op {summary['peak_op']}: "
                 f"{summary['before_bytes'] / 2**30:.2f} GiB allocated before the step (weights, optimizer slots), "
                 f"{summary['live_bytes'] / 2**30:.2f} GiB by it")
    for key, label in (("components", "component"), ("ops", "op (layers pooled)")):
        lines.append(f"{label:96s} {'MiB':>9s} {'buffers':>8s}")
        for r in summary[key]:
            lines.append(f"{r['name'][-96:]:96s} {r['bytes'] / 2**20:9.1f} {r['buffers']:8d}")
    return "\n".join(lines)
