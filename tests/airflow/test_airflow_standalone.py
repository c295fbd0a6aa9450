"""Airflow as in production on one machine: api-server, scheduler and dag-processor as separate processes
on 127.0.0.1, LocalExecutor; every task runs in its own worker, which re-parses the DAG file for its task.

One cluster serves the module (starting one is ~26 s of CPU): the example DAG runs in worker processes,
and a DAG file edited during a run fails the downstream task on the real workers (code skew).
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from af_cluster import Cluster, cluster_env, start_cluster, stop_all, task_logs, wait_for
from af_helpers import EXAMPLES
from kart_airflow import task_ids
from mlpipeline import Evaluate

import kart_core

DAG_ID = "kart_train"

MIDRUN_PIPELINE = """
import os
import pathlib
import time

import luigi
import kart_core


class Load(kart_core.TaskOnKart):
    rows = luigi.IntParameter()

    def run(self):
        self.dump(list(range(self.rows)))


class Scale(kart_core.TaskOnKart):
    source = kart_core.TaskInstanceParameter()

    def run(self):
        # The test edits the DAG file while this task runs, then lets it finish.
        marks = pathlib.Path(os.environ["MIDRUN_MARKS"])
        (marks / "scale-started").touch()
        while not (marks / "go").exists():
            time.sleep(0.5)
        self.dump([2 * x for x in self.load("source")])


class Total(kart_core.TaskOnKart):
    rows = luigi.IntParameter()

    def requires(self):
        load = Load(rows=self.rows)
        return {"load": load, "scale": Scale(source=load)}

    def run(self):
        self.dump(sum(self.load("scale")) + len(self.load("load")))
"""
MIDRUN_DAG = """
# an airflow dag file
import datetime

from kart_airflow import to_dag
from midrunpipe import Total

ROWS = 13
dag = to_dag(Total(rows=ROWS), dag_id="midrun_cluster", start_date=datetime.datetime(2024, 1, 1), schedule=None)
"""


@dataclass(frozen=True)
class LocalCluster:
    """The running cluster and its folders: ``root`` holds the logs (``root/airflow/logs``) and kart's
    workspace ``root/ws``; ``code`` the midrun test's task package, ``dag_file`` its DAG file and ``marks``
    the files its Scale task waits on; ``pythonpath`` is the workers' PYTHONPATH."""

    cluster: Cluster
    root: Path
    code: Path
    dag_file: Path
    marks: Path
    config: Path
    pythonpath: str


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory, airflow_db_template: Path) -> Iterator[LocalCluster]:
    """The cluster with the LocalExecutor, kart's workspace in its folder (through a luigi config).

    Its DAGs folder holds the example DAG file (a symlink to examples/airflow/dags/train.py, the file
    itself) and the midrun test's DAG file, which the test edits.
    """
    root = tmp_path_factory.mktemp("local-cluster")
    code, dags, marks = (root / name for name in ("code", "dags", "marks"))
    for folder in (code, dags, marks):
        folder.mkdir()
    (code / "midrunpipe.py").write_text(MIDRUN_PIPELINE)
    (dags / "train.py").symlink_to(EXAMPLES / "airflow" / "dags" / "train.py")
    dag_file = dags / "midrun_dag.py"
    dag_file.write_text(MIDRUN_DAG)
    config = root / "luigi.cfg"
    config.write_text(f"[TaskOnKart]\nworkspace_directory = {root / 'ws'}\n")
    pythonpath = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
    env = cluster_env(
        root / "airflow",
        dags,
        "LocalExecutor",
        {"LUIGI_CONFIG_PATH": str(config), "MIDRUN_MARKS": str(marks), "PYTHONPATH": pythonpath},
    )
    cluster = Cluster(env=env, logs=root)
    try:
        start_cluster(cluster, airflow_db_template)
        yield LocalCluster(cluster, root, code, dag_file, marks, config, pythonpath)
    finally:
        (marks / "go").touch()  # a Scale task still waiting (a failed midrun test) ends before the stop
        stop_all(cluster)


@pytest.mark.slow
def test_local_executor_runs_the_example_dag_in_worker_processes(
    local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, root = local_cluster.cluster, local_cluster.root
    # luigi reads ./luigi.cfg: the requirements built in this process find their outputs in the workers' workspace.
    monkeypatch.chdir(root)
    cluster.wait_until_parsed(DAG_ID)
    run_id, state = cluster.trigger_and_wait(DAG_ID)
    assert state == "success"

    roots = [
        Evaluate(model="linear", workspace_directory=str(root / "ws")),
        Evaluate(model="ridge", alpha=0.5, workspace_directory=str(root / "ws")),
    ]
    graph = kart_core.walk(roots)
    ids = task_ids(roots)
    logs = task_logs(root / "airflow" / "logs", run_id, set(ids.values()), "ran: ")
    worker_pids = set()
    for key, task in graph.nodes.items():
        path, text = logs[ids[key]]
        if path.name != "attempt=1.log":  # no retry: nothing ran twice; if one did, say why the first try ended
            first = (path.parent / "attempt=1.log").read_text(errors="replace")
            raise AssertionError(
                f"{ids[key]} was retried ({path.name}); its first attempt's log ends:\n{first[-3000:]}"
            )
        assert text.count("ran: ") == 1 and "cached: " not in text, text[-2000:]
        assert "Filling up the DagBag from" in text and "train.py" in text  # the worker re-parsed the DAG file
        assert f"kart_airflow: built only {ids[key]} for this worker in" in text  # ... for its one task
        worker_pids.update(
            re.findall(rf"running {re.escape(task.kart_label())} \(\S+, as parsed in this process (\d+)\)", text)
        )
    assert len(worker_pids) == len(graph.nodes)  # one worker process per task
    # Each worker compared its upstream tasks' XCom unique ids in this run (through Airflow's API); Train's
    # MakeFeatures is reached from the root by a shorter path, so that worker's guessed id had no XCom and
    # it found the real one through the DAG's record and the run's finished task ids, without a graph walk.
    train_log = logs[ids[kart_core.node_key(roots[0].requires()["model"])]][1]
    assert "found the upstream task ids of Train__Evaluate.model in the DAG's record" in train_log
    assert "walked the graph" not in train_log
    assert "StaleTaskError" not in "".join(text for _, text in logs.values())
    assert all(task.complete() for task in graph.nodes.values())
    # No log server: its port as a number of its own (timestamps like 16:12:03.487937 contain the digits).
    assert re.search(r"(?<!\d)8793(?!\d)", (root / "scheduler.log").read_text()) is None


@pytest.mark.slow
def test_a_dag_file_edited_during_a_run_fails_the_downstream_task_on_real_workers(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster, marks, dag_file = local_cluster.cluster, local_cluster.marks, local_cluster.dag_file
    # The final output of the edited file exists already (an earlier run): the run would end green.
    premarks = tmp_path / "premarks"
    premarks.mkdir()
    (premarks / "go").touch()
    built = subprocess.run(
        [sys.executable, "-c", "import kart_core, midrunpipe; kart_core.build(midrunpipe.Total(rows=5))"],
        env={
            **os.environ,
            "LUIGI_CONFIG_PATH": str(local_cluster.config),
            "MIDRUN_MARKS": str(premarks),
            "PYTHONPATH": local_cluster.pythonpath,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    sys.path.insert(0, str(local_cluster.code))
    try:
        pipe = importlib.import_module("midrunpipe")
        planned_load, edited_load = pipe.Load(rows=13).make_unique_id(), pipe.Load(rows=5).make_unique_id()
    finally:
        sys.path.remove(str(local_cluster.code))
        sys.modules.pop("midrunpipe", None)
    cluster.wait_until_parsed("midrun_cluster")
    database = local_cluster.root / "airflow" / "airflow.db"

    def record() -> str:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("select extra from asset where uri = 'x-kart-record://midrun_cluster/'")
            return str(rows.fetchall())

    before = record()
    cluster.trigger("midrun_cluster")
    wait_for(lambda: (marks / "scale-started").exists(), 300, "Scale to start")
    dag_file.write_text(MIDRUN_DAG.replace("ROWS = 13", "ROWS = 5"))
    wait_for(lambda: record() != before, 120, "the dag-processor to re-parse the edited file")
    (marks / "go").touch()
    wait_for(
        lambda: any(run["state"] in ("success", "failed") for run in cluster.runs("midrun_cluster")),
        300,
        "the run to finish",
    )
    (run,) = cluster.runs("midrun_cluster")
    assert run["state"] == "failed"
    logs = task_logs(local_cluster.root / "airflow" / "logs", run["run_id"], {"Total"}, "StaleTaskError")
    path, text = logs["Total"]
    assert path.name == "attempt=1.log"
    # Total(rows=5) requires Load(rows=5) first; Load ran with rows=13 in this run.
    assert f"it requires Load[{edited_load[:8]}] (unique id {edited_load}), but in this run" in text
    assert f"the upstream task 'Load__Total.load' ran Load[{planned_load[:8]}] (unique id {planned_load})" in text
    assert "cached: " not in text and "Clear the whole run" in text
