"""The commit-in-progress marker: no reader gets a manifest and outputs from two runs.

A commit that replaces a task's outputs (a rerun, a repair, a second writer after the first) cannot
move several files at once: it renames (locally) or copies (object storage) each staged output
over the old one. In between, the task holds new and old outputs side by side. So the committer,
holding the manifest's commit lock (``kart_core.manifest.OutputRecord.lock_params``) throughout:

1. puts a marker beside the manifest, ``log/manifest/{Class}_{unique_id}.committing`` (JSON: the
   commit id, host, process id, time);
2. writes the new manifest marked ``pending``;
3. moves each output, then the run logs;
4. writes the manifest again without the mark, and removes the marker.

Readers honour both, as the reader of a seqlock honours its counter:

- ``settled`` (for ``complete()``, which reads no manifest: one existence check when there is no
  marker): a marker whose committer still holds the lock is waited for; a marker left by a killed
  committer whose pending manifest it names makes the task incomplete, so it runs again and its
  commit replaces every output; a marker of a commit killed before step 2 or after step 4 changed
  nothing that matters and is removed.
- ``read_consistently`` (for loads): each output load reads the task's manifest anyway (for the
  size, hash and commit id it checks); ``note_manifest`` waits when it is pending. After the loads,
  each manifest is read again. If one task's outputs were read under two commit ids, or the
  manifest changed or is pending, the loads are made again once, then
  ``ConcurrentCommitError``. A pending manifest left by a killed committer is
  ``DamagedOutputError`` (kind "commit"), which a downstream's run repairs by running the task
  again (``kart_core.repair``). No request is added per load beyond that re-read per task.

A first commit (no manifest yet) needs neither: the task counts as complete only when all its
outputs exist, and they appear after the manifest is created.

Liveness is the lock: a file lock on one machine, redis when the task sets ``redis_host`` (the
same lock that serialises commits). A commit of another host without redis cannot be told live or
dead from here; it counts as live for ``FOREIGN_MARKER_SECONDS`` after its marker was written.

The same file also marks a run that writes its outputs straight to their paths (kind ``direct``,
``kart_core.direct_write``): put when the task's code first asks for an output's path, it names the
paths and where the old outputs were moved aside (relative to the task's workspace), and it stays
until the run has committed or undone its writes. Undoing it touches paths inside the workspace of
the reader only (``confined_moves``): a copy of the workspace undoes its own files, and a marker naming
a path elsewhere (put there by hand, or an older kart's absolute path after a move) never moves or
deletes it. It names its writer by host, process id and process start (so a reused process id is
not taken for the writer), and the writer rewrites it every third of ``DIRECT_LEASE_SECONDS`` while
it runs. ``settled`` is False while it is there: the writer is running, or it was killed and its
files may be partial. A marker of a writer known to be dead (this host, its process gone or another
process under its id) is resolved at once: the old outputs moved back, the other files at those
paths removed (logged), the marker removed. A marker of another host is resolved only by a run of the
task that holds the task's lock (``kart_core.direct_write``), once it has not been rewritten for
``DIRECT_LEASE_SECONDS`` (``stale``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from kart_core.errors import ConcurrentCommitError, DamagedOutputError, IntegrityError, TaskLockException
from kart_core.lock import canonical_lock_key, hold_lock
from kart_core.manifest import Manifest, OutputRecord, read_unverified
from kart_core.storage import Storage, storage_for
from kart_core.storage.base import protocol_of
from kart_core.workspace import MANIFEST, join_url

__all__ = [
    "DIRECT",
    "DIRECT_LEASE_SECONDS",
    "FOREIGN_MARKER_SECONDS",
    "LEASE_VARIABLE",
    "MARKER_SUFFIX",
    "Marker",
    "clear",
    "confined_moves",
    "marker_beside",
    "marker_path",
    "note_manifest",
    "put",
    "put_direct",
    "lease_seconds",
    "refresh",
    "undo_direct",
    "writer_alive",
    "read_consistently",
    "read_marker",
    "process_start",
    "settled",
    "stale",
    "undo_marked",
    "within_workspace",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

MARKER_SUFFIX = ".committing"
# The kind of a marker left by a run that writes outputs straight to their paths (kart_core.direct_write).
DIRECT = "direct"
# How long a marker of another host (no redis lock to ask) counts as a live commit: longer than any
# commit's renames or copies are expected to take.
FOREIGN_MARKER_SECONDS = 300.0
# A direct writer rewrites its marker every third of this while it runs; a marker of another host that
# has not been rewritten for this long (by that host's clock) is left by a writer that is gone, and a
# run holding the task's lock takes it over (kart_core.direct_write).
DIRECT_LEASE_SECONDS = 300.0
# The environment variable that sets the lease instead (seconds, > 0): for machines whose commits of
# large outputs take long, or tests that cannot wait five minutes for a takeover.
LEASE_VARIABLE = "KART_DIRECT_LEASE_SECONDS"
_POLL_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class Marker:
    """What a marker says: the commit in progress and who makes it.

    Attributes:
        commit: the commit id the committer writes into the manifest (a direct writer's run's commit id).
        host: the committer's host name.
        pid: the committer's process id.
        written: when the marker was written (seconds since the epoch).
        kind: "commit", or ``DIRECT`` for a run writing outputs straight to their paths.
        moves: (direct only) each output path the run's code asked for, with where its old output was
            moved aside (None: nothing was).
        started: (direct only) when the writer's process started (``process_start``: clock ticks after
            boot); None when unknown. A live process under ``pid`` that started at another time is not the writer.
    """

    commit: str
    host: str
    pid: int
    written: float
    kind: str = "commit"
    moves: tuple[tuple[str, str | None], ...] = ()
    started: int | None = None

    def to_bytes(self) -> bytes:
        """The JSON form."""
        document: dict[str, object] = {
            "commit": self.commit,
            "host": self.host,
            "pid": self.pid,
            "written": self.written,
        }
        if self.kind != "commit":
            document.update(kind=self.kind, moves=[list(move) for move in self.moves])
        if self.started is not None:
            document["started"] = self.started
        return json.dumps(document, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Marker | None:
        """Parse the JSON form; None when it is not a marker (half-written, or foreign)."""
        try:
            document = json.loads(data.decode("utf-8"))
            moves = tuple(
                (str(path), None if backup is None else str(backup)) for path, backup in document.get("moves", ())
            )
            started = document.get("started")
            return cls(
                str(document["commit"]),
                str(document["host"]),
                int(document["pid"]),
                float(document["written"]),
                str(document.get("kind", "commit")),
                moves,
                None if started is None else int(started),
            )
        except (ValueError, KeyError, TypeError):
            return None


def marker_path(record: OutputRecord) -> str:
    """The marker's full path: the manifest's with ``.committing`` for ``.json``."""
    return marker_beside(record.manifest)


def marker_beside(manifest: str) -> str:
    """The marker path of the manifest at ``manifest`` (a path or URL, or a workspace-relative name)."""
    return manifest.removesuffix(MANIFEST.extension) + MARKER_SUFFIX


def read_marker(storage: Storage, path: str) -> Marker | None:
    """The marker at ``path``; None when there is none. An unreadable one reads as a marker of no commit
    (a committer killed while writing it, which never wrote its manifest)."""
    try:
        with storage.open_read(path) as file:
            data = file.read()
    except FileNotFoundError:
        return None
    return Marker.from_bytes(data) or Marker("", "", 0, 0.0)


def put(storage: Storage, record: OutputRecord, commit: str) -> None:
    """Write the marker of ``commit`` (atomically) before the first output of a replacing commit moves.

    The caller holds ``record``'s commit lock until ``clear``.
    """
    marker = Marker(commit, socket.gethostname(), os.getpid(), time.time())
    with storage.atomic_write(marker_path(record)) as file:
        file.write(marker.to_bytes())


def put_direct(storage: Storage, record: OutputRecord, commit: str, moves: tuple[tuple[str, str | None], ...]) -> None:
    """Write (atomically) the marker of a run of ``commit`` that writes the outputs ``moves`` names straight to their paths.

    Written before any of those paths is handed to the task's code, and again when another one is;
    removed by ``clear`` once the run has committed or undone its writes (``kart_core.direct_write``).
    """
    # Paths in the task's workspace as workspace-relative: the process that undoes a killed writer's files
    # may run in another working directory, or on a copy of the workspace (which must undo its own files,
    # never the original's). Others (a bare target's path) as absolute paths or URLs.
    moves = tuple(
        (_recorded(record.workspace, path), None if backup is None else _recorded(record.workspace, backup))
        for path, backup in moves
    )
    marker = Marker(commit, socket.gethostname(), os.getpid(), time.time(), DIRECT, moves, process_start(os.getpid()))
    with storage.atomic_write(marker_path(record)) as file:
        file.write(marker.to_bytes())


def _recorded(workspace: str, path: str) -> str:
    """``path`` as a direct marker records it: workspace-relative inside ``workspace``; else a local path
    made absolute (against this process's working directory), a URL as it is."""
    inside = within_workspace(workspace, path)
    if inside is not None:
        return inside
    return path if "://" in path else os.path.abspath(path)


def within_workspace(workspace: str, path: str) -> str | None:
    """The ``/``-separated path of ``path`` relative to ``workspace`` when it lies inside it, else None.

    Local paths (or ``file://``) are compared absolute, their folders' symlinks resolved (the file itself
    is not followed); URLs by scheme and normalised path (``kart_core.lock.canonical_lock_key``).
    """
    root, full = canonical_lock_key(workspace), _canonical_file(path)
    if "://" in root or "://" in full:
        prefix = root.rstrip("/") + "/"
        return full[len(prefix) :] if full.startswith(prefix) and len(full) > len(prefix) else None
    relative = os.path.relpath(full, root)
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, "/")


def _canonical_file(path: str) -> str:
    if protocol_of(path):
        return canonical_lock_key(path)
    local = os.path.abspath(path.removeprefix("file://"))
    return os.path.join(canonical_lock_key(os.path.dirname(local)), os.path.basename(local))


def confined_moves(
    workspace: str, moves: tuple[tuple[str, str | None], ...]
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """A direct marker's ``moves`` as the paths to undo, each inside ``workspace``, and the recorded paths left alone.

    A workspace-relative path is joined to ``workspace`` (the reader's spelling of it); an absolute one (a
    marker of an older kart) is kept when it lies inside ``workspace``. One outside it (a marker copied
    with its workspace from another location, or planted) is never touched: undoing it would move or
    delete files of another workspace, or any file the marker names.
    """
    kept: list[tuple[str, str | None]] = []
    outside: list[str] = []
    for path, backup in moves:
        full = _placed(workspace, path)
        aside = None if backup is None else _placed(workspace, backup)
        if full is None or (backup is not None and aside is None):
            outside.append(path)
        else:
            kept.append((full, aside))
    return kept, outside


def _placed(workspace: str, recorded: str) -> str | None:
    full = recorded if "://" in recorded or os.path.isabs(recorded) else join_url(workspace, recorded)
    return full if within_workspace(workspace, full) is not None else None


def _undo_confined(workspace: str, marker: Marker, who: str, why: str) -> None:
    """``undo_direct`` of ``marker``'s moves inside ``workspace``; a warning for each path outside it."""
    moves, outside = confined_moves(workspace, marker.moves)
    for path in outside:
        logger.warning(
            "%s: the marker of a run that wrote its outputs straight to their paths names %r, outside the "
            "workspace %r (the marker was copied with the workspace from elsewhere, or put there by hand): "
            "left alone",
            who,
            path,
            workspace,
        )
    undo_direct(moves, who, why)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (``/proc/<pid>/stat``); None when unknown
    (no such process, or no ``/proc``: the process id alone then names the writer)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count the fields after its last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22, starttime
    except (IndexError, ValueError):
        return None


def lease_seconds() -> float:
    """How long a direct marker of another host counts as its writer's after it was last rewritten (seconds).

    ``$KART_DIRECT_LEASE_SECONDS`` when set, else ``DIRECT_LEASE_SECONDS`` (300). Read at each use, so a
    process that sets it later is heard. Every host that writes one task by path should use the same lease:
    a writer rewrites its marker every third of its own lease, a run elsewhere takes it over after its.

    Raises:
        ValueError: the variable is not a positive number (named in the message).
    """
    text = os.environ.get(LEASE_VARIABLE, "").strip()
    if not text:
        return DIRECT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"{LEASE_VARIABLE}={text!r}: the lease of a direct writer's marker must be a positive number of seconds"
        )
    return value


def stale(marker: Marker, now: float | None = None) -> bool:
    """Whether a direct marker of another host was last rewritten ``lease_seconds()`` ago or more
    (its writer is gone, or hung: a live writer rewrites it every third of that)."""
    return (time.time() if now is None else now) - marker.written >= lease_seconds()


def refresh(storage: Storage, record: OutputRecord, commit: str, moves: tuple[tuple[str, str | None], ...]) -> bool:
    """Rewrite this process's marker of ``commit`` beside ``record``'s manifest with the time now, keeping its kind.

    The heartbeat of a direct writer (``kart_core.direct_write``) until its commit has finished: before the
    commit the marker is its ``direct`` one (rewritten with ``moves``); during a replacing commit it is the
    commit's own (``put``), whose time tells another host that the commit is alive
    (``FOREIGN_MARKER_SECONDS``). A marker that is gone (the commit removed it) or is not this process's
    (another host took it over) is left as it is. The caller serialises this with the commit's ``put`` and
    ``clear`` (``Transaction.marker_guard``). Returns whether it was rewritten.
    """
    current = _read_marker(storage, record)
    if (
        current is None
        or current.commit != commit
        or current.pid != os.getpid()
        or current.host != socket.gethostname()
    ):
        return False
    if current.kind == DIRECT:
        put_direct(storage, record, commit, moves)
    else:
        put(storage, record, commit)
    return True


def undo_marked(storage: Storage, record: OutputRecord, marker: Marker, who: str, why: str) -> bool:
    """Under ``record``'s manifest lock, undo the writes of the direct marker ``marker`` and remove it,
    if it is still there unchanged (no writer rewrote it meanwhile). Returns whether it was."""
    with hold_lock(record.lock_params()):
        current = _read_marker(storage, record)
        if current != marker:
            return False
        _undo_confined(record.workspace, current, who, why)
        clear(storage, record)
    return True


def undo_direct(moves: tuple[tuple[str, str | None], ...] | list[tuple[str, str | None]], who: str, why: str) -> None:
    """Put back what a run that wrote outputs straight to their paths replaced: each old output moved aside
    returns to its path, any other file (or folder) there is removed; each step is logged with ``who`` and ``why``.
    """
    for path, backup in moves:
        storage = storage_for(path)
        if backup is not None and storage.exists(backup):
            _remove_output(storage, path)
            storage.commit(backup, path)
            logger.warning("%s: %s; its old output %r is back in place", who, why, path)
        elif _exists(storage, path):
            _remove_output(storage, path)
            logger.warning("%s: %s; removed %r, written straight to the output's path", who, why, path)


def _exists(storage: Storage, path: str) -> bool:
    return os.path.lexists(path) if "://" not in path else storage.exists(path)


def _remove_output(storage: Storage, path: str) -> None:
    """Remove a file, or a folder a task's code saved at an output path (local disk)."""
    if "://" not in path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        storage.remove(path)


def clear(storage: Storage, record: OutputRecord) -> None:
    """Remove the marker after the last output moved (still under the commit lock)."""
    storage.remove(marker_path(record))


def settled(record: OutputRecord) -> bool:
    """Whether no commit of ``record``'s task is half done: for ``complete()``.

    One existence check when there is no marker. A live commit is waited for (then True); a marker
    left by a killed commit that wrote its manifest makes it False (the task must run again; its commit
    removes the marker); a marker of a commit that never wrote its manifest is removed (True).
    """
    storage = storage_for(record.manifest)
    if not storage.exists(marker_path(record)):
        return True
    return _resolve(storage, record) is None


def _read_marker(storage: Storage, record: OutputRecord) -> Marker | None:
    return read_marker(storage, marker_path(record))


def _resolve(storage: Storage, record: OutputRecord) -> Marker | None:
    """Wait for a live commit; return the marker a killed commit left when it spoils the outputs, else None.

    Under the commit lock: a marker still there names a commit whose committer is gone. If the manifest
    holds that commit marked pending, some outputs may be new and some old: the marker is kept and
    returned. Otherwise the commit died before writing its manifest (no output moved) or after its
    final manifest (all moved), and the marker is removed.
    """
    params = record.lock_params()
    while True:
        marker = _read_marker(storage, record)
        if marker is None:
            return None
        if marker.kind == DIRECT:
            return _resolve_direct(storage, record, marker)
        if not params.uses_redis and marker.host not in ("", socket.gethostname()):
            # Another host's commit, and no shared lock to ask: live until FOREIGN_MARKER_SECONDS.
            if time.time() - marker.written < FOREIGN_MARKER_SECONDS:
                time.sleep(_POLL_SECONDS)
                continue
        try:
            with hold_lock(params, wait_seconds=0):
                marker = _read_marker(storage, record)
                if marker is None:
                    return None
                manifest = read_unverified(storage, record.manifest)
                if manifest is None or (manifest.pending and manifest.commit == marker.commit):
                    # A manifest removed by hand beside a marker: the outputs cannot be vouched for either.
                    return marker
                logger.info(
                    "%s: removing the marker of commit %s, which moved no output or finished all",
                    record.task,
                    marker.commit,
                )
                clear(storage, record)
                return None
        except TaskLockException:
            # A committer holds the lock: wait until it is done, then look again.
            with hold_lock(params):
                pass


def _resolve_direct(storage: Storage, record: OutputRecord, marker: Marker) -> Marker:
    """A run writing the outputs straight to their paths is running, or was killed: the outputs do not count.

    When its writer is known to be dead (this host, process gone), its writes are undone under the
    manifest's lock (old outputs moved back, partial files removed) and the marker removed; the marker
    is returned either way, so the ``complete()`` that found it says False (it checked the files before).
    """
    if writer_alive(marker):
        return marker
    with hold_lock(record.lock_params()):
        current = _read_marker(storage, record)
        if current is None or current.kind != DIRECT or writer_alive(current):
            return marker
        _undo_confined(
            record.workspace,
            current,
            record.task,
            f"the run that wrote its outputs straight to their paths (process {current.pid} on {current.host}) was killed",
        )
        clear(storage, record)
    return marker


def writer_alive(marker: Marker) -> bool:
    """Whether the direct writer of ``marker`` may still run: always for another host (nothing to ask here;
    a run holding the task's lock takes over a ``stale`` one, ``kart_core.direct_write``).

    Also what ``kart verify`` asks before it reports, or undoes, a direct writer's files as left by a kill.
    """
    if marker.host != socket.gethostname() or marker.pid == os.getpid():
        return True
    try:
        os.kill(marker.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive (its start is checked below)
        pass
    # The process id may have been reused since the writer died: its start time tells.
    started = process_start(marker.pid)
    return marker.started is None or started is None or started == marker.started


# --- loads -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Reads:
    """The manifests the loads of one ``read_consistently`` attempt saw."""

    commits: dict[str, str] = dataclasses.field(default_factory=dict)  # manifest path -> commit id seen
    moved: bool = False  # two commit ids seen for one manifest
    # Manifests last seen pending: their commit was waited for and not yet read settled. A waited-for
    # commit whose manifest is then read settled needs no second attempt: an earlier load of that
    # manifest's outputs shows as two commit ids, and other manifests are read again below.
    unsettled: set[str] = dataclasses.field(default_factory=set)

    def changed(self) -> bool:
        """Whether a commit happened while the loads ran (read each manifest again)."""
        if self.moved or self.unsettled:
            return True
        for path, commit in self.commits.items():
            current = read_unverified(storage_for(path), path)
            if current is None or current.commit != commit or current.pending:
                return True
        return False


_reads: contextvars.ContextVar[_Reads | None] = contextvars.ContextVar("kart_reads", default=None)


def note_manifest(record: OutputRecord, manifest: Manifest) -> bool:
    """Called by a load after it read ``record``'s manifest ``manifest``, before it reads the output.

    Returns:
        True when the load may go on; False when the manifest was pending (a commit in progress) and
        that commit has been waited for: the load reads the manifest again.

    Raises:
        DamagedOutputError: (kind "commit") a commit of that manifest was killed between its renames;
            the outputs may be from two runs. A downstream's run repairs it by running the task again.
    """
    reads = _reads.get()
    if not manifest.pending:
        if reads is not None:
            reads.unsettled.discard(record.manifest)
            if reads.commits.setdefault(record.manifest, manifest.commit) != manifest.commit:
                reads.moved = True  # two outputs of one task read under two commits
        return True
    storage = storage_for(record.manifest)
    if _killed(storage, record, manifest.commit):
        marker = read_marker(storage, marker_path(record))
        who = f" (process {marker.pid} on {marker.host})" if marker is not None and marker.host else ""
        raise DamagedOutputError(
            f"The outputs of {record.task} (unique id {record.unique_id}) may be from two runs: the commit "
            f"{manifest.commit}{who} was interrupted while it replaced them (its manifest {record.manifest!r} is "
            "still marked pending). Fix: build the task again with rerun=True, or `kart verify --delete`; a "
            "downstream task's run rebuilds it itself.",
            path=record.manifest,
            kind="commit",
            commit=manifest.commit,
            detail=f"commit {manifest.commit} was interrupted between its renames",
        )
    if reads is not None:
        reads.unsettled.add(record.manifest)  # settled when the load reads the manifest again
    return False


def _killed(storage: Storage, record: OutputRecord, commit: str) -> bool:
    """Whether the pending commit ``commit`` of ``record``'s manifest was killed; a live one is waited for (False)."""
    params = record.lock_params()
    while True:
        try:
            with hold_lock(params, wait_seconds=0):
                manifest = read_unverified(storage, record.manifest)
                if manifest is None or not manifest.pending or manifest.commit != commit:
                    return False  # finished, or replaced since
                marker = read_marker(storage, marker_path(record))
                foreign = (
                    marker is not None
                    and not params.uses_redis
                    and marker.host not in ("", socket.gethostname())
                    and time.time() - marker.written < FOREIGN_MARKER_SECONDS
                )
                if not foreign:
                    return True
        except TaskLockException:
            with hold_lock(params):  # a committer holds the lock: wait until it is done
                pass
            return False
        time.sleep(_POLL_SECONDS)  # another host's commit, no shared lock to ask: poll


def read_consistently(load: Callable[[], _T], what: str) -> _T:
    """Run ``load`` (loads of committed outputs) so that each task's outputs come from one commit.

    Inside another ``read_consistently`` the outer one checks. A load that fails on a size, hash or
    signature mismatch while a commit moved is made again too (it read the new file with the old manifest).

    Args:
        load: reads the outputs (``TargetOnKart.load`` of each).
        what: names what is loaded in the error (``the inputs of Class[8-hex id]``).

    Raises:
        ConcurrentCommitError: commits kept replacing the outputs during two attempts.
        Exception: what ``load`` raised otherwise.
    """
    if _reads.get() is not None:
        return load()
    for attempt in (1, 2):
        reads = _Reads()
        token = _reads.set(reads)
        try:
            try:
                value = load()
            except (DamagedOutputError, IntegrityError):
                if not reads.changed():
                    raise
                if attempt == 2:
                    raise ConcurrentCommitError(_concurrent_message(what)) from None
                continue
        finally:
            _reads.reset(token)
        if not reads.changed():
            return value
        logger.info("Loading %s again: a task's outputs were replaced by a commit while they were read", what)
    raise ConcurrentCommitError(_concurrent_message(what))


def _concurrent_message(what: str) -> str:
    return (
        f"Could not load {what} from one commit: each of two attempts saw a task's outputs being replaced by "
        "another process's commit (a rerun or a repair running at the same time). Load again when it has finished."
    )


@contextlib.contextmanager
def consistent_reads(what: str) -> Iterator[None]:
    """Check the loads of the body as ``read_consistently`` does, without a retry (for a generator's loads).

    Raises:
        ConcurrentCommitError: a task's outputs were replaced while the body read them.
    """
    if _reads.get() is not None:
        yield
        return
    reads = _Reads()
    token = _reads.set(reads)
    try:
        yield
    finally:
        _reads.reset(token)
    if reads.changed():
        raise ConcurrentCommitError(_concurrent_message(what))
