"""Airflow as in production on one machine: api-server, scheduler and dag-processor as separate processes
on 127.0.0.1, LocalExecutor; every task runs in its own worker, which re-parses the DAG file for its task."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_cluster import Cluster, cluster_env, start_cluster, stop_all, task_logs
from af_helpers import EXAMPLES
from kart_airflow import task_ids
from mlpipeline import Evaluate

import kart_core

DAG_ID = "kart_train"


@pytest.fixture
def local_cluster(tmp_path: Path, airflow_db_template: Path) -> Iterator[Cluster]:
    """The cluster with the LocalExecutor, kart's workspace in tmp_path (through a luigi config)."""
    config = tmp_path / "luigi.cfg"
    config.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'ws'}\n")
    env = cluster_env(
        tmp_path / "airflow", EXAMPLES / "airflow" / "dags", "LocalExecutor", {"LUIGI_CONFIG_PATH": str(config)}
    )
    cluster = Cluster(env=env, logs=tmp_path)
    try:
        start_cluster(cluster, airflow_db_template)
        yield cluster
    finally:
        stop_all(cluster)


@pytest.mark.slow
def test_local_executor_runs_the_example_dag_in_worker_processes(local_cluster: Cluster, tmp_path: Path) -> None:
    cluster = local_cluster
    cluster.wait_until_parsed(DAG_ID)
    run_id, state = cluster.trigger_and_wait(DAG_ID)
    assert state == "success"

    roots = [
        Evaluate(model="linear", workspace_directory=str(tmp_path / "ws")),
        Evaluate(model="ridge", alpha=0.5, workspace_directory=str(tmp_path / "ws")),
    ]
    graph = kart_core.walk(roots)
    ids = task_ids(roots)
    logs = task_logs(tmp_path / "airflow" / "logs", run_id, set(ids.values()), "ran: ")
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
        worker_pids.update(re.findall(rf"rebuilt {re.escape(task.kart_label())} from \S+ in process (\d+)", text))
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
    assert re.search(r"(?<!\d)8793(?!\d)", (tmp_path / "scheduler.log").read_text()) is None
