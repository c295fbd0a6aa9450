"""KartTaskOperator: one Airflow task that runs one kart task through ``kart_core.run_one``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset, BaseOperator

import kart_core
from kart_airflow.naming import display_name_for, import_path_of, task_id_for
from kart_airflow.outputs import output_paths, output_uri, xcom_path
from kart_airflow.rebuild import rebuild_task

__all__ = ["KartTaskOperator"]


class KartTaskOperator(BaseOperator):
    """Rebuilds a kart task from its import path and parameters, checks its unique id, and runs it.

    A task whose outputs exist ends as success at once and logs ``cached: <path>``; XCom gets
    ``{"status": "cached" | "ran", "path": ...}``. Nothing here is Jinja-rendered, so a parameter
    containing ``{{ }}`` reaches the task as written.
    """

    template_fields = ()
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        kart_class: str,
        kart_params: Mapping[str, str],
        kart_unique_id: str,
        kart_settings: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kart_class = kart_class
        self.kart_params = dict(kart_params)
        self.kart_settings = dict(kart_settings or {})
        self.kart_unique_id = kart_unique_id

    @classmethod
    def from_task(cls, task: Any, **kwargs: Any) -> KartTaskOperator:
        """An operator for ``task``; ``kwargs`` are BaseOperator arguments (retries, pool, ...)."""
        significant = task.to_str_params(only_significant=True)
        settings = {k: v for k, v in task.to_str_params().items() if k not in significant}
        paths = output_paths(task)
        kwargs.setdefault("task_id", task_id_for(task))
        kwargs.setdefault("task_display_name", display_name_for(task))
        kwargs.setdefault("outlets", [Asset(output_uri(path)) for path in paths])
        kwargs.setdefault("doc_md", _describe(task, paths))
        return cls(
            kart_class=import_path_of(task),
            kart_params=significant,
            kart_settings=settings,
            kart_unique_id=task.make_unique_id(),
            **kwargs,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        """Run the kart task unless cached; return ``{"status", "path"}`` for XCom."""
        task = rebuild_task(self.kart_class, self.kart_params, self.kart_settings, self.kart_unique_id)
        self.log.info("rebuilt %s from %s in process %d", task.kart_label(), self.kart_class, os.getpid())
        status = kart_core.run_one(task)
        paths = output_paths(task)
        self.log.info("%s: %s", status.value, ", ".join(paths))
        _label_asset_events(context, self.outlets, status)
        return {"status": status.value, "path": xcom_path(paths)}


def _label_asset_events(context: Any, outlets: list[Any], status: kart_core.RunStatus) -> None:
    """Mark each output's asset event as cached or ran (Airflow emits one either way on success)."""
    events = context.get("outlet_events") if isinstance(context, Mapping) else None
    if events is None:
        return
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra["kart_status"] = status.value


def _describe(task: Any, paths: list[str]) -> str:
    """The task's import path, unique id and outputs, shown on the task's page in the Airflow UI."""
    lines = [f"kart task `{import_path_of(task)}`, unique id `{task.make_unique_id()}`", "", "outputs:"]
    return "\n".join(lines + [f"- `{path}`" for path in paths])
