"""Run a DAG's task instances as Airflow workers do, one process per task instance, without a scheduler.

``python af_worker.py [--parse <dag file>] <dag_id> <run_id> <dag file relative to the dags folder> [task ids...]`` is a
LocalExecutor worker: a long-lived process that imports Airflow only (never the DAG file or kart) and,
for each task instance ready in the run, calls Airflow's ``supervise_task``, which forks the task
process; that process re-parses the DAG file for its one task (Airflow's parsing context) and runs it.
What differs from production is only the transport to the task execution API: Airflow's in-process
API (what ``dag.test()`` uses) on the same metadata DB instead of an api-server over HTTP, so the
record Asset, XCom and the run's task breadcrumbs are read through the real API routes.

The run is created when missing (what a trigger does); task instances run in Airflow's order, as
``dag.test()`` decides readiness; with task ids given, only those run and the others are left as they
are (a later call runs the rest, e.g. after the test edited the DAG file). Each task's log is the JSON
log Airflow's supervisor writes, in ``<base_log_folder>/afw/<run_id>/<task_id>.log``. The last line of
stdout is JSON: each task id's state, and whether kart was imported in this (the worker's) process.

The tests' side (``run_workers``, ``task_log``) is at the bottom; it runs the script in a fresh
interpreter so that nothing of the test process (imported task modules, luigi's instance cache) leaks
into the task processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RUN_LOGS = "afw"
_PARSE_ENV = "AFW_PARSE_"


def main(dag_id: str, run_id: str, dag_rel_path: str, only: list[str]) -> dict[str, str]:
    """Create the run if missing and run its ready task instances (those in ``only``, if given) to the end."""
    from uuid import UUID

    from airflow.executors.workloads import BundleInfo
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun, get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        assert dag is not None, f"{dag_id} is not in the metadata DB: parse it first (the dag-processor's job)"
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            now = timezone.utcnow()
            run = get_or_create_dagrun(
                dag=dag,
                run_id=run_id,
                logical_date=None,
                data_interval=None,
                run_after=now,
                conf=None,
                triggered_by=DagRunTriggeredByType.TEST,
                triggering_user_name="af_worker",
                start_date=now,
                session=session,
            )
        assert run.state == DagRunState.RUNNING, f"run {run_id} of {dag_id} has ended ({run.state}): use a new run id"
        run.dag = dag
        session.commit()
        client = InProcessTestSupervisor._api_client(dag)  # the in-process execution API on this DB
        while run.state == DagRunState.RUNNING:
            session.expire_all()
            ready, _ = run.update_state(session=session)
            ready = [ti for ti in ready if not only or ti.task_id in only]
            if not ready:
                break
            for ti in ready:
                ti.try_number += 1
                ti.state = TaskInstanceState.QUEUED  # the execution API starts queued task instances only
            session.commit()
            for ti in ready:
                workload = TaskInstanceSDK(
                    id=UUID(str(ti.id)),
                    task_id=ti.task_id,
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    try_number=ti.try_number,
                    map_index=ti.map_index,
                    dag_version_id=UUID(str(ti.dag_version_id)),
                )
                supervise_task(
                    ti=workload,
                    bundle_info=BundleInfo(name="dags-folder"),
                    dag_rel_path=dag_rel_path,
                    token="",
                    client=client,
                    log_path=f"{RUN_LOGS}/{run_id}/{ti.task_id}.log",
                )
        session.expire_all()
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances(session=session)}


def parse(dag_file: str) -> list[str]:
    """What the dag-processor does with one DAG file: import it in full, in a process of its own (forked,
    as the dag-processor forks one per file), and store its DAGs (with their Assets, kart's record among
    them) in the metadata DB. Returns the DAG ids. An environment variable ``AFW_PARSE_<NAME>`` sets
    ``<NAME>`` for the parse only (the dag-processor's environment may differ from the workers')."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parsing process: it imports the DAG file (and kart); the worker process never does
        os.close(read)
        code = 1
        try:
            # The dag-processor's own environment: AFW_PARSE_X=v sets X=v (e.g. its own luigi config).
            for name, value in list(os.environ.items()):
                if name.startswith(_PARSE_ENV):
                    os.environ[name.removeprefix(_PARSE_ENV)] = value
            from airflow.configuration import conf
            from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

            folder = conf.get("core", "dags_folder")
            bag = BundleDagBag(dag_folder=dag_file, bundle_path=folder, bundle_name="dags-folder")
            if not bag.import_errors:
                sync_bag_to_db(bag, "dags-folder", None)
                code = 0
            os.write(write, json.dumps({"dags": sorted(bag.dags), "errors": bag.import_errors}).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"parsing {dag_file} failed: {answer}"
    return list(answer["dags"])


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[0] == "--parse":
        parse(arguments[1])
        arguments = arguments[2:]
    states = main(arguments[0], arguments[1], arguments[2], arguments[3:])
    print(json.dumps({"states": states, "kart_in_worker": "kart_core" in sys.modules}))


# The tests' side.


def run_workers(
    dag_id: str,
    run_id: str,
    dag_rel_path: str,
    *only: str,
    parse_first: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run ``main`` in a fresh interpreter (the worker), after ``parse`` of the DAG file ``parse_first`` if
    given (one interpreter for both: Airflow's import is most of each one's cost); return each task id's
    state after it."""
    command = [sys.executable, __file__, *(["--parse", parse_first] if parse_first else []), dag_id, run_id]
    done = subprocess.run(
        [*command, dag_rel_path, *only],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kart_in_worker"] is False  # each task process parsed the DAG file and imported kart itself
    return dict(result["states"])


def task_log(run_id: str, task_id: str) -> str:
    """The events of one task instance's log in ``run_workers``'s run, one per line (the JSON's ``event``)."""
    base = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    lines = (base / RUN_LOGS / run_id / f"{task_id}.log").read_text().splitlines()
    return "\n".join(_event(line) for line in lines if line.strip())


def _event(line: str) -> str:
    try:
        record: Any = json.loads(line)
    except ValueError:
        return line
    return str(record.get("event", "")) + (f" {record['error_detail']}" if record.get("error_detail") else "")
