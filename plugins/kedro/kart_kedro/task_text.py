"""Tasks as structured descriptions (``{"task": ..., "params": ...}``, as a catalog entry writes them), and
the parameter where two tasks that should be one differ. One-line text is ``kart_core.task_text``'s."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import kart_core

__all__ = ["describe", "first_difference"]


def describe(task: Any) -> dict[str, Any]:
    """``{"task": "pkg.module.Class", "params": {...}}`` with nested tasks described the same way.

    Only significant parameters count (those in the unique id); values are luigi's strings.
    """
    params: dict[str, Any] = {}
    values = task.param_kwargs
    for name, param in type(task).get_params():
        if not param.significant:
            continue
        value = values[name]
        if kart_core.TaskOnKart.is_task_on_kart(value):
            params[name] = [describe(item) for item in value] if isinstance(value, tuple) else describe(value)
        else:
            params[name] = param.serialize(value)
    return {"task": f"{type(task).__module__}.{type(task).__qualname__}", "params": params}


def _text(description: Mapping[str, Any]) -> str:
    name = str(description["task"]).rpartition(".")[2]
    parts = [f"{key}={_value(value)}" for key, value in description["params"].items()]
    return f"{name}({', '.join(parts)})"


def _value(value: Any) -> str:
    if isinstance(value, Mapping) and "task" in value:
        return _text(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return str(value)


def first_difference(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """Where two task descriptions first differ: (``"source.window"``, ``"7"``, ``"5"``); None when equal.

    The place is ``"task"`` when the classes differ, else the dotted parameter names from the root.
    """
    for path, left, right in _differences(expected, actual, ()):
        return ".".join(path) or "task", _value(left), _value(right)
    return None


def _differences(left: Any, right: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    if isinstance(left, Mapping) and isinstance(right, Mapping) and "task" in left and "task" in right:
        if left["task"] != right["task"]:
            yield (*path, "task"), left["task"], right["task"]
            return
        names = list(dict.fromkeys([*left["params"], *right["params"]]))
        for name in names:
            yield from _differences(left["params"].get(name), right["params"].get(name), (*path, name))
        return
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from _differences(a, b, (*path[:-1], f"{path[-1]}[{index}]") if path else (f"[{index}]",))
        return
    if left != right:
        yield path, left, right
