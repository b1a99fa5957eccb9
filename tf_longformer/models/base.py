"""What every Longformer model shares: inputs, the backbone pass, losses, checkpoints, Keras plumbing."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from tf_longformer import checkpoints, files, training, validation  # training: registers compile defaults for `.keras`
from tf_longformer.config import LongformerConfig
from tf_longformer.layers.attention import pad_axis
from tf_longformer.layers.embeddings import LongformerEmbeddings, roberta_position_ids, sequential_position_ids
from tf_longformer.layers.encoder import LongformerEncoder
from tf_longformer.layers.heads import LongformerPooler
from tf_longformer.outputs import LongformerOutput

logger = logging.getLogger("tf_longformer")

# The documented positional order of the Hugging Face TF models' call arguments.
INPUT_ORDER = (
    "input_ids", "attention_mask", "head_mask", "global_attention_mask", "token_type_ids", "position_ids",
    "inputs_embeds", "output_attentions", "output_hidden_states", "return_dict",
)
TENSOR_INPUTS = (
    "input_ids", "attention_mask", "global_attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
    "head_mask",
)
FLAG_INPUTS = ("output_attentions", "output_hidden_states", "return_dict")

# Tensors a checkpoint may hold that a model ignores (they belong to other heads, or are buffers).
OTHER_HEAD_PREFIXES = ("lm_head.", "classifier.", "qa_outputs.", "pooler.")
IGNORED_BUFFERS = ("embeddings.position_ids",)


def _is_array_like(x):
    return isinstance(x, (tf.Tensor, tf.Variable, np.ndarray, keras.KerasTensor)) or hasattr(x, "__array__")


def _is_number_list(x):
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _lists_to_arrays(x, name="input_ids"):
    validation.check_numeric_array(name, x)
    if isinstance(x, (list, tuple)) and _is_number_list(x):
        return validation.list_to_array(name, x)
    if isinstance(x, Mapping):
        return {k: _lists_to_arrays(v, k) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_lists_to_arrays(v, n) for v, n in zip(x, INPUT_ORDER + ("labels",) * len(x)))
    return x


# ---------------------------------------------------------------------------------------------------- losses
def masked_sparse_ce(labels, logits, ignore_index=-100):
    """Mean cross-entropy over the positions whose label is not `ignore_index` (0 if there are none)."""
    labels = tf.convert_to_tensor(labels)
    logits = tf.cast(logits, tf.float32)
    valid = tf.not_equal(tf.cast(labels, tf.int64), tf.cast(ignore_index, tf.int64))
    ok = validation.in_range(labels, 0, tf.shape(logits)[-1])
    # An out-of-range label (only reachable under XLA, where the graph asserts do not run) makes the loss NaN
    # instead of reading another class's logit.
    safe = tf.where(valid & ok, tf.cast(labels, tf.int32), 0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    used = tf.cast(valid, tf.float32)
    loss = tf.math.divide_no_nan(tf.reduce_sum(ce * used), tf.reduce_sum(used))
    return tf.where(tf.reduce_any(valid & ~ok), tf.constant(float("nan"), tf.float32), loss)


class TFLongformerPreTrainedModel(keras.Model):
    """Base of the six models. Not used directly."""

    has_pooler = False
    head_prefixes: tuple[str, ...] = ()  # the task head's tensors in the Hugging Face naming
    hf_architecture = "LongformerModel"

    def __init__(self, config, **kwargs):
        if isinstance(config, Mapping):
            config = LongformerConfig.from_dict(config)
        if not isinstance(config, LongformerConfig):
            raise TypeError(f"`config` must be a LongformerConfig or a dict, got {type(config).__name__}.")
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.embeddings = LongformerEmbeddings(
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, max_position_embeddings=c.max_position_embeddings,
            type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_eps, dropout=c.hidden_dropout_prob,
            initializer_range=c.initializer_range, dtype=self.dtype_policy, name="embeddings",
        )
        checkpointing = getattr(c, "gradient_checkpointing", False)
        if not isinstance(checkpointing, bool):
            raise ValueError(f"`gradient_checkpointing` must be True or False, got {checkpointing!r}.")
        self.encoder = LongformerEncoder(
            num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
            attention_window=c.attention_window, hidden_act=c.hidden_act, dropout=c.hidden_dropout_prob,
            attention_dropout=c.attention_probs_dropout_prob, layer_norm_eps=c.layer_norm_eps,
            initializer_range=c.initializer_range, gradient_checkpointing=checkpointing, dtype=self.dtype_policy,
            name="encoder",
        )
        self.pooler = (
            LongformerPooler(c.hidden_size, c.initializer_range, dtype=self.dtype_policy, name="pooler")
            if self.has_pooler else None
        )
        # Each layer pads to its own one-sided window; padding once to the least common multiple of all of
        # them means no layer pads again.
        self.padding_multiple = math.lcm(*[w // 2 for w in c.attention_windows])

    # ------------------------------------------------------------------------------------------ Keras plumbing
    def build(self, input_shape=None):
        if self.built:  # Keras may build again from a saved build config (`.keras` loading)
            return
        hidden = (None, None, self.config.hidden_size)
        self.embeddings.build()
        self.encoder.build(hidden)
        if self.pooler is not None:
            self.pooler.build()
        self._build_head()
        self.built = True

    def _build_head(self):
        pass

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @property
    def _default_save_signature(self):
        # `tf.saved_model.save` traces this; Keras's own would feed float ids of the first call's fixed shape,
        # which the input checks refuse. Int ids of any batch and length instead.
        spec = tf.TensorSpec([None] * self.input_rank, tf.int32, name="input_ids")
        return tf.function(lambda input_ids: dict(self(input_ids)), input_signature=[spec])

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(LongformerConfig.from_dict(config.pop("config")), **config)

    # -------------------------------------------------------------------------------------------- training
    def compile(self, optimizer="auto", loss="auto", metrics="auto", loss_weights=None, jit_compile=False,
                **kwargs):
        """Keras `compile`; whatever is left as "auto" gets this head's default (see `tf_longformer.training`).

        Defaults: `LongformerAdamW` (learning rate 3e-5), the head's own loss as a Keras loss (the same number
        as the model's `loss` output) and its accuracy. Labels may come as `y` or inside the input dict (then
        they are taken out and used as `y`). With `loss=None` the model's own `loss` output is trained on.
        `jit_compile` defaults to False (Keras' "auto" would pick XLA on a GPU), because XLA currently
        recompiles the training step for every batch (see the README, "Training"); pass True to use it.
        """
        def is_auto(value):
            return isinstance(value, str) and value == "auto"

        auto_loss, auto_metrics = is_auto(loss), is_auto(metrics)
        if is_auto(optimizer):
            optimizer = training.default_optimizer()
        if auto_loss:
            loss = training.default_loss(self)
            if loss_weights is None:
                loss_weights = training.default_loss_weights(self)
        if auto_metrics:
            metrics = training.default_metrics(self)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        jit_compile=jit_compile, **kwargs)
        if loss is None:  # Keras keeps the previous compile's loss when given None
            self._compile_loss = None
            self.loss = None
        # Saved compile configs keep "auto", so a loaded model resolves its defaults again.
        saved = self._compile_config.config
        if auto_loss:
            saved["loss"] = "auto"
            if saved.get("loss_weights") == training.default_loss_weights(self):
                saved["loss_weights"] = None
        if auto_metrics:
            saved["metrics"] = "auto"

    def compile_from_config(self, config):
        # Keras skips `compile()` when loading a model whose `compile` is overridden; ours takes the same config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _labels_in(self, x):
        """The labels travelling inside the input dict, or None."""
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

    def _keras_targets(self, x, y, y_pred):
        """`(y, predictions)` as Keras losses and metrics see them: `logits` (QA: a dict of start/end logits)."""
        in_x = self._labels_in(x)
        if y is not None and in_x is not None:
            raise ValueError(f"Labels were given twice: as `y` and inside the inputs ({list(self.label_names)}). "
                             "Give them one way.")
        y = in_x if y is None else y
        if not isinstance(y_pred, Mapping):
            return y, y_pred
        if "start_logits" in y_pred:
            names = self.label_names
            if y is not None and not isinstance(y, Mapping):
                if isinstance(y, (list, tuple)) and len(y) == 2:
                    y = dict(zip(names, y))
                else:
                    raise ValueError(f"Question answering takes `y` as a dict {list(names)} or a "
                                     f"(start_positions, end_positions) pair, got {type(y).__name__}.")
            if y is not None:
                missing = [k for k in names if k not in y]
                if missing:
                    raise ValueError(f"`y` lacks {missing}; question answering needs {list(names)}.")
                y = {k: y[k] for k in names}
            return y, {names[0]: y_pred["start_logits"], names[1]: y_pred["end_logits"]}
        return y, y_pred["logits"] if "logits" in y_pred else y_pred["last_hidden_state"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._compile_loss is None:
            # `compile(loss=None)`: train on the model's own `loss` output (labels inside the inputs).
            own = y_pred.get("loss") if isinstance(y_pred, Mapping) else None
            if y is not None:
                raise ValueError("Labels were given as `y` but `compile()` was given `loss=None`; give a Keras "
                                 "loss, or leave `loss` to its default.")
            if own is None:
                raise ValueError(self._no_labels_message())
            if sample_weight is not None:
                raise ValueError("Sample weights need a Keras loss; leave `loss` to its default in `compile()`.")
            loss = tf.cast(own, tf.float32)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:  # gradients are summed over replicas
                loss = loss / replicas
            for extra in self.losses:
                loss = loss + tf.cast(self._aggregate_additional_loss(extra), tf.float32)
            return loss
        targets, predictions = self._keras_targets(x, y, y_pred)
        if targets is None:
            raise ValueError(self._no_labels_message())
        return super().compute_loss(x, targets, predictions, sample_weight, training)

    def _no_labels_message(self):
        where = (f"inside the input dict ({list(self.label_names)}) or " if self.label_names
                 else "(this model has no labels of its own) ")
        return f"{type(self).__name__} has nothing to train on: give labels {where}as `y` with a Keras loss."

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        targets, predictions = self._keras_targets(x, y, y_pred)
        if targets is None or self._compile_metrics is None:
            logs = self.get_metrics_result()
        else:
            logs = super().compute_metrics(x, targets, predictions, sample_weight=sample_weight)
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
            # Keras 3 averages a multi-worker step's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails
            # on scalars (tensorflow/tensorflow#72388); shape [1] reduces to the same scalar.
            logs = keras.tree.map_structure(lambda v: tf.reshape(v, [1]), logs)
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy, Keras (3.x, TF backend) gets example shapes by averaging a batch
        # over the replicas ("MEAN"), which turns integer ids and labels into floats, so a classifier would
        # take its integer labels for multi-label ones. One replica's batch has the right shapes and dtypes.
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for step in iterator:
            # Keras' epoch iterator yields (step, iterator) up to 3.10 and (begin, end, iterator) since: the
            # iterator is the last item in every release.
            it = step[-1]
            data_batch = keras.tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v,
                next(it),
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def gradient_checkpointing_enable(self, enabled=True):
        """Recompute each layer's activations in the backward pass: far less memory for long inputs, for about
        one more forward pass of compute. Also `LongformerConfig(gradient_checkpointing=True)`. Clears the
        cached `fit` / `evaluate` / `predict` functions so the next call traces the new setting."""
        self.config.gradient_checkpointing = bool(enabled)
        self.encoder.gradient_checkpointing = bool(enabled)
        self.train_function = self.test_function = self.predict_function = None

    def gradient_checkpointing_disable(self):
        self.gradient_checkpointing_enable(False)

    # ------------------------------------------------------------------------------------------------ inputs
    def __call__(self, *args, **kwargs):
        # Keras only takes tensors positionally: turn Python lists of ids (e.g. `model([[0, 5, 2]])`) into arrays.
        if args:
            args = (_lists_to_arrays(args[0]),) + args[1:]
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

    label_names: tuple[str, ...] = ("labels",)
    input_rank = 2  # of `input_ids`: (batch, length); multiple choice: (batch, choices, length)

    def _parse(self, input_ids, **named):
        """All the ways of passing inputs, reduced to one dict (flags resolved to Python bools)."""
        order = INPUT_ORDER + self.label_names
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
        named = validation.check_labels(named, self.config, self.hf_architecture,
                                        getattr(self, "problem_type_for", None))
        return validation.attach(named, named.pop("_asserts"))

    def _run_backbone(self, x, training, **overrides):
        args = {k: x[k] for k in TENSOR_INPUTS}
        args.update(overrides)
        return self._backbone(**args, output_attentions=x["output_attentions"],
                              output_hidden_states=x["output_hidden_states"], training=training)

    # ---------------------------------------------------------------------------------------------- backbone
    def _backbone(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                  position_ids=None, inputs_embeds=None, head_mask=None, output_attentions=False,
                  output_hidden_states=False, training=None):
        c = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Give exactly one of `input_ids` and `inputs_embeds` "
                             f"(got {'both' if input_ids is not None else 'neither'}).")
        # Where graph asserts do not run (XLA), an out-of-range id, position or type, or a mask value other than
        # 0/1, must not look up another row's embedding: lookups are clamped and such rows become NaN.
        checks = []
        if input_ids is not None:
            input_ids = tf.convert_to_tensor(input_ids)
            checks.append(validation.in_range(input_ids, 0, c.vocab_size))
            input_ids = validation.clamp_ids(input_ids, c.vocab_size)
            shape = tf.shape(input_ids)
        else:
            inputs_embeds = tf.cast(inputs_embeds, self.compute_dtype)
            shape = tf.shape(inputs_embeds)[:2]
        batch, length = shape[0], shape[1]

        def mask(m, default):
            if m is None:
                return tf.fill(shape, default)
            m = tf.convert_to_tensor(m)
            checks.append(validation.is_binary(m))
            return tf.reshape(tf.cast(m, tf.int32), shape)  # never broadcast a mask of another shape

        attention_mask = mask(attention_mask, 1)
        global_mask = mask(global_attention_mask, 0)
        merged = attention_mask * (global_mask + 1)  # 0 padding, 1 local, 2 global
        if position_ids is None:
            position_ids = (roberta_position_ids(input_ids, c.pad_token_id) if input_ids is not None
                            else sequential_position_ids(batch, length, c.pad_token_id))
        checks.append(validation.in_range(position_ids, 0, c.max_position_embeddings))
        position_ids = validation.clamp_ids(position_ids, c.max_position_embeddings)
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape, tf.int32)
        else:
            checks.append(validation.in_range(token_type_ids, 0, c.type_vocab_size))
            token_type_ids = validation.clamp_ids(token_type_ids, c.type_vocab_size)
        row_ok = tf.reduce_all(tf.stack([validation.rows_ok(tf.reshape(k, shape)) for k in checks]), axis=0)
        if head_mask is not None:
            head_mask = tf.cast(head_mask, tf.float32)
            head_mask = tf.broadcast_to(head_mask, [c.num_hidden_layers, c.num_attention_heads])

        # Pad once to a length every layer's block size divides; cut every output back to `length`.
        m = self.padding_multiple
        merged = pad_axis(merged, m)
        position_ids = pad_axis(position_ids, m, value=c.pad_token_id)
        token_type_ids = pad_axis(token_type_ids, m)
        if input_ids is not None:
            input_ids = pad_axis(input_ids, m, value=c.pad_token_id)
        else:
            inputs_embeds = pad_axis(inputs_embeds, m)

        h = self.embeddings(input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids,
                            inputs_embeds=inputs_embeds, training=training)
        h = validation.poison_rows(h, row_ok)
        h, hidden_states, attentions, global_attentions = self.encoder(
            h, merged, head_mask=head_mask, training=training,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        out = {"last_hidden_state": h[:, :length]}
        if self.pooler is not None:
            out["pooler_output"] = self.pooler(out["last_hidden_state"])
        if output_hidden_states:
            out["hidden_states"] = tuple(x[:, :length] for x in hidden_states)
        if output_attentions:
            out["attentions"] = tuple(a[:, :, :length] for a in attentions)
            out["global_attentions"] = tuple(g[:, :, :length] for g in global_attentions)
        return out

    def _finish(self, out, return_dict, **fields):
        """Merges head fields with the backbone's extras into the documented output."""
        result = LongformerOutput()
        for key, value in fields.items():
            if value is not None:
                result[key] = value
        for key in ("hidden_states", "attentions", "global_attentions"):
            if key in out:
                result[key] = out[key]
        return result if return_dict else result.to_tuple()

    # ------------------------------------------------------------------------------------- automatic global
    def _first_sep_index(self, input_ids):
        """Index of each row's first `</s>`, and whether the row has one at all."""
        ids = tf.cast(input_ids, tf.int32)
        is_sep = tf.equal(ids, self.config.sep_token_id)
        first = tf.argmax(tf.cast(is_sep, tf.int32), axis=-1, output_type=tf.int32)
        has_sep = tf.reduce_any(is_sep, axis=-1)
        if tf.executing_eagerly() and not bool(tf.reduce_all(has_sep)):
            missing = np.flatnonzero(~has_sep.numpy().reshape(-1)).tolist()
            warnings.warn(
                f"Rows {missing} have no separator token (id {self.config.sep_token_id}); they get no automatic "
                "global attention. Pass `global_attention_mask` to choose it yourself.",
                stacklevel=4,
            )
        return first, has_sep

    # ----------------------------------------------------------------------------------------- checkpoints
    def hf_weight_map(self):
        """`{hugging_face_name: (variable, in_ndim)}`.

        `in_ndim` > 0 marks a Linear kernel with that many input axes (transposed and reshaped from the PyTorch
        `[out, in]`), `FLAT` a per-head bias stored flat, 0 a tensor stored as it is.
        """
        if not self.built:
            self.build()
        prefix = "" if type(self).hf_architecture == "LongformerModel" else "longformer."
        e = self.embeddings
        m = {
            "embeddings.word_embeddings.weight": (e.word_embeddings.embeddings, 0),
            "embeddings.position_embeddings.weight": (e.position_embeddings.embeddings, 0),
            "embeddings.token_type_embeddings.weight": (e.token_type_embeddings.embeddings, 0),
            "embeddings.LayerNorm.weight": (e.layer_norm.gamma, 0),
            "embeddings.LayerNorm.bias": (e.layer_norm.beta, 0),
        }
        for i, layer in enumerate(self.encoder.layers):
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
        if self.pooler is not None:
            m["pooler.dense.weight"] = (self.pooler.dense.kernel, 1)
            m["pooler.dense.bias"] = (self.pooler.dense.bias, 0)
        m = {prefix + k: v for k, v in m.items()}
        m.update(self._head_weight_map())
        return m

    def _head_weight_map(self):
        return {}

    @staticmethod
    def _dense_map(name, dense):
        return {f"{name}.weight": (dense.kernel, 1), f"{name}.bias": (dense.bias, 0)}

    def _normalise_names(self, state):
        """Accepts base checkpoints (no `longformer.` prefix) in head models and head checkpoints in the base."""
        base = type(self).hf_architecture == "LongformerModel"
        out = {}
        for name, array in state.items():
            if base and name.startswith("longformer."):
                name = name[len("longformer."):]
            elif not base and name.startswith(("embeddings.", "encoder.", "pooler.")):
                name = "longformer." + name
            out[name] = array
        # PyTorch ties lm_head.decoder.{weight,bias} to the word embeddings and lm_head.bias.
        if "lm_head.decoder.bias" in out and "lm_head.bias" not in out:
            out["lm_head.bias"] = out["lm_head.decoder.bias"]
        out.pop("lm_head.decoder.bias", None)
        out.pop("lm_head.decoder.weight", None)
        return out

    def load_hf_state_dict(self, state, source="<state dict>"):
        """Assigns a PyTorch-named state dict; strict about missing, unexpected and mis-shaped tensors."""
        wmap = self.hf_weight_map()
        state = self._normalise_names(state)
        own_head = tuple(self.head_prefixes)
        pooler_key = "pooler." if type(self).hf_architecture == "LongformerModel" else "longformer.pooler."
        if self.pooler is not None:
            own_head = own_head + (pooler_key,)
        ignorable = tuple(("" if type(self).hf_architecture == "LongformerModel" else "longformer.") + b
                          for b in IGNORED_BUFFERS)

        def is_other_head(name):
            bare = name[len("longformer."):] if name.startswith("longformer.") else name
            return bare.startswith(OTHER_HEAD_PREFIXES) and not name.startswith(own_head)

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

    def save_pretrained(self, directory):
        """Writes `config.json` + `model.safetensors` that PyTorch `transformers` loads with the same numbers."""
        os.makedirs(directory, exist_ok=True)
        config = LongformerConfig.from_dict(self.config.to_dict())
        config.architectures = [type(self).hf_architecture]
        # Both files are written in full under temporary names, then renamed: a crash leaves the old pair.
        files.atomic_write_files({
            os.path.join(directory, checkpoints.SAFE_WEIGHTS_NAME): checkpoints.safetensors_bytes(self.hf_state_dict()),
            os.path.join(directory, "config.json"): config.to_json_string().encode("utf-8"),
        })
        return directory

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' `export`; for `tf_saved_model`, a TF Serving SavedModel with named, dynamic-shape signatures,
        tokenizer and labels beside it (`tokenizer=`, `signatures=`, `int64=`, ...: see `tf_longformer.serving`)."""
        from tf_longformer import serving

        return serving.export(self, filepath, format=format, verbose=verbose, input_signature=input_signature,
                              **kwargs)


FLAT = -1  # a per-head bias `(heads, head_dim)` stored flat in the checkpoint


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
