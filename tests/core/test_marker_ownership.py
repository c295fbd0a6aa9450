"""A run's markers are rewritten and removed only while they are still its own.

Attacker at9 J9: a by-path writer's marker replaced by another host while the run's commit waited for the
manifest's lock was ignored (the heartbeat took any marker gone or foreign for the commit's own doing); the
commit put its marker over the other host's and removed it at the end. Now the commit hands the marker over
only while it is the run's own, and removes it only then (``commit_marker.hand_over``, ``clear_own``): the run
fails with ``MarkerLostError`` naming the other writer, whose marker stays. And a beat's rewrite is conditional
(``commit_marker.refresh`` through ``kart_core.storage.conditional.replace_if``): a marker another process removed
or replaced between the beat's read and its write is no longer re-created or overwritten.

The other host's acts are real writes by another process (a ``python -c`` child); the test chooses their moment
by holding the manifest's lock (the commit waits for it, as for another committer) or, for the beat, right after
the beat's read. On local disk and on the S3 server (moto).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import fork_server
import luigi
import pytest

import kart_core
from kart_core import commit_marker, transaction
from kart_core.commit_marker import marker_path, read_marker
from kart_core.file_processor import builtin
from kart_core.hooks.manager import create_hook_manager
from kart_core.hooks.markers import hookimpl
from kart_core.lock import hold_lock
from kart_core.manifest import read_unverified
from kart_core.runlog import RunLogPlugin
from kart_core.storage import storage_for

LEASE = 0.6  # seconds: a beat every 0.2 s
OTHER = {"commit": "0" * 32, "host": "elsewhere.example", "pid": 4242, "kind": "direct", "moves": []}
_REMOVE = "import sys; from kart_core.storage import storage_for; storage_for(sys.argv[1]).remove(sys.argv[1])"
_REPLACE = (
    "import sys; from kart_core.storage import storage_for\n"
    "with storage_for(sys.argv[1]).atomic_write(sys.argv[1]) as file: file.write(sys.argv[2].encode())"
)


def _in_another_process(code: str, *args: str) -> None:
    """``python -c code args`` in a process of its own: a fork of the server that imported luigi, pandas and s3fs
    once (tests/fork_server.py; a fresh interpreter spent ~1-2 s of CPU on kart's imports)."""
    done = fork_server.run(["-c", code, *args], Path.cwd(), os.environ.copy(), 120, fork_server.KART_S3)
    assert done.returncode == 0, done.stderr


def _other_marker() -> str:
    return json.dumps({**OTHER, "written": time.time()})


class Owned(kart_core.TaskOnKart[Any]):
    text = luigi.Parameter(default="mine", significant=False)

    def output(self) -> Any:
        return self.make_target("owned/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" in path:
            with storage_for(path).file_system.open(path, "w") as file:  # type: ignore[attr-defined]
                file.write(str(self.text))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write(str(self.text))


class _TakenOverWhileTheCommitWaits:
    """``kart_commit_task_run``: a thread takes the manifest's lock (the commit, next, waits for it); meanwhile
    another process puts its marker in the run's place; two beats later the lock is released."""

    @hookimpl
    def kart_commit_task_run(self, task: Any, processing_time: float) -> None:
        record = task.output().record
        held = threading.Event()

        def hold() -> None:
            with hold_lock(record.lock_params()):
                held.set()
                time.sleep(0.5)  # the commit is waiting for the lock by now
                _in_another_process(_REPLACE, marker_path(record), _other_marker())
                time.sleep(2 * LEASE / 3 + 0.2)

        threading.Thread(target=hold, daemon=True).start()
        assert held.wait(30)


def test_a_marker_replaced_while_the_commit_waits_for_the_lock_fails_the_run_and_stays(where: str) -> None:
    """Before: '1 ran', committed, and the other host's marker removed by the commit."""
    assert kart_core.build(Owned(text="first", workspace_directory=where), log_level=40) == ["first"]
    record = Owned(workspace_directory=where).output().record
    storage = storage_for(record.manifest)
    before = read_unverified(storage, record.manifest)
    manager = create_hook_manager([RunLogPlugin(), builtin, _TakenOverWhileTheCommitWaits()])
    with pytest.raises(
        kart_core.GokartBuildError,
        match=r"MarkerLostError.*Owned\[\w{8}\].*process 4242 on elsewhere\.example replaced it with its own",
    ):
        kart_core.build(Owned(text="second", rerun=True, workspace_directory=where), log_level=40, hook_manager=manager)
    marker = read_marker(storage, marker_path(record))
    assert marker is not None and marker.host == "elsewhere.example" and marker.pid == 4242  # left to its writer
    after = read_unverified(storage, record.manifest)
    assert before is not None and after is not None and after.commit == before.commit  # nothing committed
    assert not Owned(workspace_directory=where).complete()  # the other host's marker keeps it incomplete


class _Meddling:
    """The marker's storage, with another process removing or replacing the marker right after each read."""

    def __init__(self, path: str, how: str) -> None:
        self._storage = storage_for(path)
        self._how = how

    def open_read(self, path: str) -> io.BytesIO:
        with self._storage.open_read(path) as file:
            data = file.read()
        if self._how == "removed":
            _in_another_process(_REMOVE, path)
        else:
            _in_another_process(_REPLACE, path, _other_marker())
        return io.BytesIO(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_beat_does_not_re_create_or_overwrite_a_marker_changed_after_its_read(where: str, how: str) -> None:
    """Before: the beat's write (a plain atomic write after the read) re-created the removed marker, or
    overwrote the other process's, and reported it kept fresh."""
    record = Owned(workspace_directory=where).output().record
    path = marker_path(record)
    storage = storage_for(path)
    commit_marker.put_direct(storage, record, "c" * 32, ())
    assert not commit_marker.refresh(_Meddling(path, how), record, "c" * 32, ())  # type: ignore[arg-type]
    getattr(storage, "file_system", None) and storage.file_system.invalidate_cache()  # type: ignore[attr-defined]
    found = read_marker(storage, path)
    if how == "removed":
        assert found is None
    else:
        assert found is not None and found.host == "elsewhere.example"


def test_clear_own_leaves_another_process_s_marker(where: str) -> None:
    record = Owned(workspace_directory=where).output().record
    path = marker_path(record)
    storage = storage_for(path)
    commit_marker.put_direct(storage, record, "c" * 32, ())
    assert commit_marker.clear_own(storage, record, "d" * 32) is not None  # another commit id: not this run's
    assert read_marker(storage, path) is not None
    assert commit_marker.clear_own(storage, record, "c" * 32) is None
    assert read_marker(storage, path) is None


class Appending(kart_core.TaskOnKart[Any]):
    """Adds a line to its output by path every 0.1 s, 30 times (the path asked for once, as code that keeps it
    does); after the third line another process puts its marker in the run's place (it takes the task over).
    Used by ``test_direct_write_stop``; what such a writer writes is tested in ``test_direct_write_private``."""

    def output(self) -> Any:
        return self.make_target("owned/appended.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        lines = ""
        for step in range(30):
            lines += f"{step}\n"
            opened = storage_for(path).file_system.open(path, "w") if "://" in path else open(path, "w")  # type: ignore[attr-defined]
            with opened as file:
                file.write(lines)
            if step == 2:
                running = transaction.current()
                assert running is not None
                with running.marker_guard:  # between two beats
                    _in_another_process(_REPLACE, marker_path(self.output().record), _other_marker())
            time.sleep(0.1)
