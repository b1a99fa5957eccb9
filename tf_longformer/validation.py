"""Checks of what callers hand the models, at the boundary, in eager mode, in `tf.function` and under XLA.

Three layers, each catching what the one before cannot:

1. Static checks (Python, when the shapes and dtypes are known: always in eager mode, at trace time in a
   graph): wrong dtype -> `TypeError`; wrong rank, shapes that disagree, an empty batch, a zero-length or
   too long sequence, a `head_mask` of the wrong shape -> `ValueError`.
2. Value checks (ids, masks, token types, positions, labels): in eager mode they raise `ValueError` naming the
   input, the offending values with their indices and what is allowed. In a graph (`tf.function`, Keras
   `fit`/`predict`, a SavedModel) they are `tf.debugging.Assert` ops that run before anything reads the
   inputs and fail with `tf.errors.InvalidArgumentError` carrying the same sentence and the min / max seen.
3. XLA (`jit_compile=True`) compiles `Assert` away, and its gather clamps out-of-range indices, which would
   silently look up the wrong embedding rows. So the backbone clamps every lookup itself and sets every output
   of a row with an out-of-range id / position / token type or a mask value other than 0/1 to NaN
   (`poison_rows`), and a loss over an out-of-range label is NaN (`training.SparseCrossentropy`). Wrong numbers
   never pass silently; NaN is what a compiled graph can say.

The helpers are small functions so tests can hit them directly. `hf.HuggingFaceAdapter.parse_inputs` calls
`check_inputs`, then `label_context` and the task's own `check_labels` (each task declares its labels'
rules, with the helpers here); `backbone.LongformerBackbone` uses the guards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

IGNORE_INDEX = -100  # labels equal to this are left out of the loss (the Hugging Face convention)
MASK_INPUTS = ("attention_mask", "global_attention_mask")
_SHOW = 3  # how many offending values an eager error message lists


# ------------------------------------------------------------------------------------------- conversion
def as_tensor(name: str, value):
    """`value` as a dense tensor; `TypeError` for ragged / sparse / non-numeric inputs."""
    if value is None or isinstance(value, tf.Tensor):
        return value
    if isinstance(value, tf.RaggedTensor):
        raise TypeError(
            f"`{name}` is a tf.RaggedTensor; the models take dense (batch, length) tensors. Pad the rows "
            "(e.g. `tokenizer(texts, padding=True)` or `.to_tensor(default_value=pad_token_id)`) and pass an "
            "`attention_mask` with 0 on the padding."
        )
    if isinstance(value, tf.SparseTensor):
        raise TypeError(f"`{name}` is a tf.SparseTensor; pass a dense tensor (`tf.sparse.to_dense`).")
    if isinstance(value, (list, tuple)):
        value = list_to_array(name, value)
    check_numeric_array(name, value)
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`{name}` could not be read as a tensor of numbers ({type(value).__name__}: {e}).") from None


def check_numeric_array(name: str, value) -> None:
    """`TypeError` for a numpy array of strings or Python objects (Keras would fail converting it, namelessly)."""
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numbers, got a numpy array of dtype {value.dtype}.")


def list_to_array(name: str, value):
    """A (nested) Python list as a numpy array; `ValueError` naming the input for rows of unequal length."""
    try:
        return np.asarray(value)
    except ValueError as e:
        raise ValueError(
            f"`{name}` is a nested list whose rows have different lengths; pad the rows to one length and "
            f"pass an `attention_mask` with 0 on the padding ({e})."
        ) from None


# --------------------------------------------------------------------------------------- static checks
def static_shape(t) -> tuple:
    return tuple(t.shape.as_list()) if t.shape.rank is not None else ()


def format_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def check_rank(name: str, t, rank: int, layout: str, hint: str = "") -> None:
    if t.shape.rank is None:
        raise ValueError(f"`{name}` has an unknown rank; give it a static rank {rank} {layout} "
                         f"(e.g. `tf.TensorSpec({format_shape([None] * rank)})`).")
    if t.shape.rank != rank:
        raise ValueError(f"`{name}` must have rank {rank} {layout}, got shape {format_shape(static_shape(t))}.{hint}")


def check_integer(name: str, t, what: str = "integer ids") -> None:
    if not t.dtype.is_integer:
        raise TypeError(f"`{name}` must hold {what} (an int dtype), got dtype {t.dtype.name}; cast it, e.g. "
                        f"`tf.cast({name}, tf.int32)`, after checking the values are whole numbers.")


def check_mask_dtype(name: str, t) -> None:
    if not (t.dtype.is_integer or t.dtype.is_floating or t.dtype == tf.bool):
        raise TypeError(f"`{name}` must be an int, bool or float tensor of 0s and 1s, got dtype {t.dtype.name}.")


def check_floating(name: str, t) -> None:
    if not t.dtype.is_floating:
        raise TypeError(f"`{name}` must be a float tensor, got dtype {t.dtype.name}.")


def check_same_shape(name: str, t, ref_name: str, ref, asserts: list) -> None:
    """`t` has `ref`'s shape: `ValueError` where the dims are known, a graph assert for the rest.

    `ref_name` is how the message names `ref`, e.g. "`input_ids`".
    """
    a, b = static_shape(t), static_shape(ref)
    if t.shape.rank != ref.shape.rank or any(x is not None and y is not None and x != y for x, y in zip(a, b)):
        raise ValueError(f"`{name}` has shape {format_shape(a)} but {ref_name} has shape {format_shape(b)}; they must be equal.")
    if None in a or None in b:
        asserts.append(tf.debugging.Assert(
            tf.reduce_all(tf.equal(tf.shape(t), tf.shape(ref))),
            [f"`{name}` and {ref_name} must have the same shape; got", tf.shape(t), "and", tf.shape(ref)],
        ))


def sequence_reference(x: dict):
    """The tensor whose shape masks and per-token labels must have, and how messages name it."""
    if x.get("input_ids") is not None:
        return "`input_ids`", x["input_ids"]
    return "`inputs_embeds` (without its hidden axis)", x["inputs_embeds"][..., 0]


def check_sequence_shape(name: str, shape, max_length: int, asserts: list, choices_axis: bool = False) -> None:
    """Non-empty batch (and choices), at least one token, at most `max_length` tokens.

    `shape` is the static `(batch, [choices,] length)` (None where unknown) and, for the dynamic checks, the
    tensor whose first axes it describes. An empty batch is only refused where it is statically known: inside
    a graph with a dynamic batch, `tf.distribute` may give a replica an empty batch, and the model then returns
    empty outputs.
    """
    static, dynamic = shape
    if static[0] == 0:
        raise ValueError(f"`{name}` has an empty batch (shape {format_shape(static)}); give at least one sequence.")
    if choices_axis and static[1] == 0:
        raise ValueError(f"`{name}` has 0 choices (shape {format_shape(static)}); give at least one choice per example.")
    length = static[-1]
    if length == 0:
        raise ValueError(f"`{name}` holds zero-length sequences (shape {format_shape(static)}); every sequence needs at "
                         "least one token (e.g. `<s>`).")
    if length is not None and length > max_length:
        raise ValueError(
            f"`{name}` has length {length}, but this model takes at most {max_length} tokens "
            f"(`max_position_embeddings` - `pad_token_id` - 1). Truncate the input (e.g. "
            f"`tokenizer(..., truncation=True, max_length={max_length})`) or split the document."
        )
    if length is None:
        n = dynamic[-1]
        asserts.append(tf.debugging.Assert(
            (n > 0) & (n <= max_length),
            [f"`{name}` must have between 1 and {max_length} tokens (`max_position_embeddings` - "
             "`pad_token_id` - 1); got length", n],
        ))


def check_head_mask(head_mask, num_layers: int, num_heads: int) -> None:
    shape = static_shape(head_mask)
    ok = (len(shape) == 1 and shape[0] in (None, num_heads)) or (
        len(shape) == 2 and shape[0] in (None, num_layers) and shape[1] in (None, num_heads))
    if not ok:
        raise ValueError(
            f"`head_mask` must have shape ({num_heads},) (one value per head, every layer) or "
            f"({num_layers}, {num_heads}) (per layer and head), got {format_shape(shape)}."
        )
    if not (head_mask.dtype.is_floating or head_mask.dtype.is_integer or head_mask.dtype == tf.bool):
        raise TypeError(f"`head_mask` must hold numbers, got dtype {head_mask.dtype.name}.")


# ---------------------------------------------------------------------------------------- value checks
def check_values(name: str, t, ok, allowed: str, asserts: list, hint: str = "") -> None:
    """Every entry of `t` where the boolean tensor `ok` is True, else an error naming the bad entries.

    Eager: `ValueError` listing the first offending values with their indices. Graph: a `tf.debugging.Assert`
    (`InvalidArgumentError` when it runs) with the min and max seen.
    """
    if tf.executing_eagerly():
        ok_np = np.asarray(ok)
        if ok_np.all():
            return
        values = np.asarray(t)
        bad = np.argwhere(~ok_np)
        shown = ", ".join(f"{values[tuple(i)].item()!r} at {list(map(int, i))}" for i in bad[:_SHOW])
        more = f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
        raise ValueError(f"`{name}` must hold {allowed}; found {len(bad)} value(s) outside: {shown}{more}.{hint}")
    numeric = t if t.dtype != tf.bool else tf.cast(t, tf.int32)
    asserts.append(tf.debugging.Assert(
        tf.reduce_all(ok), [f"`{name}` must hold {allowed}; min and max seen:", tf.reduce_min(numeric),
                            tf.reduce_max(numeric)],
    ))


def in_range(t, low, high):
    """`low <= t < high`, computed in int64 so that no id wraps around in a narrower cast."""
    t = tf.cast(t, tf.int64)
    return (t >= tf.cast(low, tf.int64)) & (t < tf.cast(high, tf.int64))


def is_binary(t):
    if t.dtype == tf.bool:
        return tf.ones_like(t)
    return tf.equal(t, tf.zeros([], t.dtype)) | tf.equal(t, tf.ones([], t.dtype))


def check_ids(name: str, t, limit: int, limit_name: str, asserts: list, hint: str = "") -> None:
    check_integer(name, t)
    check_values(name, t, in_range(t, 0, limit), f"ids in [0, {limit_name}={limit})", asserts, hint)


def check_binary(name: str, t, asserts: list) -> None:
    check_mask_dtype(name, t)
    check_values(name, t, is_binary(t), "only 0 and 1", asserts,
                 " (0 = padding / not global, 1 = a real token / a global token.)" if name == "attention_mask" else "")


def attach(tensors: dict, asserts: Sequence) -> dict:
    """In a graph, makes every tensor of `tensors` wait for the asserts (so they fail before anything else)."""
    if not asserts:
        return tensors
    with tf.control_dependencies(list(asserts)):
        return {k: (tf.identity(v) if isinstance(v, tf.Tensor) else v) for k, v in tensors.items()}


# ------------------------------------------------------------------------------------------- the inputs
def check_inputs(x: dict, config, rank: int = 2) -> dict:
    """Checks and converts the tensor inputs of `x` (the dict `_parse` builds); returns the updated dict.

    `rank` is that of `input_ids`: 2 `(batch, length)`, or 3 `(batch, choices, length)` for multiple choice.
    """
    x = dict(x)
    ids, embeds = x.get("input_ids"), x.get("inputs_embeds")
    if (ids is None) == (embeds is None):
        raise ValueError("Give exactly one of `input_ids` and `inputs_embeds` "
                         f"(got {'both' if ids is not None else 'neither'}).")
    layout = "(batch, choices, length)" if rank == 3 else "(batch, length)"
    hint = "" if rank == 2 else " Multiple choice takes one row per choice: stack them on axis 1."
    asserts: list = []
    if ids is not None:
        ids = x["input_ids"] = as_tensor("input_ids", ids)
        one_row = " For one sequence, add the batch axis: `[ids]`." if rank == 2 and ids.shape.rank == 1 else ""
        check_rank("input_ids", ids, rank, layout, hint + one_row)
        check_sequence_shape("input_ids", (static_shape(ids), tf.shape(ids)), config.max_sequence_length, asserts,
                             choices_axis=rank == 3)
        check_ids("input_ids", ids, config.vocab_size, "vocab_size", asserts,
                  " Were the ids made by a tokenizer with a different vocabulary than this model's?")
    else:
        embeds = x["inputs_embeds"] = as_tensor("inputs_embeds", embeds)
        check_rank("inputs_embeds", embeds, rank + 1, layout[:-1] + ", hidden_size)", hint)
        check_floating("inputs_embeds", embeds)
        if embeds.shape[-1] is not None and embeds.shape[-1] != config.hidden_size:
            raise ValueError(f"`inputs_embeds` must end in hidden_size={config.hidden_size}, got shape "
                             f"{format_shape(static_shape(embeds))}.")
        check_sequence_shape("inputs_embeds", (static_shape(embeds)[:-1], tf.shape(embeds)[:-1]),
                             config.max_sequence_length, asserts, choices_axis=rank == 3)

    ref_name, ref = sequence_reference(x)
    for name in MASK_INPUTS:
        if x.get(name) is not None:
            t = x[name] = as_tensor(name, x[name])
            check_same_shape(name, t, ref_name, ref, asserts)
            check_binary(name, t, asserts)
    if x.get("token_type_ids") is not None:
        t = x["token_type_ids"] = as_tensor("token_type_ids", x["token_type_ids"])
        check_same_shape("token_type_ids", t, ref_name, ref, asserts)
        check_ids("token_type_ids", t, config.type_vocab_size, "type_vocab_size", asserts)
    if x.get("position_ids") is not None:
        t = x["position_ids"] = as_tensor("position_ids", x["position_ids"])
        check_same_shape("position_ids", t, ref_name, ref, asserts)
        check_ids("position_ids", t, config.max_position_embeddings, "max_position_embeddings", asserts)
    if x.get("head_mask") is not None:
        x["head_mask"] = as_tensor("head_mask", x["head_mask"])
        check_head_mask(x["head_mask"], config.num_hidden_layers, config.num_attention_heads)
    x["_asserts"] = asserts
    return x


# ------------------------------------------------------------------------------------------------ labels
def check_per_example(name, labels, batch_static, batch, asserts):
    """One label per example: `(batch,)`, `(batch, 1)`, or `()` for a batch of one."""
    shape = static_shape(labels)
    if labels.shape.rank is None or labels.shape.rank > 2 or (labels.shape.rank == 2 and shape[1] not in (None, 1)) \
            or (labels.shape.rank == 0 and batch_static not in (None, 1)) \
            or (labels.shape.rank >= 1 and None not in (shape[0], batch_static) and shape[0] != batch_static):
        raise ValueError(f"`{name}` must hold one value per example, shape ({batch_static},), got {format_shape(shape)}.")
    if labels.shape.rank is None or None in shape or batch_static is None:
        asserts.append(tf.debugging.Assert(tf.equal(tf.size(labels), batch),
                                           [f"`{name}` must hold one value per example; got", tf.size(labels),
                                            "values for a batch of", batch]))


def check_class_ids(name, labels, num_classes, limit: str, asserts):
    """Integer labels in `[0, num_classes)` or IGNORE_INDEX; `limit` names the bound in messages."""
    check_integer(name, labels, "integer class ids")
    ok = in_range(labels, 0, num_classes) | tf.equal(tf.cast(labels, tf.int64), IGNORE_INDEX)
    check_values(name, labels, ok, f"class ids in [0, {limit}) or {IGNORE_INDEX} (ignored)", asserts)


class LabelContext(NamedTuple):
    """What a task's `check_labels` checks the labels against."""

    names: list  # the label names given
    asserts: list  # graph asserts to gate the inputs on
    ref_name: str  # the input that fixes the batch (and sequence) shape
    ref: tf.Tensor
    batch_static: int | None
    batch: tf.Tensor


def label_context(x: dict, names) -> LabelContext:
    """Turns the labels `names` of `x` into tensors (in place) and returns what checks need."""
    asserts = x.setdefault("_asserts", [])
    ref_name, ref = sequence_reference(x)
    for n in names:
        x[n] = as_tensor(n, x[n])
    return LabelContext(list(names), asserts, ref_name, ref, static_shape(ref)[0], tf.shape(ref)[0])


def check_token_labels(x: dict, ctx: LabelContext, limit: int, limit_name: str) -> None:
    """One class id per token: `labels` of the ids' shape, in `[0, limit)` or IGNORE_INDEX."""
    labels = x["labels"]
    check_same_shape("labels", labels, ctx.ref_name, ctx.ref, ctx.asserts)
    check_class_ids("labels", labels, limit, f"{limit_name}={limit}", ctx.asserts)


# ------------------------------------------------------------------------------ guards for compiled graphs
def rows_ok(ok):
    """`(batch,)`: True where every entry of the row is fine."""
    return tf.reduce_all(tf.reshape(ok, [tf.shape(ok)[0], -1]), axis=1)


def clamp_ids(t, limit: int):
    """int32 ids clipped into `[0, limit)`: an out-of-range lookup never reads another row's embedding
    (the row is poisoned with NaN by `poison_rows` instead)."""
    return tf.cast(tf.clip_by_value(tf.cast(t, tf.int64), 0, limit - 1), tf.int32)


def poison_rows(h, row_ok):
    """NaN in every position of the rows whose inputs were out of range (only reachable where graph asserts do
    not run: XLA)."""
    return tf.where(tf.reshape(row_ok, [-1, 1, 1]), h, tf.constant(float("nan"), h.dtype))
