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
