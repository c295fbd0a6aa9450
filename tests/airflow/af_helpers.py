"""Helpers for the Airflow tests: what each task of a DAG run reported, and cache snapshots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from luigi.task import flatten

import kart_core

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def statuses(dag_run: Any) -> dict[str, str]:
    """Each task id's final state, and kart status ('ran' / 'cached') from XCom when it succeeded."""
    result = {}
    for ti in dag_run.get_task_instances():
        value = ti.xcom_pull(task_ids=ti.task_id) if ti.state == "success" else None
        result[ti.task_id] = value["status"] if isinstance(value, dict) else str(ti.state)
    return result


def cache_files(task: Any) -> dict[str, float]:
    """Modification times of every output and processing-time log of the graph under ``task``."""
    graph = kart_core.walk([task])
    times = {}
    for node in graph.nodes.values():
        for target in [*flatten(node.output()), node.kart_log_target("processing_time")]:
            times[target.path()] = os.stat(target.path()).st_mtime_ns
    return times
