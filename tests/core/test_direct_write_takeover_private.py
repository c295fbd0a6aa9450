"""A run that takes a by-path writer over never shares a file with it (attacker at11 F1).

Another host takes a by-path writer's marker over once it has seen it unchanged for the lease. The writer may only
have been paused (SIGSTOP, a suspended machine); resumed, it writes on by the name it got before the pause until its
``run()`` returns (60 steps here) and fails then: since 2026-12-02 that name is its own private one too. Before: the taker wrote that same path, so it
hashed and committed the writer's bytes (its build returned them; ``complete()`` True). Now the taker writes a
private name, hashed, which its commit moves to the output's path: the committed output is the taker's bytes.

The writer is a process of its own with its host name faked and its own lock folder (``other_host``); this test's
process is the taker, whose run resumes the writer (SIGCONT) after its own write and then waits a second, so that
the resumed writer writes while the taker's run is still going. Local disk and the S3 server (moto); three times
each, the wake-up race being the writer's.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from other_host import start_writer, wait_for
from paused_task import Paused, writer_script

import kart_core
from kart_core.commit_marker import marker_path
from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.manifest import read_unverified
from kart_core.storage import storage_for

LEASE = 1.0  # seconds: the writer beats every 1/3 s until it is stopped

BY_NAME_WRITER = writer_script(who="W", steps=60, mode="name", hog=0.05)


def _bytes_at(path: str) -> bytes:
    with storage_for(path).open_read(path) as file:
        return file.read()


@pytest.mark.parametrize("attempt", range(3))
def test_a_writer_resumed_during_the_takeover_writes_none_of_the_committed_bytes(
    tmp_path: Path, where: str, attempt: int
) -> None:
    """SIGSTOP the writer (it writes ``W:<step>`` by one name in a loop, each write followed by 50 ms holding the
    GIL, where the stop mostly lands: resumed, its main thread writes before its heartbeat thread gets to run);
    this run takes over, writes ``A:0``, sends SIGCONT and waits 1 s before its commit. Before: ``build`` returned
    the writer's ``['W:<step>']`` (local disk 1 of 3 and S3 3 of 3 without the GIL hold)."""
    writer, flag = start_writer(tmp_path, "by-name", BY_NAME_WRITER, where, [], LEASE)
    wait_for(flag, writer)
    os.kill(writer.pid, signal.SIGSTOP)
    try:
        taker = Paused(who="A", mode="name", resume=writer.pid, pause=1.0, workspace_directory=where)
        assert kart_core.build(taker, log_level=30) == ["A:0"]
    finally:
        os.kill(writer.pid, signal.SIGCONT)
    try:
        stdout, stderr = writer.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        writer.kill()
        raise
    assert stdout.startswith("FAILED"), (stdout, stderr)
    assert "could not keep the marker" in stderr and "left alone" in stderr, stderr

    task = Paused(workspace_directory=where)
    path = task.output().path()
    assert _bytes_at(path) == b"A:0\n", stderr  # also after the resumed writer has ended
    manifest = read_unverified(storage_for(task.output().record.manifest), task.output().record.manifest)
    assert manifest is not None
    entry = manifest.outputs[task.output().record.key]
    with storage_for(path).open_read(path) as file:
        size, digest = digest_stream(file)
    assert (entry.size, entry.digest) == (4, f"{DEFAULT_ALGORITHM}:{digest}")
    assert size == 4
    assert task.complete()
    assert task.output().load() == ["A:0"]
    assert not storage_for(where).exists(marker_path(task.output().record))
    # The taker's private name went with its commit, the writer's with its failure: nothing hidden is left.
    folder = path.rpartition("/")[0]
    storage = storage_for(folder)
    names = storage.file_system.ls(folder, refresh=True) if "://" in folder else os.listdir(folder)  # type: ignore[attr-defined]
    assert [name for name in names if ".kart-took-" in name] == []
