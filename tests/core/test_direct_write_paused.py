"""A by-path writer paused past the lease and taken over leaves the taker's files alone (attacker at11 F1, F6).

Another host takes a by-path writer's marker over once it has seen it unchanged for the lease. A writer that was
only paused that long (SIGSTOP, a suspended machine) or whose main thread held the GIL that long (its heartbeat
thread could not run) resumes after the taker wrote, or committed, the same paths. Before: its heartbeat found the
marker gone (the taker's commit removed its own), put it back and failed the run, and the undo then deleted the
taker's committed output (manifest left, output gone); resumed, it also went on writing the taker's path. Now its
next path request reads the marker (a beat was due) and fails with ``MarkerLostError``, and an undo that finds its
marker gone or replaced, or the manifest committed by another run since it began, leaves the files alone.

The paused writer is a process of its own with its host name faked and its own lock folder (one machine's file
locks do not reach another); this test's process is the taker. Local disk and the S3 server (moto).
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from other_host import start_writer, wait_for
from paused_task import Paused

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import marker_path
from kart_core.storage import storage_for

if TYPE_CHECKING:
    import fork_server

LEASE = 1.0  # seconds: the paused writer beats every 1/3 s until it is paused

PAUSED_WRITER = textwrap.dedent(
    """
    import socket, sys
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    workspace, mode, steps, hog, flag = sys.argv[1], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    socket.gethostname = lambda: "paused.example"  # another machine (its own lock folder too)
    import kart_core
    from paused_task import Paused

    task = Paused(who="W", steps=steps, pause=0.1, flag=flag, mode=mode, hog=hog, workspace_directory=workspace)
    try:
        print("BUILT", kart_core.build(task, log_level=30), flush=True)
    except BaseException as exc:
        print("FAILED", type(exc).__name__, flush=True)
    """
)


def _writer(tmp_path: Path, workspace: str, mode: str, steps: int, hog: float = 0.0) -> tuple[fork_server.Run, Path]:
    return start_writer(tmp_path, "paused", PAUSED_WRITER, workspace, [mode, str(steps), str(hog)], LEASE)


def _read(path: str) -> str | None:
    storage = storage_for(path)
    if not storage.exists(path):
        return None
    with storage.open_read(path) as file:
        return file.read().decode()


def _assert_taker_kept(workspace: str, stdout: str, stderr: str) -> None:
    """The taker's commit stands: its bytes at the path, complete, loadable; the loser failed and undid nothing."""
    task = Paused(workspace_directory=workspace)
    assert _read(task.output().path()) == "A:0\n", stderr
    assert stdout.startswith("FAILED"), (stdout, stderr)
    assert "could not keep the marker" in stderr and "left alone" in stderr, stderr
    assert "written straight to the output's path" not in stderr and "back in place" not in stderr
    assert task.complete()
    assert task.output().load() == ["A:0"]
    assert not storage_for(workspace).exists(marker_path(task.output().record))


def test_a_writer_stopped_past_the_lease_and_resumed_stops_at_its_next_path_request(tmp_path: Path, where: str) -> None:
    """SIGSTOP after its first line; this run takes over, commits A:0; SIGCONT. Before: the resumed writer
    rewrote the committed file with its own lines, then its undo removed it (complete() False)."""
    writer, flag = _writer(tmp_path, where, "path", steps=30)
    wait_for(flag, writer)
    os.kill(writer.pid, signal.SIGSTOP)
    try:
        assert kart_core.build(Paused(who="A", workspace_directory=where), log_level=30) == ["A:0"]
    finally:
        os.kill(writer.pid, signal.SIGCONT)
    stdout, stderr = writer.communicate(timeout=120)
    _assert_taker_kept(where, stdout, stderr)


def test_a_stopped_writer_s_open_descriptor_writes_into_an_orphan_not_the_taker_s_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The takeover unlinks the writer's file and the taker writes a new one: the resumed writer's lines go to
    the unlinked file. Before: its undo, after its run returned, removed the taker's committed file."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    workspace = str(tmp_path / "ws")
    writer, flag = _writer(tmp_path, workspace, "fd", steps=20)
    wait_for(flag, writer)
    os.kill(writer.pid, signal.SIGSTOP)
    try:
        assert kart_core.build(Paused(who="A", workspace_directory=workspace), log_level=30) == ["A:0"]
    finally:
        os.kill(writer.pid, signal.SIGCONT)
    stdout, stderr = writer.communicate(timeout=120)
    _assert_taker_kept(workspace, stdout, stderr)


def test_a_writer_holding_the_gil_past_the_lease_leaves_the_taker_s_commit_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One C call holds the writer's GIL for 6 leases: its heartbeat cannot run, this run takes it over and
    commits. Before: the writer found its marker gone, put it back, appended its second line to the committed
    file, and its undo then deleted that file (manifest left, output gone)."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    workspace = str(tmp_path / "ws")
    writer, flag = _writer(tmp_path, workspace, "gil", steps=2, hog=6 * LEASE)
    wait_for(flag, writer)
    began = time.monotonic()
    assert kart_core.build(Paused(who="A", workspace_directory=workspace), log_level=30) == ["A:0"]
    assert writer.poll() is None, "the writer's GIL-holding call ended before this run committed: no takeover"
    stdout, stderr = writer.communicate(timeout=120)
    assert time.monotonic() - began < 60
    _assert_taker_kept(workspace, stdout, stderr)
