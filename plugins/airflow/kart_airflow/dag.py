"""to_dag() and KartTaskGroup: the two ways a DAG file uses a kart graph."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

from airflow.sdk import DAG, TaskGroup

from kart_airflow.graph import AssetChoice, ClassArgs, add_kart_tasks
from kart_airflow.outputs import DEFAULT_ASSET_NAMESPACE

__all__ = ["to_dag", "KartTaskGroup"]


def to_dag(
    task_or_tasks: Any,
    dag_id: str,
    *,
    operator_args: Mapping[str, Any] | None = None,
    class_operator_args: ClassArgs | None = None,
    emit_cached_asset_events: bool = True,
    assets: AssetChoice = "all",
    asset_namespace: str = DEFAULT_ASSET_NAMESPACE,
    literal_templates: bool = False,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG with one Airflow task per kart task under ``task_or_tasks``.

    Args:
        task_or_tasks: a kart task or a list of them.
        dag_id: the DAG's id.
        operator_args: BaseOperator arguments for every task, e.g. ``{"retries": 2, "pool": "kart"}``.
        class_operator_args: arguments per kart class (a class, its name or import path), e.g.
            ``{Train: {"pool": "gpu", "retries": 0}}``; they override ``operator_args``.
        emit_cached_asset_events: False: a task that finds its outputs cached emits no Asset event
            (so Asset-scheduled DAGs run only on fresh outputs; lineage then misses those runs).
        assets: which outputs are Airflow Assets: ``"all"`` (every task's outputs are outlets, and
            inlets of the tasks that require them), ``"final"`` (only those of ``task_or_tasks``,
            what other DAGs schedule on) or ``"none"``. Fewer Assets make a much smaller serialized
            DAG and a faster parse; the Assets view then shows less lineage (OpenLineage events
            still name every task's inputs and outputs). See docs/airflow.md, "Assets".
        asset_namespace: the namespace of the Asset URIs of outputs in a local workspace,
            ``x-kart://<namespace>/<workspace-relative path>`` (default ``"workspace"``). Give each
            workspace one Airflow deployment schedules (prod and staging, two teams) its own, e.g.
            ``"prod"``, so one's runs never queue DAGs scheduled on the other's outputs; a consumer
            DAG names the outputs with ``asset_uris(task, namespace=...)``. 1 to 63 lowercase letters,
            digits, ``.``, ``-``, ``_`` (``SettingValueError`` otherwise). See docs/airflow.md, "Asset URIs".
        literal_templates: True: parameter text holding ``{{ ... }}`` or ``{% ... %}`` is the tasks' own
            template (a prompt, a SQL template they render themselves), hashed as written; by default
            it is refused as an Airflow template that kart would never render (docs/airflow.md, "Dates
            and partitions").
        dag_kwargs: DAG arguments (schedule, start_date, tags, default_args, ...).

    When a worker parses the file to run one task (Airflow's parsing context), the DAG holds
    only that task. Raises ``TaskDefinitionError`` for task classes a worker could not import.
    """
    if dag_kwargs.get("params"):
        # A run's params/conf reach no kart task (attacker at17 H6): say so where the DAG is declared.
        warnings.warn(
            f"to_dag({dag_id!r}, params=...): kart tasks take their parameters from the DAG file, never from a DAG "
            "run's params or conf; these params are shown in Airflow's trigger form but reach no kart task. Make a "
            "DAG per parameter set instead (docs/airflow.md, 'Dates and partitions').",
            UserWarning,
            stacklevel=2,
        )
    # Airflow records the file that created the DAG (this one); workers re-parse the caller's DAG file.
    dag_file = sys._getframe(1).f_code.co_filename
    with DAG(dag_id=dag_id, **dag_kwargs) as dag:
        add_kart_tasks(
            task_or_tasks,
            dag=dag,
            operator_args=operator_args,
            class_operator_args=class_operator_args,
            emit_cached_asset_events=emit_cached_asset_events,
            assets=assets,
            asset_namespace=asset_namespace,
            literal_templates=literal_templates,
        )
    dag.fileloc = dag_file
    return dag


class KartTaskGroup(TaskGroup):
    """A kart graph inside an existing DAG, as one TaskGroup: ``start >> KartTaskGroup(task, "train") >> end``.

    Takes ``to_dag``'s arguments (operator_args, class_operator_args, emit_cached_asset_events,
    assets, asset_namespace, literal_templates) and TaskGroup's (``group_kwargs``).
    """

    def __init__(
        self,
        task_or_tasks: Any,
        group_id: str,
        *,
        operator_args: Mapping[str, Any] | None = None,
        class_operator_args: ClassArgs | None = None,
        emit_cached_asset_events: bool = True,
        assets: AssetChoice = "all",
        asset_namespace: str = DEFAULT_ASSET_NAMESPACE,
        literal_templates: bool = False,
        **group_kwargs: Any,
    ) -> None:
        super().__init__(group_id=group_id, **group_kwargs)
        self.kart_operators: dict[str, Any] = add_kart_tasks(
            task_or_tasks,
            dag=self.dag,
            task_group=self,
            operator_args=operator_args,
            class_operator_args=class_operator_args,
            emit_cached_asset_events=emit_cached_asset_events,
            assets=assets,
            asset_namespace=asset_namespace,
            literal_templates=literal_templates,
        )
