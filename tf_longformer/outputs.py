"""Model outputs: a dict that also reads as attributes and as a tuple.

The Hugging Face TF outputs were dataclasses with `None` fields that Keras trees, `tf.function`,
SavedModel and `tf.distribute` could not carry. `LongformerOutput` is a plain `dict` subclass holding
only the fields that exist, registered with `keras.tree` (and understood by `tf.nest` as a mapping).
"""

from __future__ import annotations

import optree  # Keras 3 flattens structures with optree (namespace "keras")

# The documented order of every field, used for `to_tuple()` and integer indexing.
FIELD_ORDER = (
    "loss",
    "logits",
    "start_logits",
    "end_logits",
    "last_hidden_state",
    "pooler_output",
    "hidden_states",
    "attentions",
    "global_attentions",
)


class LongformerOutput(dict):
    """Outputs of every model: `out.logits`, `out["logits"]`, `out[0]` and `out.to_tuple()` all work.

    >>> out = LongformerOutput(logits=1, loss=0.5)
    >>> out.logits, out["loss"], out.to_tuple()
    (1, 0.5, (0.5, 1))
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key in [k for k, v in self.items() if v is None]:
            del self[key]

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"This output has no field {name!r}; it has {sorted(self.keys())}."
            ) from None

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def _ordered_keys(self):
        known = [k for k in FIELD_ORDER if k in self]
        return known + [k for k in self if k not in FIELD_ORDER]

    def to_tuple(self):
        return tuple(super(LongformerOutput, self).__getitem__(k) for k in self._ordered_keys())

    def __reduce__(self):
        return (self.__class__, (dict(self),))


def _flatten(out):
    keys = tuple(sorted(out.keys()))
    return [dict.__getitem__(out, k) for k in keys], keys, keys


optree.register_pytree_node(
    LongformerOutput, _flatten, lambda keys, values: LongformerOutput(zip(keys, values)), namespace="keras"
)
