"""Translate a kart task graph into Airflow operators and edges (kart_core.walk does the graph work)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import DAG, TaskGroup

import kart_core
from kart_airflow.naming import import_path_of, task_id_for
from kart_airflow.operator import KartTaskOperator

__all__ = ["add_kart_tasks", "ClassArgs"]

ClassArgs = Mapping[Any, Mapping[str, Any]]
"""Operator arguments per kart class: keys are classes, bare class names or import paths."""


def add_kart_tasks(
    task_or_tasks: Any,
    dag: DAG | None = None,
    task_group: TaskGroup | None = None,
    operator_args: Mapping[str, Any] | None = None,
    class_operator_args: ClassArgs | None = None,
) -> dict[str, KartTaskOperator]:
    """Add one operator per kart task under ``task_or_tasks`` and the graph's edges; return them by node key.

    Args:
        task_or_tasks: a kart task or an iterable of them (shared upstreams are added once).
        dag: the DAG to add to (default: the one of ``with DAG(...)`` or of ``task_group``).
        task_group: the TaskGroup to add to, if any.
        operator_args: BaseOperator arguments for every task (retries, pool, queue, ...).
        class_operator_args: arguments for the tasks of one class (or its subclasses); they win.
    """
    roots = _as_list(task_or_tasks)
    graph = kart_core.walk(roots)
    _check_unique_ids(graph)
    arguments = _ArgumentsByClass(operator_args or {}, class_operator_args or {})
    placement: dict[str, Any] = {k: v for k, v in (("dag", dag), ("task_group", task_group)) if v is not None}
    operators = {
        key: KartTaskOperator.from_task(graph.nodes[key], **placement, **arguments.for_task(graph.nodes[key]))
        for key in graph.order
    }
    _link(operators, graph.upstream)
    return operators


def _as_list(task_or_tasks: Any) -> list[Any]:
    if isinstance(task_or_tasks, kart_core.TaskOnKart):
        return [task_or_tasks]
    tasks = list(task_or_tasks)
    for task in tasks:
        if not isinstance(task, kart_core.TaskOnKart):
            raise TypeError(f"kart_airflow takes TaskOnKart tasks, got {type(task).__name__}: {task!r}.")
    return tasks


def _check_unique_ids(graph: kart_core.TaskGraph) -> None:
    """Two kart tasks must not share an Airflow task id (same class name and unique-id prefix)."""
    seen: dict[str, str] = {}
    for key in graph.order:
        task = graph.nodes[key]
        if not isinstance(task, kart_core.TaskOnKart):
            raise TypeError(
                f"{task} is a plain luigi task in the graph of a kart DAG; Airflow runs TaskOnKart tasks only. "
                "Make it a TaskOnKart (an ExternalTask's output can be checked in the dependant's run())."
            )
        task_id = task_id_for(task)
        if task_id in seen:
            raise ValueError(
                f"Two kart tasks map to the Airflow task id {task_id!r}: {seen[task_id]} and {import_path_of(task)}. "
                "Rename one of the classes (their names and parameters are the same)."
            )
        seen[task_id] = import_path_of(task)


def _link(operators: Mapping[str, KartTaskOperator], upstream: Mapping[str, list[str]]) -> None:
    """Set each operator's upstream ids in bulk.

    Airflow's set_upstream hashes the whole DAG (all its task ids) for every edge, so a
    20,000-task DAG spends most of its parse time there. The operators are all in one DAG
    already, so the id sets that set_upstream would fill are filled directly.
    """
    for key, operator in operators.items():
        upstream_ids = [operators[dep].task_id for dep in upstream[key]]
        operator.upstream_task_ids.update(upstream_ids)
        for dep in upstream[key]:
            operators[dep].downstream_task_ids.add(operator.task_id)


class _ArgumentsByClass:
    """Operator arguments for one task: the common ones, then those of its classes (base classes first)."""

    def __init__(self, common: Mapping[str, Any], by_class: ClassArgs) -> None:
        if "task_id" in common or any("task_id" in args for args in by_class.values()):
            raise ValueError("kart_airflow names the Airflow tasks itself (Class_<uid8>); do not pass task_id.")
        self.common = dict(common)
        self.by_class = by_class
        self.cache: dict[type, dict[str, Any]] = {}

    def for_task(self, task: Any) -> dict[str, Any]:
        """The merged arguments for ``task``'s class."""
        cls = type(task)
        if cls not in self.cache:
            merged = dict(self.common)
            for klass in reversed(cls.__mro__):
                for key in (klass, klass.__name__, f"{klass.__module__}.{klass.__qualname__}"):
                    merged.update(self.by_class.get(key, {}))
            self.cache[cls] = merged
        return dict(self.cache[cls])
