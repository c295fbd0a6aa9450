"""Outputs of tasks built by a script run directly (``python g.py``): gokart put them under ``__main__/``.

gokart names a default output's folder after the task's module, and the unique id leaves the
module out: a task defined in a script run as ``python g.py`` wrote ``{ws}/__main__/B_<id>.pkl``,
and the same class imported as ``g.B`` (by ``kart tree g.B``, ``kart why g.B``) looks for
``{ws}/g/B_<id>.pkl``. ``kart why`` and ``kart tree`` say so instead of only "will run".
"""

from __future__ import annotations

import re

from kart_core.contract import KartTask
from kart_core.storage.base import storage_for
from kart_core.workspace import join_url

__all__ = ["MAIN_FOLDER", "advice", "main_counterpart", "outputs_as_main", "runs_as_main"]

MAIN_FOLDER = "__main__"


def main_counterpart(task: KartTask, path: str) -> str | None:
    """Where ``path``, an output of ``task`` in its module's folder, was written when the class ran as
    ``__main__`` (``{ws}/__main__/{name}``); None for a path outside that folder or a ``__main__`` task."""
    module_folder = "/" + type(task).__module__.replace(".", "/")
    folder, _, name = path.rpartition("/")
    if module_folder == f"/{MAIN_FOLDER}" or not folder.endswith(module_folder):
        return None
    return f"{folder[: -len(module_folder)]}/{MAIN_FOLDER}/{name}"


def outputs_as_main(task: KartTask, paths: list[str]) -> list[str]:
    """The ``__main__/`` counterparts (``main_counterpart``) of ``paths`` that exist, in ``paths`` order.

    Args:
        task: a kart task.
        paths: output paths of ``task`` (e.g. the missing ones).

    Returns:
        The paths found (one request each remotely): the very outputs ``task`` would load, written
        when its class ran as ``__main__``.
    """
    candidates = [main_counterpart(task, path) for path in paths]
    return [found for found in candidates if found is not None and storage_for(found).exists(found)]


def runs_as_main(workspace: str, class_name: str) -> list[str]:
    """Names of the files under ``{workspace}/__main__/`` that a class ``class_name`` wrote (``Class_<id>.ext``).

    One listing (nothing when the folder is missing): runs with any parameters, built as ``__main__``.
    """
    folder = join_url(workspace, MAIN_FOLDER)
    # ``Class_`` alone also matched ``Class_v2_<id>.pkl``, another class's output.
    own = re.compile(re.escape(class_name) + r"_[0-9a-f]{32}(\.|$)")
    return sorted(name for name in storage_for(folder).list_dir(folder) if own.match(name))


def advice(task: KartTask) -> str:
    """Why the cache is not shared and how to share it, for ``task``'s class."""
    module, name = type(task).__module__, type(task).__name__
    return (
        f"gokart names output folders after the task's module, which is {module!r} here and was "
        f"'{MAIN_FOLDER}' then. To share one cache, build from a script that imports the tasks (`from {module} import "
        f"{name}`) rather than running {module}'s file itself, or with `kart run {module}.{name}`."
    )
