"""Tasks and parameters as people read them: ``data=LoadData[4f26c715](n_rows=400, seed=0)``.

The one formatter for every place a person reads parameters (``kart runs``, ``kart why``, the
report, error messages, Airflow display names, Kedro messages). Run logs keep gokart's raw strings,
where a task-valued parameter is ``{"type": family, "params": <hex of bz2 JSON>}``
(``kart_core.hashing.serialize_task_reference``); this module decodes those, or reads live task
objects, into one small tree (``TaskText``) and renders it:

- a task is ``Class[first 8 hex of its unique id](name=value, ...)``, its significant parameters only;
- a task nested deeper than ``depth`` shows as ``Class[1234abcd]`` (``Class(…)`` when its id is unknown);
- a plain value longer than ``max_value`` characters is cut with ``…``; an empty value shows as ``""``;
- a list of tasks longer than ``max_items`` shows its first items and ``… N more``.

Pure and light (no luigi, no pandas): ``kart runs`` imports it at start-up.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Union

from kart_core.contract import is_kart_task
from kart_core.hashing import decode_task_reference, short_id

__all__ = [
    "MAX_VALUE",
    "IdLookup",
    "TaskText",
    "decode_value",
    "params_text",
    "readable_params",
    "render_value",
    "task_params_text",
    "task_text",
    "task_tree",
    "value_text",
]

MAX_VALUE = 40  # characters of one plain value before it is cut
_DEPTH = 1  # nested tasks down to this depth show their parameters; deeper ones only Class[id]
_MAX_ITEMS = 4  # tasks of a list shown before "… N more"

# (class name, stored significant params) -> the unique id of that run, or None when unknown / ambiguous.
IdLookup = Callable[[str, Mapping[str, str]], str | None]

Value = Union[str, "TaskText", list["TaskText"]]


@dataclasses.dataclass(frozen=True)
class TaskText:
    """A task as the formatter sees it: bare class name, unique id (None: unknown), parameter values."""

    name: str
    unique_id: str | None
    params: dict[str, Value]


# --- building the tree: from live tasks, or from gokart's stored strings ---------------------------


def task_tree(task: Any) -> TaskText:
    """The ``TaskText`` of a live kart task, its significant parameters as luigi serializes them.

    A task-valued parameter (``TaskInstanceParameter``, ``ListTaskInstanceParameter``) becomes a
    nested ``TaskText``. A unique id that cannot be computed (its ``requires()`` raises) is None.
    """
    params: dict[str, Value] = {}
    values = task.param_kwargs  # a new dict per read: read once
    for name, param in type(task).get_params():
        if not param.significant or name not in values:
            continue
        value = values[name]
        if is_kart_task(value):
            params[name] = task_tree(value)
        elif isinstance(value, list | tuple) and value and all(is_kart_task(item) for item in value):
            params[name] = [task_tree(item) for item in value]
        else:
            params[name] = str(param.serialize(value))
    return TaskText(type(task).__name__, _unique_id_or_none(task), params)


def _unique_id_or_none(task: Any) -> str | None:
    try:
        return str(task.make_unique_id())
    except Exception:  # an id needs requires() of the task and its upstreams, which may be what is broken
        return None


def decode_value(raw: str, lookup: IdLookup | None = None) -> Value:
    """One stored parameter string as a tree: a serialized task (or list of them) decoded, else ``raw``.

    ``lookup`` finds the unique id of a decoded task from its class name and parameters (e.g. among
    the runs of the workspace); without it, or when it returns None, the id is unknown. A value that
    only looks like a serialized task (it does not decode) stays as it is.
    """
    stripped = raw.lstrip()
    if stripped.startswith("{") and '"type"' in stripped:
        return _decode_task(raw, lookup) or raw
    if stripped.startswith("[") and '"type' in stripped:
        try:
            items = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(items, list) and items and all(isinstance(item, str) for item in items):
            tasks = [_decode_task(item, lookup) for item in items]
            if all(task is not None for task in tasks):
                return [task for task in tasks if task is not None]
    return raw


def _decode_task(raw: str, lookup: IdLookup | None) -> TaskText | None:
    try:
        reference = decode_task_reference(raw)
        name = str(reference["type"]).rpartition(".")[2]
        stored = {str(key): str(value) for key, value in dict(reference.get("params", {})).items()}
    except (ValueError, KeyError, TypeError, OSError, AttributeError):  # bz2/hex/JSON errors of a foreign value
        return None
    unique_id = lookup(name, stored) if lookup is not None else None
    return TaskText(name, unique_id, {key: decode_value(value, lookup) for key, value in stored.items()})


# --- rendering --------------------------------------------------------------------------------------


def render_value(value: Value, depth: int = 1, max_value: int | None = MAX_VALUE, max_depth: int = _DEPTH) -> str:
    """One value of the tree as text; ``depth`` is how deep a task found here is nested (1: a parameter's)."""
    if isinstance(value, TaskText):
        return _render_task(value, depth, max_value, max_depth)
    if isinstance(value, list):
        shown = [_render_task(item, depth, max_value, max_depth) for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            shown.append(f"… {len(value) - _MAX_ITEMS} more")
        return f"[{', '.join(shown)}]"
    return _plain(value, max_value)


def _render_task(task: TaskText, depth: int, max_value: int | None, max_depth: int) -> str:
    label = f"{task.name}[{short_id(task.unique_id)}]" if task.unique_id else task.name
    if depth > max_depth:
        return label if task.unique_id or not task.params else f"{label}(…)"
    inner = ", ".join(
        f"{name}={render_value(value, depth + 1, max_value, max_depth)}" for name, value in task.params.items()
    )
    return f"{label}({inner})"


def _plain(text: str, max_value: int | None) -> str:
    if text == "" or text != text.strip():
        text = json.dumps(text)  # an empty or space-padded value must stay visible
    if max_value is not None and len(text) > max_value:
        return text[: max_value - 1] + "…"
    return text


# --- what callers use -------------------------------------------------------------------------------


def task_text(task: Any, max_value: int | None = MAX_VALUE, max_depth: int = _DEPTH) -> str:
    """A live task as ``LoadData[4f26c715](n_rows=400, seed=0)``; a plain luigi task as its ``task_id``.

    Nested tasks show their own parameters down to ``max_depth``, deeper ones as ``Class[id]``.
    """
    if not is_kart_task(task):
        return str(task.task_id)
    return _render_task(task_tree(task), 0, max_value, max_depth)


def task_params_text(task: Any, max_value: int | None = MAX_VALUE, max_depth: int = _DEPTH) -> dict[str, str]:
    """A live kart task's significant parameters, each rendered: ``{"data": "LoadData[4f26c715](n_rows=400, ...)"}``."""
    return {name: render_value(value, 1, max_value, max_depth) for name, value in task_tree(task).params.items()}


def value_text(raw: str, lookup: IdLookup | None = None, max_value: int | None = MAX_VALUE) -> str:
    """One stored (gokart-serialized) parameter value, readable: ``LoadData[4f26c715](n_rows=400, seed=0)``."""
    return render_value(decode_value(raw, lookup), 1, max_value)


def readable_params(
    params: Mapping[str, str], lookup: IdLookup | None = None, max_value: int | None = MAX_VALUE
) -> dict[str, str]:
    """Stored parameters (name -> gokart's string), each value made readable with ``value_text``."""
    return {name: value_text(raw, lookup, max_value) for name, raw in params.items()}


def params_text(params: Mapping[str, str], lookup: IdLookup | None = None, max_value: int | None = MAX_VALUE) -> str:
    """Stored parameters as one line: ``data=LoadData[4f26c715](n_rows=400, seed=0), test_fraction=0.25``."""
    return ", ".join(f"{name}={text}" for name, text in readable_params(params, lookup, max_value).items())
