"""Loads a task's ``run()`` makes in child processes and threads count as its inputs (attacker at15 F7).

A downstream that loads its upstream in a ``multiprocessing`` pool or a ``ProcessPoolExecutor`` inside ``run()``
(fork, or spawn with the task sent) or in a thread pool records that load in its manifest, so after the upstream
is rerun with other content the downstream is stale and rebuilds with the new value. Before, a child's record went
into its own copy of the run and was lost: the downstream was served from the cache with the old value. Real
process and thread pools, local disk and moto's S3.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import multiprocessing
import multiprocessing.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.errors import GokartBuildError, LoadOSError, TaskDefinitionError
from kart_core.storage import storage_for

_VALUE = "KART_TEST_CHILD_LOADS_UPVAL"


class Up(gokart.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(int(os.environ[_VALUE]))


def _load_target(target: gokart.TargetOnKart) -> Any:
    return target.load()


def _load_task(task: gokart.TaskOnKart[int]) -> Any:
    return task.load()


def _build_upstream(task: gokart.TaskOnKart[int]) -> Any:
    """A build nested in the run, made in the child (attacker at18 I4): what it returns is the run's input."""
    return gokart.build(task.requires(), reset_register=False)


def _in_pool(context: str, function: Any, item: Any) -> Any:
    with multiprocessing.get_context(context).Pool(1) as pool:
        return pool.map(function, [item])[0]


def _in_executor(context: str, function: Any, item: Any) -> Any:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(context)) as pool:
        return pool.submit(function, item).result()


def _in_threads(function: Any, item: Any) -> Any:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return pool.submit(function, item).result()


# How each downstream's run() loads Up: in which pool, through the task (self.load()) or its input target.
_HOWS = {
    "fork pool, self.load()": lambda task: _in_pool("fork", _load_task, task),
    "fork pool, self.input().load()": lambda task: _in_pool("fork", _load_target, task.input()),
    "fork ProcessPoolExecutor, self.load()": lambda task: _in_executor("fork", _load_task, task),
    "fork ProcessPoolExecutor, self.input().load()": lambda task: _in_executor("fork", _load_target, task.input()),
    "spawn pool, self.load()": lambda task: _in_pool("spawn", _load_task, task),
    "spawn ProcessPoolExecutor, self.load()": lambda task: _in_executor("spawn", _load_task, task),
    "forkserver pool, self.load()": lambda task: _in_pool("forkserver", _load_task, task),
    "thread pool, self.load()": lambda task: _in_threads(_load_task, task),
    "fork pool, build()": lambda task: _in_pool("fork", _build_upstream, task),
    "fork ProcessPoolExecutor, build()": lambda task: _in_executor("fork", _build_upstream, task),
}


class Down(gokart.TaskOnKart[int]):
    how = luigi.Parameter()

    def requires(self) -> Up:
        return Up(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(2 * _HOWS[self.how](self))


def _inputs(task: gokart.TaskOnKart[Any]) -> list[dict[str, Any]]:
    record = task.output().record
    return json.loads(storage_for(record.manifest).read_bytes(record.manifest)).get("inputs", [])  # type: ignore[no-any-return]


def _commit_of(target: gokart.TargetOnKart) -> str:
    record = target.record
    document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    return document["outputs"][record.key]["commit"]  # type: ignore[no-any-return]


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary directory for the test (where runs put the folders their children send loads to).

    multiprocessing makes its own folder (a forkserver's socket) once per process, in the temporary directory as
    it is then: made first, it stays in the system's (a short path) for every test of the process.
    """
    multiprocessing.util.get_temp_dir()
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _relays(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.startswith("kart-loads-")]


def test_loads_in_child_processes_and_threads_make_the_task_stale(
    any_workspace: str, temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A forkserver starts once per process with the environment of that time (the S3 server's may come later).
    hows = [how for how in _HOWS if "://" not in any_workspace or not how.startswith("forkserver")]
    downs = [Down(how=how, workspace_directory=any_workspace) for how in hows]
    monkeypatch.setenv(_VALUE, "5")
    assert gokart.build(downs, reset_register=False) == [10] * len(hows)
    assert _relays(temporary) == []  # every run removed its folder

    monkeypatch.setenv(_VALUE, "7")
    assert gokart.build(Up(workspace_directory=any_workspace, rerun=True), reset_register=False) == 7
    fresh = [Down(how=how, workspace_directory=any_workspace) for how in hows]
    assert {down.how: down.complete() for down in fresh} == dict.fromkeys(hows, False)
    assert dict(zip(hows, gokart.build(fresh, reset_register=False), strict=True)) == dict.fromkeys(hows, 14)
    assert _relays(temporary) == []
    up = Up(workspace_directory=any_workspace).output()
    for down in fresh:  # each manifest records the load its child made, with the commit it read
        ((key, commit),) = [(item["key"], item["commit"]) for item in _inputs(down)]
        assert (key, commit) == (up.record.key, _commit_of(up)), down.how


def test_a_load_whose_record_cannot_reach_the_run_fails(
    tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that cannot send its record to the run (here the temporary directory is a file, so the run's folder
    cannot be made there) fails its load: the run fails rather than commit an output whose inputs it does not
    know, and the task stays incomplete."""
    workspace = str(tmp_path / "ws")
    monkeypatch.setenv(_VALUE, "5")
    assert gokart.build(Up(workspace_directory=workspace), reset_register=False) == 5
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    down = Down(how="fork pool, self.input().load()", workspace_directory=workspace)
    with pytest.raises(GokartBuildError) as caught:
        gokart.build(down, reset_register=False)
    assert isinstance(caught.value.__cause__, LoadOSError)
    assert "could not send that record to the run" in str(caught.value.__cause__)
    assert not Down(how="fork pool, self.input().load()", workspace_directory=workspace).complete()


def _refuse(reason: str) -> None:
    raise RuntimeError(reason)


def _ask_for_checks(ways: str) -> bool:
    """In a child process of the run: ask for checks at the run's commit (``ways``: "refusing" or "lambda")."""
    if ways == "lambda":
        return gokart.check_before_commit(lambda: None)
    return gokart.check_before_commit(functools.partial(_refuse, "the file changed while the child read it"))


class AsksInChild(gokart.TaskOnKart[bool]):
    ways = luigi.Parameter()

    def run(self) -> None:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            self.dump(pool.apply(_ask_for_checks, (self.ways,)))


def test_a_check_a_child_asks_for_is_made_at_the_run_s_commit(tmp_path: Path, temporary: Path) -> None:
    """check_before_commit in a forked child of the run sends the check to the run (attacker at16 G7): its failure
    fails the run, which commits nothing; before, the child's call returned False and the check was dropped."""
    task = AsksInChild(ways="refusing", workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(GokartBuildError) as caught:
        gokart.build(task, reset_register=False)
    assert "the file changed while the child read it" in str(caught.value)
    assert not task.complete()
    assert _relays(temporary) == []


def test_a_check_a_child_cannot_send_fails_its_load(tmp_path: Path, temporary: Path) -> None:
    task = AsksInChild(ways="lambda", workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(GokartBuildError) as caught:
        gokart.build(task, reset_register=False)
    assert isinstance(caught.value.__cause__, TaskDefinitionError)
    assert "cannot be sent to it" in str(caught.value.__cause__)
    assert not task.complete()


LATE: dict[str, Any] = {}  # the child process a run left loading after it returned, for the test to wait for


def _late_load_target(target: gokart.TargetOnKart, seconds: float) -> None:
    time.sleep(seconds)
    target.load()


def _late_load_task(task: gokart.TaskOnKart[int], seconds: float) -> None:
    time.sleep(seconds)
    task.load()


class LeavesAChild(gokart.TaskOnKart[int]):
    """Starts a child process that loads Up once run() has returned (a background prefetch), and does not wait."""

    context = luigi.Parameter()

    def requires(self) -> Up:
        return Up(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        if self.context == "fork":
            process = multiprocessing.get_context("fork").Process(target=_late_load_target, args=(self.input(), 1.0))
        else:  # spawn: the task is pickled and sent (its run's relay with it)
            process = multiprocessing.get_context("spawn").Process(target=_late_load_task, args=(self, 3.0))
        process.start()
        LATE["process"] = process
        self.dump(1)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_child_loading_after_the_run_leaves_no_folder_behind(
    tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch, context: str
) -> None:
    """A child that loads after run() returned finds the run's folder gone and drops its record: the run made the
    folder, and a child never makes it (attacker at16 G12: one folder was left in TMPDIR by each such run)."""
    monkeypatch.setenv(_VALUE, "5")
    workspace = str(tmp_path / "ws")
    assert gokart.build(LeavesAChild(context=context, workspace_directory=workspace), reset_register=False) == 1
    assert _relays(temporary) == []
    LATE["process"].join(timeout=60)
    assert LATE.pop("process").exitcode == 0  # its load worked: only its record was dropped
    assert _relays(temporary) == []


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_folders_of_dead_processes_are_swept(tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that makes its folder first removes those left by runs of processes that died (killed before they
    removed it) once nothing was sent there for an hour, and those of kart's earlier naming untouched for a day."""
    dead, hours_ago = _dead_pid(), time.time() - 2 * 3600
    names = {
        f"kart-loads-{dead}-{'a' * 32}": (hours_ago, False),  # dead, old: swept
        f"kart-loads-{dead}-{'b' * 32}": (time.time(), True),  # dead, written to a moment ago: kept
        f"kart-loads-{os.getpid()}-{'c' * 32}": (hours_ago, True),  # alive: kept
        f"kart-loads-{'d' * 32}": (time.time() - 2 * 86400, False),  # earlier naming, two days old: swept
        f"kart-loads-{'e' * 32}": (hours_ago, True),  # earlier naming, two hours old: kept
        f"kart-loads-{dead}-not-hex": (hours_ago, True),  # not a relay folder's name: kept
    }
    for name, (when, _) in names.items():
        (temporary / name).mkdir(mode=0o700)
        (temporary / name / "record.json").write_text("{}")
        os.utime(temporary / name, (when, when))
    monkeypatch.setenv(_VALUE, "5")
    workspace = str(tmp_path / "ws")
    assert gokart.build(Down(how="fork pool, self.load()", workspace_directory=workspace), reset_register=False) == 10
    assert sorted(_relays(temporary)) == sorted(name for name, (_, kept) in names.items() if kept)


class KeepsAHandle(gokart.TaskOnKart[dict]):
    """Dumps a handle to its input (a target, pickled during the run) for a later consumer."""

    def requires(self) -> Up:
        return Up(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump({"src": self.input()})


_LATER = """
import logging, pickle, subprocess, sys
if sys.argv[1] == "parent":  # the grandchild is no child of the process that ran the task
    sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2], "child", sys.argv[3]]).returncode)
logging.basicConfig(level=logging.WARNING, format="%(message)s")
with open(sys.argv[2], "rb") as file:
    print("loaded", pickle.load(file)["src"].load())
"""


def test_a_handle_kept_in_an_output_and_loaded_by_a_later_process_is_not_called_the_run_s_child(
    tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker at18 I9: a target pickled into a run's output carries the run's relay; a later process, no child of
    the process that ran it, loading the handle outside any run was warned "a child process (N) loaded ... Wait for
    the child processes that run() starts": it was none. The warning now says what it knows."""
    monkeypatch.setenv(_VALUE, "7")
    workspace = str(tmp_path / "ws")
    task = KeepsAHandle(workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temporary)}
    later = subprocess.run(
        [sys.executable, "-c", _LATER, "parent", _LATER, task.output().path()],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert later.returncode == 0, later.stderr
    assert "loaded 7" in later.stdout
    assert "a child process" not in later.stderr
    assert f"not a child of the process that ran it, {os.getpid()}" in later.stderr
    assert "through a target or task pickled during that run, after the run was over" in later.stderr


class ChildMid(gokart.TaskOnKart[int]):
    """Requires Up; built only by ChildTop's run(), in a forked child."""

    def requires(self) -> Up:
        return Up(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(2 * self.load())


def _build_mid(task: gokart.TaskOnKart[int]) -> Any:
    return gokart.build(ChildMid(workspace_directory=task.workspace_directory), reset_register=False)


class ChildTop(gokart.TaskOnKart[int]):
    """Builds ChildMid (which it does not require) in a child forked inside run()."""

    how = luigi.Parameter()

    def run(self) -> None:
        build = _in_pool if self.how == "pool" else _in_executor
        self.dump(build("fork", _build_mid, self) + 1)


@pytest.mark.parametrize("how", ["pool", "executor"])
def test_a_task_whose_forked_child_built_a_task_now_stale_further_up_runs_again(
    tmp_path: Path, temporary: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The nested build's root, loaded in a forked child, is sent to the run as built (``Input.built``): after Up reran,
    ChildMid is stale and only ChildTop's run builds it, so ChildTop is stale too (before: served 11, not 21)."""
    monkeypatch.setenv(_VALUE, "5")
    workspace = str(tmp_path / "ws")
    top = ChildTop(how=how, workspace_directory=workspace)
    assert gokart.build(top, reset_register=False) == 11
    assert [(item["task"], item.get("built", False)) for item in _inputs(top)] == [
        (ChildMid(workspace_directory=workspace).kart_label(), True)
    ]
    monkeypatch.setenv(_VALUE, "10")
    gokart.build(Up(workspace_directory=workspace, rerun=True), reset_register=False)
    assert not ChildTop(how=how, workspace_directory=workspace).complete()
    assert gokart.build(ChildTop(how=how, workspace_directory=workspace), reset_register=False) == 21
