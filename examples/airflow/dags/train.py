"""The demo pipeline as an Airflow DAG: LoadData -> MakeFeatures -> Train -> Evaluate, for two models.

Airflow parses this file (it mentions both "airflow" and "dag"); every worker re-parses it, up to
its one task, and runs the kart task that parse made once its unique id and code fingerprint match
what the dag-processor recorded (docs/airflow.md, "Code skew"). Outputs go to kart's
workspace (``[TaskOnKart] workspace_directory`` in the luigi config, default ``./resources/``),
the same cache ``kart_core.build`` uses.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

try:
    import mlpipeline
except ImportError:
    # The demo's pipeline package sits next to this folder; a real project pip-installs its package.
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    import mlpipeline

from kart_airflow import to_dag

dag = to_dag(
    [mlpipeline.Evaluate(model="linear"), mlpipeline.Evaluate(model="ridge", alpha=0.5)],
    dag_id="kart_train",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    tags=["kart", "demo"],
    operator_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=5)},
    class_operator_args={mlpipeline.Train: {"retries": 2}},
)
