"""A test process killed outright (SIGKILL: no fixture teardown runs) takes its Airflow cluster with it: the
api-server, scheduler and dag-processor, the LocalExecutor's workers and a running task's processes, which
Airflow puts in process groups of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import killed_pytest
import pytest

# The child pytest's test: the cluster as test_airflow_standalone's fixture starts it (af_cluster), a DAG whose
# one task sleeps, and a report once that task runs.
HOLDING_TEST = '''
import os
import time
from pathlib import Path

from af_cluster import Cluster, cluster_env, start_cluster, wait_for
from killed_pytest import write_report

DAG = """
# an airflow dag file
import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("hold", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
    BashOperator(task_id="sleep", bash_command="touch STARTED; sleep 600")
"""


def test_hold(tmp_path):
    dags, started = tmp_path / "dags", tmp_path / "started"
    dags.mkdir()
    (dags / "hold.py").write_text(DAG.replace("STARTED", str(started)))
    cluster = Cluster(env=cluster_env(tmp_path / "airflow", dags, "LocalExecutor"), logs=tmp_path)
    start_cluster(cluster, Path(os.environ["HOLD_DB_TEMPLATE"]))
    cluster.wait_until_parsed("hold")
    cluster.trigger("hold")
    wait_for(started.exists, 300, "the task to start", every=0.5)
    write_report({"api-server": int(cluster.env["AIRFLOW__API__PORT"])})
    time.sleep(600)
'''


@pytest.mark.slow
def test_a_killed_test_process_takes_its_airflow_cluster_with_it(tmp_path: Path, airflow_db_template: Path) -> None:
    child = killed_pytest.start(
        tmp_path, HOLDING_TEST, [str(Path(__file__).parent)], {"HOLD_DB_TEMPLATE": str(airflow_db_template)}
    )
    held: dict[str, Any] = {"processes": {}}
    try:
        held = killed_pytest.report(tmp_path, child, timeout=420)
        running = "\n".join(killed_pytest.alive(held["processes"]))
        # The servers, the task's runner (its own process group) and its command (BashOperator's own session).
        for part in (
            "airflow api_server",
            "airflow scheduler",
            "airflow dag-processor",
            "airflow worker --",
            "sleep 600",
        ):
            assert part in running, f"{part} not among the child's processes:\n{running}"
        assert killed_pytest.kill_and_wait(child, held, within=10) == ([], [])
    finally:
        killed_pytest.clean_up(child, held["processes"])


# The child pytest's test: the long-lived af_worker (test_airflow_worker's fixture) building a kart task that
# sleeps, in the process it forks for the build; the report once that task runs.
WORKER_TEST = '''
import threading

from af_cluster import wait_for
from af_worker import Worker
from killed_pytest import write_report

TASKS = """
import time
from pathlib import Path

import kart_core


class Sleep(kart_core.TaskOnKart):
    def run(self):
        Path("STARTED").touch()
        time.sleep(600)
        self.dump(1)
"""


def test_hold(tmp_path):
    code, started = tmp_path / "code", tmp_path / "started"
    code.mkdir()
    (code / "sleeptasks.py").write_text(TASKS.replace("STARTED", str(started)))

    def report():
        wait_for(started.exists, 300, "the build to start", every=0.2)
        write_report({})

    threading.Thread(target=report, daemon=True).start()
    worker = Worker(tmp_path / "worker-stderr.txt")
    worker.build(f"tasks.Sleep(workspace_directory={str(tmp_path / 'ws')!r})", "sleeptasks", env={"PYTHONPATH": str(code)})
'''


@pytest.mark.slow
def test_a_killed_test_process_takes_its_af_worker_and_the_task_it_runs_with_it(tmp_path: Path) -> None:
    child = killed_pytest.start(tmp_path, WORKER_TEST, [str(Path(__file__).parent)])
    held: dict[str, Any] = {"processes": {}}
    try:
        held = killed_pytest.report(tmp_path, child, timeout=300)
        running = killed_pytest.alive(held["processes"])
        assert len([line for line in running if "af_worker.py" in line]) == 2, running  # the worker, its build
        assert killed_pytest.kill_and_wait(child, held, within=10) == ([], [])
    finally:
        killed_pytest.clean_up(child, held["processes"])
