"""The example dags/ folder: imports cleanly in a DagBag, and runs through the `airflow dags test` CLI."""

from __future__ import annotations

import os
import resource
import signal
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


# The CLI run's limits. Its CPU time (~18 s: this file 26.0 s of user CPU, 8.6 s without this test; load 9) hardly
# grows with the machine's load, its wall time does: a fixed 180 s wall timeout failed under CI's load (2 cores
# shared with other jobs). So the CPU time is bounded tightly (each process of the run: RLIMIT_CPU, inherited), the
# wall clock only loosely, to catch a hang (a run waiting on nothing uses no CPU), below pytest-timeout's 900 s so
# the run's output is still shown.
CLI_CPU_LIMIT = 120
CLI_WALL_LIMIT = 600


def _limit_cpu() -> None:
    """In the CLI's process, before exec: SIGXCPU (which ends it) once it used CLI_CPU_LIMIT s of CPU."""
    resource.setrlimit(resource.RLIMIT_CPU, (CLI_CPU_LIMIT, CLI_CPU_LIMIT + 10))


@pytest.mark.slow  # ~25 s: a fresh Airflow process parses the folder and starts its in-process API
def test_airflow_dags_test_cli_runs_the_example(airflow_db: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    try:
        done = subprocess.run(
            [airflow, "dags", "test", "kart_train"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=CLI_WALL_LIMIT,
            preexec_fn=_limit_cpu,
        )
    except subprocess.TimeoutExpired as expired:
        # subprocess.run's TimeoutExpired holds the output read so far as bytes, text=True or not
        output = b"".join(part or b"" for part in (expired.stdout, expired.stderr)).decode(errors="replace")[-3000:]
        raise AssertionError(f"`airflow dags test` hung: no end in {CLI_WALL_LIMIT} s of wall time: {output}") from None
    output = done.stdout + done.stderr
    assert done.returncode != -signal.SIGXCPU, (
        f"`airflow dags test` used over {CLI_CPU_LIMIT} s of CPU: {output[-3000:]}"
    )
    assert done.returncode == 0, output[-3000:]
    assert "state=success" in output
    for model, alpha in (("linear", 1.0), ("ridge", 0.5)):
        evaluate = Evaluate(model=model, alpha=alpha)
        assert all(node.complete() for node in kart_core.walk([evaluate]).nodes.values())
        assert f"ran: {evaluate.output().path()}" in output
