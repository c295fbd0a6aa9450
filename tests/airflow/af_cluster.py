"""Airflow as in production, on one machine and 127.0.0.1 only: api-server, scheduler, dag-processor
and (for the CeleryExecutor) celery workers, each its own process group.

`airflow standalone` would be shorter, but it also serves task logs on all interfaces (port 8793)
with no switch for loopback; here every part is started on its own, with log serving off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services import free_port

BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    """The environment every Airflow process of the cluster shares, and the processes started so far."""

    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``airflow <args>`` as ``name`` (its output in ``logs/<name>.log``)."""
        with open(self.logs / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env={**self.env, **(env or {})},
                cwd=self.logs,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, name: str) -> None:
        """Stop the process group ``name`` started (TERM, then KILL)."""
        process = self.processes.pop(name)
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(process.pid, signal.SIGKILL)  # children the group leader left behind
        except ProcessLookupError:
            pass

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` command against the cluster's metadata DB."""
        return subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=180)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, newest first, from ``airflow dags list-runs``."""
        done = self.cli("dags", "list-runs", dag_id, "-o", "json")
        lines = [line for line in done.stdout.splitlines() if line.startswith("[{") or line == "[]"]
        return json.loads(lines[-1]) if lines else []

    def trigger_and_wait(self, dag_id: str, timeout: float = 420) -> tuple[str, str]:
        """Trigger a run of ``dag_id``; return its run id and final state."""
        before = {run["run_id"] for run in self.runs(dag_id)}
        done = self.cli("dags", "trigger", dag_id)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        state: dict[str, str] = {}

        def finished() -> bool:
            new = [run for run in self.runs(dag_id) if run["run_id"] not in before]
            if new and new[0]["state"] in ("success", "failed"):
                state.update(run_id=new[0]["run_id"], final=new[0]["state"])
                return True
            return False

        wait_for(finished, timeout, f"a new run of {dag_id} to finish")
        return state["run_id"], state["final"]

    def wait_until_parsed(self, dag_id: str, timeout: float = 240) -> None:
        """Wait until the dag-processor has stored ``dag_id``, then unpause it."""
        wait_for(lambda: f'"{dag_id}"' in self.cli("dags", "list", "-o", "json").stdout, timeout, f"{dag_id} parsed")
        assert self.cli("dags", "unpause", dag_id).returncode == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 2) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def cluster_env(home: Path, dags_folder: Path, executor: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every process: its own AIRFLOW_HOME, SQLite, every server on 127.0.0.1."""
    port = free_port()
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "kart-test-jwt-secret-" + str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),  # never served (--skip-serve-logs)
        # The machine running the tests may be busy (two cores shared by several jobs, SQLite): a task
        # worker's request to the api-server can then take longer than Airflow's 5 s default, and three
        # missed heartbeats in a row end the task, which Airflow retries. That is load, not a kart failure.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS": "10",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        **(extra or {}),
    }


def start_cluster(cluster: Cluster) -> None:
    """Migrate the DB, start api-server, scheduler and dag-processor; return when the API answers."""
    migrated = cluster.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    port = cluster.env["AIRFLOW__API__PORT"]
    cluster.start("api-server", "api-server", "--host", "127.0.0.1", "--port", port)
    cluster.start("scheduler", "scheduler", "--skip-serve-logs")
    cluster.start("dag-processor", "dag-processor")

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(healthy, 180, "the api-server's health endpoint")


def stop_all(cluster: Cluster) -> None:
    """Stop every process of the cluster, workers first."""
    for name in sorted(cluster.processes, key=lambda n: n in ("api-server", "scheduler", "dag-processor")):
        cluster.stop(name)


def task_logs(
    log_dir: Path, run_id: str, task_ids: set[str], marker: str, timeout: float = 120
) -> dict[str, tuple[Path, str]]:
    """The newest log (path and text) of each task of run ``run_id`` once every one of them contains ``marker``.

    A task's log file is written by its worker's supervisor, which may still be flushing it when the
    run is already 'success': reading it at once can find only its first line.
    """
    found: dict[str, tuple[Path, str]] = {}

    def complete() -> bool:
        for path in sorted(log_dir.rglob(f"run_id={run_id}/*/attempt=*.log")):
            task_id = path.parent.name.removeprefix("task_id=")
            if task_id in task_ids:
                text = path.read_text(errors="replace")
                if marker in text or task_id not in found:
                    found[task_id] = (path, text)
        return task_ids <= set(found) and all(marker in found[t][1] for t in task_ids)

    try:
        wait_for(complete, timeout, f"every task log to contain {marker!r}", every=1)
    except AssertionError:
        missing = sorted(t for t in task_ids if t not in found or marker not in found[t][1])
        raise AssertionError(f"after {timeout:.0f}s these task logs still lack {marker!r}: {missing}") from None
    return found
