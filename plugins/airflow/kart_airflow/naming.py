"""How a kart task is named in Airflow: task ids, display names, import paths. Pure: no Airflow import."""

from __future__ import annotations

import re
from typing import Any

import kart_core

__all__ = ["task_id_for", "display_name_for", "import_path_of", "MAX_ID_LENGTH"]

MAX_ID_LENGTH = 250  # Airflow's limit for task and group ids
_INVALID_ID_CHARACTERS = re.compile(r"[^\w.-]", re.ASCII)
_MAX_DISPLAY_VALUE = 60  # long values (nested tasks, lists) are shortened in the display name


def task_id_for(task: Any) -> str:
    """``Class_<first 8 of unique id>``: short, stable across processes, and a valid Airflow id."""
    suffix = f"_{kart_core.short_id(task.make_unique_id())}"
    name = _INVALID_ID_CHARACTERS.sub("_", type(task).__name__)
    return name[: MAX_ID_LENGTH - len(suffix)] + suffix


def import_path_of(task: Any) -> str:
    """``package.module.Class``, from which the operator re-imports the class at run time."""
    return f"{type(task).__module__}.{type(task).__qualname__}"


def display_name_for(task: Any) -> str:
    """``Class(name=value, ...)`` with the significant parameters; nested tasks as ``Class[uid8]``."""
    params = dict(task.get_params())
    parts = []
    for name, value in task.param_kwargs.items():
        if params[name].significant:
            parts.append(f"{name}={_shown_value(params[name], value)}")
    return f"{type(task).__name__}({', '.join(parts)})"


def _shown_value(param: Any, value: Any) -> str:
    if isinstance(value, kart_core.TaskOnKart):
        return value.kart_label()
    if isinstance(value, list | tuple) and value and all(isinstance(v, kart_core.TaskOnKart) for v in value):
        return f"[{', '.join(v.kart_label() for v in value)}]"
    text = str(param.serialize(value))
    return text if len(text) <= _MAX_DISPLAY_VALUE else text[: _MAX_DISPLAY_VALUE - 1] + "…"
