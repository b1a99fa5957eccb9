"""Training pieces: the optimizer, the task losses and metrics, and a crash-safe BackupAndRestore.

Each task class declares its own loss, loss weights and metrics from the pieces here (`default_loss()`,
`default_loss_weights()`, `default_metrics()` in `tf_longformer/models/`); the same loss class with the same
settings (unreduced, then averaged) computes the model's own `loss` output, so `compile()`'s default and the
`loss` output are one piece of code.

How `fit` / `evaluate` find the loss (`TFLongformerPreTrainedModel.compute_loss`):

- Labels as `y`, or inside the input dict under the reference's names (`labels`; `start_positions` and
  `end_positions` for question answering), which are then used as `y`: the compiled Keras loss on the
  model's predictions. Keras sees one tensor per label: `logits` for every head (the bare `TFLongformerModel`:
  `last_hidden_state`); for question answering `{"start_positions": start_logits, "end_positions":
  end_logits}`, matched to `y` given as that dict or as a `(start_positions, end_positions)` pair.
- `compile(loss=None)` and labels inside the inputs: the model's own `loss` output.

`compile()` with no arguments gives `LongformerAdamW` (learning rate 3e-5, weight decay 0.01 except on biases
and LayerNorm, gradients clipped to a global norm of 1.0) and each head's loss and accuracy as Keras objects.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import keras
import numpy as np
import tensorflow as tf

from tf_longformer.files import fsync_directory
from tf_longformer.layers.utils import serializable

DEFAULT_LEARNING_RATE = 3e-5
DEFAULT_WEIGHT_DECAY = 0.01
DEFAULT_CLIPNORM = 1.0
NO_DECAY = ("bias", "gamma", "beta")  # Keras names of biases and LayerNorm scale / offset
IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------- optimizer
@serializable
class LongformerAdamW(keras.optimizers.AdamW):
    """AdamW that never decays the variables whose name matches one of `no_decay` (biases, LayerNorm).

    Keras' `exclude_from_weight_decay()` is not part of an optimizer's config, so it would be lost by a
    `.keras` round trip; here it is an argument and survives saving.
    """

    def __init__(self, learning_rate=DEFAULT_LEARNING_RATE, weight_decay=DEFAULT_WEIGHT_DECAY,
                 no_decay=NO_DECAY, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self.no_decay = tuple(no_decay)
        if self.no_decay:
            self.exclude_from_weight_decay(var_names=list(self.no_decay))

    def get_config(self):
        config = super().get_config()
        config["no_decay"] = list(self.no_decay)
        return config


def default_optimizer(learning_rate=DEFAULT_LEARNING_RATE, weight_decay=DEFAULT_WEIGHT_DECAY):
    """`compile()`'s default optimizer; `learning_rate` (a number or a schedule) and `weight_decay` may be set."""
    return LongformerAdamW(learning_rate=learning_rate, weight_decay=weight_decay, global_clipnorm=DEFAULT_CLIPNORM)


# ------------------------------------------------------------------------------------------------ losses
def _labels_like(labels, logits):
    """Integer labels shaped as `logits` without its class axis (accepts a trailing axis of 1)."""
    labels = tf.cast(labels, tf.int32)
    return tf.reshape(labels, tf.shape(logits)[:-1])


def _counted(labels, num_classes, ignore_index, span):
    """The labels made safe to index with, which of them count, and which of those are out of range."""
    if span:
        # Span positions, as the reference: clipped to [0, length]; `length` (outside the sequence) is ignored.
        labels = tf.clip_by_value(labels, 0, num_classes)
        valid = tf.not_equal(labels, num_classes)
        bad = tf.zeros_like(valid)
    else:
        valid = tf.not_equal(labels, ignore_index)
        bad = valid & ((labels < 0) | (labels >= num_classes))
    return tf.where(valid & ~bad, labels, 0), valid, bad


def _sparse_ce(labels, logits, ignore_index, span):
    """Per-label cross-entropy and which labels count; NaN for a counted label outside the classes (only
    reachable under XLA, where the graph asserts do not run: never another class's logit)."""
    safe, valid, bad = _counted(labels, tf.shape(logits)[-1], ignore_index, span)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    return tf.where(bad, tf.constant(float("nan"), ce.dtype), ce), valid


def _mean_over_counted(values, valid):
    """Per-element terms rescaled so that Keras' mean over all elements is the mean over the counted ones.

    (Keras divides the weighted sum by the number of elements; multiplying each counted term by
    `elements / counted` turns that into the mean over the counted terms, sample weights included.)
    """
    valid = tf.cast(valid, values.dtype)
    total = tf.cast(tf.size(valid), values.dtype)
    return tf.where(valid > 0, values, 0.0) * valid * tf.math.divide_no_nan(total, tf.reduce_sum(valid))


@serializable
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits and integer labels, averaged over the labels that count.

    Labels equal to `ignore_index` (-100, as in the reference) do not count. With `span=True` (question
    answering) labels are positions: clipped to `[0, length]`, and `length` (an answer outside the sequence)
    does not count. Sample weights multiply each example's (or token's) term; as with every Keras loss, the
    weighted terms are then divided by the number of counted terms, whatever their weights.
    """

    def __init__(self, ignore_index=IGNORE_INDEX, span=False, name="sparse_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_index = int(ignore_index)
        self.span = bool(span)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            # One weight per example also weighs every token of it.
            sample_weight = tf.convert_to_tensor(sample_weight)
            extra = len(y_pred.shape) - 1 - len(sample_weight.shape)
            if extra > 0:
                sample_weight = tf.reshape(sample_weight, tf.concat([tf.shape(sample_weight), [1] * extra], 0))
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        ce, valid = _sparse_ce(_labels_like(y_true, logits), logits, self.ignore_index, self.span)
        return _mean_over_counted(ce, valid)

    def get_config(self):
        config = super().get_config()
        config.update(ignore_index=self.ignore_index, span=self.span)
        return config


@serializable
class SequenceClassificationLoss(keras.losses.Loss):
    """The reference's sequence-classification loss, chosen by `problem_type` or, when it is None, by the labels.

    `regression`: mean squared error; `single_label_classification`: cross-entropy (-100 ignored);
    `multi_label_classification`: sigmoid cross-entropy. With `problem_type=None`: regression when
    `num_labels == 1`, cross-entropy for integer labels, sigmoid cross-entropy for float labels.
    """

    PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

    def __init__(self, num_labels, problem_type=None, name="sequence_classification_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if problem_type not in self.PROBLEM_TYPES:
            raise ValueError(f"`problem_type` must be one of {self.PROBLEM_TYPES}, got {problem_type!r}.")
        self.num_labels = int(num_labels)
        self.problem_type = problem_type
        self._kind = None

    def kind_for(self, labels_dtype):
        if self.problem_type is not None:
            return self.problem_type
        if self.num_labels == 1:
            return "regression"
        return "single_label_classification" if tf.as_dtype(labels_dtype).is_integer else "multi_label_classification"

    def __call__(self, y_true, y_pred, sample_weight=None):
        # `Loss.__call__` casts the labels to float before `call`: decide on their dtype first.
        self._kind = self.kind_for(tf.convert_to_tensor(y_true).dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        kind = self._kind or self.kind_for(y_true.dtype)
        if kind == "regression":
            labels = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(logits))
            return tf.reduce_mean(tf.square(logits - labels), axis=-1)
        if kind == "single_label_classification":
            ce, valid = _sparse_ce(_labels_like(y_true, logits), logits, IGNORE_INDEX, span=False)
            return _mean_over_counted(ce, valid)
        labels = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(logits))
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(num_labels=self.num_labels, problem_type=self.problem_type)
        return config


# ----------------------------------------------------------------------------------------------- metrics
@serializable
class TaskAccuracy(keras.metrics.Mean):
    """Share of labels predicted right, from logits.

    Integer labels: `argmax(logits) == label` over the labels that count (as `SparseCrossentropy`: not
    `ignore_index`; with `span=True`, inside the sequence). Float labels of the logits' shape (multi-label):
    `(logit > 0) == (label > 0.5)` for every label.
    """

    def __init__(self, ignore_index=IGNORE_INDEX, span=False, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_index = int(ignore_index)
        self.span = bool(span)

    def update_state(self, y_true, y_pred, sample_weight=None):
        logits = tf.cast(y_pred, tf.float32)
        y_true = tf.convert_to_tensor(y_true)
        if not y_true.dtype.is_integer and y_true.shape.rank == logits.shape.rank and logits.shape[-1] != 1:
            correct = tf.equal(logits > 0, tf.cast(y_true, tf.float32) > 0.5)
            weights = tf.ones_like(logits)
        else:
            labels = _labels_like(y_true, logits)
            safe, valid, _ = _counted(labels, tf.shape(logits)[-1], self.ignore_index, self.span)
            correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), safe)
            weights = tf.cast(valid, tf.float32)
        if sample_weight is not None:
            sw = tf.cast(sample_weight, tf.float32)
            sw = tf.reshape(sw, tf.concat([tf.shape(sw), tf.ones([weights.shape.rank - sw.shape.rank], tf.int32)], 0))
            weights = weights * sw
        # Flat, so that every label counts once (Keras' Mean would first average each example's labels).
        return super().update_state(tf.reshape(tf.cast(correct, tf.float32), [-1]),
                                    sample_weight=tf.reshape(weights, [-1]))

    def get_config(self):
        config = super().get_config()
        config.update(ignore_index=self.ignore_index, span=self.span)
        return config


# ----------------------------------------------------------------------------------- fault-tolerant backups
class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups survive a crash at any moment, the write included.

    Keras writes the weights file in place, then a separate metadata file: a crash during the write leaves a
    corrupt file, and a crash between the two leaves new weights with an old epoch number (the resumed run
    then silently trains one epoch too many). Here the weights (model and optimizer) and the epoch are written
    together into one temporary file, flushed to disk, and renamed over `latest.weights.h5`: the latest backup
    is always a complete old one or a complete new one.

    Resuming restores the weights, the optimizer state (step count included, so schedules continue) and the
    random state of dropout, then starts again at the epoch after the last backup. Interrupted epochs are
    redone from their start, so `save_freq="epoch"` (the default) gives a resumed run exactly equal to an
    uninterrupted one when the data of each epoch is the same (e.g. no reshuffling, or a shuffle seeded per
    epoch). Same arguments as Keras' callback.
    """

    METADATA_KEY = "tf_longformer_training_metadata"
    SEEDS_KEY = "tf_longformer_seed_states"

    def _tmp_path(self):
        return os.path.join(self.backup_dir, f"tmp-{os.getpid()}.weights.h5")

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._weights_path):
            tmp_prev = self._prev_weights_path + ".tmp"
            shutil.copyfile(self._weights_path, tmp_prev)
            os.replace(tmp_prev, self._prev_weights_path)
        tmp = self._tmp_path()
        self.model.save_weights(tmp, overwrite=True)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        with h5py.File(tmp, "a") as f:
            f.attrs[self.METADATA_KEY] = json.dumps(metadata)
            # Keras' weight files leave out the dropout random state; without it a resumed run draws other masks.
            seeds = f.create_group(self.SEEDS_KEY)
            for i, state in enumerate(seed_states(self.model)):
                seeds.create_dataset(str(i), data=np.asarray(state.numpy()))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        self._before_commit(tmp)
        os.replace(tmp, self._weights_path)
        fsync_directory(self.backup_dir)

    def _before_commit(self, tmp_path):
        """Called after the new backup is fully written and before it replaces the old one (a test hook)."""

    @classmethod
    def read_metadata(cls, path):
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(cls.METADATA_KEY)
        if raw is None:
            raise OSError(f"{path!r} is not a tf_longformer backup (no training metadata in it).")
        return json.loads(raw)

    def _load_model(self):
        if not self.model.built:
            raise ValueError(
                "BackupAndRestore needs a built model before `fit()`; call the model on a batch (or `build()`) first."
            )
        # Leftovers of a write that never committed are not backups.
        if os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                if name.startswith("tmp-") or name.endswith(".tmp"):
                    os.remove(os.path.join(self.backup_dir, name))
        if not os.path.exists(self._weights_path):
            return
        metadata = self.read_metadata(self._weights_path)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self._weights_path)
        states = seed_states(self.model)
        with h5py.File(self._weights_path, "r") as f:
            saved = f.get(self.SEEDS_KEY)
            if saved is not None and len(saved) == len(states):
                for i, state in enumerate(states):
                    state.assign(saved[str(i)][()])
        self.model._initial_epoch = int(metadata["epoch"])

    def on_train_begin(self, logs=None):
        try:
            self._load_model()
        except OSError:
            if not os.path.exists(self._prev_weights_path):
                raise
            os.replace(self._prev_weights_path, self._weights_path)
            self._load_model()


def seed_states(model):
    """The state variables of every random generator (dropout) of a model, in a fixed order."""
    out, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", ()):
            if id(generator) not in seen:
                seen.add(id(generator))
                out.append(generator.state)
    return out


def weights_digest(model):
    """Every variable of a model and of its optimizer as numpy arrays, for comparing runs.

    Keys are `model/<index>/<path without the model's name>` and `optimizer/<index>`, so two models
    of the same architecture match whatever their names.
    """
    out = {}
    for i, v in enumerate(model.weights):
        out[f"model/{i:04d}/{v.path.split('/', 1)[-1]}"] = np.asarray(v.numpy())
    if getattr(model, "optimizer", None) is not None:
        for i, v in enumerate(model.optimizer.variables):
            out[f"optimizer/{i:04d}"] = np.asarray(v.numpy())
    return out
