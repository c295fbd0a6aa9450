"""Airflow as in production, on one machine and 127.0.0.1 only: api-server, scheduler, dag-processor
and (for the CeleryExecutor) celery workers, each its own process group, each watched so that it ends with
the test process that started it, however that process ends (``services.watch``).

`airflow standalone` would be shorter, but it also serves task logs on all interfaces (port 8793)
with no switch for loopback; here every part is started on its own, with log serving off.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services import free_port, stop_group, watch

BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    """The environment every Airflow process of the cluster shares, and the processes started so far."""

    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    watchdogs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``airflow <args>`` as ``name`` (its output in ``logs/<name>.log``), in its own process group
        that a watchdog ends (with the processes it forks) if this test process dies without ``stop``."""
        with open(self.logs / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env={**self.env, **(env or {})},
                cwd=self.logs,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.watchdogs[name] = watch(self.processes[name])

    def stop(self, name: str, grace: float = 30) -> None:
        """Stop the process group ``name`` started: TERM, then KILL after ``grace`` seconds."""
        stop_group(self.processes.pop(name), self.watchdogs.pop(name), grace)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` command against the cluster's metadata DB."""
        return subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=180)

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query on the cluster's SQLite metadata DB.

        The waits below poll the DB directly: each ``airflow`` CLI call is a new process that imports
        Airflow (~6 s of CPU), and polling through it kept a core busy for the whole test.
        """
        uri = f"file:{Path(self.env['AIRFLOW_HOME']) / 'airflow.db'}?mode=ro"
        # timeout: the scheduler and the api-server write to the same file and may hold its lock.
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=60)) as connection:
            return connection.execute(sql, params).fetchall()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs (run id and state), newest first: the rows ``airflow dags list-runs`` shows."""
        rows = self.query("select run_id, state from dag_run where dag_id = ? order by run_after desc, id desc", dag_id)
        return [{"run_id": run_id, "state": state} for run_id, state in rows]

    def trigger(self, dag_id: str) -> str:
        """Trigger a run of ``dag_id`` through the api-server's REST API (what ``airflow dags trigger`` and the
        UI's button do, without a new Airflow process per call); return its run id."""
        request = urllib.request.Request(
            f"{self.env['AIRFLOW__API__BASE_URL']}api/v2/dags/{dag_id}/dagRuns",
            data=json.dumps({"logical_date": None}).encode(),
            headers={"Content-Type": "application/json"},  # simple_auth_manager_all_admins: no token needed
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return str(json.load(response)["dag_run_id"])

    def trigger_and_wait(self, dag_id: str, timeout: float = 420) -> tuple[str, str]:
        """Trigger a run of ``dag_id``; return its run id and final state."""
        run_id = self.trigger(dag_id)

        def finished() -> bool:
            return any(run["run_id"] == run_id and run["state"] in ("success", "failed") for run in self.runs(dag_id))

        wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish", every=0.5)
        (final,) = [run["state"] for run in self.runs(dag_id) if run["run_id"] == run_id]
        return run_id, final

    def wait_until_parsed(self, dag_id: str, timeout: float = 240) -> None:
        """Wait until the dag-processor has stored ``dag_id`` (as ``airflow dags list`` would show it), unpaused.

        The cluster's DAGs are created unpaused (``dags_are_paused_at_creation`` off in ``cluster_env``).
        """
        sql = "select d.is_paused from dag d join serialized_dag s on s.dag_id = d.dag_id where d.dag_id = ?"
        wait_for(lambda: bool(self.query(sql, dag_id)), timeout, f"{dag_id} parsed", every=0.5)
        assert [paused for (paused,) in self.query(sql, dag_id)][:1] == [0], f"{dag_id} is paused"


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
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # no `airflow dags unpause` process per test
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "kart-test-jwt-secret-" + str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Re-parse an unchanged DAG file every 2 min, not every 30 s (each parse is a process importing the
        # DAG's task package): the default file_parsing_sort_mode (modified_time) still re-parses an
        # edited file at once, as the code-skew test needs.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        # Importing a DAG file took over Airflow's 30 s limit on the loaded machine; a parse that times
        # out is load, not a kart failure, and its retry would wait for the interval above.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "360",
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


def migrated_db_template(shared: Path, make: Callable[[Path], None]) -> Path:
    """An empty metadata DB made once for the whole test session by ``make(path)``.

    ``shared`` is a folder every pytest-xdist worker sees; the first worker to ask makes it under a file
    lock, the others wait and reuse it. Every test process's ``airflow_db`` and every cluster copies this
    file instead of creating its own (a ``resetdb`` is ~3 s of CPU, an ``airflow db migrate`` process ~9 s).
    """
    template = shared / "airflow-migrated" / "airflow.db"
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(shared / "airflow-migrated.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            make(template.with_suffix(".tmp"))
            os.replace(template.with_suffix(".tmp"), template)
    return template


def copy_db(source: Path, target: Path) -> None:
    """Copy the SQLite DB ``source`` onto ``target`` with SQLite's backup API: safe while ``target`` is open
    (the test process's Airflow engine may hold pooled connections to it), unlike rewriting the file."""
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
        with contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)


def start_cluster(
    cluster: Cluster,
    db_template: Path,
    also: Sequence[tuple[str, Sequence[str], dict[str, str] | None]] = (),
) -> None:
    """Copy the migrated DB, start api-server, scheduler and dag-processor, and the processes ``also`` names
    (``(name, airflow arguments, extra environment)``, e.g. celery workers); return when the API answers.

    ``also`` starts with the others: a celery worker started once the API answered was ready ~14 s later,
    and the first task waited for it in the queue (its start-up only needs the DB and the broker).
    """
    home = Path(cluster.env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db_template, home / "airflow.db")
    port = cluster.env["AIRFLOW__API__PORT"]
    cluster.start("api-server", "api-server", "--host", "127.0.0.1", "--port", port)
    cluster.start("scheduler", "scheduler", "--skip-serve-logs")
    cluster.start("dag-processor", "dag-processor")
    for name, args, env in also:
        cluster.start(name, *args, env=env)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    # 300 s: with `also` more processes import Airflow beside the api-server on a loaded machine.
    wait_for(healthy, 300, "the api-server's health endpoint")


def stop_all(cluster: Cluster, grace: float = 3) -> None:
    """Stop every process of the cluster at once (their shutdowns overlap instead of adding up), each
    killed after ``grace`` seconds.

    The cluster is thrown away with its DB and broker, and its logs are read before: a graceful end
    has nothing to save. It took the longest there: the api-server 11 s, celery workers 5 s (one after
    the other, 17 s of each cluster test's teardown).
    """
    names = list(cluster.processes)
    if names:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(lambda name: cluster.stop(name, grace), names))


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
