"""Build a kart task from a catalog entry's ``task`` / ``params`` / ``workspace_directory``.

A TaskInstanceParameter value is a nested mapping of the same shape (``{task: ..., params: ...}``),
a ListTaskInstanceParameter value a list of them; parameters left out take the task's defaults
and the luigi config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kart_core

__all__ = ["TaskConfigError", "import_task_class", "task_from_config"]


class TaskConfigError(ValueError):
    """A catalog entry names a task class or parameter that does not exist or does not fit."""


def import_task_class(path: str) -> type[kart_core.TaskOnKart[Any]]:
    """The TaskOnKart subclass at the dotted ``path`` (``package.module.ClassName``)."""
    module_name, _, class_name = str(path).rpartition(".")
    if not module_name:
        raise TaskConfigError(f"task {path!r} is not a dotted path; write it as 'package.module.ClassName'.")
    try:
        task_class = kart_core.import_object(str(path))
    except ImportError as exc:
        raise TaskConfigError(f"task {path!r}: {exc}.") from exc
    if not (isinstance(task_class, type) and issubclass(task_class, kart_core.TaskOnKart)):
        raise TaskConfigError(
            f"task {path!r} is a {type(task_class).__name__}, not a subclass of kart_core.TaskOnKart."
        )
    return task_class


def task_from_config(
    path: str, params: Mapping[str, Any] | None = None, workspace_directory: str | None = None
) -> kart_core.TaskOnKart[Any]:
    """Instantiate the task at ``path`` with ``params`` (nested task mappings become task objects)."""
    task_class = import_task_class(path)
    declared = dict(task_class.get_params())
    kwargs = {}
    for name, value in dict(params or {}).items():
        if name not in declared:
            known = ", ".join(sorted(n for n in declared if not hasattr(kart_core.TaskOnKart, n)))
            raise TaskConfigError(f"task {path!r} has no parameter {name!r}. Its own parameters: {known or '(none)'}.")
        kwargs[name] = _convert(path, name, declared[name], value, workspace_directory)
    if workspace_directory is not None:
        kwargs["workspace_directory"] = workspace_directory
    try:
        return task_class(**kwargs)
    except Exception as exc:
        raise TaskConfigError(f"task {path!r} with params {dict(params or {})!r}: {type(exc).__name__}: {exc}") from exc


def _convert(path: str, name: str, param: Any, value: Any, workspace_directory: str | None) -> Any:
    """A config value as the parameter expects it: nested tasks built, strings parsed."""
    if isinstance(param, kart_core.TaskInstanceParameter):
        return _nested_task(path, name, value, workspace_directory)
    if isinstance(param, kart_core.ListTaskInstanceParameter):
        if not isinstance(value, list | tuple):
            raise TaskConfigError(
                f"task {path!r}: parameter {name!r} takes a list of {{task: ..., params: ...}} mappings."
            )
        return [_nested_task(path, name, item, workspace_directory) for item in value]
    if isinstance(value, str):
        try:
            return param.parse(value)
        except Exception as exc:
            raise TaskConfigError(f"task {path!r}: parameter {name!r} cannot parse {value!r}: {exc}") from exc
    return value


def _nested_task(path: str, name: str, value: Any, workspace_directory: str | None) -> kart_core.TaskOnKart[Any]:
    if not isinstance(value, Mapping) or "task" not in value or set(value) - {"task", "params"}:
        raise TaskConfigError(
            f"task {path!r}: parameter {name!r} is a task; write it as "
            f"{{task: package.module.Class, params: {{...}}}}, got {value!r}."
        )
    return task_from_config(value["task"], value.get("params"), workspace_directory)
