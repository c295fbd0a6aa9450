"""Another host's marker is judged by how long this process has seen it unchanged, never by the time it carries.

A by-path writer's marker (and a replacing commit's) carries its writer's wall-clock time. A run on another host
took a marker whose time was older than the lease for a dead writer's, so a healthy writer on a host whose clock
is behind by more than the lease (or a reader's clock ahead) was taken over at once: the two runs wrote one file
in turns and the taker committed it (attacker at9 J5). Now (``kart_core.commit_marker.Sightings``) a marker is
stale only once the observer has seen it unchanged for the lease on its own clock: a beating writer changes its
marker every third of the lease, whatever its clock says.

The other host is a process of its own with its host name faked, its own lock folder (one machine's file locks do
not reach another) and its ``time.time()`` set back by ``SKEW`` seconds (its wall clock; its monotonic clock, which
times its beats, runs on). On local disk and on the S3 server (moto).
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from other_host import start_writer, wait_for
from skewed_task import Skewed

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import Marker, Sightings, marker_path, read_marker
from kart_core.storage import storage_for

if TYPE_CHECKING:
    import fork_server

LEASE = 1.5  # seconds: the skewed host beats every 0.5 s; its clock is 60 s behind, 40 leases
SKEW = 60.0

SKEWED_WRITER = textwrap.dedent(
    """
    import socket, sys, time
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    workspace, steps, skew, flag = sys.argv[1], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    socket.gethostname = lambda: "skewed.example"  # another machine (its own lock folder too)
    _real = time.time
    time.time = lambda: _real() - skew  # that machine's wall clock is behind
    import kart_core
    from skewed_task import Skewed

    task = Skewed(who="skewed", steps=steps, pause=0.4, flag=flag, workspace_directory=workspace)
    print(kart_core.build(task, log_level=30))
    """
)


def _skewed_host(tmp_path: Path, workspace: str, steps: int) -> tuple[fork_server.Run, Path]:
    return start_writer(tmp_path, "skewed", SKEWED_WRITER, workspace, [str(steps), str(SKEW)], LEASE)


def test_a_beating_writer_whose_clock_is_behind_is_waited_for_not_taken_over(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: taken over at its first sighting ("has not refreshed its marker for 60 s"); this run committed a
    file written in turns by both, and the skewed host failed with MarkerLostError."""
    skewed, flag = _skewed_host(tmp_path, where, steps=8)  # 3.2 s of writing: two leases
    wait_for(flag, skewed)
    with caplog.at_level(logging.INFO):
        here = kart_core.build(Skewed(workspace_directory=where), log_level=30)
    stdout, stderr = skewed.communicate(timeout=120)
    assert skewed.returncode == 0, stderr
    written = [f"skewed:{step}" for step in range(8)]
    assert "MarkerLostError" not in stderr and stdout.strip() == str(written)
    assert here == written  # this run waited, found the task committed meanwhile and kept that commit
    assert not any("takes over" in record.getMessage() for record in caplog.records)
    assert Skewed(workspace_directory=where).output().load() == written


def test_a_dead_writer_whose_clock_is_behind_is_taken_over_a_lease_after_it_was_first_seen(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker that stops changing is taken over once this process has seen it unchanged for the lease (by its
    own clock), not before, however old the time it carries (before: at once, its time being an hour old)."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "5")  # far longer than the build takes here under load
    record = Skewed(workspace_directory=where).output().record
    path = marker_path(record)
    storage = storage_for(path)
    dead = Marker("0" * 32, "skewed.example", 4242, time.time() - 3600, commit_marker.DIRECT, ())
    with storage.atomic_write(path) as file:
        file.write(dead.to_bytes())
    began = time.monotonic()
    assert kart_core.build(Skewed(workspace_directory=where), log_level=30) == ["here:0"]
    assert time.monotonic() - began >= 5.0
    assert read_marker(storage, path) is None


def test_sightings_count_on_the_observer_s_clock_and_start_again_when_the_marker_changes() -> None:
    now = [100.0]
    seen = Sightings(clock=lambda: now[0])
    old = Marker("c", "skewed.example", 1, 0.0, commit_marker.DIRECT)  # its own time: 1970
    assert seen.age("m", old) == 0.0  # first sighting: not stale, however old its time
    now[0] = 101.0
    assert seen.age("m", old) == 1.0
    rewritten = Marker("c", "skewed.example", 1, 0.5, commit_marker.DIRECT)  # a beat: still decades old
    assert seen.age("m", rewritten) == 0.0
    now[0] = 102.5
    assert seen.age("m", rewritten) == 1.5 and seen.age("other", rewritten) == 0.0


class Once(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("once")


def test_a_rewritten_commit_marker_of_a_host_whose_clock_is_behind_counts_as_live(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacing commit on a host 60 s behind rewrites its marker every third of the lease: complete() here
    waits for it (before: its first sighting counted 60 s old, the marker was removed as a finished commit's
    while that commit still moved its outputs)."""
    assert kart_core.build(Once(workspace_directory=workspace)) == "once"
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    path = marker_path(Once(workspace_directory=workspace).output().record)
    stop = threading.Event()

    def beat() -> None:
        while True:
            marker = Marker("c", "skewed.example", 4242, time.time() - SKEW)
            Path(path + ".tmp").write_bytes(marker.to_bytes())
            os.replace(path + ".tmp", path)  # atomically, as kart writes it
            if stop.wait(LEASE / 3):
                os.remove(path)  # its commit finished
                return

    committer = threading.Thread(target=beat)
    committer.start()
    try:
        time.sleep(0.1)
        began = time.monotonic()
        threading.Timer(2 * LEASE, stop.set).start()
        assert Once(workspace_directory=workspace).complete()
        assert time.monotonic() - began >= 2 * LEASE - 0.2  # it waited while the marker was rewritten
    finally:
        stop.set()
        committer.join()
    assert not os.path.exists(path)
