"""Transactional task runs: outputs appear at their final paths only when run() succeeds (issue 12 #1).

Each fault is tried on local disk and on object storage (the real moto S3 server), and with
thread and process workers: an exception, ``sys.exit`` or a kill after a dump leaves no output at
a final path and no success in the run logs; a successful run commits its outputs with an
integrity record; a task may read what it dumped inside its own run; a dump outside any run is
immediate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fork_server
import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError
from kart_core.storage import storage_for
from kart_core.storage.base import is_temporary
from kart_core.workspace import MANIFEST, PROCESSING_TIME, TASK_LOG, TASK_PARAMS, list_files, log_task_path


class TxFails(kart_core.TaskOnKart[Any]):
    """Dumps its outputs, then fails the way ``how`` says."""

    how = luigi.Parameter(default="raise")

    def output(self) -> Any:
        return {"frame": self.make_target("tx/frame.csv"), "note": self.make_target("tx/note.txt")}

    def run(self) -> None:
        import pandas as pd

        self.dump(pd.DataFrame({"a": [1, 2]}), "frame")
        self.dump(["half"], "note")
        if self.how == "raise":
            raise RuntimeError("failed after dumping")
        if self.how == "exit":
            sys.exit(3)


class TxReadsItself(kart_core.TaskOnKart[Any]):
    """Dumps, checks the dump exists, reads it back (also by its path, as gokart code does) and dumps again: works
    inside one run."""

    def output(self) -> Any:
        return {"first": self.make_target("self/first.pkl"), "second": self.make_target("self/second.pkl")}

    def run(self) -> None:
        self.dump({"n": 1}, "first")
        assert self.output()["first"].exists()
        path = self.output()["first"].path()  # after a dump: a private file holding the dumped bytes (at14 N2)
        assert "://" in path or os.path.exists(path)
        self.dump({"n": self.load(self.output()["first"])["n"] + 1}, "second")


class TxOk(kart_core.TaskOnKart[Any]):
    n = luigi.IntParameter(default=0)

    def run(self) -> None:
        self.dump(self.n)


def _workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    return _workspace(request, tmp_path)


def _files(workspace: str, include_temporary: bool = True) -> list[str]:
    return [entry.relative for entry in list_files(workspace, include_temporary=include_temporary)]


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failed_run_leaves_no_output_and_no_success_log(any_workspace: str, how: str) -> None:
    task = TxFails(how=how, workspace_directory=any_workspace)
    with pytest.raises(RuntimeError if how == "raise" else SystemExit):
        kart_core.run_one(task)
    files = _files(any_workspace)
    assert not any(name.startswith("tx/") for name in files), files  # no output, no staged file left
    assert not task.complete()
    storage = storage_for(any_workspace)
    assert storage.exists(log_task_path(task, TASK_PARAMS))  # written before run(): the run started
    for kind in (PROCESSING_TIME, TASK_LOG, MANIFEST):
        assert not storage.exists(log_task_path(task, kind)), kind


def test_a_successful_run_commits_its_outputs_with_their_record(any_workspace: str) -> None:
    task = TxFails(how="succeed", workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    assert task.complete()
    assert not any(is_temporary(name) for name in _files(any_workspace))
    storage = storage_for(any_workspace)
    with storage.open_read(log_task_path(task, MANIFEST)) as file:
        manifest = json.loads(file.read())
    frame = manifest["outputs"][f"tx/frame_{task.make_unique_id()}.csv"]
    with storage.open_read(task.output()["frame"].path()) as file:
        assert frame["size"] == len(file.read())
    assert frame["digest"].startswith(("xxh3_128:", "blake2b_128:")) and frame["sealed"] is False
    assert set(manifest["outputs"]) == {f"tx/frame_{task.make_unique_id()}.csv", f"tx/note_{task.make_unique_id()}.txt"}


def test_a_task_reads_what_it_dumped_inside_its_run(any_workspace: str) -> None:
    task = TxReadsItself(workspace_directory=any_workspace)
    assert kart_core.build(task, reset_register=False) == {"first": {"n": 1}, "second": {"n": 2}}


def test_a_dump_outside_any_run_is_immediate_and_recorded(any_workspace: str) -> None:
    task = TxOk(n=5, workspace_directory=any_workspace)
    task.dump(5)  # a gokart-style script, no build
    assert task.output().exists() and task.output().load() == 5
    assert storage_for(any_workspace).exists(log_task_path(task, MANIFEST))
    assert kart_core.run_one(task) == kart_core.RunStatus.CACHED


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_workers_keep_each_tasks_transaction_apart(workspace: str, executor: str) -> None:
    ok = [TxOk(n=n, workspace_directory=workspace) for n in range(4)]
    failing = TxFails(how="raise", workspace_directory=workspace)
    with pytest.raises(GokartBuildError):
        kart_core.build([*ok, failing], workers=2, executor=executor, keep_going=True, reset_register=False)
    assert [task.output().load() for task in ok] == [0, 1, 2, 3]
    assert not any(name.startswith("tx/") for name in _files(workspace))


class TxOuter(kart_core.TaskOnKart[Any]):
    """Builds another task inside its own run, then fails."""

    def run(self) -> None:
        kart_core.build(TxOk(n=9, workspace_directory=self.workspace_directory), reset_register=False)
        raise RuntimeError("outer fails after the inner build")


def test_a_build_inside_a_run_commits_on_its_own(workspace: str) -> None:
    with pytest.raises(GokartBuildError):
        kart_core.build(TxOuter(workspace_directory=workspace), reset_register=False)
    inner = TxOk(n=9, workspace_directory=workspace)
    assert inner.output().load() == 9 and kart_core.run_one(inner) == kart_core.RunStatus.CACHED
    assert not TxOuter(workspace_directory=workspace).output().exists()


def test_rerun_replaces_the_record(workspace: str) -> None:
    task = TxOk(n=1, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    before = Path(log_task_path(task, MANIFEST)).read_text()
    assert kart_core.build(TxOk(n=1, rerun=True, workspace_directory=workspace), reset_register=False) == 1
    assert Path(log_task_path(task, MANIFEST)).read_text() != before  # a new commit id


_KILLED_AFTER_DUMP = """
import sys, time
import kart_core

class DumpsThenHangs(kart_core.TaskOnKart):
    def run(self):
        self.dump({"partial": True})
        print("dumped", flush=True)
        time.sleep(120)

if __name__ == "__main__":
    kart_core.build(DumpsThenHangs(workspace_directory=sys.argv[1]))
"""


@pytest.mark.slow
def test_a_run_killed_after_its_dump_leaves_no_output(any_workspace: str, tmp_path: Path) -> None:
    """SIGKILL after the dump, before run() returns: only a staged temporary file remains (kart gc sweeps it)."""
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED_AFTER_DUMP))
    writer = subprocess.Popen(
        [sys.executable, str(script), any_workspace], cwd=tmp_path, stdout=subprocess.PIPE, env=os.environ.copy()
    )
    assert writer.stdout is not None
    deadline = time.monotonic() + 60
    while writer.stdout.readline().strip() != b"dumped":
        assert time.monotonic() < deadline and writer.poll() is None
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    files = _files(any_workspace)
    outputs = [name for name in files if name.startswith("__main__/")]
    assert outputs and all(is_temporary(name) for name in outputs), files  # staged, never committed
    assert not any(name.startswith("log/task_log/") or name.startswith("log/manifest/") for name in files)


# --- two processes building one task at once (AT fault: a commit landing between a run's check and its base) ---

_RACE_TASKS = """
import json, os, time
import luigi
import kart_core
import kart_core.hooks


class RaceSlow(kart_core.TaskOnKart):
    '''One or two outputs; each run notes who ran it (WHO) in RAN_DIR/ran.log and in its task log.'''

    outputs = luigi.IntParameter(default=2)

    def output(self):
        if self.outputs == 1:
            return self.make_target("race/a.pkl")
        return {"a": self.make_target("race/a.pkl"), "b": self.make_target("race/b.pkl")}

    def run(self):
        who, ran = os.environ["WHO"], os.environ["RAN_DIR"]
        with open(os.path.join(ran, "ran.log"), "a") as log:
            log.write(who + "\\n")
        self.task_log["who"] = who
        if self.outputs == 1:
            self.dump("a" + who)
            return
        self.dump("a" + who, "a")
        if os.environ.get("GATE"):  # hold the run open between its dumps until the test says go
            open(os.path.join(ran, "started-" + who), "w").close()
            while not os.path.exists(os.path.join(ran, "go")):
                time.sleep(0.01)
        self.dump("b" + who, "b")

    def complete(self):
        done = super().complete()
        gate = os.environ.get("GATE_AT")  # hold the GATE_AT-th check that finds it incomplete until "go"
        if gate and not done:
            ran = os.environ["RAN_DIR"]
            with open(os.path.join(ran, "incomplete-" + os.environ["WHO"]), "a") as log:
                log.write("x")
            if os.path.getsize(os.path.join(ran, "incomplete-" + os.environ["WHO"])) == int(gate):
                open(os.path.join(ran, "checked"), "w").close()
                while not os.path.exists(os.path.join(ran, "go")):
                    time.sleep(0.01)
        return done


class HookLog:
    '''A real plugin (picklable, so process workers get it): each run hook as a line of RAN_DIR/hooks.log.'''

    def _note(self, what, task):
        with open(os.path.join(os.environ["RAN_DIR"], "hooks.log"), "a") as log:
            log.write(what + " " + type(task).__name__ + "\\n")

    @kart_core.hooks.hookimpl
    def kart_before_task_run(self, task, seed, seed_methods):
        self._note("before", task)

    @kart_core.hooks.hookimpl
    def kart_after_task_run(self, task, processing_time):
        self._note("after", task)

    @kart_core.hooks.hookimpl
    def kart_on_task_error(self, task, exception):
        self._note("error", task)


class RaceDown(kart_core.TaskOnKart):
    up = kart_core.TaskInstanceParameter()

    def run(self):
        got = self.load("up")
        self.dump("".join(got.values()) if isinstance(got, dict) else got)


def as_text(value):
    return "".join(value.values()) if isinstance(value, dict) else value
"""

# P: finds the task incomplete, then (after the test let Q build it) runs it, as a builder whose check
# came before another process's whole commit (checked=True: run_one does not check again itself).
_LATE_RUNNER = """
import json, os, sys, time
import kart_core
from race_tasks import RaceSlow, as_text

workspace, outputs = sys.argv[1], int(sys.argv[2])
task = RaceSlow(outputs=outputs, workspace_directory=workspace)
assert not task.complete()
print("checked", flush=True)
while not os.path.exists(os.path.join(os.environ["RAN_DIR"], "go")):
    time.sleep(0.01)
status = kart_core.run_one(task, checked=True)
print(json.dumps({"status": status.value, "loaded": as_text(kart_core.load_output(task))}), flush=True)
"""

# Q (or a rerun P): builds RaceDown(up=RaceSlow()) or RaceSlow itself, with build()'s workers.
_BUILDER = """
import json, sys
import kart_core
from race_tasks import RaceDown, RaceSlow, as_text

workspace, outputs, what, rerun, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
slow = RaceSlow(outputs=outputs, rerun=rerun, workspace_directory=workspace)
root = RaceDown(up=slow, workspace_directory=workspace) if what == "down" else slow
value = kart_core.build([root], reset_register=False, workers=workers)
print(json.dumps({"value": as_text(value[0])}), flush=True)
"""


# P: build() of RaceSlow whose GATE_AT-th incomplete check waits for the test (which lets Q build it
# meanwhile), with a hook plugin that logs each run hook; or a Kedro node of to_pipeline running it.
_GATED = """
import json, sys
import kart_core
from kart_core.file_processor import builtin
from kart_core.hooks import create_hook_manager
from kart_core.runlog import RunLogPlugin
from race_tasks import HookLog, RaceSlow, as_text

workspace, outputs, how, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
slow = RaceSlow(outputs=outputs, workspace_directory=workspace)
if how == "kedro":
    from kart_kedro import to_pipeline

    receipt = to_pipeline(slow).nodes[0].func()
    print(json.dumps({"status": receipt.status, "value": as_text(kart_core.load_output(slow))}), flush=True)
else:
    manager = create_hook_manager([RunLogPlugin(), builtin, HookLog()])
    value = kart_core.build([slow], reset_register=False, workers=workers, executor=how, hook_manager=manager)
    print(json.dumps({"value": as_text(value[0])}), flush=True)
"""


def _race_scripts(tmp_path: Path) -> Path:
    (tmp_path / "race_tasks.py").write_text(_RACE_TASKS)
    (tmp_path / "gated.py").write_text(_GATED)
    (tmp_path / "late_runner.py").write_text(_LATE_RUNNER)
    (tmp_path / "builder.py").write_text(_BUILDER)
    ran = tmp_path / "ran"
    ran.mkdir()
    return ran


def _race_env(tmp_path: Path, who: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, WHO=who, RAN_DIR=str(tmp_path / "ran"), **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return env


def _build_in_process(tmp_path: Path, who: str, *args: str, **extra: str) -> dict[str, Any]:
    """builder.py in a process of its own: a fork of the server that imported luigi, pandas and s3fs once
    (tests/fork_server.py; a fresh interpreter spent ~2 s of CPU on them before its build)."""
    done = fork_server.run(
        [str(tmp_path / "builder.py"), *args], tmp_path, _race_env(tmp_path, who, **extra), 180, fork_server.KART_S3
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _cached(workspace: str, outputs: int) -> tuple[str, str, str]:
    """What the cache holds: RaceSlow's outputs, RaceDown's output and RaceSlow's task log's ``who``."""
    from race_tasks import RaceDown, RaceSlow, as_text  # type: ignore[import-not-found]

    slow = RaceSlow(outputs=outputs, workspace_directory=workspace)
    down = RaceDown(up=slow, workspace_directory=workspace)
    return as_text(kart_core.load_output(slow)), kart_core.load_output(down), slow.get_task_log()["who"]


@pytest.fixture
def race_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A workspace (local disk, or the moto S3 server) with the race scripts importable from the test."""
    _race_scripts(tmp_path)
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("race_tasks", None)
    try:
        yield _workspace(request, tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("race_tasks", None)


@pytest.mark.parametrize("race_workspace", ["local", "s3"], indirect=True)
@pytest.mark.parametrize("outputs", [1, 2])
def test_a_commit_between_a_runs_check_and_its_run_is_kept(race_workspace: str, outputs: int, tmp_path: Path) -> None:
    """P finds RaceSlow incomplete; Q then builds RaceDown(up=RaceSlow()) whole; P's run keeps Q's commit.

    Before the fix P read Q's manifest as its base and replaced Q's outputs: RaceSlow held P's outputs
    while RaceDown had been computed from Q's, both complete.
    """
    late = subprocess.Popen(
        [sys.executable, str(tmp_path / "late_runner.py"), race_workspace, str(outputs)],
        cwd=tmp_path,
        env=_race_env(tmp_path, "P"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert late.stdout is not None
    assert late.stdout.readline().strip() == "checked"
    q = _build_in_process(tmp_path, "Q", race_workspace, str(outputs), "down", "0", "1")
    (tmp_path / "ran" / "go").touch()
    out, err = late.communicate(timeout=180)
    assert late.returncode == 0, err
    p = json.loads(out.strip().splitlines()[-1])

    expected = "aQbQ" if outputs == 2 else "aQ"
    assert q == {"value": expected}
    assert p == {"status": "cached", "loaded": expected}  # P ran nothing, and hands back the kept outputs
    assert _cached(race_workspace, outputs) == (expected, expected, "Q")  # Q's run logs, not P's
    assert (tmp_path / "ran" / "ran.log").read_text().split() == ["Q"]  # P's run() never ran


@pytest.mark.parametrize("race_workspace", ["local", "s3"], indirect=True)
def test_a_rerun_racing_a_build_still_replaces_the_outputs(race_workspace: str, tmp_path: Path) -> None:
    """A rerun (held open between its dumps) while another process builds a downstream: the rerun replaces."""
    _build_in_process(tmp_path, "old", race_workspace, "2", "slow", "0", "1")
    rerun = subprocess.Popen(
        [sys.executable, str(tmp_path / "builder.py"), race_workspace, "2", "slow", "1", "1"],
        cwd=tmp_path,
        env=_race_env(tmp_path, "P", GATE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "ran" / "started-P").exists():
        assert rerun.poll() is None and time.monotonic() < deadline, rerun.communicate()
        time.sleep(0.02)
    q = _build_in_process(tmp_path, "Q", race_workspace, "2", "down", "0", "1")
    (tmp_path / "ran" / "go").touch()
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err

    assert q == {"value": "aoldbold"}  # RaceSlow was complete (the old outputs) while the rerun ran
    assert json.loads(out.strip().splitlines()[-1]) == {"value": "aPbP"}
    assert _cached(race_workspace, 2) == ("aPbP", "aoldbold", "P")
    assert (tmp_path / "ran" / "ran.log").read_text().split() == ["old", "P"]


@pytest.mark.slow
@pytest.mark.parametrize("race_workspace", ["local"], indirect=True)
def test_process_worker_builds_racing_a_downstream_build_stay_consistent(race_workspace: str, tmp_path: Path) -> None:
    """build(workers=2) (process workers) and another process's build of a downstream, started at small offsets.

    Whoever wins, the cache holds one run's outputs, the downstream was computed from them, and each
    build hands back what the cache holds.
    """
    import random
    import shutil

    for attempt in range(6):
        workspace = str(tmp_path / f"ws{attempt}")
        ran = tmp_path / "ran"
        shutil.rmtree(ran)
        ran.mkdir()
        p = subprocess.Popen(
            [sys.executable, str(tmp_path / "builder.py"), workspace, "2", "slow", "0", "2"],
            cwd=tmp_path,
            env=_race_env(tmp_path, "P"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(random.uniform(0.0, 0.3))
        q = _build_in_process(tmp_path, "Q", workspace, "2", "down", "0", "2")
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        slow, down, who = _cached(workspace, 2)
        assert slow == down == q["value"] == json.loads(out.strip().splitlines()[-1])["value"] == f"a{who}b{who}"


@pytest.mark.parametrize(
    ("race_workspace", "how", "workers", "gate_at"),
    [("local", "thread", 1, 2), ("s3", "thread", 2, 2), ("local", "process", 2, 2), ("s3", "kedro", 1, 1)],
    indirect=["race_workspace"],
)
def test_a_build_that_keeps_another_commit_reports_it_cached(
    race_workspace: str, how: str, workers: int, gate_at: int, tmp_path: Path
) -> None:
    """P's build (or a Kedro node) finds RaceSlow incomplete twice (the walk, run_one); Q builds it before P
    reads its base: P keeps Q's commit, says "0 ran, 1 cached" and fires no run hook.

    Before the fix P said "1 ran" (a Kedro node "ran") and fired before/after hooks for a run() that never ran.
    ``gate_at``: which incomplete check P holds: the last one before its base (the walk's, then run_one's).
    """
    p = subprocess.Popen(
        [sys.executable, str(tmp_path / "gated.py"), race_workspace, "2", how, str(workers)],
        cwd=tmp_path,
        env=_race_env(tmp_path, "P", GATE_AT=str(gate_at)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ran" / "checked").exists():
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.02)
        assert _build_in_process(tmp_path, "Q", race_workspace, "2", "slow", "0", "1") == {"value": "aQbQ"}
    finally:
        (tmp_path / "ran" / "go").touch()  # never leave P waiting (a failed assertion above)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err

    result = json.loads(out.strip().splitlines()[-1])
    assert result["value"] == "aQbQ"
    assert (tmp_path / "ran" / "ran.log").read_text().split() == ["Q"]  # P's run() never ran
    if how == "kedro":
        assert result["status"] == "cached"
    else:
        assert "kart build: 0 ran, 1 cached, 0 failed, 0 not run" in err
        assert not (tmp_path / "ran" / "hooks.log").exists()  # no hook claims P ran it
    from race_tasks import RaceSlow, as_text  # type: ignore[import-not-found]

    slow = RaceSlow(outputs=2, workspace_directory=race_workspace)
    assert (as_text(kart_core.load_output(slow)), slow.get_task_log()["who"]) == ("aQbQ", "Q")


class TxNotesItsRun(kart_core.TaskOnKart[Any]):
    """Keeps a weak reference to its run's transaction."""

    runs: list[Any] = []  # noqa: RUF012 (the test's record of the runs)

    def run(self) -> None:
        import weakref

        from kart_core import transaction

        TxNotesItsRun.runs.append(weakref.ref(transaction.current()))
        self.dump(1)


def test_an_ended_run_is_freed_without_the_cyclic_collector(workspace: str) -> None:
    """A run's transaction and its DirectWrites (which refers back to it) are freed once the run is over and dropped,
    not kept for the cyclic garbage collector (a KartRunner first run made ~25 such objects per node)."""
    import gc

    TxNotesItsRun.runs.clear()
    gc.collect()
    gc.disable()
    try:
        assert kart_core.run_one(TxNotesItsRun(workspace_directory=workspace)) == kart_core.RunStatus.RAN
        assert len(TxNotesItsRun.runs) == 1 and TxNotesItsRun.runs[0]() is None
    finally:
        gc.enable()
