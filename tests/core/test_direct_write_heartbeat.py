"""A direct writer's marker stays fresh until its commit has finished, and its heartbeat stops on every way out.

A run that writes its outputs straight to their paths rewrites its ``direct`` marker every third of the
lease (``KART_DIRECT_LEASE_SECONDS``, 300 s by default); a run on another host takes a marker older than
the lease for a dead writer's and takes it over (``kart_core.direct_write``). The heartbeat used to stop
when ``run()`` returned, so a commit phase longer than the lease (hashing, signing, copying large outputs,
a slow ``kart_commit_task_run`` hook) was taken over while it still ran. Here the lease is 1 s, the commit
hook of the first writer lasts 3 s more once a second writer "on another host" (its host name faked and its
own lock folder: the file locks of one machine do not reach another) waits for it in a rerun of the task.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import marker_path, read_marker
from kart_core.file_processor import builtin
from kart_core.hooks.manager import create_hook_manager
from kart_core.hooks.markers import hookimpl
from kart_core.inspect.verify import verify_workspace
from kart_core.runlog import RunLogPlugin
from kart_core.storage import storage_for

REPO = str(Path(__file__).resolve().parents[2])

WRITER = textwrap.dedent(
    """
    import os, socket, sys, time
    sys.path.insert(0, sys.argv[2])
    workspace, mode, text, host, flag = sys.argv[1], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    if host:
        socket.gethostname = lambda: host  # stands in for another machine (which has its own lock folder too)
    import luigi, kart_core
    from kart_core.hooks.markers import hookimpl
    from kart_core.file_processor import builtin
    from kart_core.hooks.manager import create_hook_manager
    from kart_core.runlog import RunLogPlugin
    from kart_core.storage import storage_for

    class Heartbeat(kart_core.TaskOnKart):
        text = luigi.Parameter(default="first", significant=False)

        def output(self):
            return self.make_target("hb/out.txt")

        def run(self):
            path = self.output().path()  # written by path, through the file system kart uses on object storage
            if "://" in path:
                with storage_for(path).file_system.open(path, "w") as file:
                    file.write(self.text)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as file:
                    file.write(self.text)

    class SlowCommit:
        @hookimpl
        def kart_commit_task_run(self, task, processing_time):
            open(flag, "w").close()  # the test starts the second writer now
            deadline = time.monotonic() + 60
            while not os.path.exists(flag + ".done") and time.monotonic() < deadline:
                time.sleep(0.02)

    manager = create_hook_manager([RunLogPlugin(), builtin] + ([SlowCommit()] if mode == "slow" else []))
    task = Heartbeat(text=text, rerun=mode != "first", workspace_directory=workspace)
    if mode == "check":
        print(Heartbeat(workspace_directory=workspace).output().load())
    else:
        print(kart_core.build(task, log_level=30, hook_manager=manager))
    """
)


def _writer(
    tmp_path: Path, workspace: str, mode: str, text: str, host: str = "", locks: str = ""
) -> subprocess.Popen[str]:
    script = tmp_path / "heartbeat_writer.py"
    script.write_text(WRITER)
    env = {**os.environ, commit_marker.LEASE_VARIABLE: "1"}
    if locks:
        env["KART_LOCK_DIR"] = locks
    flag = str(tmp_path / "committing")
    return subprocess.Popen(
        [sys.executable, str(script), workspace, REPO, mode, text, host, flag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def _finished(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return stdout.strip(), stderr


def _a_long_commit_is_not_taken_over(tmp_path: Path, workspace: str) -> None:
    assert _finished(_writer(tmp_path, workspace, "first", "first"))[0] == "['first']"
    first = _writer(tmp_path, workspace, "slow", "one")
    deadline = time.monotonic() + 60
    while not (tmp_path / "committing").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    locks = tmp_path / "other-host-locks"
    locks.mkdir()
    second = _writer(tmp_path, workspace, "run", "two", host="elsewhere.example", locks=str(locks))
    assert second.stderr is not None
    told = second.stderr.readline()
    assert "is writing this task's outputs straight to their paths" in told and "waits" in told, told
    time.sleep(3.0)  # three leases: the first writer's commit phase lasts on, its marker kept fresh
    (tmp_path / "committing.done").touch()
    stdout, stderr = _finished(second)
    assert "takes over" not in stderr
    # It waited until the first writer's commit finished, then kept that commit (it began before it).
    assert stdout == "['one']"
    assert _finished(first)[0] == "['one']"
    assert _finished(_writer(tmp_path, workspace, "check", ""))[0] == "['one']"


def test_a_commit_longer_than_the_lease_is_not_taken_over_locally(tmp_path: Path) -> None:
    workspace = str(tmp_path / "resources")
    _a_long_commit_is_not_taken_over(tmp_path, workspace)
    assert verify_workspace(workspace).ok


def test_a_commit_longer_than_the_lease_is_not_taken_over_on_s3(tmp_path: Path, s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/ws"
    _a_long_commit_is_not_taken_over(tmp_path, workspace)
    assert verify_workspace(workspace).ok


class HbInProcess(kart_core.TaskOnKart[Any]):
    text = luigi.Parameter(default="first", significant=False)

    def output(self) -> Any:
        return self.make_target("hb/in_process.txt")

    def run(self) -> None:
        path = self.output().path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text(str(self.text))


class _FailingCommit:
    """A commit hook that waits (up to 20 s) until the run's marker has been rewritten, then raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.refreshed = False

    @hookimpl
    def kart_commit_task_run(self, task: Any, processing_time: float) -> None:
        path = marker_path(task.output().record)
        first = read_marker(storage_for(path), path)
        assert first is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = read_marker(storage_for(path), path)
            if now is not None and now.written > first.written:
                self.refreshed = True
                break
            time.sleep(0.02)
        raise self.error


def _heartbeats() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("kart-heartbeat")]


@pytest.mark.parametrize("error", [RuntimeError("the commit hook fails"), KeyboardInterrupt()], ids=type)
def test_the_heartbeat_beats_in_the_commit_and_stops_when_it_fails(
    workspace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: BaseException
) -> None:
    assert kart_core.build(HbInProcess(workspace_directory=workspace)) == ["first"]
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.3")
    hook = _FailingCommit(error)
    manager = create_hook_manager([RunLogPlugin(), builtin, hook])
    task = HbInProcess(text="second", rerun=True, workspace_directory=workspace)
    with caplog.at_level(logging.WARNING), pytest.raises((type(error), kart_core.GokartBuildError)):
        kart_core.build(task, hook_manager=manager)
    assert hook.refreshed  # the marker was kept fresh while the commit phase ran
    assert _heartbeats() == []
    assert not os.path.exists(marker_path(task.output().record))
    assert HbInProcess(workspace_directory=workspace).output().load() == ["first"]  # the old output is back
    # The task's lock was given up: another run goes on at once.
    assert kart_core.build(HbInProcess(text="third", rerun=True, workspace_directory=workspace)) == ["third"]
    assert _heartbeats() == []


def test_the_lease_setting_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "12.5")
    assert commit_marker.lease_seconds() == 12.5
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "-1")
    with pytest.raises(ValueError, match="KART_DIRECT_LEASE_SECONDS='-1'"):
        commit_marker.lease_seconds()
    monkeypatch.delenv(commit_marker.LEASE_VARIABLE)
    assert commit_marker.lease_seconds() == commit_marker.DIRECT_LEASE_SECONDS
