"""Training runs that tests start in fresh processes (device layout, TF_CONFIG clusters and SIGKILL need them).

    python tests/training_worker.py '<json options>'

Every run trains `TFLongformerForSequenceClassification` (tiny config, one layer) from the initial weights in
`options["init"]` (written by the first run when missing) on a fixed dataset and writes its final weights
(model and optimizer) to `options["out"]` as an `.npz`. Modes:

- `single`: one device.
- `mirrored`: `single`, then `MirroredStrategy` over two logical CPU devices with the default Keras loss
  (`out`) and with the model's own loss (`out_own_loss`), in one process.
- `multiworker`: one worker of a `MultiWorkerMirroredStrategy` cluster described by `TF_CONFIG`.
- `resumable`: one device with `tf_longformer.training.BackupAndRestore`; `pause_at=[epoch, batch]` writes
  `marker` and then waits (for the test's SIGKILL); `crash_in_write=epoch` SIGKILLs itself in the middle of
  writing that epoch's backup.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # tf_longformer itself comes from the PYTHONPATH the test gives (helpers.package_parent)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

GLOBAL_BATCH = 4
STEPS = 3


def make_config(dropout=0.0):
    import tf_longformer as T

    # The tests' tiny config, without importing the PyTorch reference into every worker, and with one layer: what
    # the runs check (replicas and workers agree with one device, a resumed run equals an uninterrupted one) does
    # not depend on the depth, and the second layer cost seconds of tracing in every run (measured, one process:
    # the mirrored run 41 s -> 28 s CPU, a resumable run 12.8 s -> 9.0 s).
    return T.LongformerConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=130, attention_window=[4], type_vocab_size=1, layer_norm_eps=1e-5,
        num_labels=3, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        global_buckets=[],  # as helpers.tiny_config_dict: no bucket path to trace
    )


def make_data(steps=STEPS, length=24, seed=0):
    """A fixed dataset: varying global tokens per row (none, one, many), some padding."""
    import numpy as np

    from conftest import random_batch

    rng = np.random.default_rng(seed)
    batch = random_batch(rng, GLOBAL_BATCH * steps, length, n_global=(0, 5))
    batch["labels"] = rng.integers(0, 3, size=GLOBAL_BATCH * steps)
    return batch


def dataset(data):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(data).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def build(opts, dropout=0.0):
    import keras

    import tf_longformer as T

    model = T.TFLongformerForSequenceClassification(make_config(dropout))
    model.build()
    if opts.get("init") and not os.path.exists(opts["init"]):
        model.save_weights(opts["init"])  # the first run fixes the initial weights for the others
    if opts.get("init"):
        model.load_weights(opts["init"])
    model._start_weights = [w.copy() for w in model.get_weights()]
    loss = None if opts.get("own_loss") else "auto"
    model.compile(optimizer=keras.optimizers.SGD(opts.get("lr", 0.5)), loss=loss)
    return model


def save_result(model, path, **extra):
    import numpy as np

    from tf_longformer.training import weights_digest

    start = getattr(model, "_start_weights", None)
    if start is not None:
        extra["moved"] = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), start))
    arrays = {k.replace("/", "|"): v for k, v in weights_digest(model).items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays, **{f"extra|{k}": np.asarray(v) for k, v in extra.items()})
    os.replace(tmp, path)


def run_single(opts):
    model = build(opts)
    history = model.fit(dataset(make_data()), epochs=opts.get("epochs", 1), verbose=0)
    return model, history.history["loss"]


def main(opts):
    import tensorflow as tf

    # The test module's Grappler setting (conftest.GRAPPLER_MODULES passes it on as TF_LONGFORMER_TEST_GRAPPLER).
    if os.environ.get("TF_LONGFORMER_TEST_GRAPPLER") == "0":
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    mode = opts["mode"]
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        single, single_loss = run_single(opts)
        save_result(single, opts["out_single"], loss=single_loss)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        for own_loss, out in ((False, opts["out"]), (True, opts["out_own_loss"])):
            with strategy.scope():
                model = build({**opts, "own_loss": own_loss})
            history = model.fit(dataset(make_data()), epochs=opts.get("epochs", 1), verbose=0)
            save_result(model, out, loss=history.history["loss"], replicas=strategy.num_replicas_in_sync)
    elif mode == "single":
        model, loss = run_single(opts)
        save_result(model, opts["out"], loss=loss)
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            model = build(opts)
        history = model.fit(dataset(make_data()), epochs=opts.get("epochs", 1), verbose=0)
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        save_result(model, opts["out"], loss=history.history["loss"], replicas=strategy.num_replicas_in_sync,
                    index=task["index"])
    elif mode == "resumable":
        run_resumable(opts)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def run_resumable(opts):
    import keras

    from tf_longformer.training import BackupAndRestore

    keras.utils.set_random_seed(7)  # the same dropout seeds in every process
    model = build(opts, dropout=0.1)
    data = make_data(steps=4)

    class Pause(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if opts.get("pause_at") == [self._epoch, batch]:
                with open(opts["marker"], "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(120)  # the test kills us here

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    class CrashingBackup(BackupAndRestore):
        def _before_commit(self, tmp_path):
            if opts.get("crash_in_write") == self._current_epoch:
                with open(tmp_path, "r+b") as f:  # a torn write: half the new file is on disk
                    f.truncate(os.path.getsize(tmp_path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)

    backup = CrashingBackup(opts["backup_dir"])
    history = model.fit(dataset(data), epochs=opts.get("epochs", 3), verbose=0, callbacks=[backup, Pause()])
    save_result(model, opts["out"], epochs_run=len(history.history.get("loss", [])))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
