"""The task models: one module per task, each registering its class (`tf_longformer.registry`).

Every module of this package is imported here, so a new task is one new file.
"""

import importlib
import pkgutil

from tf_longformer import registry
from tf_longformer.models.base import TFLongformerPreTrainedModel  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

globals().update({cls.__name__: cls for cls in registry.task_classes().values()})

__all__ = ["TFLongformerPreTrainedModel"] + sorted(cls.__name__ for cls in registry.task_classes().values())
