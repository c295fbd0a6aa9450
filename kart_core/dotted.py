"""Import an object by its dotted path: the one resolver behind task classes, seed functions and plugins."""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["MAIN_MODULE", "import_object", "module_name", "parent_module_name"]

MAIN_MODULE = "__main__"
# multiprocessing's "spawn" start method (the default on macOS and Windows) runs the parent's script again in the
# child under this name (multiprocessing.spawn._fixup_main_from_path), so its classes say __mp_main__ there.
_SPAWNED_MAIN = "__mp_main__"


def import_object(path: str) -> Any:
    """Return the object at ``package.module.Name.attr`` or ``package.module:Name.attr``.

    Without a colon, the longest importable module prefix is used, so nested classes work. An error
    inside an imported module (e.g. its own missing dependency) is raised as it is.

    Raises:
        ImportError: no module prefix of ``path`` exists, or it lacks the attribute.
    """
    if ":" in path:
        module_name, _, attributes = path.partition(":")
        return _attribute(importlib.import_module(module_name.strip()), attributes.strip(), path)
    parts = path.split(".")
    loaded = _from_loaded_modules(parts)
    if loaded is not None:
        return loaded[0]
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            continue
        return _attribute(module, ".".join(parts[split:]), path)
    raise ImportError(f"cannot import module {parts[0]!r}")


def module_name(obj: object) -> str:
    """The module ``obj`` (a class or function) belongs to, as the parent process names it: its ``__module__``,
    except that the running script is ``__main__`` in every process.

    A child process that multiprocessing starts with "spawn" (macOS' and Windows' default, kart's process
    workers there, a ``ProcessPoolExecutor`` or ``Process`` that a ``run()`` starts) runs the script again as
    ``__mp_main__``, so a class the script defines has ``__module__ == "__mp_main__"`` there. gokart 1.12.2 joins
    ``__module__`` into the output path, so its spawned children write ``__mp_main__/{Class}_{id}.pkl`` while
    the parent looks for ``__main__/``; kart names the module as the parent does, so one task has one output
    path, lock key and manifest entry in every process. ``""`` when ``obj`` has no ``__module__``.
    """
    return parent_module_name(getattr(obj, "__module__", None) or "")


def parent_module_name(name: str) -> str:
    """A module's name as the parent process has it: ``__main__`` for a spawned child's ``__mp_main__``
    (``module_name``, for a name read off a module object or a ``__module__`` string); others unchanged."""
    return MAIN_MODULE if name == _SPAWNED_MAIN else name


def _from_loaded_modules(parts: list[str]) -> tuple[Any] | None:
    """``(object,)`` when the longest already-imported module prefix has the rest as attributes, else None.

    Seed functions are resolved for every task run; asking the import system for ``random.seed``
    or ``numpy.random.seed`` first (not modules) searched sys.path each time, 1 ms per task.
    """
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        obj: Any = module
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, _MISSING)
            if obj is _MISSING:
                return None
        return (obj,)
    return None


_MISSING = object()


def _attribute(obj: Any, attributes: str, path: str) -> Any:
    for attribute in filter(None, attributes.split(".")):
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            owner = getattr(obj, "__name__", type(obj).__name__)
            raise ImportError(f"{path!r}: {owner!r} has no attribute {attribute!r}") from None
    return obj
