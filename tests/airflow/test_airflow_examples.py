"""The example dags/ folder: imports cleanly in a DagBag, and runs through the `airflow dags test` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from af_helpers import EXAMPLES
from mlpipeline import Evaluate

import kart_core

DAGS = EXAMPLES / "airflow" / "dags"


def test_example_dags_import_without_errors(airflow_db: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"kart_train", "kart_embedded"}
    train = bag.get_dag("kart_train")
    assert (
        train.get_task("Evaluate_2").outlets[0].extra["kart_unique_id"]
        == Evaluate(model="ridge", alpha=0.5).make_unique_id()
    )
    assert len(train.tasks) == 6
    assert {task.retries for task in train.tasks if task.task_id.startswith("Train__")} == {2}


@pytest.mark.slow  # ~25 s: a fresh Airflow process parses the folder and starts its in-process API
def test_airflow_dags_test_cli_runs_the_example(airflow_db: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    done = subprocess.run(
        [airflow, "dags", "test", "kart_train"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "state=success" in output
    for model, alpha in (("linear", 1.0), ("ridge", 0.5)):
        evaluate = Evaluate(model=model, alpha=alpha)
        assert all(node.complete() for node in kart_core.walk([evaluate]).nodes.values())
        assert f"ran: {evaluate.output().path()}" in output
