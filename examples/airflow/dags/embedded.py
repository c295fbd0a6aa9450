"""A kart graph inside an existing Airflow DAG, as one TaskGroup between two plain tasks."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

try:
    import mlpipeline
except ImportError:
    # The demo's pipeline package sits next to this folder; a real project pip-installs its package.
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    import mlpipeline

from kart_airflow import KartTaskGroup

with DAG(
    dag_id="kart_embedded",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    tags=["kart", "demo"],
):
    start = EmptyOperator(task_id="start")
    models = KartTaskGroup(mlpipeline.Evaluate(model="mean"), group_id="models", operator_args={"retries": 1})
    done = EmptyOperator(task_id="done")
    start >> models >> done
