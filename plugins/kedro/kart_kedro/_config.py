"""Build a kart task from a catalog entry's ``task`` / ``params`` / ``workspace_directory``.

A TaskInstanceParameter value is a nested mapping of the same shape (``{task: ..., params: ...}``),
a ListTaskInstanceParameter value a list of them; parameters left out take the task's defaults
and the luigi config. Values are parsed and checked by their luigi parameter (param_values.py).

Kedro's context rewrites every relative value under a key named ``path``, ``filepath`` or
``filename`` (at any mapping depth of an entry) to an absolute path inside the project, so a task
parameter named ``path`` would change with the checkout directory, and with it the unique id.
``undo_path_rewrite`` turns such values back into paths relative to the project root.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kart_core
from kart_kedro.param_values import ParameterValueError, checked_value

__all__ = [
    "TaskConfigError",
    "import_task_class",
    "params_mapping",
    "project_root",
    "task_from_config",
    "undo_path_rewrite",
]

_REWRITTEN_KEYS = ("filename", "filepath", "path")  # kedro.framework.context.context._convert_paths_to_absolute_posix


class TaskConfigError(ValueError):
    """A catalog entry names a task class or parameter that does not exist or does not fit."""


def import_task_class(path: str) -> type[kart_core.TaskOnKart[Any]]:
    """The TaskOnKart subclass at the dotted ``path`` (``package.module.ClassName``).

    Raises:
        TaskConfigError: not a dotted path, no such module or class (with the closest names), or
            not a TaskOnKart subclass.
    """
    module_name, _, class_name = str(path).rpartition(".")
    if not module_name:
        raise TaskConfigError(f"task {path!r} is not a dotted path; write it as 'package.module.ClassName'.")
    try:
        task_class = kart_core.import_object(str(path))
    except ImportError as exc:
        raise TaskConfigError(f"task {path!r}: {_missing(str(path)) or str(exc).rstrip('.')}.") from exc
    if not (isinstance(task_class, type) and issubclass(task_class, kart_core.TaskOnKart)):
        raise TaskConfigError(
            f"task {path!r} is a {type(task_class).__name__}, not a subclass of kart_core.TaskOnKart."
        )
    return task_class


def _missing(path: str) -> str | None:
    """What is missing in ``path`` and the closest existing names, or None if that cannot be told."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        name = parts[split]
        if split < len(parts) - 1 and hasattr(module, "__path__"):  # a package: the next part is a module
            found = [info.name for info in pkgutil.iter_modules(module.__path__)]
            return f"module {module_name!r} has no submodule {name!r}{_did_you_mean(name, found, module_name + '.')}"
        tasks = sorted(
            key
            for key, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, kart_core.TaskOnKart) and value is not kart_core.TaskOnKart
        )
        listing = f". Its TaskOnKart classes: {', '.join(tasks)}" if tasks else ""
        names = tasks or [key for key in vars(module) if not key.startswith("_")]
        return f"module {module_name!r} has no class {name!r}{_did_you_mean(name, names, '')}{listing}"
    found = sorted({info.name for info in pkgutil.iter_modules()} | set(sys.builtin_module_names))
    return f"there is no module {parts[0]!r}{_did_you_mean(parts[0], found, '')}"


def _did_you_mean(name: str, candidates: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)" if close else ""


def params_mapping(path: Any, params: Any) -> dict[str, Any]:
    """``params`` of the task at ``path`` as a new dict (None: no parameters).

    Raises:
        TaskConfigError: ``params`` is not a mapping (a YAML list such as ``params: [1]``), naming ``params`` and
            the shape it takes.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TaskConfigError(
            f"task {path!r}: 'params' takes a mapping of parameter name to value (params: {{size: 3, day: "
            f"2024-01-01}}); got {type(params).__name__} {params!r}"
        )
    return dict(params)


def task_from_config(
    path: str, params: Mapping[str, Any] | None = None, workspace_directory: str | None = None
) -> kart_core.TaskOnKart[Any]:
    """Instantiate the task at ``path`` with ``params`` (nested task mappings become task objects).

    Raises:
        TaskConfigError: unknown class or parameter, a value its parameter does not take, ``params`` not a
            mapping, or a task parameter not written as ``{task: ..., params: ...}``.
    """
    values = params_mapping(path, params)
    task_class = import_task_class(path)
    declared = dict(task_class.get_params())
    kwargs = {}
    for name, value in values.items():
        if name not in declared:
            known = sorted(n for n in declared if not hasattr(kart_core.TaskOnKart, n))
            raise TaskConfigError(
                f"task {path!r} has no parameter {name!r}{_did_you_mean(name, known, '')}. "
                f"Its own parameters: {', '.join(known) or '(none)'}."
            )
        kwargs[name] = _convert(path, name, declared[name], value, workspace_directory)
    if workspace_directory is not None:
        kwargs["workspace_directory"] = workspace_directory
    try:
        return task_class(**kwargs)
    except Exception as exc:
        raise TaskConfigError(f"task {path!r} with params {values!r}: {type(exc).__name__}: {exc}") from exc


def _convert(path: str, name: str, param: Any, value: Any, workspace_directory: str | None) -> Any:
    """A config value as the parameter expects it: nested tasks built, strings parsed, types checked."""
    if isinstance(param, kart_core.TaskInstanceParameter):
        return _nested_task(path, name, value, workspace_directory)
    if isinstance(param, kart_core.ListTaskInstanceParameter):
        if not isinstance(value, list | tuple):
            raise TaskConfigError(
                f"task {path!r}: parameter {name!r} takes a list of {{task: ..., params: ...}} mappings."
            )
        return [_nested_task(path, name, item, workspace_directory) for item in value]
    try:
        return checked_value(param, value)
    except ParameterValueError as exc:
        raise TaskConfigError(f"task {path!r}: parameter {name!r} {exc}") from exc


def _nested_task(path: str, name: str, value: Any, workspace_directory: str | None) -> kart_core.TaskOnKart[Any]:
    if not isinstance(value, Mapping) or "task" not in value or set(value) - {"task", "params"}:
        raise TaskConfigError(
            f"task {path!r}: parameter {name!r} is a task; write it as "
            f"{{task: package.module.Class, params: {{...}}}}, got {value!r}."
        )
    return task_from_config(value["task"], value.get("params"), workspace_directory)


def project_root() -> Path | None:
    """The root of the Kedro project being run: found from its package, else from the working directory."""
    from kedro.framework.project import PACKAGE_NAME
    from kedro.utils import find_kedro_project

    if PACKAGE_NAME:
        spec = importlib.util.find_spec(PACKAGE_NAME)
        if spec is not None and spec.origin:
            root = find_kedro_project(Path(spec.origin).resolve().parent)
            if root is not None:
                return Path(root)
    root = find_kedro_project(Path.cwd())
    return Path(root) if root is not None else None


def undo_path_rewrite(params: Mapping[str, Any], root: Path | None) -> dict[str, Any]:
    """``params`` with the values Kedro made absolute (inside ``root``) relative to ``root`` again.

    Only what Kedro rewrites is touched: string values under the keys ``path``, ``filepath`` and
    ``filename`` of nested mappings (not inside lists), that lie inside the project root.
    """
    prefix = f"{root.as_posix().rstrip('/')}/" if root is not None else None
    undone: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            undone[key] = undo_path_rewrite(value, root)
        elif prefix and key in _REWRITTEN_KEYS and isinstance(value, str) and value.startswith(prefix):
            undone[key] = value[len(prefix) :]
        else:
            undone[key] = value
    return undone
