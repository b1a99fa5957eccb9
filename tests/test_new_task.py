"""A seventh head is one file: a task module declares everything, and training, checkpoints, serving, the command
line and the registry pick it up with no other file changed.

`NEW_TASK` below is the whole file a contributor would add as `tf_longformer/models/token_regression.py`; the
test loads it as that module (as `tf_longformer.models` would), then uses it through the public entry points.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import tf_longformer.models
from conftest import tiny_config
from tf_longformer import registry, serving
from tf_longformer.commands import convert

NEW_TASK = '''
"""`TFLongformerForTokenRegression`: one number per token (e.g. reading times)."""

import keras
import tensorflow as tf

from tf_longformer import validation
from tf_longformer.hf import dense_map
from tf_longformer.layers.utils import serializable
from tf_longformer.models.base import TFLongformerPreTrainedModel, register_task


@register_task
@serializable
class TFLongformerForTokenRegression(TFLongformerPreTrainedModel):
    task = "token_regression"
    task_order = 6
    hf_architecture = "LongformerForTokenRegression"
    head_prefixes = ("regressor.",)
    output_names = ("scores",)

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.regressor = keras.layers.Dense(1, dtype=self.dtype_policy, name="regressor")

    def build_head(self):
        self.regressor.build((None, None, self.config.hidden_size))

    def head(self, out, x, training):
        return {"scores": tf.squeeze(self.regressor(out["last_hidden_state"]), -1)}

    def loss_predictions(self, fields):
        return fields["scores"]

    def default_loss(self):
        return keras.losses.MeanSquaredError()

    def default_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mean_absolute_error")]

    def check_labels(self, x, context):
        validation.check_floating("labels", x["labels"])
        validation.check_same_shape("labels", x["labels"], context.ref_name, context.ref, context.asserts)

    def head_weight_map(self):
        return dense_map("regressor", self.regressor)

    def probability_kind(self):
        return None
'''


@pytest.fixture(scope="module")
def new_task(tmp_path_factory):
    path = tmp_path_factory.mktemp("new_task") / "token_regression.py"
    path.write_text(NEW_TASK)
    name = "tf_longformer.models.token_regression"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module.TFLongformerForTokenRegression
    registry._TASKS.pop("token_regression", None)  # other tests see the six tasks only
    sys.modules.pop(name, None)


def test_every_module_of_the_models_package_is_imported():
    folder = os.path.dirname(tf_longformer.models.__file__)
    names = {f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py"}
    assert {n for n in names if f"tf_longformer.models.{n}" not in sys.modules} == set()
    assert set(serving.TASKS) >= {"base", "masked_lm", "sequence_classification", "token_classification",
                                  "question_answering", "multiple_choice"}


def test_the_new_task_is_known_everywhere(new_task):
    assert registry.task_class("token_regression") is new_task
    assert serving.TASKS[-1] == "token_regression" and serving.HEAD_OUTPUTS["token_regression"] == ("scores",)
    assert serving.task_from_architectures(["LongformerForTokenRegression"]) == "token_regression"
    assert convert.heads()["token-regression"] == ("TFLongformerForTokenRegression", "LongformerForTokenRegression")


def test_the_new_task_trains_saves_and_serves(new_task, tmp_path):
    model = new_task(tiny_config())
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 60, (2, 11)).astype(np.int32)
    labels = rng.normal(size=(2, 11)).astype(np.float32)
    out = model(ids, labels=labels)
    assert out.scores.shape == (2, 11)
    np.testing.assert_allclose(out.loss.numpy(), np.mean((out.scores.numpy() - labels) ** 2), rtol=1e-6)
    with pytest.raises(TypeError, match="labels"):
        model(ids, labels=labels.astype(np.int32))

    model.compile()  # the task's own defaults: its loss and metric
    history = model.fit({"input_ids": ids, "labels": labels}, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "mean_absolute_error" in history.history

    model.save_pretrained(tmp_path / "ckpt")
    again = new_task.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_array_equal(again(ids).scores.numpy(), model(ids).scores.numpy())
    assert {"regressor.weight", "regressor.bias"} <= set(model.hf_state_dict())

    export = model.export(str(tmp_path / "export" / "1"), signatures=["serving_default"], int64=False)
    loaded = tf.saved_model.load(export).signatures["serving_default"]
    served = loaded(input_ids=tf.constant(ids), attention_mask=tf.ones_like(ids),
                    global_attention_mask=tf.zeros_like(ids))
    assert sorted(served) == ["scores"]
    np.testing.assert_allclose(served["scores"].numpy(), model(ids).scores.numpy(), atol=1e-6)
