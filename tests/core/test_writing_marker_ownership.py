"""A run removes a ``.kart-writing`` marker only while it is its own, or a dead writer's (as ``clear_own`` does for a
manifest's marker).

The marker beside an output written by path without an integrity record (records off, or an output outside the
workspace) says "a run is writing this file": ``complete()`` is False while it is there. Before, a run removed the
marker beside its output at its end whoever had put it: its own marker after another run of the task (another
process) had replaced it, or, after a dump, the marker of a live writer of this host. That writer's partial file
then counted as complete. The other writer here is a real process of this host (``sleep``) named in the marker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core import commit_marker
from kart_core.target_config import RECORD_ENVIRONMENT_VARIABLE


@pytest.fixture
def other_writer() -> Iterator[int]:
    """A live process of this host standing in for another run that writes the output by path."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _marker_of(pid: int, path: str) -> bytes:
    full = os.path.abspath(path)
    return commit_marker.Writing(
        "Other[00000000]", commit_marker.host_identity(), pid, time.time(), full, commit_marker.process_start(pid)
    ).to_bytes()


class ReplacedWhileWriting(kart_core.TaskOnKart[Any]):
    """Writes its output by path; meanwhile another writer (``other``) puts its own marker beside it."""

    other = luigi.IntParameter(significant=False)

    def output(self) -> Any:
        return self.make_target("out/file.txt")

    def run(self) -> None:
        path = self.output().path()  # a private name beside the output (kart_core.direct_write)
        final = self.output()._path
        marker = commit_marker.writing_marker(final)
        assert os.path.exists(marker)  # this run's, put before the path was handed out
        Path(marker).write_bytes(_marker_of(int(self.other), final))
        Path(path).write_text("mine\n")


class Dumped(kart_core.TaskOnKart[Any]):
    def output(self) -> Any:
        return self.make_target("out/dumped.txt")

    def run(self) -> None:
        self.dump("dumped")


def test_a_run_leaves_a_writing_marker_another_writer_put_in_place_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_writer: int
) -> None:
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "false")
    task = ReplacedWhileWriting(other=other_writer, workspace_directory=str(tmp_path / "ws"))
    kart_core.build(task, log_level=40)
    marker = commit_marker.writing_marker(task.output().path())
    written = commit_marker.Writing.from_bytes(Path(marker).read_bytes())
    assert written is not None and written.pid == other_writer  # before: removed
    assert not ReplacedWhileWriting(other=other_writer, workspace_directory=str(tmp_path / "ws")).complete()


def test_a_dump_leaves_the_writing_marker_of_a_live_writer_of_this_host(tmp_path: Path, other_writer: int) -> None:
    task = Dumped(workspace_directory=str(tmp_path / "ws"))
    path = task.output().path()
    os.makedirs(os.path.dirname(path))
    marker = commit_marker.writing_marker(path)
    planted = _marker_of(other_writer, path)
    Path(marker).write_bytes(planted)
    assert kart_core.build(task, log_level=40) == ["dumped"]
    assert Path(marker).read_bytes() == planted  # before: removed, as if its writer were dead
    assert not Dumped(workspace_directory=str(tmp_path / "ws")).complete()


def test_a_dump_removes_the_writing_marker_of_a_dead_writer(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    task = Dumped(workspace_directory=str(tmp_path / "ws"))
    path = task.output().path()
    os.makedirs(os.path.dirname(path))
    marker = commit_marker.writing_marker(path)
    Path(marker).write_bytes(_marker_of(int(finished.stdout), path))
    assert kart_core.build(task, log_level=40) == ["dumped"]
    assert not os.path.exists(marker)
    assert Dumped(workspace_directory=str(tmp_path / "ws")).complete()
