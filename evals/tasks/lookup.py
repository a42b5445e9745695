"""Finding a task: a built-in by name, a user task YAML file, or ``module:attr``."""

from __future__ import annotations

from typing import Any

from evals.tasks.base import TASKS, Task
from evals.tasks.user import load_user_task
from rltk.core.errors import UserError


FAMILIES = {"gym": "dataset"}  # task families asked for as NAME:ARG -> the option ARG fills


def get_task(name: str, **options: Any) -> Task:
    """A built-in task by name (configured with ``options``; ``gym:NAME`` for a family), a user task YAML file, or
    ``module:attr``."""
    if name.endswith((".yaml", ".yml")):
        if options:
            raise UserError(f"task file {name}: --task-arg applies to built-in tasks only (edit the YAML instead)")
        return load_user_task(name)
    family, sep, arg = name.partition(":")
    if family in FAMILIES and sep and arg:  # --task gym:chain_sum is --task gym --task-arg dataset=chain_sum
        key = FAMILIES[family]
        if key in options:
            raise UserError(f"eval task {name!r} already names its {key}: drop --task-arg {key}")
        name, options = family, {**options, key: arg}
    factory = TASKS.get(name)
    try:
        task = factory(**options) if callable(factory) and not isinstance(factory, Task) else factory
    except TypeError as e:
        raise UserError(f"eval task {name!r}: bad option ({e})") from e
    if not isinstance(task, Task):
        raise UserError(f"eval task {name!r} did not give a Task (got {type(task).__name__})")
    return task
