"""The task classes, by name: filled by `@register_task` as `tf_longformer.models` imports its modules.

Serving, the command line, checkpoint conversion and pipelines find a task's class and what it declares here,
so none of them lists the tasks or imports a task class. A leaf module: it imports nothing of the package.
"""

from __future__ import annotations

_TASKS: dict = {}  # task name -> class, in registration order


def register_task(cls):
    """Class decorator: makes a task class known by its `task` name (`"question_answering"`, ...)."""
    name = cls.task
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must declare a `task` name (a non-empty string), got {name!r}.")
    known = _TASKS.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"Two task classes claim the task {name!r}: {known.__name__} and {cls.__name__}.")
    _TASKS[name] = cls
    return cls


def task_names() -> tuple[str, ...]:
    """Every registered task name, the bare model first, then in the order the task modules declare."""
    return tuple(sorted(_TASKS, key=lambda name: (_TASKS[name].task_order, name)))


def task_classes() -> dict:
    return {name: _TASKS[name] for name in task_names()}


def task_class(name: str):
    """The class of a task name; a `ValueError` naming the known tasks otherwise."""
    if name not in _TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {list(task_names())}.")
    return _TASKS[name]


def task_for_architecture(architectures) -> str | None:
    """The task of the first Hugging Face `config.architectures` entry that names one (None if none does)."""
    by_architecture = {cls.hf_architecture: name for name, cls in _TASKS.items()}
    for architecture in architectures or ():
        if architecture in by_architecture:
            return by_architecture[architecture]
    return None
