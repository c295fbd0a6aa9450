"""Airflow as in production on one machine: `airflow standalone` (scheduler, dag-processor, api-server,
LocalExecutor) runs the example DAG; every task runs in its own worker, which re-parses the DAG file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_helpers import EXAMPLES
from kart_airflow import task_ids
from mlpipeline import Evaluate

import kart_core

BIN = Path(sys.executable).parent
DAG_ID = "kart_train"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def standalone_env(tmp_path: Path) -> dict[str, str]:
    """A fresh AIRFLOW_HOME bound to 127.0.0.1, and a luigi config that puts kart's workspace in tmp_path."""
    config = tmp_path / "luigi.cfg"
    config.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'ws'}\n")
    port = _free_port()
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",  # workers reach the execution API here
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "LUIGI_CONFIG_PATH": str(config),
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    }


@pytest.fixture
def standalone(standalone_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """`airflow standalone` in its own process group, stopped (the whole group) even when the test fails."""
    log = open(tmp_path / "standalone.log", "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [str(BIN / "airflow"), "standalone"],
        env=standalone_env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield standalone_env
    finally:
        _stop_group(process)
        log.close()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            time.sleep(1)  # let the group's other members exit too
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=120)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _run_state(env: dict[str, str]) -> str | None:
    done = _airflow(env, "dags", "list-runs", DAG_ID, "-o", "json")
    # The JSON list is the last line; warnings may come before it.
    lines = [line for line in done.stdout.splitlines() if line.startswith("[{") or line == "[]"]
    runs = json.loads(lines[-1]) if lines else []
    return runs[0]["state"] if runs else None


@pytest.mark.slow
def test_standalone_airflow_runs_the_example_dag_in_worker_processes(
    standalone: dict[str, str], tmp_path: Path
) -> None:
    env = standalone
    _wait_for(
        lambda: f'"{DAG_ID}"' in _airflow(env, "dags", "list", "-o", "json").stdout, 180, f"{DAG_ID} to be parsed"
    )
    assert _airflow(env, "dags", "unpause", DAG_ID).returncode == 0
    triggered = _airflow(env, "dags", "trigger", DAG_ID)
    assert triggered.returncode == 0, triggered.stdout[-2000:] + triggered.stderr[-2000:]
    _wait_for(lambda: _run_state(env) in ("success", "failed"), 300, "the DAG run to finish")
    assert _run_state(env) == "success"

    roots = [
        Evaluate(model="linear", workspace_directory=str(tmp_path / "ws")),
        Evaluate(model="ridge", alpha=0.5, workspace_directory=str(tmp_path / "ws")),
    ]
    graph = kart_core.walk(roots)
    ids = task_ids(roots)
    log_dir = tmp_path / "airflow" / "logs"
    # A task's log file is written by its worker's supervisor, which may still be flushing it when the
    # run is already 'success': wait until every task's log holds the line kart writes after running.
    logs = _wait_for_logs(log_dir, set(ids.values()), "ran: ", timeout=120)
    assert set(logs) == set(ids.values())
    worker_pids = set()
    for key, task in graph.nodes.items():
        path, text = logs[ids[key]]
        assert path.name == "attempt=1.log"  # no retry: nothing ran twice
        assert text.count("ran: ") == 1 and "cached: " not in text, text[-2000:]
        assert "Filling up the DagBag from" in text and "train.py" in text  # the worker re-parsed the DAG file
        worker_pids.update(re.findall(rf"rebuilt {re.escape(task.kart_label())} from \S+ in process (\d+)", text))
    assert len(worker_pids) == len(graph.nodes)  # one worker process per task
    assert all(task.complete() for task in graph.nodes.values())


def _wait_for_logs(log_dir: Path, task_ids: set[str], marker: str, timeout: float) -> dict[str, tuple[Path, str]]:
    """Each task's log (path and text) once every one of them contains ``marker``."""
    found: dict[str, tuple[Path, str]] = {}

    def complete() -> bool:
        for path in log_dir.rglob("attempt=*.log"):
            task_id = path.parent.name.removeprefix("task_id=")
            text = path.read_text(errors="replace")
            if marker in text or task_id not in found:
                found[task_id] = (path, text)
        return task_ids <= set(found) and all(marker in found[t][1] for t in task_ids)

    deadline = time.monotonic() + timeout
    while not complete():
        if time.monotonic() > deadline:
            incomplete = sorted(t for t in task_ids if t not in found or marker not in found[t][1])
            raise AssertionError(f"after {timeout:.0f}s these task logs still lack {marker!r}: {incomplete}")
        time.sleep(1)
    return found
