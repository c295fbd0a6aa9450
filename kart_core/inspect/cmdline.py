"""Tasks named on a command line: ``module.Class --param value ...`` as luigi parses parameters.

The class is imported by its dotted name (the current directory is importable, as with
``python -m``); its parameters, and ``--OtherClass-param`` values for tasks created in
``requires()``, are read by luigi's own command-line parser, so values parse exactly as
they do for ``luigi`` and ``gokart.run``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import luigi
import luigi.configuration
from luigi.cmdline_parser import CmdlineParser

from kart_core.dotted import import_object
from kart_core.errors import KartError

__all__ = ["TaskSpecError", "resolve_task_class", "set_workspace", "task_from_command_line"]


class TaskSpecError(KartError):
    """A task named on the command line cannot be found or created."""


def resolve_task_class(dotted: str) -> type:
    """Import ``package.module.Class`` and return the class, with a clear error when it is not a task."""
    module_name, _, class_name = dotted.rpartition(".")
    if not module_name:
        raise TaskSpecError(f"{dotted!r}: name the task with its module, e.g. 'mypackage.tasks.{dotted}'.")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the current directory are found
    try:
        cls = import_object(dotted)
    except ImportError as exc:
        raise TaskSpecError(f"{dotted!r}: {exc}. Check the name and PYTHONPATH.") from exc
    if not (isinstance(cls, type) and issubclass(cls, luigi.Task)):
        raise TaskSpecError(f"{dotted!r}: module {module_name!r} has no task class {class_name!r}.")
    return cls


@contextlib.contextmanager
def task_from_command_line(dotted: str, args: Sequence[str] = ()) -> Iterator[Any]:
    """Yield the task ``dotted`` with luigi-style ``args``; the parsed values stay visible to ``requires()``."""
    cls = resolve_task_class(dotted)
    family = cls.get_task_family()  # type: ignore[attr-defined]
    try:
        parser_context = CmdlineParser.global_instance([family, *args])
        parser = parser_context.__enter__()
    except SystemExit as exc:  # argparse exits on unknown or malformed arguments
        raise TaskSpecError(f"{dotted}: bad parameters {list(args)} ({exc}). Pass them as --name value.") from None
    except Exception as exc:
        raise TaskSpecError(f"{dotted}: cannot parse parameters {list(args)}: {exc}") from exc
    try:
        yield _create(cls, parser, dotted)
    finally:
        parser_context.__exit__(None, None, None)


def _create(cls: type, parser: CmdlineParser, dotted: str) -> Any:
    kwargs = {}
    for name, param in cls.get_params():  # type: ignore[attr-defined]
        value = getattr(parser.known_args, name, None)
        if value:  # luigi's rule: an empty command-line value means "not given"
            kwargs[name] = param.parse(value)
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise TaskSpecError(f"{dotted}: cannot create the task: {exc}") from exc


def set_workspace(workspace: str | None) -> None:
    """Make ``workspace`` every task's ``workspace_directory`` (``[TaskOnKart]`` in luigi's config)."""
    if not workspace:
        return
    config = luigi.configuration.get_config()
    if not config.has_section("TaskOnKart"):
        config.add_section("TaskOnKart")
    config.set("TaskOnKart", "workspace_directory", workspace)
