"""`TFLongformerPreTrainedModel`: a `LongformerBackbone` plus a head, and the Keras plumbing every task shares.

A task is one file in this package: a subclass decorated with `@register_task` that declares what makes it that
task (see "What a task declares" below); `tf_longformer.models` imports every module here, so a new file is all
a new head needs. The Hugging Face conventions (input forms, outputs, checkpoints) come from
`tf_longformer.hf.HuggingFaceAdapter`; this module holds what Keras needs (building, configs, `compile`
defaults, `fit`'s loss and metrics, distribution workarounds, export).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from tf_longformer import training
from tf_longformer.backbone import LongformerBackbone
from tf_longformer.config import LongformerConfig
from tf_longformer.hf import TENSOR_INPUTS, HuggingFaceAdapter, backbone_arguments
from tf_longformer.registry import register_task

__all__ = ["TFLongformerPreTrainedModel", "register_task"]


def _unreduced(loss):
    """The same loss with `reduction="none"`: the model's `loss` output is the plain mean over the batch, while
    a reducing Keras loss divides by the number of replicas inside a `tf.distribute` replica (Keras >= 3.5)."""
    if loss is None:
        return None
    if isinstance(loss, Mapping):
        return {k: _unreduced(v) for k, v in loss.items()}
    return type(loss).from_config({**loss.get_config(), "reduction": "none"})


class TFLongformerPreTrainedModel(HuggingFaceAdapter, keras.Model):
    """Base of the task models. Not used directly.

    What a task declares (class attributes, then methods it overrides):

    - `task` (the name serving and the command line use), `task_order` (its place in listings),
      `hf_architecture` (the `transformers` class name), `head_prefixes` (its tensors' checkpoint names),
      `label_names`, `output_names` (what serving returns), `input_rank` (2, or 3 for choices),
      `has_pooler`, `id2label_outputs` and `serving_top_k` (what the export metadata carries).
    - `__init__` creates the head layers; `build_head()` builds them; `head(out, x, training)` maps the
      backbone's outputs to the task's fields (`logits`, ...).
    - `automatic_global_attention(input_ids)`: the global mask used when the caller gives none (None: none).
    - `default_loss()`, `default_loss_weights()`, `default_metrics()`: Keras objects; the loss also makes the
      model's own `loss` output. `loss_predictions(fields)`: what the loss and metrics see;
      `loss_targets(labels, fields, sample_weight)`: the same with the labels (and per-label weights), for a
      task whose Keras steps compute only what the labels need (masked LM: see `in_keras_step`).
    - `check_labels(x, context)`: the labels' shapes and values (with `tf_longformer.validation` helpers).
    - `head_weight_map()`: the head's variables under their Hugging Face names.
    - `serving_probabilities(out, attention_mask, top_k)`: the `probabilities` signature's extra outputs.
    """

    task: str = ""
    task_order = 100
    hf_architecture = "LongformerModel"
    head_prefixes: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ("labels",)
    output_names: tuple[str, ...] = ("logits",)
    input_rank = 2  # of `input_ids`: (batch, length); multiple choice: (batch, choices, length)
    has_pooler = False
    id2label_outputs = False  # the export metadata carries `id2label` for clients
    serving_top_k = False  # the `probabilities` signature returns the top-k classes per position

    def __init__(self, config, **kwargs):
        if isinstance(config, Mapping):
            config = LongformerConfig.from_dict(config)
        if not isinstance(config, LongformerConfig):
            raise TypeError(f"`config` must be a LongformerConfig or a dict, got {type(config).__name__}.")
        super().__init__(**kwargs)
        self.config = config
        self.backbone = LongformerBackbone(**backbone_arguments(config, use_pooler=self.has_pooler),
                                           dtype=self.dtype_policy, name="longformer")
        self._own_loss = _unreduced(self.default_loss())

    # The backbone's parts, where users and the reference expect them.
    embeddings = property(lambda self: self.backbone.embeddings)
    encoder = property(lambda self: self.backbone.encoder)
    pooler = property(lambda self: self.backbone.pooler)
    padding_multiple = property(lambda self: self.backbone.padding_multiple)

    # ------------------------------------------------------------------------------------ what tasks declare
    def build_head(self):
        pass

    def head(self, out, x, training):
        raise NotImplementedError(f"{type(self).__name__} must define `head(out, x, training)`.")

    def backbone_inputs(self, x):
        """The backbone's tensor inputs from the parsed inputs (multiple choice flattens its choices here)."""
        return {k: x[k] for k in TENSOR_INPUTS}

    def automatic_global_attention(self, input_ids):
        return None

    def default_loss(self):
        return None

    def default_loss_weights(self):
        return None

    def default_metrics(self):
        return None

    def loss_predictions(self, fields):
        return fields["logits"]

    def loss_targets(self, labels, fields, sample_weight=None):
        """`(labels, predictions, sample_weight)` as the loss and the metrics see them."""
        return labels, self.loss_predictions(fields), sample_weight

    def check_labels(self, x, context):
        pass

    def note_compiled(self, loss, metrics):
        """`compile()`'s loss and metrics once resolved (a task whose Keras steps take shortcuts checks them)."""

    def head_weight_map(self):
        return {}

    @classmethod
    def normalise_checkpoint(cls, state):
        """Checkpoint names this task's head writes differently from how it loads (e.g. tied weights)."""
        return state

    def probability_kind(self):
        """How the `probabilities` serving signature turns logits into probabilities (None: no signature)."""
        return "softmax"

    def serving_probabilities(self, out, attention_mask, top_k):
        """The `probabilities` signature: the head's outputs plus probabilities and predicted classes."""
        result = dict(out)
        logits = tf.cast(out["logits"], tf.float32)
        if self.probability_kind() == "sigmoid":
            probs = tf.sigmoid(logits)
            result["probabilities"] = probs
            result["predictions"] = tf.cast(probs > 0.5, tf.int32)
        else:
            result["probabilities"] = tf.nn.softmax(logits, axis=-1)
            result["predictions"] = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return result

    # ------------------------------------------------------------------------------------------------- call
    def call(self, input_ids=None, attention_mask=None, head_mask=None, global_attention_mask=None,
             token_type_ids=None, position_ids=None, inputs_embeds=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, training=False, **labels):
        """Inputs in the Hugging Face order (a tensor, a list, a dict or keywords), labels as keywords named
        by `label_names`; returns a `LongformerOutput` (a tuple with `return_dict=False`)."""
        x = self.parse_inputs(input_ids, labels, attention_mask=attention_mask, head_mask=head_mask,
                              global_attention_mask=global_attention_mask, token_type_ids=token_type_ids,
                              position_ids=position_ids, inputs_embeds=inputs_embeds,
                              output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                              return_dict=return_dict)
        inputs = self.backbone_inputs(x)
        if inputs["global_attention_mask"] is None and inputs["input_ids"] is not None:
            inputs["global_attention_mask"] = self.automatic_global_attention(tf.convert_to_tensor(inputs["input_ids"]))
        out = self.backbone(**inputs, output_attentions=x["output_attentions"],
                            output_hidden_states=x["output_hidden_states"], training=training)
        fields = self.head(out, x, training)
        y = self.labels_of(x)
        loss = None if y is None else self.task_loss(*self.loss_targets(y, fields)[:2])
        return self.pack_outputs(out, x["return_dict"], loss=loss, **fields)

    def task_loss(self, labels, predictions):
        """The model's own `loss`: the task's Keras loss (`default_loss()`), weighted as `compile()` weighs it."""
        loss = self._own_loss
        if not isinstance(loss, Mapping):
            return tf.reduce_mean(loss(labels, predictions))
        weights = self.default_loss_weights() or {}
        return tf.add_n([weights.get(k, 1.0) * tf.reduce_mean(loss[k](labels[k], predictions[k])) for k in loss])

    def first_separator(self, input_ids):
        """Index of each row's first `</s>`, and whether the row has one at all (eager mode warns if not)."""
        ids = tf.cast(input_ids, tf.int32)
        is_sep = tf.equal(ids, self.config.sep_token_id)
        first = tf.argmax(tf.cast(is_sep, tf.int32), axis=-1, output_type=tf.int32)
        has_sep = tf.reduce_any(is_sep, axis=-1)
        if tf.executing_eagerly() and not bool(tf.reduce_all(has_sep)):
            missing = np.flatnonzero(~has_sep.numpy().reshape(-1)).tolist()
            warnings.warn(
                f"Rows {missing} have no separator token (id {self.config.sep_token_id}); they get no automatic "
                "global attention. Pass `global_attention_mask` to choose it yourself.",
                stacklevel=5,
            )
        return first, has_sep

    # ------------------------------------------------------------------------------------------ Keras plumbing
    def build(self, input_shape=None):
        if self.built:  # Keras may build again from a saved build config (`.keras` loading)
            return
        self.backbone.build()
        self.build_head()
        self.built = True

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(LongformerConfig.from_dict(config.pop("config")), **config)

    @property
    def _default_save_signature(self):
        # `tf.saved_model.save` traces this; Keras's own would feed float ids of the first call's fixed shape,
        # which the input checks refuse. Int ids of any batch and length instead.
        spec = tf.TensorSpec([None] * self.input_rank, tf.int32, name="input_ids")
        return tf.function(lambda input_ids: dict(self(input_ids)), input_signature=[spec])

    def gradient_checkpointing_enable(self, enabled=True):
        """Recompute each layer's activations in the backward pass: far less memory for long inputs, for about
        one more forward pass of compute. Also `LongformerConfig(gradient_checkpointing=True)`. Clears the
        cached `fit` / `evaluate` / `predict` functions so the next call traces the new setting."""
        self.config.gradient_checkpointing = bool(enabled)
        self.backbone.gradient_checkpointing = bool(enabled)
        self.train_function = self.test_function = self.predict_function = None

    def gradient_checkpointing_disable(self):
        self.gradient_checkpointing_enable(False)

    # -------------------------------------------------------------------------------------------- training
    def compile(self, optimizer="auto", loss="auto", metrics="auto", loss_weights=None, jit_compile=False,
                **kwargs):
        """Keras `compile`; whatever is left as "auto" gets this task's default.

        Defaults: `LongformerAdamW` (learning rate 3e-5; `training.default_optimizer`), the task's own loss as
        a Keras loss (the same class and settings give the model's `loss` output) and its accuracy. Labels may come as
        `y` or inside the input dict (then they are taken out and used as `y`). With `loss=None` the model's
        own `loss` output is trained on. `jit_compile` defaults to False (Keras' "auto" would pick XLA on a
        GPU), because XLA recompiles the training step for every new batch shape (see the README, "Training");
        pass True to use it.
        """
        def is_auto(value):
            return isinstance(value, str) and value == "auto"

        auto_loss, auto_metrics = is_auto(loss), is_auto(metrics)
        if is_auto(optimizer):
            optimizer = training.default_optimizer()
        if auto_loss:
            loss = self.default_loss()
            if loss_weights is None:
                loss_weights = self.default_loss_weights()
        if auto_metrics:
            metrics = self.default_metrics()
        self.note_compiled(loss, metrics)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        jit_compile=jit_compile, **kwargs)
        if loss is None:  # Keras keeps the previous compile's loss when given None
            self._compile_loss = None
            self.loss = None
        # Saved compile configs keep "auto", so a loaded model resolves its defaults again.
        saved = self._compile_config.config
        if auto_loss:
            saved["loss"] = "auto"
            if saved.get("loss_weights") == self.default_loss_weights():
                saved["loss_weights"] = None
        if auto_metrics:
            saved["metrics"] = "auto"

    def make_train_function(self, force=False):
        """Keras' training function, with the model and the optimizer built BEFORE it is first traced.

        Without a distribution strategy, Keras (TF backend) builds both inside the first trace of the training
        step; variables created there make `tf.function` trace the whole step a second time. Built first, it is
        traced once: the first `fit` of the tiny test model took 18.0 s of CPU, 9.2 s built first (2 cores, under
        load). Under a strategy Keras builds them itself, in its scope, before tracing."""
        if (self.train_function is None or force) and self.optimizer is not None and not self.optimizer.built \
                and getattr(self, "_distribute_strategy", None) is None:
            self.build()
            self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)

    # Keras' steps, marked: while one is traced, `in_keras_step` is True (a Python flag read at trace time), so a
    # task may return from `head` only what its compiled loss and metrics need (`loss_targets` completes it).
    in_keras_step = False

    def _marked_step(self, step, data):
        outer, self.in_keras_step = self.in_keras_step, True
        # Tensors of this trace that the loss and the metrics share (see `loss_targets`); not tracked by Keras.
        object.__setattr__(self, "step_cache", {})
        try:
            return step(data)
        finally:
            self.in_keras_step = outer
            object.__setattr__(self, "step_cache", {})

    def train_step(self, data):
        return self._marked_step(super().train_step, data)

    def test_step(self, data):
        return self._marked_step(super().test_step, data)

    def compile_from_config(self, config):
        # Keras skips `compile()` when loading a model whose `compile` is overridden; ours takes the same config.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _keras_targets(self, x, y, y_pred, sample_weight=None):
        """`(y, predictions, sample_weight)` as Keras losses and metrics see them (`loss_targets`, keyed by label
        name)."""
        in_x = self.labels_inside(x)
        if y is not None and in_x is not None:
            raise ValueError(f"Labels were given twice: as `y` and inside the inputs ({list(self.label_names)}). "
                             "Give them one way.")
        y = in_x if y is None else y
        if not isinstance(y_pred, Mapping):
            return y, y_pred, sample_weight
        names = self.label_names
        if len(names) > 1 and y is not None:
            if not isinstance(y, Mapping):
                if isinstance(y, (list, tuple)) and len(y) == len(names):
                    y = dict(zip(names, y))
                else:
                    raise ValueError(f"{type(self).__name__} takes `y` as a dict {list(names)} or a "
                                     f"({', '.join(names)}) tuple, got {type(y).__name__}.")
            missing = [k for k in names if k not in y]
            if missing:
                raise ValueError(f"`y` lacks {missing}; {type(self).__name__} needs {list(names)}.")
            y = {k: y[k] for k in names}
        if y is None:
            return None, None, sample_weight
        return self.loss_targets(y, y_pred, sample_weight)

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
        targets, predictions, sample_weight = self._keras_targets(x, y, y_pred, sample_weight)
        if targets is None:
            raise ValueError(self._no_labels_message())
        return super().compute_loss(x, targets, predictions, sample_weight, training)

    def _no_labels_message(self):
        where = (f"inside the input dict ({list(self.label_names)}) or " if self.label_names
                 else "(this model has no labels of its own) ")
        return f"{type(self).__name__} has nothing to train on: give labels {where}as `y` with a Keras loss."

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        targets, predictions, sample_weight = self._keras_targets(x, y, y_pred, sample_weight)
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

    # --------------------------------------------------------------------------------------------- export
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' `export`; for `tf_saved_model`, a TF Serving SavedModel with named, dynamic-shape signatures,
        tokenizer and labels beside it (`tokenizer=`, `signatures=`, `int64=`, ...: see `tf_longformer.serving`);
        for `onnx`, the ONNX files of `tf_longformer.onnx_export.export_onnx`."""
        if format == "onnx":
            if input_signature is not None:
                raise ValueError("format='onnx' takes no `input_signature`: the ONNX files have the SavedModel's "
                                 "named inputs (input_ids, attention_mask, global_attention_mask), every axis "
                                 "dynamic.")
            from tf_longformer import onnx_export

            return onnx_export.export_onnx(self, filepath, verbose=verbose, **kwargs)
        from tf_longformer import serving

        return serving.export(self, filepath, format=format, verbose=verbose, input_signature=input_signature,
                              **kwargs)
