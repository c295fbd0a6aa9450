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
from pathlib import Path
from typing import Any

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
    """Dumps, checks the dump exists, reads it back and dumps again: works inside one run."""

    def output(self) -> Any:
        return {"first": self.make_target("self/first.pkl"), "second": self.make_target("self/second.pkl")}

    def run(self) -> None:
        self.dump({"n": 1}, "first")
        assert self.output()["first"].exists()
        assert not os.path.exists(self.output()["first"].path()) or "://" in self.workspace_directory
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
