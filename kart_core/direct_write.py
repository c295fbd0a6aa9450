"""Outputs written by their paths: ``open(self.output().path(), "w")``, ``df.to_csv(path)``.

gokart code often writes an output by its path instead of ``dump``. So that such an output counts as complete only
when its run committed, as a dump does, and so that no other run's write can reach it:

- The first time the running task's own ``run()`` (or a thread it started) asks for the path of one of its outputs
  (``TargetOnKart.path``), ``DirectWrites.hand_out`` takes the task's run lock (the one ``should_lock_run``
  takes) unless the run holds it already, and keeps it until the run has committed or undone its writes: two
  processes writing one task's outputs by path take turns. One that waited and finds the task committed by the
  other since it began stops (``Superseded``): the runner keeps that commit. Then it resolves what a killed
  writer left there, writes a ``direct`` marker beside the task's manifest (``kart_core.commit_marker``:
  ``complete()`` is False while it is there; rewritten every third of ``commit_marker.lease_seconds()`` until the
  run has committed or undone its writes, the commit included; a marker left unwritten for two thirds of the
  lease, or removed or replaced by another process, fails the run with ``MarkerLostError``:
  ``commit_marker.Pulse``), and hands out a **private name** beside the output (``private_name``:
  ``.kart-took-{random}.{name}``, extension kept), the same for every request of that run. The output's path is
  not touched: a rerun's old output stays readable and committed until the commit replaces it, as with a dump.
  Inside ``run()`` the output's ``exists()``/``load()`` see that private file once it is written.
- After ``run()`` returns, each private file is hashed (or signed) and staged, and the commit moves it to the
  output's path (an atomic rename locally; one copy and a delete on object storage) with its integrity record
  entry; a later change is found as damage. A folder saved at the private name is moved into place then (the old
  one moved aside, named in the marker) and gets no record.
- A run whose marker another process removed or replaced (it took the task over: this run was paused past the
  lease) fails with ``MarkerLostError`` at its next path request (``_recheck``) or when ``run()`` returns, and the
  commit reads its markers again before it moves anything: it never commits over the other's. Nothing is forced
  into its running threads: until then they write on, into this run's private files only.
- A run that raises (or fails its outputs check): its private files are removed (logged with the task and the
  file), then the marker goes; the outputs' paths are as before. A rerun's outputs that changed at their paths
  without their path being asked for (the task's code computed it) are removed too (not when another process
  committed the task meanwhile: the changes are that commit's); such an output written by a successful run gets
  its record at the commit (``record_in_place``).
- A kill: the marker stays, naming no path (only a folder moved into place), and the private file stays behind
  (listings skip it; ``kart gc`` sweeps it). The next ``complete()`` on this host finds the writer gone and removes
  the marker; markers of kart before 2026-12-02, whose runs wrote in place and moved old outputs aside, are undone
  as they say. Another host's marker counts as a run in progress for ``complete()``; a run of the task here
  (holding its lock) waits while that marker is refreshed and takes it over (undoes its writes, logged) once it is
  ``commit_marker.stale``.

A task that only dumps never asks for a path: no file, marker, lock or check is added for it. The file lock reaches
one machine: two machines writing one task by path take turns only through redis (``redis_host``). The commit
reads its marker before each move and, on local disk, after it, undoing the move when the marker was lost
(``commit_marker.FencedMoves``). What is left: on object storage a run paused between that read and its copy (one
request) still commits over a run that took it over meanwhile; a write by a path the task's code computed itself
lands in place, as before (recorded at the commit; one still open for writing in this process then fails the run:
``_refuse_open``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kart_core import commit_marker, target_config, transaction
from kart_core.errors import MarkerLostError, NoSpaceError, RunWriteError, TaskDefinitionError, TaskLockException
from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.lock import canonical_location
from kart_core.manifest import Entry, OutputRecord
from kart_core.signing import HEADER_SIZE, Signer
from kart_core.storage import storage_for
from kart_core.storage.base import PRIVATE_PREFIX, TEMPORARY_SUFFIX, no_space_note, temporary_name
from kart_core.storage.stamp import stamp
from kart_core.transaction import Staged, Transaction
from kart_core.workspace import MANIFEST, log_task_path

__all__ = ["DirectWrites", "RunLock", "Superseded", "private_name", "version"]

# The task's run lock (``kart_core.runner``): held for the body, waiting up to the given seconds (None:
# as long as it takes); TaskLockException when another process still holds it then. When the caller
# already holds it (``should_lock_run``, redis) the body runs at once.
RunLock = Callable[[float | None], contextlib.AbstractContextManager[None]]
# How often a run that waits for another host's direct writer looks at its marker again (seconds).
_FOREIGN_POLL_SECONDS = 0.5


class Superseded(Exception):  # noqa: N818 - a signal to the runner, not an error of the task
    """Raised by ``TargetOnKart.path()`` in a run whose task another process committed while the run
    waited for the task's lock: the run stops, and the runner keeps the other process's outputs."""


logger = logging.getLogger(__name__)


def version(target: Any) -> object:
    """A stamp of what is at the output's path, equal only while the file is unchanged; None when it is missing.

    ``kart_core.storage.stamp.stamp`` of its path (local disk: mtime in ns, size, inode; object storage: ETag or
    generation, size, modification time). Targets of other kinds: their modification time.
    """
    path = getattr(target, "_path", None)  # not path(): during run() that would hand the path out
    if not isinstance(path, str):
        try:
            return target.last_modification_time() if target.exists() else None
        except Exception:  # a target without modification times: nothing to compare
            return None
    try:
        found = stamp(path)
    except OSError:
        return None
    return None if found is None else tuple(found)


def _content(path: str) -> str:
    """The content hash of the file at ``path`` (``kart_core.integrity``); "" when it cannot be read."""
    try:
        with storage_for(path).open_read(path) as file:
            return digest_stream(file)[1]
    except (OSError, ValueError):
        return ""


@dataclasses.dataclass
class _Handed:
    """An output whose path the task's code asked for: the private name handed out instead (``given``,
    ``private_name``), which the commit moves to the output's path.

    A folder saved at that name is moved into place when ``run()`` returns (``placed``; a folder has no single file
    to hash or stage), the old output at the path moved aside first (``backup``: put back by ``undo``, deleted by
    ``finish``). ``sealed``: a signed copy of the file was staged, so the private file stays until ``finish``.
    """

    target: Any
    given: str
    backup: str | None = None
    placed: bool = False
    sealed: bool = False
    # The dump copied to ``given`` when the path was asked after it (``_seed``), and the stamp of that copy: a later
    # dump wins over a copy the task's code never touched (attacker at16 G10).
    seeded: tuple[Staged, object, str] | None = None  # (the dump, the copy's stamp, the copy's content hash)


class _Watching:
    """``DirectWrites.watch``'s context manager: a class, not a ``contextlib.contextmanager`` (every run enters it).
    The private files are staged only when the body returned (a run that raised is undone by its runner)."""

    __slots__ = ("_direct",)

    def __init__(self, direct: DirectWrites) -> None:
        self._direct = direct

    def __enter__(self) -> None:
        self._direct.watching = True

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        self._direct.watching = False
        if exc_type is None:
            self._direct._stage_private()


class DirectWrites:
    """The outputs of one run whose paths the task's code asked for (``running.direct`` during that run).

    The first path request takes the task's run lock (``lock``), unless the run holds it already, and
    keeps it until the run has committed or undone its writes: two processes writing one task's outputs
    by path take turns. One that waited and finds that the other committed the task meanwhile stops
    (``Superseded``; ``stopped`` says why): its run keeps the other's outputs.

    Args:
        running: the run's transaction (its commit id names the run in the marker).
        label: how messages name the task (``Class[8-hex id]``).
        outputs: the task's flattened outputs.
        replace: a rerun (or a repair).
        lock: the task's run lock; None: none is taken.
    """

    def __init__(
        self, running: Transaction, label: str, outputs: Iterable[Any], replace: bool, lock: RunLock | None = None
    ) -> None:
        self._running = running
        self._label = label
        self._outputs = {target.path(): target for target in outputs}
        self._replace = replace
        config = target_config.current()
        self._records = config.record
        self._signer = config.signer  # markers are signed with it, and refused unless signed by it
        self._lock = lock
        self._held = contextlib.ExitStack()
        self._locked = False
        self.stopped: str | None = None
        self.watching = False
        self.handed: dict[str, _Handed] = {}
        # Side targets of the task (``Transaction.side``) whose path run() asked, with the file's stamp then: one it
        # wrote there is signed and listed under the manifest's ``side`` when run() returns (``_stage_side``).
        self._sides: dict[str, tuple[Any, OutputRecord, Any]] = {}
        self._sealed_companions: list[str] = []  # companions of which a signed copy was committed (``finish``)
        self._unfinished: list[str] = []  # files written in place still open for writing (``_refuse_open``)
        self._marked: dict[str, OutputRecord] = {}
        # Markers beside the record-less outputs handed out (writing_marker) and their pointers, with the bytes this
        # run wrote there: each is removed only while it still holds them (``_remove_own_writing``).
        self._writing: list[tuple[str, bytes]] = []
        self._settled: set[str] = set()
        # Marker writes of the path requests, of the heartbeat thread (which keeps the marker fresh, so
        # that another host does not take it for a dead writer's, ``commit_marker.stale``) and of the commit.
        self._marker_lock = running.marker_guard
        self._beating: threading.Event | None = None
        self._beat: threading.Thread | None = None
        # How the beats fare (``commit_marker.Pulse``, the transaction's: its commit checks it too).
        self._pulse = running.pulse
        self._taken: set[str] = set()  # manifests whose marker another process replaced: its files are not undone
        # Path requests from several threads of the run (kart_core.transaction.join) take turns: one takes
        # the lock and writes the marker, the others find the path handed out.
        self._handing = threading.RLock()

    def watch(self) -> _Watching:
        """Count the path requests of the body (the task's own ``run()``), not kart's own afterwards; when the body
        returns, stage the private files it wrote (``_stage_private``).

        A beat that finds the run's marker removed or replaced by another process (it takes the task over) keeps the
        failure in the pulse; the task's code is stopped at its next path request (``_recheck`` raises the
        ``MarkerLostError``) or when ``run()`` returns, before its commit, never in between. Its writes go to its own
        private names meanwhile, so they never reach the files of the process that took over. (An exception forced
        into the run's thread at any instruction, CPython's ``PyThreadState_SetAsyncExc``, 6639860 to 8e1e57b,
        fired inside whatever that thread ran: a logging handler between its lock's acquire and release, another
        task's build inside ``run()``, an object-storage file's ``with`` block whose close uploaded the partial file
        over the taker's object; it missed the threads ``run()`` started and was swallowed by ``except Exception``:
        attacker at13, 1-5.)
        """
        return _Watching(self)

    def hand_out(self, target: Any, path: str) -> str:
        """Called by ``TargetOnKart.path()``: mark ``path`` as written directly before the task's code gets it.

        Returns the name the task's code is to write: a private name beside ``path`` (``private_name``), the same
        for every request of the run (from any of its threads), which the commit moves to ``path``. So ``path``
        keeps the committed output until then, and a run taken over by another host (it may only have been paused:
        SIGSTOP, a suspended machine) writes on into its own file only, before or after the other's commit, from
        any thread and through any library's clean-up (attacker at11 F1, at13 1-5). ``path`` itself outside
        ``run()`` or for a path that is not an output of the task.

        Raises:
            Superseded: another process committed the task while this run waited for its lock (or for
                another host's writer): the run stops, the runner keeps that commit.
            RunWriteError: asked from a child process of the run's (a forked copy of it): what the child
                writes there would escape the run.
        """
        if not self.watching:
            return path
        if path not in self._outputs:
            record = self._record(target)
            if record is not None and path not in self._sides and self._running.side(record):
                self._sides[path] = (target, record, _stamp_quietly(path))
            return path
        transaction.check_process(self._running, f"the path of its output {path!r}")
        with self._handing:
            if self._marked:
                self._recheck()
            if path not in self.handed:
                self._hand_out(target, path)
            return self.handed[path].given

    def private_of(self, path: str) -> str | None:
        """The private name handed out for the output at ``path`` while it is not moved into place yet (the run's own
        view of that output: ``TargetOnKart.exists``/``load`` inside ``run()``), else None."""
        handed = self.handed.get(path)
        return handed.given if handed is not None and not handed.placed else None

    def _recheck(self) -> None:
        """A path request after this run's first marker: stop the run if its markers may no longer be its own.

        A writer paused longer than the lease (SIGSTOP, a suspended VM) or whose main thread held the GIL that
        long (the beat thread could not run) may have been taken over by a run on another host meanwhile, which
        writes the same paths (attacker at11 F1/F6). When a beat is due or missed (``Pulse.late``) or failed, the
        markers are read (and rewritten) now, before the path is handed out again.

        Raises:
            MarkerLostError, NoSpaceError: a marker of this run is gone, another process's, or was not kept
                fresh: the run stops here, and its undo leaves the files at its outputs' paths alone when another
                process may have taken them over.
        """
        if self._pulse.failure is None and not self._pulse.late():
            return
        self.check_heartbeat()

    def _hand_out(self, target: Any, path: str) -> None:
        if self.stopped is not None:
            raise Superseded(self.stopped)  # the task's code asked again after catching the first
        if not self._locked:
            self._take_lock()
        record = self._record(target)
        if record is not None and record.manifest not in self._settled:
            self._settle_leftovers(record)
            self._settled.add(record.manifest)
            # A run that read newer inputs than the one that committed goes on: its commit replaces that one's.
            if self._committed_meanwhile(record) and not self._running.newer_than_committed(record):
                self._stop()
        elif record is None and not self._marked and not self.handed and self._all_written():
            self._stop()
        # The path itself is untouched until the commit moves the private file there: the old output stays
        # readable (and committed) until then, as with a dump.
        with self._marker_lock:  # the heartbeat reads ``handed`` and ``_marked``
            self.handed[path] = _Handed(target, private_name(path))
            if record is not None:
                self._marked[record.manifest] = record
                with self._room(f"mark {self._label} as writing its output {path!r} by path", record):
                    commit_marker.put_direct(
                        storage_for(record.manifest), record, self._running.commit_id, self._moves(record), self._signer
                    )
                self._pulse.wrote(commit_marker.marker_path(record))
            else:  # outside the workspace, or integrity records off: no manifest to put a marker beside
                self._mark_writing(path, outside=getattr(target, "record", None) is None)
        if record is not None:
            self._start_heartbeat()
        dumped = self._running.lookup(path)
        if dumped is not None:
            handed = self.handed[path]
            self._seed(dumped, handed.given)
            handed.seeded = (dumped, stamp(handed.given), _content(handed.given))

    def _seed(self, dumped: Staged, given: str) -> None:
        """Copy what the run dumped to an output before asking its path to the private name ``given``, so that the
        task's code finds that file at the path it gets, as in gokart (where ``dump`` writes the path itself): a
        touch-up by path (an append, an overwrite), a copy or a hash of it sees the dumped bytes, and the private
        file, staged when ``run()`` returns, replaces the dump (attacker at14 N2: the append was lost, a copy
        raised ``FileNotFoundError``). A signed dump's header is left out (it is added again at the staging).

        Raises:
            OSError: the copy failed (a full disk: ``NoSpaceError``); the path is not handed out, the run fails.
        """
        with dumped.storage.open_read(dumped.location) as source:
            if dumped.entry.sealed:
                source.read(HEADER_SIZE)
            with storage_for(given).atomic_write(given) as target:
                shutil.copyfileobj(source, target)

    @contextlib.contextmanager
    def _room(self, what: str, record: OutputRecord) -> Iterator[None]:
        """Turn a full disk (or quota) while the marker of ``record`` is written into a ``NoSpaceError``
        naming ``what`` and the marker: the atomic write left nothing, the path is handed out only after the
        marker, and the failed run's undo removes what it wrote at paths handed out before."""
        with NoSpaceError.raised_as(
            lambda exc: (
                f"No space left to {what}: writing {commit_marker.marker_path(record)!r} failed ({exc}"
                f"{no_space_note(record.manifest)}). "
                "The run fails: the path was not handed out, and what it wrote at its other outputs' paths is removed. "
                "Free space on that disk (or raise the quota), then build again."
            )
        ):
            yield

    def _moves(self, record: OutputRecord) -> tuple[tuple[str, str | None], ...]:
        """What ``record``'s marker names: each folder of its manifest moved into place (``_place_folder``), with
        where its old output went; a kill's undo (``commit_marker.undo_direct``) removes it and puts that back.

        A private file is not named: nothing is written at the output's path before the commit, so a kill leaves that
        path as it was (the private file stays behind, a hidden ``.kart-took-`` file that listings skip and
        ``kart gc`` sweeps). Markers of kart before 2026-12-02 name every path their run wrote in place.
        """
        return tuple(
            (each, handed.backup)
            for each, handed in self.handed.items()
            if handed.placed and (self._record(handed.target) or record).manifest == record.manifest
        )

    def _take_lock(self) -> None:
        """Take the task's run lock for the rest of the run (waiting, with a message, while another process holds it)."""
        self._locked = True
        if self._lock is None:
            return
        try:
            self._held.enter_context(self._lock(0))
        except TaskLockException:
            logger.info(
                "%s: another process holds this task's lock (it runs the task too); this run asked for an output's "
                "path, so it waits until that run has committed or failed",
                self._label,
            )
            self._held.enter_context(self._lock(None))

    def _committed_meanwhile(self, record: OutputRecord) -> bool:
        """Whether a commit of ``record``'s manifest landed since this run began (``Transaction.remember_base``)."""
        bases = self._running.bases
        if record.manifest not in bases:
            return False
        return (
            transaction.read_base(storage_for(record.manifest), record, self._running.signer) != bases[record.manifest]
        )

    def _committed_by_another(self, record: OutputRecord) -> bool:
        """Whether another run committed ``record``'s manifest since this run began: it names neither this run's
        base nor this run's own commit (which a failure in the middle of its moves leaves pending)."""
        bases = self._running.bases
        if record.manifest not in bases:
            return False
        found = transaction.read_base(storage_for(record.manifest), record, self._running.signer)
        return found not in (bases[record.manifest], self._running.commit_id)

    def _all_written(self) -> bool:
        """Without integrity records: whether every output of a first run is there (another process committed it;
        not a killed writer's file, which left its marker beside it: ``commit_marker.writing_marker``)."""
        return not self._replace and all(
            target.exists() and not self._left_writing(path, target) for path, target in self._outputs.items()
        )

    def _left_writing(self, path: str, target: Any) -> bool:
        """Whether a record-less output has a by-path writer's marker beside it (this run has not written it yet)."""
        if self._record(target) is not None:
            return False
        marker = commit_marker.writing_marker(path)
        return storage_for(marker).exists(marker)

    def _stop(self) -> None:
        self.stopped = (
            f"{self._label}: another process committed this task while this run waited to write its outputs by path; "
            "its outputs are kept and this run stops"
        )
        self.release()
        raise Superseded(self.stopped)

    def release(self) -> None:
        """Stop the marker's heartbeat and give up the run lock (idempotent; after the commit or the undo)."""
        self._stop_heartbeat()
        self._held.close()

    def _start_heartbeat(self) -> None:
        if self._beat is not None:
            return
        self._beating = threading.Event()
        self._beat = threading.Thread(
            target=self._refresh_markers, args=(self._beating,), name=f"kart-heartbeat {self._label}", daemon=True
        )
        self._beat.start()

    def _stop_heartbeat(self) -> None:
        if self._beat is None or self._beating is None:
            return
        self._beating.set()
        self._beat.join()
        self._beat = self._beating = None

    def _refresh_markers(self, stop: threading.Event) -> None:
        """Rewrite this run's markers every third of the lease, until ``stop`` (the marker's time is its heartbeat).

        It beats until ``finish`` or ``undo``: hashing, signing and committing large outputs may take longer
        than the lease, and a marker left to age then would be taken over by a run on another host as if
        this writer were dead. During a replacing commit the marker is the commit's (``commit_marker.refresh``
        keeps its kind); once the commit removed it, nothing is rewritten.
        """
        while not stop.wait(commit_marker.lease_seconds() / 3):
            with self._marker_lock:
                if stop.is_set():
                    return
                for record in list(self._marked.values()):
                    if record.manifest not in self._taken:
                        self._beat_once(record)

    def _beat_once(self, record: OutputRecord) -> None:
        """Rewrite ``record``'s marker; keep a failure in the pulse when it cannot stay this run's and fresh.

        A full disk fails the run at once. Another error (a read-only folder, an object store that refuses) is
        tried again at the next beat, and fails the run once the marker has gone unwritten for two thirds of
        the lease (``Pulse.overdue``). A marker that another process removed is put back (so the task stays
        incomplete until this run's undo) and fails the run, unless another run committed the task since this one
        began: a run on another host that took this one over (it was paused, or its beats starved by the GIL, for
        the lease) removes its marker when it commits, and the undo would delete that commit's output (attacker at11
        F6). One it replaced is its own now. In both cases the run fails and leaves the files at those paths alone
        (``undo``).
        """
        storage = storage_for(record.manifest)
        path = commit_marker.marker_path(record)
        commit, moves = self._running.commit_id, self._moves(record)
        try:
            if commit_marker.refresh(storage, record, commit, moves, self._signer):
                self._pulse.wrote(path)
                return
            if path in self._pulse.cleared:  # this run's commit removed it: nothing left to keep fresh
                return
            current = self._read(storage, record)
            if current is None and self._committed_by_another(record):
                # A run on another host took this one over (it was paused, or its beats starved, for the lease)
                # and committed, which removed its marker: the files at those paths are that commit's.
                self._taken.add(record.manifest)
                why = "another process removed it, and another run committed the task since this run began"
                self._pulse.fail(self._lost(path, why, left=True))
            elif current is None:
                # No commit since: put back, so that the task stays incomplete until this run's undo (a first
                # run's file without a manifest would count as complete).
                commit_marker.put_direct(storage, record, commit, moves, self._signer)
                self._pulse.wrote(path)
                self._pulse.fail(self._lost(path, "another process removed it"))
            elif not commit_marker.mine(current, commit) or current.refused:
                # Also while the commit runs: a marker replaced then is another process's, which the commit
                # would have overwritten and removed (attacker at9 J9).
                self._taken.add(record.manifest)
                self._pulse.fail(
                    self._lost(path, f"{_who(current)} replaced it with its own (it takes the task over)", left=True)
                )
        except Exception as exc:  # noqa: BLE001 - kept in the pulse; the run fails at check_heartbeat or its commit
            if NoSpaceError.caused_by(exc):  # said once; the run fails (check_heartbeat)
                self._pulse.fail(self._no_room_to_beat(record, exc))
            elif not self._pulse.overdue(path):
                logger.warning("%s: could not refresh its marker (tried again at the next beat)", self._label)
            else:
                error = self._lost(
                    path, f"rewriting it failed for two thirds of the lease ({type(exc).__name__}: {exc})"
                )
                error.__cause__ = exc
                self._pulse.fail(error)

    def hand_over(self, record: OutputRecord) -> bool:
        """Called by the commit under the marker guard, before it puts its marker beside ``record``'s manifest:
        replace this run's direct marker there with the commit's, only while it is still this run's.

        Returns False when this run put no marker there (the commit puts its own as usual).

        Raises:
            MarkerLostError: another process removed or replaced the marker since the last beat (the commit
                waited for the manifest's lock meanwhile): names the task and the other writer; nothing moved.
        """
        if record.manifest not in self._marked:
            return False
        storage = storage_for(record.manifest)
        path = commit_marker.marker_path(record)
        for _ in range(2):  # a beat that rewrote it in between changes the bytes: one more try
            if record.manifest not in self._taken and commit_marker.hand_over(
                storage, record, self._running.commit_id, self._signer
            ):
                self._pulse.wrote(path)
                return True
            self._beat_once(record)  # reads it again: keeps who removed or replaced it in the pulse
            self._pulse.check()
        raise self._lost(path, "it could not be handed over to the commit")

    def _lost(self, path: str, why: str, left: bool = False) -> MarkerLostError:
        """The error of a run that could not keep its by-path writer's marker at ``path`` its own (``why``);
        ``left``: the marker is gone or another's, so the files at the outputs' paths are left alone."""
        undone = (
            "the files at its outputs' paths are left alone (a run that took the task over may be writing them, or "
            "has committed them; if none did, the next run of the task writes them again)"
            if left
            else "what it wrote at its outputs' paths is removed"
        )
        return MarkerLostError(
            f"{self._label} could not keep the marker that shows its run is still writing its outputs by path: "
            f"{path!r}: {why}. A run on another host takes such a marker for a dead writer's and writes the task "
            f"itself, so this run fails instead of committing over it: {undone}. Check that nothing else removes "
            "or rewrites files under log/manifest/, that the folder is writable (or the object store reachable), "
            "and that no pause of the writer (a suspended machine, SIGSTOP, one call holding the GIL) lasts as long "
            "as the lease (KART_DIRECT_LEASE_SECONDS), then build again."
        )

    def _no_room_to_beat(self, record: OutputRecord, exc: BaseException) -> NoSpaceError:
        """The error a run fails with when its heartbeat found no room to rewrite ``record``'s marker."""
        error = NoSpaceError(
            f"No space left to refresh the marker of {self._label}, which shows that its run is still writing its "
            f"outputs by path: writing {commit_marker.marker_path(record)!r} failed ({exc}"
            f"{no_space_note(record.manifest)}). A marker "
            "left to age is taken for a dead writer's by a run on another host, which then takes the outputs over. "
            "The run fails: what it wrote at its outputs' paths is removed. Free space on that disk (or raise the "
            "quota), then build again."
        )
        error.__cause__ = exc
        return error

    def check_heartbeat(self) -> None:
        """Beat once now (each marker read and rewritten), then raise the failure of any beat since the first path.

        Called after the outputs were hashed and as the commit begins (``Transaction.commit``): a marker removed
        or replaced since the last beat is found here, not a third of the lease later, after the commit.

        Raises:
            NoSpaceError: a beat failed for a full disk or quota; names the task and the marker.
            MarkerLostError: the marker went unwritten for two thirds of the lease, or another process removed
                or replaced it.
        """
        with self._marker_lock:
            for record in list(self._marked.values()):
                if record.manifest not in self._taken:
                    self._beat_once(record)
        self._pulse.check()

    def _own(self, record: OutputRecord) -> set[str]:
        """The keys of the task's outputs recorded in ``record``'s manifest: all a marker beside it may name."""
        return {
            each.key
            for each in map(self._record, self._outputs.values())
            if each is not None and each.manifest == record.manifest
        }

    def _record(self, target: Any) -> OutputRecord | None:
        record = getattr(target, "record", None) if self._records else None
        return record if isinstance(record, OutputRecord) else None

    def _settle_leftovers(self, record: OutputRecord) -> None:
        """Before the first marker of this run (holding the task's lock): undo a killed direct writer's files.

        A marker of this host whose writer is gone is undone (``commit_marker.settled``). One of another
        host is waited for while its writer keeps it fresh, and taken over (its writes undone, logged)
        once it is ``commit_marker.stale``. A live writer of this host that does not hold the task's lock
        (a kart before 2026-12-01) is warned about.
        """
        storage = storage_for(record.manifest)
        path = commit_marker.marker_path(record)
        marker = self._read(storage, record)
        if marker is None:
            return
        if marker.refused or (
            marker.kind == commit_marker.DIRECT and marker.host not in ("", commit_marker.host_identity())
        ):
            self._await_foreign(storage, record)
            return
        # Waits for a commit in progress; undoes a killed writer's files (those that are this task's outputs).
        commit_marker.settled(record, lambda: self._own(record), lambda: self._signer)
        live = commit_marker.read_marker(storage, path)
        alive = live is not None and live.kind == commit_marker.DIRECT and commit_marker.writer_alive(live)
        if live is not None and alive and live.pid != os.getpid():
            logger.warning(
                "%s: process %d on %s is writing this task's outputs straight to their paths without the task's "
                "lock (an older kart?); the two runs overwrite each other's files.",
                self._label,
                live.pid,
                live.host,
            )

    def _await_foreign(self, storage: Any, record: OutputRecord) -> None:
        """Wait while another host's direct writer keeps its marker changing; take the marker over once it is stale.

        The task's file lock does not reach other hosts: the marker, rewritten by its live writer every
        third of ``commit_marker.lease_seconds()`` until its commit has finished, is what tells that one is
        still writing. Stale means unchanged for the lease since this wait first saw it as it is, on this
        process's clock (``commit_marker.Sightings``), never the time the marker carries: a writer's clock
        behind by more than the lease made its fresh beats look stale (attacker at9 J5).
        """
        path = commit_marker.marker_path(record)
        lease = commit_marker.lease_seconds()
        told = False
        seen = commit_marker.Sightings()  # this wait's own clock: the marker's time is the other host's (at9 J5)
        while True:
            marker = self._read(storage, record)
            if marker is not None and marker.refused:  # not a writer's: replaced by this run's marker
                commit_marker.undo_marked(storage, record, marker, self._label, "", self._own(record), self._signer)
                return
            if (
                marker is None
                or marker.kind != commit_marker.DIRECT
                or marker.host in ("", commit_marker.host_identity())
            ):
                if marker is not None:
                    commit_marker.settled(record, lambda: self._own(record), lambda: self._signer)
                return
            age = seen.age(path, marker)
            if commit_marker.stale(marker, path, seen):
                why = (
                    f"its run that wrote the outputs straight to their paths (process {marker.pid} on {marker.host}) "
                    f"has left its marker unchanged for {age:.0f} s as this run watched it (lease {lease:g} s), "
                    "so it is taken for dead and this run takes over"
                )
                if commit_marker.undo_marked(
                    storage, record, marker, self._label, why, self._own(record), self._signer
                ):
                    logger.warning("%s: %s", self._label, why)
                    return
                continue  # rewritten meanwhile: look again
            if not told:
                told = True
                logger.warning(
                    "%s: process %d on %s is writing this task's outputs straight to their paths; this run waits "
                    "until it commits or fails, or its marker stops changing for %.0f s (the lease, by this host's "
                    "clock). Set redis_host so that runs on different machines take turns through one lock.",
                    self._label,
                    marker.pid,
                    marker.host,
                    lease,
                )
            time.sleep(min(_FOREIGN_POLL_SECONDS, max(0.0, lease - age)) or 0.01)

    def _read(self, storage: Any, record: OutputRecord) -> commit_marker.Marker | None:
        return commit_marker.read_marker(
            storage, commit_marker.marker_path(record), commit_marker.marker_beside(record.manifest_name), self._signer
        )

    def record_in_place(self, targets: Iterable[Any]) -> None:
        """Stage the integrity record entry of each output the run wrote straight to its path (hashed now): one whose
        path the task's code found without asking ``path()`` (it computed it), so it landed in place.

        With signing on, each is signed too (``_sealed``), also with integrity records off (then without a
        commit id, as a dump is). The markers are still refreshed meanwhile, and through the commit, until
        ``finish`` or ``undo``; with none to stage, only the beats' findings are checked (the commit reads the
        markers again before it moves anything).

        Raises:
            NoSpaceError: the heartbeat found no room to rewrite a marker since the first path was handed
                out (``check_heartbeat``; checked before and after the hashing): the run fails and is undone.
            MarkerLostError: a marker could not be kept this run's and fresh (``check_heartbeat``).
        """
        self._pulse.check()
        targets = list(targets)
        if targets:
            self._record_in_place(targets)
            self.check_heartbeat()

    def _stage_private(self) -> None:
        """After the body returned: stage each file the run wrote under its private name, hashed (or signed) now, so
        that the commit moves it to its output's path (an atomic rename locally, one copy on object storage).

        The bytes hashed are this run's own: no other process knows the name, so a run this one took over (or one
        that took this one over) never writes into it. A folder saved there is moved into place now
        (``_place_folder``) and gets no record, as before. A name the task's code never wrote is left to the outputs
        check (the output counts as missing; a rerun's old output stays).

        Raises:
            MarkerLostError, NoSpaceError: a beat found a marker of this run gone, another's, or not kept fresh (the
                run fails and its undo removes the private files; the commit reads the markers again before it moves
                anything).
            TaskDefinitionError: the run saved a folder (objects under the name as a prefix) at the private name of
                an output on object storage, which has no move of a folder in one step (``_refuse_remote_folder``).
        """
        self._stage_side()
        if not self.handed:
            return
        self._pulse.check()
        signer = target_config.current().signer
        for path, handed in self.handed.items():
            storage = storage_for(path)
            record = self._record(handed.target)
            if "://" not in path and os.path.isdir(handed.given):
                self._refuse_open(path, handed.given)  # a file of the folder still being written (attacker at16 G8)
                self._place_folder(path, handed, record)
                continue
            if not storage.exists(handed.given):
                if _remote_folder(storage, handed.given):
                    self._refuse_remote_folder(path, handed.given)
                continue
            self._refuse_open(path, handed.given)
            if self._dumped_again_over_untouched_copy(path, handed):
                storage.remove(handed.given)  # the dump staged after it stays: what the code wrote last
                continue
            if signer is not None:
                staged = self._sealed(handed.target, record, path, handed.given, storage, signer)
                if staged is not None:
                    handed.sealed = True
                    self._running.add(staged)
                continue
            with storage.open_read(handed.given) as file:
                entry = self._entry(file, record)
            self._running.add(Staged(path, handed.given, storage, record, entry))
        self._stage_companions()

    def _stage_side(self) -> None:
        """After the body returned: stage each side file the run wrote by the path it asked (``hand_out``; written in
        place, as gokart writes it), so its commit lists it under the manifest's ``side`` and, with signing on, puts
        a copy sealed with the run's commit over it (attacker at16 G4: such a file was committed unsigned, so every
        load of it was refused under signing). A path whose file the run did not change (it only read another
        writer's file there, or dumped it since) is left alone: kart never vouches for bytes it did not write.
        """
        signer = target_config.current().signer
        for path, (target, record, before) in self._sides.items():
            if self._running.lookup(path) is not None or "://" not in path and os.path.isdir(path):
                continue  # dumped after its path was asked (the dump is staged), or a folder (never signed)
            now = _stamp_quietly(path)
            if now is None or now == before:
                continue
            storage = storage_for(path)
            if signer is not None:
                staged = self._sealed(target, record, path, path, storage, signer)
                if staged is not None:
                    self._running.add(staged, side=record)
                continue
            try:
                with storage.open_read(path) as file:
                    entry = self._entry(file, record)
            except OSError:
                continue
            self._running.add(Staged(path, path, storage, None, entry, in_place=True), side=record)

    def _dumped_again_over_untouched_copy(self, path: str, handed: _Handed) -> bool:
        """Whether the private file at ``handed.given`` is only the copy of an earlier dump (``_seed``: the code asked
        the path after that dump and never wrote the file) and the code dumped the output again since: that later
        dump is the output, as in gokart, where each dump rewrites the path (``dump(1); path(); dump(2)`` gives 2).
        A copy the code wrote to (its stamp moved) still wins over the dump, as the run's last write by path."""
        if handed.seeded is None:
            return False
        seeded, copied, content = handed.seeded
        latest = self._running.lookup(path)
        if latest is None or latest is seeded:
            return False
        # Touched (os.utime, opened r+ and closed) but not rewritten counts as untouched: its bytes are the copy's.
        return stamp(handed.given) == copied or _content(handed.given) == content

    def _companions(self) -> list[tuple[str, str, Any]]:
        """The files the run wrote beside a private name under a name derived from it (``.kart-took-{hex}.`` then
        anything else: ``splitext(path)[0] + ".schema.json"``, an index beside a data file), each with the final
        name it stands for (the prefix dropped) and its storage. One listing of each private name's folder."""
        found: list[tuple[str, str, Any]] = []
        for handed in self.handed.values():
            folder, _, name = handed.given.rpartition("/")
            prefix = name[: len(PRIVATE_PREFIX) + 13]  # ".kart-took-" + 12 hex + "."
            storage = storage_for(handed.given)
            for each in _names_in(storage, folder):
                if each.startswith(prefix) and each != name and not each.endswith(TEMPORARY_SUFFIX):
                    found.append((f"{folder}/{each}", f"{folder}/{each[len(prefix) :]}", storage))
        return found

    def _stage_companions(self) -> None:
        """Stage each companion file (``_companions``) so that the commit moves it to its final name with the run's
        outputs, as gokart's run left it beside the output (attacker at15 F2: it stayed under the private name, and a
        reader found the companion of the run before beside the new output). One that stands for another output of
        the task gets that output's record; any other is committed as a side file, recorded nowhere.

        Raises:
            TaskDefinitionError: a folder was saved under such a name (only files are moved), or the name stands for
                an output this run also wrote under its own private name.
        """
        signer = target_config.current().signer
        for location, final, storage in self._companions():
            if ("://" not in location and os.path.isdir(location)) or (
                "://" in location and not storage.exists(location)
            ):
                raise TaskDefinitionError(
                    f"{self._label}.run() saved a folder at {location!r}, a name derived from the private name kart "
                    f"handed out for one of its outputs: only files written beside it are moved to their final names "
                    f"({final!r}). Write one file there, or a folder as its own output of the task. Nothing was "
                    "committed."
                )
            target = self._outputs.get(final)
            if target is not None and final in self.handed:
                raise TaskDefinitionError(
                    f"{self._label}.run() wrote its output {final!r} twice: under the private name it was handed and "
                    f"under {location!r}, derived from another output's. Write it once, by the name "
                    "self.output().path() hands out for it. Nothing was committed."
                )
            self._refuse_open(final, location)  # a companion still being written (attacker at16 G8)
            record = self._record(target) if target is not None else None
            if target is not None and signer is not None:
                staged = self._sealed(target, record, final, location, storage, signer)
                if staged is not None:
                    self._running.add(staged)
                    self._sealed_companions.append(location)
                continue
            with storage.open_read(location) as file:
                entry = self._entry(file, record)
            self._running.add(Staged(final, location, storage, record, entry))

    def _refuse_open(self, path: str, written: str) -> None:
        """Fail the run when a descriptor of this process still has the file ``written`` (the output ``path`` itself,
        written in place, or its private name) open for writing after ``run()`` returned: a thread ``run()`` started,
        or a file object it kept, may write on, and the record would vouch for bytes kart did not see written whole.
        Local disk only (``/proc/self/fd``; a writer in another process, or on object storage, is not seen).

        Raises:
            RunWriteError: names the task, the file and what to do; nothing is committed, and the undo removes the
                private file (an in-place file of a rerun too, as it changed).
        """
        if not _open_for_writing(written):
            return
        self._unfinished.append(written)
        raise RunWriteError(
            f"{self._label}: its output {path!r} is still open for writing in this process after run() returned "
            f"({written!r}): a thread run() started, or a file object it kept, may write on, and kart records only "
            "bytes it saw written whole. Nothing was committed. Close the file before run() returns (`with "
            "open(...)`) and wait for the threads run() starts (join them, or the executor's shutdown(wait=True))."
        )

    def _refuse_remote_folder(self, path: str, given: str) -> None:
        """Fail the run that saved a folder at the private name ``given`` of its output ``path`` on object storage.

        Its objects would have to be copied one by one to the output's prefix: a run killed or paused in the middle
        would leave a partial folder there, and a folder at a final path cannot be vouched for (no record, no move in
        one step, no undo that a reader waits for). gokart wrote such a folder in place, partial after a kill.

        Raises:
            TaskDefinitionError: always; names the task, the output and what to do instead. The failed run's undo
                removes the objects (``_remove_private``).
        """
        raise TaskDefinitionError(
            f"{self._label}.run() saved a folder at the path of its output {path!r} on object storage (objects "
            f"under {given + '/'!r}, the private name kart handed out): kart cannot move a folder into place there "
            "in one step, so a run killed or paused half way would leave a partial folder at the output's path. "
            "Nothing was committed, and the objects it wrote are removed. Save the folder as one file instead (a zip "
            "or tar of it: TaskOnKart.make_model_target zips what a save function writes into a folder), or use a "
            "workspace on local disk, where a folder output is moved into place as a whole."
        )

    def _place_folder(self, path: str, handed: _Handed, record: OutputRecord | None) -> None:
        """Move a folder the run saved at its private name to the output's path now (local disk).

        An old output at the path is moved aside first; the marker is rewritten to name both (``_moves``) before
        either move, so a kill's undo removes the new folder and puts the old one back, as the run's own ``undo``
        does; ``finish`` deletes it.

        Raises:
            MarkerLostError, NoSpaceError: the marker could not be kept this run's (nothing moved).
            TaskDefinitionError: signing is on: a folder cannot be signed (nothing moved; the undo removes it).
        """
        if target_config.current().signer is not None:
            raise TaskDefinitionError(
                f"{self._label}.run() saved a folder at the path of its output {path!r}, and signing is on: kart signs "
                "and records files only, so a folder there could be changed or planted unseen. Nothing was committed, "
                "and the folder is removed. Save it through TaskOnKart.make_model_target (a save function writes the "
                "folder, kart zips, signs and records it), or as one file (a zip or tar) at the output's path."
            )
        backup = temporary_name(path) if os.path.lexists(path) else None
        with self._marker_lock:
            handed.backup, handed.placed = backup, True
            if record is not None and record.manifest in self._marked and record.manifest not in self._taken:
                self._beat_once(record)
        self._pulse.check()
        if backup is not None:
            os.replace(path, backup)
        storage_for(path).commit(handed.given, path)

    def _record_in_place(self, targets: Iterable[Any]) -> None:
        signer = target_config.current().signer
        for target in targets:
            record = self._record(target)
            if record is None and signer is None:
                continue
            path = target.path()
            storage = storage_for(path)
            self._refuse_open(path, path)
            if signer is not None:
                staged = self._sealed(target, record, path, path, storage, signer)
                if staged is not None:
                    self._running.add(staged)
                continue
            assert record is not None  # narrowed above
            try:
                with storage.open_read(path) as file:
                    entry = self._entry(file, record)
            except IsADirectoryError:
                continue  # a folder saved at the output's path: no single file to hash
            self._running.add(Staged(path, path, storage, record, entry, in_place=True))

    def _entry(self, file: Any, record: OutputRecord | None) -> Entry:
        """The manifest entry of an unsigned output written by path: ``file``'s size and digest, read to its end.

        Raises:
            OSError: reading ``file`` failed (``IsADirectoryError`` for a folder saved at the output's path).
        """
        size, digest = digest_stream(file)
        return Entry(
            size=size,
            digest=f"{DEFAULT_ALGORITHM}:{digest}",
            commit=self._running.commit_id if record is not None else None,
            sealed=False,
            owner=(record.owner or None) if record is not None else None,
        )

    def _sealed(
        self, target: Any, record: OutputRecord | None, path: str, source: str, storage: Any, signer: Signer
    ) -> Staged | None:
        """A signed copy of the file the run wrote at ``source`` (``path``, or its private name), staged: the commit
        puts it over the file at ``path``.

        The copy is the file after a signature header, as a dump writes it (``kart_core.signing``; one pass
        hashes the content and feeds the MAC; the MAC binds what a load checks: the target's
        ``signing_name``, its workspace-relative path unless it is a bare target, and the commit id when
        ``record`` keeps one), so it loads under signing. None for a folder (not signed: loads that read
        it as one file refuse it).
        """
        known = getattr(target, "signing_name", None)
        name = known if isinstance(known, str) else canonical_location(path)
        commit = self._running.commit_id if record is not None else None
        spool = storage.spool(path)
        try:
            with storage.open_read(source) as file:
                spool.file.write(bytes(HEADER_SIZE))
                mac = signer.begin(name, commit)
                size, digest = digest_stream(file, DEFAULT_ALGORITHM, mac, _Sink(spool.file))
            spool.file.seek(0)
            spool.file.write(Signer.header(commit, mac))
            spool.file.flush()
            location = spool.stage()
        except IsADirectoryError:
            spool.discard()
            return None
        except OSError as exc:
            spool.discard()
            if not NoSpaceError.caused_by(exc):
                raise
            # The run fails: its undo removes the file it wrote at ``path`` (and puts an old output back).
            raise NoSpaceError(
                f"No space left to sign the output of {self._label} that its run wrote to {path!r}: its signed copy "
                f"did not fit ({exc}{no_space_note(path)}). Nothing was committed: the signed copy and the file the "
                "run wrote there are removed. Free space on that disk (or raise the quota), then build again."
            ) from exc
        except BaseException:
            spool.discard()
            raise
        entry = Entry(
            size=HEADER_SIZE + size,
            digest=f"{DEFAULT_ALGORITHM}:{digest}",
            commit=commit,
            sealed=True,
            owner=(record.owner or None) if record is not None else None,
        )
        return Staged(path, location, storage, record, entry)

    def undo(self, why: str, changed: Iterable[str] = ()) -> None:
        """After a failed run: remove its private files and the folders it moved into place (an old output moved
        aside for one goes back), and what it wrote at its outputs' paths without asking them; drop the markers.

        Args:
            why: what happened, for the log (``its run failed``).
            changed: outputs of a rerun that changed at their paths although their path was not asked for.
        """
        self._stop_heartbeat()
        self._note_taken()
        moves: list[tuple[str, str | None]] = []
        for path, handed in self.handed.items():
            if handed.placed and not self._taken_over(path):
                moves.append((path, handed.backup))
        moves.extend((path, None) for path in changed if path not in self.handed and not self._taken_over(path))
        # An output written in place and still being written (a first run too: it would count as complete).
        moves.extend((path, None) for path in self._unfinished if path in self._outputs and (path, None) not in moves)
        try:
            self._remove_private(why)
            commit_marker.undo_direct(moves, self._label, why)
        except Exception:  # noqa: BLE001 - the run's own error is what the caller raises; the marker stays
            logger.exception("%s: %s, and undoing what it wrote at its outputs' paths failed", self._label, why)
            self.release()
            return  # the marker keeps the task incomplete; a later check on this host undoes it again
        self._clear_markers()
        self.release()

    def _remove_private(self, why: str) -> None:
        """Remove each private file (or folder) the run wrote and did not move into place, and the files it wrote
        beside them under derived names (``_companions``), logged with the output."""
        for location, final, storage in self._companions():
            commit_marker.remove_output(storage, location)
            logger.warning("%s: %s; removed %r, what it wrote for %r", self._label, why, location, final)
        for path, handed in self.handed.items():
            if handed.placed:
                continue
            storage = storage_for(handed.given)
            if _remote_folder(storage, handed.given):  # objects under the private name (refused: object storage)
                storage.file_system.rm(handed.given, recursive=True)  # type: ignore[attr-defined]
            elif commit_marker.exists_at(storage, handed.given):
                commit_marker.remove_output(storage, handed.given)
            else:
                continue
            logger.warning(
                "%s: %s; removed %r, what it wrote for its output %r (the output's path was not touched)",
                self._label,
                why,
                handed.given,
                path,
            )

    def _note_taken(self) -> None:
        """Before an undo: a marker of this run that another process replaced since the last beat, or a commit of
        its manifest by another run since this run began, makes the files at those paths another run's (they are
        left to it). A run on another host that took this one over (paused, or its beats starved by the GIL, for
        the lease) commits and removes its marker: the undo would have deleted its committed output, or put an
        old output back over it (attacker at11 F6). A marker merely gone with no commit since is undone as this
        run's (a first run's file left without a manifest would count as complete)."""
        for record in self._marked.values():
            if record.manifest in self._taken:
                continue
            try:
                current = self._read(storage_for(record.manifest), record)
                committed = self._committed_by_another(record)
            except Exception:  # noqa: BLE001 - unreadable now: undone as this run's, as before
                continue
            if committed or (current is not None and not commit_marker.mine(current, self._running.commit_id)):
                self._taken.add(record.manifest)

    def _taken_over(self, path: str) -> bool:
        """Whether another process replaced the marker of the output at ``path``: the file is its to settle."""
        record = self._record(self._outputs[path]) if path in self._outputs else None
        return record is not None and record.manifest in self._taken

    def finish(self) -> None:
        """After the commit: delete the old outputs moved aside for folders and any private file left (a signed
        copy was committed instead), and remove the markers.

        When another process's commit won (``superseded``), this run's private files are removed, and so are the
        folders it moved into place (they do not match that commit), so the task runs again.
        """
        if self._running.superseded:
            self.undo("another process committed this task first")
            return
        self._stop_heartbeat()
        for path, handed in self.handed.items():
            if handed.backup is not None:
                commit_marker.remove_output(storage_for(path), handed.backup)
            if handed.sealed:  # the commit put a signed copy at the path: the run's own file is left
                storage_for(handed.given).remove(handed.given)
        for location in self._sealed_companions:
            storage_for(location).remove(location)
        lost = self._clear_markers()
        self._clear_left_writing_markers()
        self.release()
        if lost is not None:  # a marker another process put in this run's place since the commit began
            raise lost

    def _remove_own_writing(self, marker: str, content: bytes) -> None:
        """Remove this run's ``.kart-writing`` marker (or pointer) ``marker`` only while it still holds ``content``,
        the bytes this run wrote there, as ``commit_marker.clear_own`` does for a manifest's marker: one another
        run put in its place (a run of the task in another process, or with another kart, that writes the output
        by path now) stays, with a warning. The read and the removal are two steps (one request's window)."""
        storage = storage_for(marker)
        try:
            with storage.open_read(marker) as file:
                found = file.read()
        except (FileNotFoundError, IsADirectoryError):
            return
        if found == content:
            storage.remove(marker)
            return
        logger.warning(
            "%s: %r is no longer the marker this run put there (another run writing the output by path put its "
            "own): it is left to that run",
            self._label,
            marker,
        )

    def _clear_left_writing_markers(self) -> None:
        """Remove a killed writer's marker beside an output this run committed without its path (a dump), or
        committed with an integrity record (the marker's writer ran with records off: at9 J4).

        A marker of a writer of this host that is still alive (another process writing the output by path now:
        a dump takes no lock) is left to it, with a warning; only a dead writer's, or another host's (whose life
        this host cannot tell: such a marker is never refreshed), or an unreadable one is removed.
        """
        for path, target in self._outputs.items():
            if path not in self.handed or self._record(target) is not None:
                marker = commit_marker.writing_marker(path)
                storage = storage_for(marker)
                if storage.exists(marker):
                    if self._live_writer(storage, marker):
                        logger.warning(
                            "%s: %r names a live process of this host writing %r by path: it is left to it",
                            self._label,
                            marker,
                            path,
                        )
                        continue
                    storage.remove(marker)
                    logger.info("%s: removed %r, left by a killed run that wrote %r by path", self._label, marker, path)
                if getattr(target, "record", None) is None:
                    pointer = self._pointer(path)
                    storage_for(pointer).remove(pointer)

    @staticmethod
    def _live_writer(storage: Any, marker: str) -> bool:
        """Whether the ``.kart-writing`` marker at ``marker`` is another live process's of this host."""
        try:
            with storage.open_read(marker) as file:
                writing = commit_marker.Writing.from_bytes(file.read())
        except (FileNotFoundError, IsADirectoryError):
            return False
        return (
            writing is not None
            and writing.host == commit_marker.host_identity()
            and writing.pid != os.getpid()
            and writing.alive()
        )

    def _mark_writing(self, path: str, outside: bool) -> None:
        """Put the marker beside the record-less output at ``path`` before its path is handed out.

        ``complete()`` counts the task incomplete while it is there (``commit_marker.writing_marker``): the next
        run writes the output again, and its commit removes the marker. The marker names the private name handed
        out and the stamp of what is at ``path`` now (``commit_marker.Writing.took``, ``found``): a killed run
        left that file as it was (an old output, gokart's too), so ``kart verify --delete`` removes the marker and
        the private file and keeps it; a file there with another stamp was written in place and is removed. For an output ``outside`` the
        task's workspace, which ``kart verify`` does not walk, the same content goes first to a pointer beside
        the task's manifest (``commit_marker.writing_pointer``), removed after the marker.

        Raises:
            NoSpaceError: the marker did not fit; the path is not handed out and the run fails.
        """
        marker = commit_marker.writing_marker(path)
        full = path if "://" in path else os.path.abspath(path)
        took = self.handed[path].given
        took = took if "://" in took else os.path.abspath(took)
        found = stamp(path)
        pid = os.getpid()
        data = commit_marker.Writing(
            self._label,
            commit_marker.host_identity(),
            pid,
            time.time(),
            full,
            commit_marker.process_start(pid),
            took,
            None if found is None else tuple(found),
        ).to_bytes()
        pointer = self._pointer(path) if outside else ""
        for each in [pointer, marker] if outside else [marker]:
            content = self._signed_pointer(path, data) if each == pointer else data
            with NoSpaceError.raised_as(functools.partial(self._no_room_to_mark, path, each)):
                with storage_for(each).atomic_write(each) as file:
                    file.write(content)
            self._writing.append((each, content))

    def _no_room_to_mark(self, path: str, marker: str, exc: OSError) -> str:
        return (
            f"No space left to mark {self._label} as writing its output {path!r} by path: writing {marker!r} "
            f"failed ({exc}{no_space_note(marker)}). The run fails: the path was not handed out. Free space on "
            "that disk (or raise the quota), then build again."
        )

    def _signed_pointer(self, path: str, data: bytes) -> bytes:
        """The pointer's bytes: with signing on, signed under its full location
        (``commit_marker.pointer_signing_name``), so ``kart verify --delete`` acts on no pointer a kart holding
        the key did not write in that workspace (a pointer names a file outside the workspace, which a planted
        or copied one could aim anywhere; ``kart_core.inspect.writing``)."""
        if self._signer is None:
            return data
        mac = self._signer.begin(commit_marker.pointer_signing_name(self._pointer(path)), None)
        mac.update(data)
        return Signer.header(None, mac) + data

    def _pointer(self, path: str) -> str:
        """The pointer, beside the task's manifest, to the marker of its output ``path`` outside the workspace."""
        task = self._running.task  # typed object in the transaction; run_one gives it the running KartTask
        return commit_marker.writing_pointer(log_task_path(task, MANIFEST), path)  # type: ignore[arg-type]

    def _clear_markers(self) -> MarkerLostError | None:
        """Remove this run's markers: each only while it is still this run's (``commit_marker.clear_own``); one
        another process put in its place stays (attacker at9 J9). Returns the error naming it, if any."""
        lost: MarkerLostError | None = None
        for record in self._marked.values():
            if record.manifest not in self._taken:
                other = commit_marker.clear_own(storage_for(record.manifest), record, self._running.commit_id)
                if other is not None:
                    self._taken.add(record.manifest)
                    path = commit_marker.marker_path(record)
                    lost = self._lost(path, f"{_who(other)} replaced it with its own (it takes the task over)")
                    self._pulse.fail(lost)
        self._marked.clear()
        for marker, content in reversed(self._writing):  # each marker before its pointer
            self._remove_own_writing(marker, content)
        self._writing.clear()
        return lost


def private_name(path: str) -> str:
    """A fresh hidden name beside ``path`` that keeps its file name, extension included (``{dir}/.kart-took-
    {random}.{name}``; libraries choose a format by it): where a run writes an output whose path its code asked for,
    until its commit moves the file to ``path`` ("/" joins URLs too). Listings skip it and ``kart gc`` sweeps one a
    killed run left (``kart_core.storage.base.is_temporary``)."""
    directory, separator, name = path.rpartition("/")
    return f"{directory}{separator}{PRIVATE_PREFIX}{secrets.token_hex(6)}.{name}"


def _stamp_quietly(path: str) -> Any:
    """``stamp(path)``, None when missing or when the store cannot be asked."""
    try:
        return stamp(path)
    except OSError:
        return None


def _remote_folder(storage: Any, name: str) -> bool:
    """Whether objects lie under ``name`` as a prefix (a folder saved there) on object storage."""
    if "://" not in name or name.startswith("file://"):
        return False
    file_system = getattr(storage, "file_system", None)
    if file_system is None:
        return False
    file_system.invalidate_cache(name)
    return bool(file_system.find(name.rstrip("/") + "/", maxdepth=None, withdirs=False))


def _open_for_writing(path: str) -> bool:
    """Whether a descriptor of this process has the local file at ``path`` (or, for a folder, any file under it) open
    for writing (Linux ``/proc``; False elsewhere, for object storage and when it cannot be told)."""
    if "://" in path and not path.startswith("file://"):
        return False
    local = path.removeprefix("file://")
    try:
        status = os.stat(local)
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return False
    files = {(status.st_dev, status.st_ino)}
    if os.path.isdir(local):
        for folder, _, names in os.walk(local):
            for name in names:
                try:
                    each = os.stat(os.path.join(folder, name), follow_symlinks=False)
                except OSError:
                    continue
                files.add((each.st_dev, each.st_ino))
    for descriptor in descriptors:
        try:
            opened = os.stat(f"/proc/self/fd/{descriptor}")
            if (opened.st_dev, opened.st_ino) not in files:
                continue
            with open(f"/proc/self/fdinfo/{descriptor}") as info:
                flags = next((int(line.split()[1], 8) for line in info if line.startswith("flags:")), 0)
        except (OSError, ValueError):
            continue
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            return True
    return False


def _names_in(storage: Any, folder: str) -> list[str]:
    """The names of the entries of ``folder`` (local disk or object storage); [] when it is missing."""
    if "://" not in folder or folder.startswith("file://"):
        try:
            return os.listdir(folder.removeprefix("file://") or ".")
        except (FileNotFoundError, NotADirectoryError):
            return []
    file_system = getattr(storage, "file_system", None)
    if file_system is None:
        return []
    file_system.invalidate_cache(folder)
    try:
        return [str(each).rstrip("/").rpartition("/")[2] for each in file_system.ls(folder, detail=False)]
    except FileNotFoundError:
        return []


def _who(marker: commit_marker.Marker) -> str:
    """How a message names the writer of ``marker``."""
    return f"process {marker.pid} on {marker.host or 'an unknown host'}"


class _Sink:
    """Hands the chunks ``digest_stream`` reads (it calls ``update``) on to a file."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def update(self, data: bytes) -> None:
        self._file.write(data)
