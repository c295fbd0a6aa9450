"""Rebuild a kart task at run time from its import path and parameters, and check it is the same task.

Pure: no Airflow import, so it is tested (and usable) without a scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kart_core

__all__ = ["resolve_class", "rebuild_task"]


def resolve_class(import_path: str) -> type:
    """Import ``package.module.Class`` (a nested class too: ``package.module.Outer.Inner``)."""
    try:
        obj = kart_core.import_object(import_path)
    except ImportError:
        obj = None
    if isinstance(obj, type):
        return obj
    raise kart_core.StaleTaskError(
        f"Cannot import the kart task class {import_path!r}: the module or class was renamed or removed since "
        "the DAG was parsed, or the package is not installed where this Airflow task runs."
    )


def rebuild_task(
    import_path: str, params: Mapping[str, str], settings: Mapping[str, str], expected_unique_id: str
) -> Any:
    """The task ``import_path(**params, **settings)``, checked to have ``expected_unique_id``.

    Args:
        import_path: where the task class lives (``naming.import_path_of``).
        params: its significant parameters as strings (``to_str_params(only_significant=True)``).
        settings: insignificant parameters given explicitly at parse time (e.g. workspace_directory).
        expected_unique_id: the unique id the task had when the DAG was parsed.

    Raises:
        StaleTaskError: the class is gone, or the rebuilt task has another unique id.
    """
    task_class = resolve_class(import_path)
    task = task_class.from_str_params({**settings, **params})  # type: ignore[attr-defined]
    unique_id = task.make_unique_id()
    if unique_id != expected_unique_id:
        name = f"{task_class.__name__}[{kart_core.short_id(expected_unique_id)}]"
        raise kart_core.StaleTaskError(
            f"{name}: rebuilt from {import_path} with the parameters stored when the DAG was parsed "
            f"({kart_core.params_text(params)}), the task now is {kart_core.task_text(task)} with unique id "
            f"{unique_id} instead of {expected_unique_id}. The task code or parameters changed since "
            "the DAG was parsed: let Airflow re-parse the DAG file (the dag-processor does so on its own) and "
            "trigger a new run."
        )
    return task
