"""kart_airflow: a kart task graph as an Airflow 3 DAG, sharing kart's cache.

from kart_airflow import to_dag
dag = to_dag(Evaluate(model="ridge"), dag_id="train", schedule="@daily")
"""

from kart_airflow.dag import KartTaskGroup, to_dag
from kart_airflow.graph import AssetChoice, add_kart_tasks
from kart_airflow.naming import display_name_for, task_id_for, task_ids
from kart_airflow.operator import KartTaskOperator, MissingKartTaskOperator
from kart_airflow.outputs import asset_uris

__all__ = [
    "AssetChoice",
    "KartTaskGroup",
    "KartTaskOperator",
    "MissingKartTaskOperator",
    "add_kart_tasks",
    "asset_uris",
    "display_name_for",
    "task_id_for",
    "task_ids",
    "to_dag",
]
