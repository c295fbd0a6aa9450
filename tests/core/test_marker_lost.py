"""A run whose by-path writer's marker cannot be kept its own and fresh fails instead of committing.

A run that writes an output straight to its path keeps a ``direct`` marker beside the manifest fresh (every
third of the lease, ``KART_DIRECT_LEASE_SECONDS``); a run on another host takes a marker older than the lease
for a dead writer's, undoes its files and writes the task itself. Before, a beat that failed for anything but a
full disk only logged a warning, a marker removed or replaced by another process went unnoticed, and a beat
that failed after ``run()`` returned (in the commit hook, during the commit) never failed the run: it committed
over what another writer may have taken over. Now (``kart_core.commit_marker.Pulse``): two failed beats in a
row, or a marker another process removed or replaced, fail the run with ``MarkerLostError`` before the commit
(or before the commit's next move). Real failures: a folder in the marker's place (it cannot be read nor
replaced), the marker removed or replaced by another process (a ``python -c`` child), on local disk and moto's
S3, under thread and process workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import luigi
import pytest

import kart_core
from kart_core import commit_marker, transaction
from kart_core.file_processor import builtin
from kart_core.hooks.manager import create_hook_manager
from kart_core.hooks.markers import hookimpl
from kart_core.runlog import RunLogPlugin
from kart_core.storage import storage_for

LEASE = 0.6  # seconds: a beat every 0.2 s; a marker unwritten for 0.4 s fails the run


def _in_another_process(code: str, *args: str) -> None:
    """Run ``code`` (with ``sys.argv[1:] == args``) in a fresh Python process: another process than the run's."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr


_REMOVE = "import sys; from kart_core.storage import storage_for; storage_for(sys.argv[1]).remove(sys.argv[1])"
_REPLACE = (
    "import sys; from kart_core.storage import storage_for\n"
    "with storage_for(sys.argv[1]).atomic_write(sys.argv[1]) as file: file.write(sys.argv[2].encode())"
)


def _sabotage(marker: str, how: str) -> None:
    """Do to the run's marker at ``marker`` what ``how`` says, from outside the run; back after three beats.

    The other process acts between two beats (the run's marker guard held meanwhile): a removal that lands
    between a beat's read and its rewrite of the marker is undone by that rewrite unseen (the marker is this
    run's again, so the task stays incomplete; the next removal or replacement is found).
    """
    if how == "folder":  # nothing can read or replace it: every beat fails
        os.remove(marker)
        os.mkdir(marker)
        try:  # five leases: two failed beats come in time on a loaded machine too (one lease flaked at load ~19)
            time.sleep(5 * LEASE)
        finally:  # a stop raised in this thread meanwhile still puts the marker's place back
            os.rmdir(marker)
    elif how == "removed":
        with _between_beats():
            _in_another_process(_REMOVE, marker)
        time.sleep(2 * LEASE / 3)
    elif how == "replaced":  # a run "on another host" took the task over: its marker, its commit
        other = {"commit": "0" * 32, "host": "elsewhere.example", "pid": 4242, "written": time.time()}
        with _between_beats():
            _in_another_process(_REPLACE, marker, json.dumps({**other, "kind": "direct", "moves": []}))
        time.sleep(2 * LEASE / 3)


def _between_beats() -> Any:
    """The running transaction's marker guard: no beat reads or rewrites the run's markers while it is held."""
    running = transaction.current()
    assert running is not None
    return running.marker_guard


class ByPath(kart_core.TaskOnKart[Any]):
    """Asks for its output's path (the marker is written), lets ``how`` happen to the marker, then writes the file."""

    how = luigi.Parameter(default="", significant=False)

    def output(self) -> Any:
        return self.make_target("lost/out.txt")

    def run(self) -> None:
        path = self.output().path()
        _sabotage(commit_marker.marker_path(self.output().record), str(self.how))
        storage = storage_for(path)
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with storage.file_system.open(path, "w") if "://" in path else open(path, "w") as file:  # type: ignore[attr-defined]
            file.write("by path")


@pytest.fixture(params=["local", "s3", "gs"])
def where(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The workspace: on local disk, or in a bucket on the S3 server or the GCS emulator; the lease short."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    if request.param == "local":
        return str(tmp_path / "ws")
    bucket = request.getfixturevalue("s3_bucket" if request.param == "s3" else "gcs_bucket")
    return f"{request.param}://{bucket}/ws"


def _fails(task: ByPath, match: str, **build: Any) -> None:
    with pytest.raises(kart_core.GokartBuildError, match=match):
        kart_core.build(task, log_level=40, **build)


def _exists(path: str) -> bool:
    storage = storage_for(path)
    getattr(storage, "file_system", None) and storage.file_system.invalidate_cache()  # type: ignore[attr-defined]
    return storage.exists(path)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_marker_removed_by_another_process_fails_the_run_and_its_file_is_removed(where: str, executor: str) -> None:
    task = ByPath(how="removed", workspace_directory=where)
    _fails(
        task,
        r"MarkerLostError.*ByPath\[\w{8}\] could not keep the marker .*another process removed it",
        workers=2,
        executor=executor,
    )
    assert not _exists(task.output().path())  # the run's file is removed: nothing counts as complete
    assert not _exists(commit_marker.marker_path(task.output().record))  # put back, then cleared by the undo
    assert not task.complete()
    assert kart_core.build(ByPath(workspace_directory=where)) == ["by path"]


def test_a_marker_that_cannot_be_rewritten_for_two_beats_fails_the_run(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    task = ByPath(how="folder", workspace_directory=str(tmp_path / "ws"))
    _fails(task, r"MarkerLostError.*rewriting it failed for two thirds of the lease \(IsADirectoryError")
    assert not os.path.exists(task.output().path())
    assert not os.path.exists(commit_marker.marker_path(task.output().record))
    assert kart_core.build(ByPath(workspace_directory=str(tmp_path / "ws"))) == ["by path"]


def test_a_marker_replaced_by_another_writer_fails_the_run_and_leaves_its_files_to_it(where: str) -> None:
    task = ByPath(how="replaced", workspace_directory=where)
    _fails(task, r"MarkerLostError.*process 4242 on elsewhere\.example replaced it with its own")
    marker = commit_marker.read_marker(storage_for(where), commit_marker.marker_path(task.output().record))
    assert marker is not None and marker.host.startswith(
        "elsewhere.example"
    )  # the other writer's marker is left as it is
    # The run was stopped at once (in its sleep, before it wrote): nothing of it at the path, and its undo removed
    # nothing there either (the other writer's: test_marker_ownership's appending writer keeps what it had written).
    assert not _exists(task.output().path())
    assert not task.complete()  # the other writer's marker keeps the task incomplete meanwhile


class _SabotagingCommitHook:
    """``kart_commit_task_run`` (after ``run()`` returned, before the commit): another process removes the marker."""

    @hookimpl
    def kart_commit_task_run(self, task: Any, processing_time: float) -> None:
        _sabotage(commit_marker.marker_path(task.output().record), "removed")


def test_a_marker_lost_after_run_returned_fails_the_commit(where: str) -> None:
    manager = create_hook_manager([RunLogPlugin(), builtin, _SabotagingCommitHook()])
    task = ByPath(workspace_directory=where)
    _fails(task, r"MarkerLostError.*another process removed it", hook_manager=manager)
    assert not _exists(task.output().path())
    assert not task.complete()
    assert kart_core.build(ByPath(workspace_directory=where)) == ["by path"]
