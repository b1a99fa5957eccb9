"""The Hugging Face conventions, in one adapter: how the `TFLongformer...` classes look to a `transformers` user.

- Inputs: a tensor (the ids), a list in the documented positional order, a dict, or keyword arguments, all
  reduced to one dict; labels may travel inside the inputs under the reference's names.
- Outputs: `LongformerOutput` (a dict, attributes, a tuple with `return_dict=False`).
- Checkpoints: `LongformerConfig` -> backbone arguments; our variables <-> the PyTorch names and layouts of
  `transformers` (`hf_weight_map`), `from_pretrained` / `save_pretrained`.

`HuggingFaceAdapter` is a mixin of `TFLongformerPreTrainedModel`; it relies on what each task declares
(`hf_architecture`, `label_names`, `head_prefixes`, `input_rank`, `head_weight_map()`, `check_labels()`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from tf_longformer import checkpoints, files, registry, validation
from tf_longformer.config import LongformerConfig
from tf_longformer.layers.attention import DEFAULT_GLOBAL_BUCKETS
from tf_longformer.outputs import LongformerOutput

logger = logging.getLogger("tf_longformer")

# The documented positional order of the Hugging Face TF models' call arguments (labels follow).
INPUT_ORDER = (
    "input_ids", "attention_mask", "head_mask", "global_attention_mask", "token_type_ids", "position_ids",
    "inputs_embeds", "output_attentions", "output_hidden_states", "return_dict",
)
TENSOR_INPUTS = (
    "input_ids", "attention_mask", "global_attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
    "head_mask",
)
FLAG_INPUTS = ("output_attentions", "output_hidden_states", "return_dict")
BASE_ARCHITECTURE = "LongformerModel"
BACKBONE_PREFIXES = ("embeddings.", "encoder.", "pooler.")
IGNORED_BUFFERS = ("embeddings.position_ids",)  # a buffer of the PyTorch model, not a weight
FLAT = -1  # a per-head bias `(heads, head_dim)` stored flat in the checkpoint


def backbone_arguments(config: LongformerConfig, use_pooler: bool) -> dict:
    """`LongformerBackbone` arguments from a Hugging Face config."""
    c = config
    return dict(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, intermediate_size=c.intermediate_size, attention_window=c.attention_window,
        max_position_embeddings=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
        pad_token_id=c.pad_token_id, hidden_act=c.hidden_act, dropout=c.hidden_dropout_prob,
        attention_dropout=c.attention_probs_dropout_prob, layer_norm_eps=c.layer_norm_eps,
        initializer_range=c.initializer_range,
        global_buckets=DEFAULT_GLOBAL_BUCKETS if c.global_buckets is None else tuple(c.global_buckets),
        gradient_checkpointing=c.gradient_checkpointing, use_pooler=use_pooler,
    )


# ------------------------------------------------------------------------------------------------ inputs
def _is_array_like(x):
    return isinstance(x, (tf.Tensor, tf.Variable, np.ndarray, keras.KerasTensor)) or hasattr(x, "__array__")


def _is_number_list(x):
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def lists_to_arrays(x, name="input_ids"):
    """Python lists of numbers (e.g. `model([[0, 5, 2]])`) as arrays; Keras takes only tensors positionally."""
    validation.check_numeric_array(name, x)
    if isinstance(x, (list, tuple)) and _is_number_list(x):
        return validation.list_to_array(name, x)
    if isinstance(x, Mapping):
        return {k: lists_to_arrays(v, k) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(lists_to_arrays(v, n) for v, n in zip(x, INPUT_ORDER + ("labels",) * len(x)))
    return x


# ----------------------------------------------------------------------------------- checkpoint layouts
def hf_shape(var, in_ndim):
    shape = tuple(var.shape)
    if in_ndim == FLAT:
        return (int(np.prod(shape)),)
    if not in_ndim:
        return shape
    return (int(np.prod(shape[in_ndim:])), int(np.prod(shape[:in_ndim])))


def from_hf(array, var, in_ndim):
    if in_ndim > 0:
        array = array.T
    return array.reshape(tuple(var.shape)).astype(keras.backend.standardize_dtype(var.dtype))


def to_hf(var, in_ndim):
    value = np.asarray(keras.ops.convert_to_numpy(var.value), dtype=np.float32)
    if not in_ndim:
        return value
    if in_ndim == FLAT:
        return value.reshape(-1)
    shape = value.shape
    return np.ascontiguousarray(value.reshape(int(np.prod(shape[:in_ndim])), -1).T)


def dense_map(name, dense):
    """A Keras Dense layer as the `<name>.weight` / `<name>.bias` of a PyTorch Linear."""
    return {f"{name}.weight": (dense.kernel, 1), f"{name}.bias": (dense.bias, 0)}


def backbone_weight_map(backbone):
    """`{hugging_face_name: (variable, in_ndim)}` of a `LongformerBackbone`, without the `longformer.` prefix."""
    e = backbone.embeddings
    m = {
        "embeddings.word_embeddings.weight": (e.word_embeddings.embeddings, 0),
        "embeddings.position_embeddings.weight": (e.position_embeddings.embeddings, 0),
        "embeddings.token_type_embeddings.weight": (e.token_type_embeddings.embeddings, 0),
        "embeddings.LayerNorm.weight": (e.layer_norm.gamma, 0),
        "embeddings.LayerNorm.bias": (e.layer_norm.beta, 0),
    }
    for i, layer in enumerate(backbone.encoder.layers):
        p = f"encoder.layer.{i}."
        a = layer.attention
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            proj = getattr(a, name)
            m[p + f"attention.self.{name}.weight"] = (proj.kernel, 1)
            m[p + f"attention.self.{name}.bias"] = (proj.bias, FLAT)
        m[p + "attention.output.dense.weight"] = (a.output_dense.kernel, 2)
        m[p + "attention.output.dense.bias"] = (a.output_dense.bias, 0)
        m[p + "attention.output.LayerNorm.weight"] = (layer.attention_layer_norm.gamma, 0)
        m[p + "attention.output.LayerNorm.bias"] = (layer.attention_layer_norm.beta, 0)
        m[p + "intermediate.dense.weight"] = (layer.intermediate_dense.kernel, 1)
        m[p + "intermediate.dense.bias"] = (layer.intermediate_dense.bias, 0)
        m[p + "output.dense.weight"] = (layer.output_dense.kernel, 1)
        m[p + "output.dense.bias"] = (layer.output_dense.bias, 0)
        m[p + "output.LayerNorm.weight"] = (layer.output_layer_norm.gamma, 0)
        m[p + "output.LayerNorm.bias"] = (layer.output_layer_norm.beta, 0)
    if backbone.pooler is not None:
        m.update(dense_map("pooler.dense", backbone.pooler.dense))
    return m


class HuggingFaceAdapter:
    """Mixin: the `transformers` calling, output and checkpoint conventions (see the module docstring)."""

    # ------------------------------------------------------------------------------------------ inputs
    def __call__(self, *args, **kwargs):
        if args:
            args = (lists_to_arrays(args[0]),) + args[1:]
        for key, value in kwargs.items():  # before Keras converts them, with an error that names nothing
            validation.check_numeric_array(key, value)
        return super().__call__(*args, **kwargs)

    def _gather_inputs(self, first, named, order):
        """Accepts a tensor, a list in the documented order, a dict, or keyword arguments."""
        if isinstance(first, Mapping):
            for key, value in first.items():
                if key not in named:
                    raise ValueError(f"Unknown input {key!r}; this model takes {sorted(named)}.")
                if named[key] is not None:
                    raise ValueError(f"Input {key!r} was given twice (in the dict and as a keyword).")
                named[key] = value
        elif isinstance(first, (list, tuple)) and first and (_is_array_like(first[0]) or first[0] is None) \
                and not isinstance(first[0], (int, float)):
            if len(first) > len(order):
                raise ValueError(f"Got {len(first)} positional inputs; the documented order has {len(order)}: {order}.")
            for key, value in zip(order, first):
                if named[key] is not None and value is not None:
                    raise ValueError(f"Input {key!r} was given twice (in the list and as a keyword).")
                if value is not None:
                    named[key] = value
        elif first is not None:
            named["input_ids"] = first
        return named

    def parse_inputs(self, input_ids, labels, **named):
        """All the ways of passing inputs, reduced to one checked dict (flags resolved to Python bools)."""
        unknown = sorted(set(labels) - set(self.label_names))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}; its labels are "
                            f"{list(self.label_names) or 'none'} and its inputs {list(INPUT_ORDER)}.")
        named.update({name: labels.get(name) for name in self.label_names})
        order = INPUT_ORDER + tuple(self.label_names)
        named = self._gather_inputs(input_ids, {"input_ids": None, **named}, order)
        for flag in FLAG_INPUTS:
            value = named.get(flag)
            if isinstance(value, (tf.Tensor, np.ndarray)):
                value = bool(tf.get_static_value(value))
            named[flag] = value
        named["output_attentions"] = bool(named["output_attentions"])
        named["output_hidden_states"] = bool(named["output_hidden_states"])
        named["return_dict"] = True if named["return_dict"] is None else bool(named["return_dict"])
        # Dtypes, shapes and values checked at the boundary (see tf_longformer/validation.py).
        named = validation.check_inputs(named, self.config, rank=self.input_rank)
        present = [n for n in self.label_names if named.get(n) is not None]
        if present:
            context = validation.label_context(named, present)
            self.check_labels(named, context)
        return validation.attach(named, named.pop("_asserts"))

    def labels_of(self, x):
        """The labels of a parsed input dict: one tensor, a dict (several label names), or None."""
        if not self.label_names or any(x.get(n) is None for n in self.label_names):
            return None
        if len(self.label_names) == 1:
            return x[self.label_names[0]]
        return {n: x[n] for n in self.label_names}

    def labels_inside(self, x):
        """The labels travelling inside a `fit` input dict (`model.fit({"input_ids": ..., "labels": ...})`)."""
        if not isinstance(x, Mapping) or not self.label_names:
            return None
        found = {k: x[k] for k in self.label_names if x.get(k) is not None}
        if not found:
            return None
        if len(self.label_names) == 1:
            return found[self.label_names[0]]
        if len(found) != len(self.label_names):
            raise ValueError(f"Give all of {list(self.label_names)} in the inputs, or none; got only {list(found)}.")
        return found

    # ----------------------------------------------------------------------------------------- outputs
    @staticmethod
    def pack_outputs(backbone_out, return_dict, **fields):
        """The documented output: the task's fields, then the backbone's extras when asked for."""
        result = LongformerOutput()
        for key, value in fields.items():
            if value is not None:
                result[key] = value
        for key in ("hidden_states", "attentions", "global_attentions"):
            if key in backbone_out:
                result[key] = backbone_out[key]
        return result if return_dict else result.to_tuple()

    # ------------------------------------------------------------------------------------- checkpoints
    @property
    def _is_base(self):
        return type(self).hf_architecture == BASE_ARCHITECTURE

    def hf_weight_map(self):
        """`{hugging_face_name: (variable, in_ndim)}`.

        `in_ndim` > 0 marks a Linear kernel with that many input axes (transposed and reshaped from the PyTorch
        `[out, in]`), `FLAT` a per-head bias stored flat, 0 a tensor stored as it is.
        """
        if not self.built:
            self.build()
        prefix = "" if self._is_base else "longformer."
        m = {prefix + k: v for k, v in backbone_weight_map(self.backbone).items()}
        m.update(self.head_weight_map())
        return m

    def _normalise_names(self, state):
        """Accepts base checkpoints (no `longformer.` prefix) in head models and head checkpoints in the base."""
        out = {}
        for name, array in state.items():
            if self._is_base and name.startswith("longformer."):
                name = name[len("longformer."):]
            elif not self._is_base and name.startswith(BACKBONE_PREFIXES):
                name = "longformer." + name
            out[name] = array
        for task in registry.task_classes().values():
            out = task.normalise_checkpoint(out)
        return out

    def load_hf_state_dict(self, state, source="<state dict>"):
        """Assigns a PyTorch-named state dict; strict about missing, unexpected and mis-shaped tensors."""
        wmap = self.hf_weight_map()
        state = self._normalise_names(state)
        backbone_prefix = "" if self._is_base else "longformer."
        own_head = tuple(self.head_prefixes)
        if self.backbone.pooler is not None:
            own_head = own_head + (backbone_prefix + "pooler.",)
        ignorable = tuple(backbone_prefix + b for b in IGNORED_BUFFERS)
        # Tensors of the other tasks' heads (and the pooler, which only some tasks use) are skipped, not errors.
        other_heads = tuple({p for cls in registry.task_classes().values() for p in cls.head_prefixes}) + ("pooler.",)

        def is_other_head(name):
            bare = name[len("longformer."):] if name.startswith("longformer.") else name
            return bare.startswith(other_heads) and not name.startswith(own_head)

        unexpected = sorted(n for n in state if n not in wmap and not n.startswith(ignorable) and not is_other_head(n))
        skipped = sorted(n for n in state if n not in wmap and n not in unexpected)
        missing_body, partial_head, new_head = [], [], []
        for name in wmap:
            if name in state:
                continue
            group = next((g for g in own_head if name.startswith(g)), None)
            if group is None:
                missing_body.append(name)
            elif any(n.startswith(group) for n in state):
                partial_head.append(name)  # half a head is a broken file, not a new head
            else:
                new_head.append(name)
        mismatched, unusable = [], []
        for name, (var, in_ndim) in wmap.items():
            if name in state:
                arr = state[name]
                expected = hf_shape(var, in_ndim)
                if tuple(arr.shape) != expected:
                    mismatched.append(f"{name}: checkpoint {tuple(arr.shape)}, model {expected}")
                elif (problem := checkpoints.weight_problem(arr)) is not None:
                    unusable.append(f"{name}: {problem}")
        problems = []
        if missing_body or partial_head:
            problems.append(f"missing tensors: {missing_body + partial_head}")
        if unexpected:
            problems.append(f"unexpected tensors: {unexpected}")
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if unusable:
            problems.append("unusable tensors: " + "; ".join(unusable))
        if problems:
            raise checkpoints.CheckpointError(
                f"The checkpoint {source!r} does not fit {type(self).__name__} with this config:\n  "
                + "\n  ".join(problems)
            )
        for name, (var, in_ndim) in wmap.items():
            if name in state:
                var.assign(from_hf(np.asarray(state[name]), var, in_ndim))
        if new_head:
            warnings.warn(
                f"{type(self).__name__}: these weights are not in {source!r} and were newly initialised; "
                f"train the model before using it: {new_head}",
                stacklevel=3,
            )
        if skipped:
            logger.info("Ignored tensors of other heads / buffers in %s: %s", source, skipped)
        return {"missing": new_head, "ignored": skipped}

    def hf_state_dict(self):
        """Our weights in the PyTorch naming and layout of `transformers`."""
        return {name: to_hf(var, in_ndim) for name, (var, in_ndim) in self.hf_weight_map().items()}

    @classmethod
    def from_pretrained(cls, path_or_id, config=None, **config_overrides):
        """Loads a Hugging Face checkpoint directory (or hub id): `config.json` + safetensors / h5 / bin."""
        directory = files.resolve_checkpoint_dir(path_or_id)
        if config is None:
            config = checkpoints.read_config(directory, **config_overrides)
        elif config_overrides:
            config = LongformerConfig.from_dict(config.to_dict(), **config_overrides)
        model = cls(config)
        model.build()
        state, source = checkpoints.read_state_dict(directory)
        model.load_hf_state_dict(state, source)
        return model

    @classmethod
    def from_source(cls, path_or_id, *, source="auto", max_length=None, attention_window=None, position_init="copy",
                    seed=0):
        """A Longformer made from another model's checkpoint folder (or hub id), the Longformer paper's recipe:
        a RoBERTa-family encoder (RoBERTa, XLM-RoBERTa, CamemBERT), a BERT, ELECTRA (embedding size = hidden size)
        or DistilBERT, or any layout `tf-longformer convert`
        reads (`source`, detected by default; `tf_longformer.sources` has the mappings). A KerasHub RoBERTa /
        XLM-RoBERTa backbone, masked LM or text classifier converts too, as an object or a `save_to_preset` folder
        (`source="keras_hub"`, detected; `tf_longformer.kerashub`, the `keras-hub` extra); its tokenizer is written
        as ours reads it by `tf_longformer.kerashub.write_tokenizer(keras_hub_tokenizer, folder)`.

        `max_length`: the longest input (default 4096 for plain sources); `attention_window`: the full window,
        an int or one per layer (default 512); `position_init`: the positions beyond the source's, "copy" (the
        learned ones over and over) or "random" (drawn with `seed`). The global projections start as copies of
        the local ones. The tokenizer is `LongformerTokenizerFast.from_pretrained(path)`.
        """
        from tf_longformer import kerashub, sources

        source = "keras-hub" if source == "keras_hub" else source
        task = next((t for t, c in registry.task_classes().items() if c is cls), "other")
        if source == "keras-hub" or (source == "auto" and (kerashub.is_keras_hub_object(path_or_id)
                                                           or kerashub.is_preset_dir(path_or_id))):
            cfg, state, _, weights, _, _ = kerashub.load(path_or_id, attention_window, max_length, position_init,
                                                         seed, task)
        else:
            directory = files.resolve_checkpoint_dir(path_or_id)
            cfg, state, _, weights, _ = sources.load_source(directory, source, attention_window, max_length,
                                                            position_init, seed, task)
        model = cls(LongformerConfig(**cfg))
        sources.check_tied_decoder(state, model)
        model.build()
        model.load_hf_state_dict(state, weights)
        return model

    from_roberta = from_source  # the name the recipe is known by

    def hf_config(self):
        """A copy of the config whose `architectures` names this class, as `transformers` expects."""
        config = LongformerConfig.from_dict(self.config.to_dict())
        config.architectures = [type(self).hf_architecture]
        return config

    def save_pretrained(self, directory):
        """Writes `config.json` + `model.safetensors` that PyTorch `transformers` loads with the same numbers."""
        os.makedirs(directory, exist_ok=True)
        # Both files are written in full under temporary names, then renamed: a crash leaves the old pair.
        files.atomic_write_files({
            os.path.join(directory, checkpoints.SAFE_WEIGHTS_NAME): checkpoints.safetensors_bytes(self.hf_state_dict()),
            os.path.join(directory, "config.json"): self.hf_config().to_json_string().encode("utf-8"),
        })
        return directory
