"""How a kart task is named in Airflow: task ids, display names, import paths. Pure: no Airflow import.

Task ids are places (``kart_core.place_graph``): ``Evaluate`` for a root, ``Train__Evaluate.model``
for the task that root requires under the key ``model``. They do not contain the unique id, so a
changed parameter value keeps every task id and Airflow's per-task history; the unique id is in
the display name, the XCom value and the Asset extra.
"""

from __future__ import annotations

from typing import Any

import kart_core

__all__ = ["task_ids", "task_id_for", "display_name_for", "import_path_of", "MAX_ID_LENGTH"]

MAX_ID_LENGTH = 250  # Airflow's limit for task and group ids (kart_core.place_graph keeps places within it)


def task_ids(task_or_tasks: Any) -> dict[str, str]:
    """The Airflow task id of every kart task under ``task_or_tasks``, by ``kart_core.node_key``."""
    roots = [task_or_tasks] if isinstance(task_or_tasks, kart_core.TaskOnKart) else list(task_or_tasks)
    return kart_core.place_graph(roots).places


def task_id_for(task: Any, roots: Any = None) -> str:
    """The Airflow task id of ``task`` in the DAG built from ``roots`` (default: ``task`` is the root).

    Raises:
        KeyError: ``task`` is not in the graph under ``roots``.
    """
    ids = task_ids(task if roots is None else roots)
    key = kart_core.node_key(task)
    if key not in ids:
        raise KeyError(f"{task.kart_label()} is not in the graph under the given roots.")
    return ids[key]


def import_path_of(task: Any) -> str:
    """``package.module.Class``, from which the operator re-imports the class at run time."""
    return f"{type(task).__module__}.{type(task).__qualname__}"


def display_name_for(task: Any) -> str:
    """``Class[uid8](name=value, ...)``: the task as ``kart_core.task_text`` shows it (nested tasks readable)."""
    return kart_core.task_text(task)
