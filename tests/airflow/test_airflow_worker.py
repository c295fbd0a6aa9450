"""The worker's side end to end: each task instance runs in its own process, which re-parses the DAG file for
its one task, as a LocalExecutor (or Celery, Kubernetes) worker does (``af_worker``), on the session's DB.

Covers what the unit tests check by parts: a task reached by two paths whose later copy has ``rerun=True``
(the worker's one-task parse meets the other copy; the DAG's record tells it), the upstream unique ids
a worker compares with XCom (guessed from its place, or found through the record when the guess has no
XCom), and a DAG file or task code edited between the dag-processor's parse and a worker's run.
"""

from __future__ import annotations

import os
import pickle
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from af_worker import Worker, task_log

import kart_core

pytestmark = pytest.mark.slow  # every test starts Airflow worker processes

# set by tests/airflow/conftest.py; not imported from it: a bare `conftest` is whichever conftest pytest loaded
# last (tests/kedro's when both folders' files are collected in one run)
DAGS_FOLDER = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]

TASKS = """
import os

import luigi
import kart_core


def ran(task, value):
    # Each run() notes itself in the file AFW_RUNS names (the workers' environment): what ran, in which order.
    if os.environ.get("AFW_RUNS"):
        with open(os.environ["AFW_RUNS"], "a") as runs:
            runs.write(f"{type(task).__name__}={value}\\n")
    task.dump(value)


class Up(kart_core.TaskOnKart):
    value = luigi.IntParameter(default=2, significant=False)

    def run(self):
        ran(self, 10 * self.value)


class Side(kart_core.TaskOnKart):
    def run(self):
        ran(self, 7)


class Next(kart_core.TaskOnKart):
    up = kart_core.TaskInstanceParameter()
    side = kart_core.TaskInstanceParameter()

    def run(self):
        ran(self, self.load("up") + self.load("side"))


class Double(kart_core.TaskOnKart):
    up = kart_core.TaskInstanceParameter()
    side = kart_core.TaskInstanceParameter()

    def run(self):
        ran(self, 2 * self.load("up") + self.load("side"))


class Src(kart_core.TaskOnKart):
    n = luigi.IntParameter()

    def run(self):
        ran(self, list(range(self.n)))


class Mid(kart_core.TaskOnKart):
    src = kart_core.TaskInstanceParameter()

    def run(self):
        ran(self, sum(self.load("src")))


class Top(kart_core.TaskOnKart):
    n = luigi.IntParameter()

    def requires(self):
        src = Src(n=self.n)
        return {"src": src, "mid": Mid(src=src)}

    def run(self):
        ran(self, 100 * self.load("mid") + len(self.load("src")))
"""


@dataclass(frozen=True)
class Site:
    """One test's deployment: its task package (``code/<module>.py``), its DAG file in the dags folder,
    kart's workspace (``ws``, set for every process by the luigi config), the file the tasks note their
    runs in (``runs``) and the processes' environment."""

    module: str
    code: Path
    dag_file: Path
    workspace: Path
    runs: Path
    env: dict[str, str]
    worker: Worker

    def write_dag(self, body: str) -> None:
        """Write the DAG file (``{module}`` in ``body`` is the task package)."""
        header = "# an airflow dag file\nimport datetime\n\nfrom kart_airflow import to_dag\n"
        self.dag_file.write_text(header + textwrap.dedent(body).format(module=self.module))

    def run(self, dag_id: str, run_id: str, *only: str, parse: bool = True) -> dict[str, str]:
        """The dag-processor parses the DAG file (unless ``parse`` is False), then workers run the run's ready
        task instances (``only`` those), each in its own process; each task id's state after it."""
        return self.worker.run(
            dag_id,
            run_id,
            str(self.dag_file.relative_to(DAGS_FOLDER)),
            *only,
            parse_first=str(self.dag_file) if parse else None,
            env=self.env,
        )

    def build(self, roots: str) -> None:
        """``kart_core.build(<roots>)`` in a process forked from the worker, with the workers' config
        (``roots``: an expression over the task package, imported as ``tasks``); what it ran is forgotten."""
        self.worker.build(roots, self.module, self.env)
        self.ran()

    def ran(self) -> list[str]:
        """What ran since the last call, in order (``Class=value``)."""
        text = self.runs.read_text() if self.runs.exists() else ""
        self.runs.unlink(missing_ok=True)
        return text.splitlines()

    def output(self, class_name: str, unique_id: str) -> Any:
        """The committed output of a task of the package, read from the workspace."""
        return pickle.loads(self.output_path(class_name, unique_id).read_bytes())

    def output_path(self, class_name: str, unique_id: str) -> Path:
        return self.workspace / self.module / f"{class_name}_{unique_id}.pkl"


@pytest.fixture(scope="module")
def worker(airflow_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One long-lived worker process for the module's tests (each test's environment goes with its requests)."""
    worker = Worker(tmp_path_factory.mktemp("afw") / "worker-stderr.txt")
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture
def site(worker: Worker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """A task package and a DAG file, unique to the test; the DAG file is removed afterwards (the other tests
    of this process parse the dags folder)."""
    module = f"afw_{request.node.name.removeprefix('test_')[:40]}"
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{module}.py").write_text(TASKS)
    config = tmp_path / "config" / "luigi.cfg"  # not the test's cwd (tmp_path), where luigi would read it
    config.parent.mkdir()
    workspace = tmp_path / "ws"
    config.write_text(f"[TaskOnKart]\nworkspace_directory = {workspace}\n")
    folder = Path(DAGS_FOLDER) / module
    folder.mkdir()
    env = {
        "LUIGI_CONFIG_PATH": str(config),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])),
        "AFW_RUNS": str(tmp_path / "runs.txt"),
    }
    try:
        yield Site(module, code, folder / "dag.py", workspace, tmp_path / "runs.txt", env, worker)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _failed_logs(run_id: str, states: dict[str, str]) -> str:
    """The logs of the run's failed task instances, for an assertion's message."""
    failed = [task_id for task_id, state in states.items() if state == "failed"]
    return "\n\n".join(f"{task_id}:\n{task_log(run_id, task_id)[-3000:]}" for task_id in failed)


def _package(site: Site, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The task package, imported in the test process (to compute unique ids)."""
    import importlib

    monkeypatch.syspath_prepend(str(site.code))
    return importlib.import_module(site.module)


RERUN_DAG = """
from {module} import Double, Next, Side, Up

dag = to_dag(
    [Next(up=Up(), side=Side()), Double(up=Up(value=3, rerun=True), side=Side())],
    dag_id="afw_rerun",
    assets="none",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    schedule=None,
)
"""


def test_the_rerun_copy_reruns_once_on_its_worker_and_downstream_workers_load_its_new_output(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up is reached by two paths: Next's copy (first, so its place: Up__Next.up) and Double's with rerun=True
    and value=3 (the one the parse keeps). Up's worker parses the file for Up__Next.up and meets Next's copy;
    the record tells it to run Double's (its rerun and value, not the dag-processor's workspace). Everything
    was built before with value=1 (Up = 10)."""
    tasks = _package(site, monkeypatch)
    ws = str(site.workspace)
    up, side = tasks.Up(value=1, workspace_directory=ws), tasks.Side(workspace_directory=ws)
    built = [
        tasks.Next(up=up, side=side, workspace_directory=ws),
        tasks.Double(up=up, side=side, workspace_directory=ws),
    ]
    kart_core.build(built)
    ids = {type(task).__name__: task.make_unique_id() for task in [up, side, *built]}
    assert [site.output(name, ids[name]) for name in ("Up", "Next", "Double")] == [10, 17, 27]

    site.write_dag(RERUN_DAG)
    # The dag-processor reads another luigi config (a workspace of its own); the DAG declares no Assets, so
    # nothing the workers read depends on it but what the record says about the rerun copy: its workspace
    # on the worker must still be the worker's.
    elsewhere = site.workspace.parent / "config" / "dag-processor.cfg"
    elsewhere.write_text(f"[TaskOnKart]\nworkspace_directory = {site.workspace.parent / 'dag-processor-ws'}\n")
    monkeypatch.setitem(site.env, "AFW_PARSE_LUIGI_CONFIG_PATH", str(elsewhere))
    states = site.run("afw_rerun", "r1")
    assert states == dict.fromkeys(["Up__Next.up", "Side__Next.side", "Next", "Double"], "success"), _failed_logs(
        "r1", states
    )
    # Up reran once, with the rerun copy's value, on its own worker; its downstream tasks, whose inputs it
    # replaced, ran on theirs (each with its own copy of Up, without rerun: Up did not run again); Side is cached.
    ran = site.ran()
    assert sorted(ran) == ["Double=67", "Next=37", "Up=30"] and ran[0] == "Up=30"
    assert [site.output(name, ids[name]) for name in ("Up", "Next", "Double", "Side")] == [30, 37, 67, 7]
    for task_id in ("Up__Next.up", "Next", "Double", "Side__Next.side"):
        text = task_log("r1", task_id)
        assert f"kart_airflow: built only {task_id} for this worker" in text, text[-3000:]
        assert text.count("ran: " if task_id != "Side__Next.side" else "cached: ") == 1, text[-3000:]
    assert not (site.workspace.parent / "dag-processor-ws").exists()


TOP_DAG = """
from {module} import Top

dag = to_dag(
    Top(n=N),
    dag_id="DAG_ID",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    schedule=None,
)
"""


def _top_dag(n: int, dag_id: str) -> str:
    return TOP_DAG.replace("n=N", f"n={n}").replace("DAG_ID", dag_id)


def test_workers_compare_the_upstream_ids_in_xcom_at_their_guessed_ids_or_through_the_record(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Top requires Src (place Src__Top.src) and Mid (Mid__Top.mid), which requires the same Src. Top's worker
    guesses its upstream task ids from its own place and finds both in XCom; Mid's guesses Src__Top.mid.src,
    which is no task (Src is reached by the shorter path), and finds Src__Top.src through the DAG's record."""
    tasks = _package(site, monkeypatch)
    src, mid, top = tasks.Src(n=4), tasks.Mid(src=tasks.Src(n=4)), tasks.Top(n=4)
    site.write_dag(_top_dag(4, "afw_xcom"))
    assert site.run("afw_xcom", "r1") == {"Src__Top.src": "success", "Mid__Top.mid": "success", "Top": "success"}
    assert site.ran() == ["Src=[0, 1, 2, 3]", "Mid=6", "Top=604"]
    assert site.output("Top", top.make_unique_id()) == 604
    src_id, mid_id = src.make_unique_id()[:8], mid.make_unique_id()[:8]
    mid_log, top_log = task_log("r1", "Mid__Top.mid"), task_log("r1", "Top")
    assert f"kart_airflow: upstream unique ids in this run's XCom: Src__Top.src={src_id}" in mid_log, mid_log[-3000:]
    assert "found the upstream task ids of Mid__Top.mid in the DAG's record" in mid_log
    assert f"upstream unique ids in this run's XCom: Src__Top.src={src_id}, Mid__Top.mid={mid_id}" in top_log
    assert "in the DAG's record" not in top_log and "walked the graph" not in top_log + mid_log


def test_a_dag_file_or_task_code_edited_after_the_parse_fails_the_worker_instead_of_loading_a_stale_output(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run r1 of Top(n=4) starts: Src runs. The DAG file then says n=5, whose outputs all exist (an earlier
    build), and the dag-processor re-parses it: Mid's worker builds Mid(src=Src(n=5)), consistent with the
    record, and would find it cached. Then the task code of Top changes on the workers before the
    dag-processor sees it: run r2's Top would find its old output cached."""
    tasks = _package(site, monkeypatch)
    site.build("tasks.Top(n=5)")
    site.write_dag(_top_dag(4, "afw_edited"))
    assert site.run("afw_edited", "r1", "Src__Top.src") == {
        "Src__Top.src": "success",
        "Mid__Top.mid": "None",
        "Top": "None",
    }
    assert site.ran() == ["Src=[0, 1, 2, 3]"]

    site.write_dag(_top_dag(5, "afw_edited"))
    states = site.run("afw_edited", "r1")
    assert states == {"Src__Top.src": "success", "Mid__Top.mid": "failed", "Top": "upstream_failed"}
    assert site.ran() == []
    ran, wanted = tasks.Src(n=4).make_unique_id(), tasks.Src(n=5).make_unique_id()
    mid_log = task_log("r1", "Mid__Top.mid")
    # Its guess (Src__Top.mid.src) had no XCom: the record and the run's task ids gave Src__Top.src.
    assert (
        f"it requires Src[{wanted[:8]}] (unique id {wanted}), but in this run (r1) the upstream task "
        f"'Src__Top.src' ran Src[{ran[:8]}] (unique id {ran})"
    ) in mid_log, mid_log[-3000:]
    assert "cached: " not in mid_log and "Clear the whole run" in mid_log

    # Top's code changes on the workers; the dag-processor has not re-parsed (its record holds the old fingerprint).
    module = site.code / f"{site.module}.py"
    module.write_text(module.read_text().replace('100 * self.load("mid")', '1000 * self.load("mid")'))
    states = site.run("afw_edited", "r2", parse=False)
    assert states == {"Src__Top.src": "success", "Mid__Top.mid": "success", "Top": "failed"}
    assert site.ran() == []  # Src and Mid cached (their code did not change); Top refused
    top_log = task_log("r2", "Top")
    assert f"the code of {site.module}.Top on this worker (fingerprint " in top_log, top_log[-3000:]
    assert "differs from the code the DAG was parsed with" in top_log and "cached: " not in top_log
