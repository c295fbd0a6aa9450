"""Run a DAG's task instances as Airflow workers do, one process per task instance, without a scheduler.

``python af_worker.py`` is a LocalExecutor worker: a long-lived process that imports Airflow only (never
a DAG file or kart) and serves requests read from stdin, one JSON object a line. A run request creates
the run when missing and, for each task instance ready in it, calls Airflow's ``supervise_task``, which
forks the task process; that process re-parses the DAG file for its one task (Airflow's parsing context)
and runs it. A run request may first ask for a parse: what the dag-processor does, in a process forked for
it. A build request runs ``kart_core.build`` in a forked process (to make outputs exist before a run).
What differs from production is only the transport to the task execution API: Airflow's in-process
API (what ``dag.test()`` uses) on the same metadata DB instead of an api-server over HTTP, so the
record Asset, XCom and the run's task breadcrumbs are read through the real API routes.

Task instances run in Airflow's order, as ``dag.test()`` decides readiness; with task ids given, only
those run and the others are left as they are (a later request runs the rest, e.g. after the test edited
the DAG file). Each task's log is the JSON log Airflow's supervisor writes, in
``<base_log_folder>/afw/<run_id>/<task_id>.log``. Each answer is one stdout line after ``ANSWER``: each
task id's state, and whether kart was imported in this (the worker's) process.

One worker serves every test of a module (``Worker``, at the bottom): Airflow's import and its in-process
execution API (~15 s of CPU each time: most of a run's cost) are paid once, as a real worker pays them
once for the many task instances it runs. Nothing of the test process (imported task modules, luigi's
instance cache) leaks into the task processes, and nothing of one task process into the next: each is
forked from the worker, which never imports kart (every answer checks it).
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

RUN_LOGS = "afw"
ANSWER = "AFW-ANSWER "
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
            bag = BundleDagBag(dag_folder=dag_file, bundle_path=Path(folder), bundle_name="dags-folder")
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


def build(roots: str) -> None:
    """``kart_core.build(<roots>)`` in a process of its own (forked, so it imports kart and the task package
    afresh): ``roots`` is an expression over the task package, imported as ``tasks`` (``AFW_MODULE``)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import importlib

            import kart_core

            tasks = importlib.import_module(os.environ["AFW_MODULE"])
            kart_core.build(eval(roots, {"tasks": tasks}))
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"building {roots} failed (status {status}, its traceback is in the worker's stderr)"


def _warm() -> None:
    """Import what ``main`` and ``parse`` use once, in the long-lived worker, as a LocalExecutor has it
    imported before it forks: each parse and task process then starts from it (never from kart's import)."""
    import airflow.dag_processing.dagbag  # noqa: F401
    import airflow.models.dagbag  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401


def serve() -> None:
    """The long-lived worker: one request per stdin line (JSON), one answer per request on stdout, after
    ``ANSWER``. A request's ``env`` applies to the processes it forks (PYTHONPATH's entries go on sys.path:
    forked processes inherit it, not the variable) and is undone after it."""
    _warm()
    # A test that gets no answer in time sends SIGUSR1 to the worker's process group (``Worker._ask``): every
    # process forked from here (parse, build, task processes) inherits the handler and writes its threads' stacks.
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    for line in sys.stdin:
        request = json.loads(line)
        saved_environ, saved_path = dict(os.environ), list(sys.path)
        os.environ.update(request["env"])
        sys.path[:0] = [entry for entry in request["env"].get("PYTHONPATH", "").split(os.pathsep) if entry]
        try:
            if request.get("build"):
                build(request["build"])
                answer: dict[str, Any] = {"built": True}
            else:
                if request.get("parse"):
                    parse(request["parse"])
                states = main(request["dag_id"], request["run_id"], request["dag_rel_path"], request["only"])
                answer = {"states": states}
        except BaseException:
            import traceback

            answer = {"error": traceback.format_exc()}
        finally:
            os.environ.clear()
            os.environ.update(saved_environ)
            sys.path[:] = saved_path
        answer["kart_in_worker"] = "kart_core" in sys.modules
        print(ANSWER + json.dumps(answer), flush=True)
    # stdin closed: the tests are done. Exit without Python's shutdown, which waits ~10 s on Airflow's threads.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve()


# The tests' side.


class Worker:
    """A long-lived worker process (``serve``) for the tests: ``run`` and ``build`` send it requests; each
    answer is checked (no error, kart never imported in the worker itself). Its stderr goes to a file
    (``stderr``), quoted in the assertion messages."""

    def __init__(self, stderr: Path) -> None:
        from services import watch  # here: the worker's process (this file run as a script) has no tests/ on its path

        self.stderr = stderr
        with stderr.open("w") as errors:
            self.process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                # The task modules are edited between runs: each forked process reads them from source.
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                start_new_session=True,
            )
        # The end of stdin stops the worker only between requests: a test process killed during one would
        # leave it (and the task it forked) running to the request's end.
        self.watchdog = watch(self.process)
        # Its stdout is read line by line in a thread, never through select() on the pipe beside readline():
        # readline() may take the ANSWER line into the file object's buffer together with the line before it,
        # and select() then waits on an empty pipe for an answer already read (the 300 s "hangs" of CI under
        # load, with the worker idle on its stdin).
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        """Queue each line of the worker's stdout; an empty string once it ends."""
        for line in stdout:
            self.lines.put(line)
        self.lines.put("")

    def _ask(self, request: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        deadline, seen = time.monotonic() + timeout, list[str]()
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no answer in {timeout} s: {self._stacks(request)}") from None
            assert line, f"the worker ended ({self.process.poll()}): {''.join(seen)[-3000:]}{self._errors()}"
            if line.startswith(ANSWER):
                break
            seen.append(line)
        answer: dict[str, Any] = json.loads(line.removeprefix(ANSWER))
        assert "error" not in answer, answer["error"] + "".join(seen)[-3000:] + self._errors()
        assert answer.pop("kart_in_worker") is False  # each forked process imported kart itself
        return answer

    def _errors(self) -> str:
        return "\nworker's stderr:\n" + self.stderr.read_text()[-3000:]

    def _stacks(self, request: dict[str, Any]) -> str:
        """What a hung request was doing: each process of the worker's group writes its threads' stacks (to the
        worker's stderr, or a task process's to its log), quoted with the request's task logs."""
        processes = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,etime,args", "-g", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        for line in processes.splitlines()[1:]:  # one at a time, so their stacks do not interleave
            try:
                os.kill(int(line.split()[0]), signal.SIGUSR1)
            except (ProcessLookupError, ValueError):
                pass
            time.sleep(0.5)
        logs = ""
        if request.get("run_id"):
            folder = Path(os.environ["AIRFLOW_HOME"]) / "logs" / RUN_LOGS / request["run_id"]
            for log in sorted(folder.glob("*.log")):
                logs += f"\n{log.name}:\n" + log.read_text()[-4000:]
        stderr = self.stderr.read_text()[-20000:]
        return f"\nprocesses:\n{processes}\nworker's stderr:\n{stderr}\ntask logs of the run:{logs}"

    def run(
        self,
        dag_id: str,
        run_id: str,
        dag_rel_path: str,
        *only: str,
        parse_first: str | None = None,
        env: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """``parse`` the DAG file ``parse_first`` if given, then ``main``; each task id's state after it."""
        request = {
            "dag_id": dag_id,
            "run_id": run_id,
            "dag_rel_path": dag_rel_path,
            "only": list(only),
            "parse": parse_first,
            "env": env or {},
        }
        return dict(self._ask(request)["states"])

    def build(self, roots: str, module: str, env: dict[str, str] | None = None) -> None:
        """``build`` ``roots`` (an expression over the task package ``module``, imported as ``tasks``)."""
        self._ask({"build": roots, "env": {**(env or {}), "AFW_MODULE": module}})

    def close(self) -> None:
        """End the worker: the end of its stdin after the current request; its process group after 30 s."""
        from services import stop_group, unwatch

        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_group(self.process, self.watchdog, grace=5)
        else:
            unwatch(self.watchdog)


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
