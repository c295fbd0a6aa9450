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
dead from here; it counts as live while its marker keeps changing, until it has stood unchanged for
``foreign_seconds()`` (``FOREIGN_MARKER_SECONDS``, or the lease when ``KART_DIRECT_LEASE_SECONDS`` is set) as
this process watched it, on this process's own clock (``Sightings``: the marker's own time is the other host's
clock, which may be behind or ahead by more than that; its committer rewrites it every third of the lease until
its last output moved: ``Transaction.commit``); the wait is logged once.

The same file also marks a run that writes its outputs straight to their paths (kind ``direct``,
``kart_core.direct_write``): put when the task's code first asks for an output's path, it names the
paths and where the old outputs were moved aside (relative to the task's workspace), and it stays
until the run has committed or undone its writes. It names its writer by host, process id and process start (so a reused process id is
not taken for the writer), and the writer rewrites it every third of ``DIRECT_LEASE_SECONDS`` while
it runs. ``settled`` is False while it is there: the writer is running, or it was killed and its
files may be partial. A marker of a writer known to be dead (this host, its process gone or another
process under its id) is resolved at once: the old outputs moved back, the other files at those
paths removed (logged), the marker removed. A marker of another host is resolved only by a run of the
task that holds the task's lock (``kart_core.direct_write``), once it has not been rewritten for
``DIRECT_LEASE_SECONDS`` (``stale``).

A marker is workspace metadata: anyone who can write the workspace can write one. So what it names is
resolved against the workspace being checked (a copy or a moved workspace undoes its own files, never
the original's) and must be the task's own outputs, and the places its old outputs were moved aside
kart's aside-names beside them (``confined_moves``; an older kart's absolute paths count only when they
lie there). With signing on (``KART_SIGNING_KEY``) markers are signed under their workspace-relative
name, and an unsigned or wrongly signed one is refused. A refused marker is damaged metadata: nothing it
names is moved or deleted, the task counts as incomplete, with a warning naming the marker, and the
task's next run replaces it: a replacing commit puts its own marker over it, a first commit (which puts none)
removes it once its outputs are in place (``clear_refused``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import time
from collections.abc import Callable, Collection
from typing import TypeVar

from kart_core import confine
from kart_core.errors import (
    ConcurrentCommitError,
    DamagedOutputError,
    IntegrityError,
    TaskLockException,
    UnsafeFolderError,
)
from kart_core.lock import hold_lock
from kart_core.manifest import Manifest, OutputRecord, read_unverified
from kart_core.signing import HEADER_SIZE, Signer, is_sealed, signer_from_config
from kart_core.storage import Storage, conditional, storage_for
from kart_core.storage.base import TEMPORARY_SUFFIX, protocol_of
from kart_core.storage.conditional import replace_if
from kart_core.storage.stamp import stamp
from kart_core.workspace import MANIFEST, join_url

__all__ = [
    "foreign_left",
    "DIRECT",
    "FencedMoves",
    "DIRECT_LEASE_SECONDS",
    "FOREIGN_MARKER_SECONDS",
    "LEASE_VARIABLE",
    "MARKER_SUFFIX",
    "Marker",
    "Pulse",
    "Sightings",
    "WRITING_SUFFIX",
    "Writing",
    "writing_marker",
    "writing_pointer",
    "clear",
    "exists_at",
    "remove_output",
    "clear_own",
    "clear_refused",
    "hand_over",
    "mine",
    "confined_moves",
    "foreign_seconds",
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
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

MARKER_SUFFIX = ".committing"
# The kind of a marker left by a run that writes outputs straight to their paths (kart_core.direct_write).
DIRECT = "direct"
# How long a marker of another host (no redis lock to ask) counts as a live commit after it was last
# rewritten (``foreign_seconds``: the lease instead when KART_DIRECT_LEASE_SECONDS is set). A committer
# rewrites its marker every third of the lease until its last output moved (``Transaction.commit``), so a
# commit longer than this is not taken for a killed one.
FOREIGN_MARKER_SECONDS = 300.0
# A direct writer rewrites its marker every third of this while it runs; a marker of another host that a
# waiting run has seen unchanged for this long (by the waiting run's clock) is left by a writer that is gone, and a
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
        refused: why the marker is not trusted (signing is on and it is unsigned or its signature is wrong);
            "" when it is. A refused marker is never acted upon: its task only counts as incomplete.
    """

    commit: str
    host: str
    pid: int
    written: float
    kind: str = "commit"
    moves: tuple[tuple[str, str | None], ...] = ()
    started: int | None = None
    refused: str = dataclasses.field(default="", compare=False)

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


# Beside an output that has no integrity record (outside its task's workspace: a bare make_target of an
# absolute path) while a run writes it by path (kart_core.direct_write): the task is incomplete while it is there.
WRITING_SUFFIX = ".kart-writing"


def writing_marker(path: str) -> str:
    """The marker of a by-path write of the record-less output at ``path``: ``{dir}/.{name}.kart-writing``.

    Written before ``run()`` gets the path, removed once the run committed or its undo removed what it
    wrote; a killed writer leaves it, so ``complete()`` finds the task incomplete and the next run
    writes the output again (there is no manifest beside such an output to hold a ``.committing`` marker).
    """
    directory, separator, name = path.rpartition("/")
    return f"{directory}{separator}.{name}{WRITING_SUFFIX}"


@dataclasses.dataclass(frozen=True)
class Writing:
    """What a ``.kart-writing`` marker (``writing_marker``) and its pointer in the workspace (``writing_pointer``) say.

    Attributes:
        task: the task's label ``Class[8-hex id]``.
        host: the writer's host name.
        pid: the writer's process id.
        time: when the marker was written (seconds since the epoch).
        path: the output's full path (absolute, or a URL) as the writer saw it.
        started: when the writer's process started (``process_start``); None when unknown (kart before 2026-12-01).
        took: the private name the run writes instead of ``path`` (``direct_write.private_name``), which its commit
            moves to ``path``; "" in a marker of kart before 2026-12-02, whose runs wrote ``path`` itself.
        found: with ``took``, the stamp of what was at ``path`` when the marker was written
            (``kart_core.storage.stamp``; None: nothing was). A killed writer's file at ``path`` with that stamp is
            not the run's (an old output, kept); one with another stamp was written there (by hand-built path, or
            by the commit's move just before the kill) and may be partial.
    """

    task: str
    host: str
    pid: int
    time: float
    path: str = ""
    started: int | None = None
    took: str = ""
    found: tuple[object, ...] | None = None

    def to_bytes(self) -> bytes:
        """The JSON form (written once, by the writer)."""
        document = dataclasses.asdict(self)
        if not self.took:
            del document["took"], document["found"]
        return json.dumps(document, sort_keys=True).encode("utf-8")

    def kept(self, now: Collection[object] | None) -> bool:
        """Whether ``now`` (the stamp of what is at ``path`` now) shows the file there untouched since the marker
        was written, so a killed run left it whole: always False for a marker without ``took``."""
        return bool(self.took) and (None if now is None else tuple(now)) == self.found

    @classmethod
    def from_bytes(cls, data: bytes) -> Writing | None:
        """Parse the JSON form; None when it is not one (half-written, or not kart's)."""
        try:
            document = json.loads(data.decode("utf-8"))
            started = document.get("started")
            found = document.get("found")
            return cls(
                str(document["task"]),
                str(document["host"]),
                int(document["pid"]),
                float(document["time"]),
                str(document.get("path", "")),
                None if started is None else int(started),
                str(document.get("took", "")),
                None if found is None else tuple(found),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def alive(self) -> bool:
        """Whether its writer may still run (``writer_alive``: always for another host)."""
        return writer_alive(Marker("", self.host, self.pid, self.time, DIRECT, (), self.started))


def writing_pointer(manifest: str, path: str) -> str:
    """Where a run notes, in its workspace, the output outside it whose ``.kart-writing`` marker it put.

    ``log/manifest/{Class}_{unique_id}.{12 hex of the path}.kart-writing`` beside the task's manifest (``manifest``:
    its path), holding the marker's own content: ``kart verify`` walks the workspace only, and finds a killed
    writer's marker outside it through this (``kart_core.inspect.writing``).
    """
    tag = hashlib.sha256(path.encode("utf-8")).hexdigest()[:12]
    return f"{manifest.removesuffix(MANIFEST.extension)}.{tag}{WRITING_SUFFIX}"


def pointer_signing_name(pointer: str) -> str:
    """The name a pointer (``writing_pointer``, a full path or URL) is signed under: its whole location, so a
    signed pointer copied into another workspace verified with the same key is refused there (attacker at12
    A1; it was signed under its workspace-relative name, the same in every workspace). A local path counts by
    its real path (the writer's and the verifier's working folders differ), a URL with its slashes collapsed.
    """
    protocol = protocol_of(pointer)
    if protocol in ("", "file", "local"):
        return "kart-pointer:" + os.path.realpath(pointer.removeprefix("file://"))
    scheme, _, rest = pointer.partition("://")
    return f"kart-pointer:{scheme}://{re.sub('/+', '/', rest)}"


def marker_beside(manifest: str) -> str:
    """The marker path of the manifest at ``manifest`` (a path or URL, or a workspace-relative name)."""
    return manifest.removesuffix(MANIFEST.extension) + MARKER_SUFFIX


def read_marker(storage: Storage, path: str, name: str = "", signer: Signer | None = None) -> Marker | None:
    """The marker at ``path``; None when there is none. An unreadable one reads as a marker of no commit
    (a committer killed while writing it, which never wrote its manifest).

    With ``signer`` (signing on), a marker that is not signed for ``name`` (its workspace-relative path,
    ``marker_beside(record.manifest_name)``) under the key comes back with ``refused`` set.
    """
    data = _read_bytes(storage, path)
    return None if data is None else _parse(data, name, signer)


def _read_bytes(storage: Storage, path: str) -> bytes | None:
    try:
        with storage.open_read(path) as file:
            return file.read()
    except FileNotFoundError:
        return None


def _parse(data: bytes, name: str, signer: Signer | None) -> Marker:
    refused = ""
    if signer is not None and signer.verify(data, name) is None:
        refused = "signing is on and it is unsigned or its signature is wrong (not written by a kart holding the key)"
    if is_sealed(data):
        data = data[HEADER_SIZE:]
    marker = Marker.from_bytes(data) or Marker("", "", 0, 0.0)
    return dataclasses.replace(marker, refused=refused) if refused else marker


def mine(marker: Marker, commit: str) -> bool:
    """Whether ``marker`` is this process's, of the run or commit ``commit`` (host, process id and commit id)."""
    return marker.commit == commit and marker.pid == os.getpid() and marker.host == host_identity()


def put(storage: Storage, record: OutputRecord, commit: str, signer: Signer | None = None) -> None:
    """Write the marker of ``commit`` (atomically) before the first output of a replacing commit moves.

    The caller holds ``record``'s commit lock until ``clear``. With ``signer`` the marker is signed.
    """
    _write(storage, record, Marker(commit, host_identity(), os.getpid(), time.time()), signer)


def put_direct(
    storage: Storage,
    record: OutputRecord,
    commit: str,
    moves: tuple[tuple[str, str | None], ...],
    signer: Signer | None = None,
) -> None:
    """Write (atomically) the marker of a run of ``commit`` that writes the outputs ``moves`` names straight to their paths.

    Written before any of those paths is handed to the task's code, and again when another one is;
    removed by ``clear`` once the run has committed or undone its writes (``kart_core.direct_write``).
    Each path (and where its old output was moved aside) is kept relative to ``record``'s workspace, as a
    manifest keeps its outputs, so a copied or moved workspace names its own files (``confined_moves``).
    With ``signer`` the marker is signed.
    """
    _write(storage, record, _direct(record, commit, moves), signer)


def _direct(record: OutputRecord, commit: str, moves: tuple[tuple[str, str | None], ...]) -> Marker:
    keys = tuple(
        (_relative(record.workspace, path), None if aside is None else _relative(record.workspace, aside))
        for path, aside in moves
    )
    return Marker(commit, host_identity(), os.getpid(), time.time(), DIRECT, keys, process_start(os.getpid()))


def _write(storage: Storage, record: OutputRecord, marker: Marker, signer: Signer | None) -> None:
    with storage.atomic_write(marker_path(record)) as file:
        file.write(_encode(record, marker, signer))


def _encode(record: OutputRecord, marker: Marker, signer: Signer | None) -> bytes:
    data = marker.to_bytes()
    if signer is not None:
        mac = signer.begin(marker_beside(record.manifest_name), None)
        mac.update(data)
        data = Signer.header(None, mac) + data
    return data


def _relative(workspace: str, path: str) -> str:
    """``path`` (as the writer sees it) relative to ``workspace``; absolute when it lies outside (then refused on reading)."""
    key = workspace_key(workspace, path, written_here=True)
    if key is not None:
        return key
    return path if "://" in path else os.path.abspath(path)


def workspace_key(workspace: str, recorded: str, written_here: bool = False) -> str | None:
    """``recorded`` (a path read from a marker) as a normalised path relative to ``workspace``; None when it is
    outside the workspace.

    A relative ``recorded`` is relative to the workspace (markers of kart from 2026-12-01). An absolute path or
    URL (markers of older kart, which kept the writer's absolute paths) counts only when it lies inside
    ``workspace`` as this process sees it. ``written_here``: ``recorded`` is a path of this process (a relative
    one is then relative to its working directory, as a target's path may be: ``./resources/…``).
    """
    if protocol_of(recorded):
        root = workspace.rstrip("/") + "/"
        if not recorded.startswith(root):
            return None
        relative = recorded[len(root) :]
    elif os.path.isabs(recorded) or written_here:
        if protocol_of(workspace):
            return None
        relative = os.path.relpath(os.path.abspath(recorded), os.path.abspath(workspace))
    else:
        relative = recorded
    normalized = posixpath.normpath(relative.replace(os.sep, "/"))
    if normalized in (".", "..") or normalized.startswith("../") or posixpath.isabs(normalized):
        return None
    return normalized


# kart's name for an old output moved aside beside its path (``kart_core.storage.base.temporary_name``).
_ASIDE = re.compile(rf"^\.(?P<name>.+)\.[0-9a-f]{{12}}{re.escape(TEMPORARY_SUFFIX)}$")


def confined_moves(
    workspace: str, marker: Marker, own: Collection[str]
) -> tuple[tuple[tuple[str, str | None], ...], str]:
    """The direct marker's ``(output, old output moved aside)`` pairs as workspace-relative keys, and "" when
    every one is the task's own: or () and why the marker is refused.

    Args:
        workspace: the workspace being checked (the one the marker lies in; a copy's own, not the writer's).
        marker: a ``DIRECT`` marker read from that workspace.
        own: the task's output keys (workspace-relative, as in its manifest).

    A path counts when it normalises inside ``workspace`` (``workspace_key``) to one of ``own``; the place an
    old output was moved aside, when it is kart's aside-name beside that output (``.{name}.{12 hex}.kart-tmp``).
    A marker naming anything else is damaged or forged metadata: none of its paths may be touched.
    """
    moves: list[tuple[str, str | None]] = []
    for written, backup in marker.moves:
        key = workspace_key(workspace, written)
        if key is None or key not in own:
            return (), f"it names {written!r}, which is not an output of the task in the workspace {workspace!r}"
        aside = None if backup is None else workspace_key(workspace, backup)
        if backup is not None and (aside is None or not _is_aside(aside, key)):
            return (
                (),
                f"it names {backup!r} as the old output of {key!r} moved aside, which is not kart's name beside it",
            )
        moves.append((key, aside))
    return tuple(moves), ""


def _is_aside(aside: str, key: str) -> bool:
    directory, _, name = aside.rpartition("/")
    match = _ASIDE.match(name)
    return match is not None and directory == key.rpartition("/")[0] and match["name"] == key.rpartition("/")[2]


class Sightings:
    """What one waiting loop has seen of markers: since when (by this process's own clock) each has stood unchanged,
    and which it told about.

    A marker's ``written`` time is the writer's wall clock: a host whose clock is behind (or a reader's that is
    ahead) by more than the lease made every fresh beat of a healthy writer look stale, and it was taken over at
    once (attacker at9 J5). So how long a marker has stood is never read from the marker: it is how long this
    observer has seen the very same marker (its whole content, ``written`` included, which its writer changes
    at each beat) at that path, counted on ``time.monotonic()`` (a step of this host's wall clock does not count
    either). A beating writer changes its marker every third of the lease, so it is never stale whatever its
    clock says; a dead one stops changing and is stale one lease after this observer first saw it as it is. The
    price: a run that first looks at a dead writer's marker of another host waits one lease before it takes it
    over (before, a marker whose own time was old enough was taken at once). A writer whose wall clock stands
    still writes the same content twice only if nothing else changed: kart's writers never do (each beat is a
    new ``time.time()``).

    Each waiting loop holds its own (``_resolve``, a load waiting for a commit, ``kart_core.direct_write``'s
    takeover): nothing outlives the wait, no registry is shared between loops.

    Args:
        clock: the observer's clock (seconds, only differences count); ``time.monotonic`` unless a test passes another.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: dict[str, tuple[Marker, float]] = {}  # path -> (the marker last seen there, since when)
        self._told: set[tuple[str, Marker]] = set()

    def age(self, path: str, marker: Marker) -> float:
        """Seconds (on this observer's clock) that ``marker`` has stood unchanged at ``path`` as this loop saw it:
        0.0 the first time it is seen, or when it differs from what this loop saw there last."""
        now = self._clock()
        seen = self._first.get(path)
        if seen is None or seen[0] != marker:
            self._first[path] = (marker, now)
            return 0.0
        return now - seen[1]

    def once(self, path: str, marker: Marker, message: str, *args: object) -> None:
        """Log ``message`` (a warning) once per marker in this wait."""
        if (path, marker) not in self._told:
            self._told.add((path, marker))
            logger.warning(message, *args)


def _refuse(record: OutputRecord, path: str, marker: Marker, why: str, seen: Sightings | None = None) -> None:
    (seen.once if seen is not None else _warn)(
        path,
        marker,
        "%s: ignoring the marker %r as damaged metadata: %s. Nothing it names is touched; the task counts as "
        "incomplete and runs again (its commit replaces the marker).",
        record.task,
        path,
        why,
    )


def _warn(path: str, marker: Marker, message: str, *args: object) -> None:
    logger.warning(message, *args)


@functools.cache
def host_identity() -> str:
    """The host as a marker names its writer's: the host name, and ``@`` with 12 hex of this boot's id and this
    process's pid namespace when ``/proc`` tells them (Linux).

    A process id means something only in its own pid namespace on one boot. Containers sharing a host name
    (Docker's host network, Kubernetes' hostNetwork) or two machines named alike saw each other's live writers
    as killed: ``kart verify --delete`` and ``complete()`` removed a file while it was written (attacker at9
    J3). With the namespace in the name, such a writer is another host's: alive until its lease runs out.
    Remembered per process (a process that moves to another pid namespace keeps the first answer).
    """
    parts = []
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            parts.append(boot.read().strip())
    except OSError:
        parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    name = socket.gethostname()
    if not any(parts):
        return name
    return f"{name}@{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:12]}"


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


def foreign_seconds() -> float:
    """How long a commit marker of another host counts as live after it was last rewritten (seconds).

    ``lease_seconds()`` when ``$KART_DIRECT_LEASE_SECONDS`` is set (every host writing one workspace should set
    the same: a committer rewrites its marker every third of its own lease), else ``FOREIGN_MARKER_SECONDS``.

    Raises:
        ValueError: the variable is set but not a positive number.
    """
    return lease_seconds() if os.environ.get(LEASE_VARIABLE, "").strip() else FOREIGN_MARKER_SECONDS


def foreign_left(storage: Storage, marker_path: str) -> bool:
    """Whether another host's commit marker at ``marker_path`` was last written more than three times
    ``foreign_seconds()`` ago, by the time the storage gives it (the file server's or the object store's clock)
    against this host's: a live committer rewrites it every third of the lease (``transaction``'s heartbeat).

    Used where a dead committer's marker would otherwise hide changes (``kart_core.lineage.interrupted``) or be
    waited for a full lease more (``_foreign_live``). A clock skew past that margin (fifteen minutes by default)
    could take a live commit for a dead one: its committer's fence then finds its marker taken and fails its run
    (``MarkerLostError``), so nothing torn is committed. False when the time cannot be read.
    """
    try:
        written = storage.modification_time(marker_path).timestamp()
        margin = 3 * foreign_seconds()
    except (OSError, ValueError):
        return False
    return time.time() - written > margin


class Pulse:
    """How the heartbeats of one run's markers fare (``kart_core.direct_write``'s and ``Transaction.commit``'s).

    A run may commit only while each of its markers is its own and fresh: another host takes a marker that was
    not rewritten for ``lease_seconds()`` for a dead writer's and takes the task over (undoes this run's files,
    runs it itself). A beat rewrites it every third of the lease, so one failed beat (a network blip) is
    survived, but a marker unwritten for two thirds of it (two beats in a row failed: a read-only folder, a
    credential that expired, a bucket gone) is one beat away from such a takeover; and a marker that another
    process removed or replaced is no longer this run's. Either way the first such failure is kept (``fail``)
    and ``check`` raises it, before the commit and before each of its moves: the run fails instead of
    committing over another writer.
    """

    def __init__(self) -> None:
        self._written: dict[str, float] = {}
        self.failure: Exception | None = None
        # Markers this run's own commit removed (``clear_own``): a beat that finds one gone is not alarmed. Any
        # other marker gone, or not this run's, fails the run, during the commit too (attacker at9 J9).
        self.cleared: set[str] = set()

    def wrote(self, path: str) -> None:
        """This process has just written (or rewritten) its marker at ``path``."""
        self._written[path] = _clock()

    def overdue(self, path: str) -> bool:
        """After a failed beat: whether the marker at ``path`` has gone unwritten for two thirds of the lease."""
        return _clock() - self._written.get(path, _clock()) >= 2 * lease_seconds() / 3

    def late(self) -> bool:
        """Whether a marker of this run has gone unwritten for a third of the lease or more (a beat is due or
        missed: the process was paused, or its main thread held the GIL so that the beat thread could not run)."""
        now = _clock()
        return any(now - written >= lease_seconds() / 3 for written in self._written.values())

    def fail(self, error: Exception) -> bool:
        """Keep ``error`` as the run's failure unless one is kept already; returns whether it was kept."""
        if self.failure is not None:
            return False
        self.failure = error
        logger.warning("%s", error)
        return True

    def check(self) -> None:
        """Raise the kept failure, if any.

        Raises:
            MarkerLostError, NoSpaceError: a marker of this run could not be kept its own and fresh.
        """
        if self.failure is not None:
            raise self.failure


def _clock() -> float:
    """Seconds on a clock that also runs while this machine is suspended (``CLOCK_BOOTTIME``; the monotonic clock
    elsewhere): a writer resumed after a suspend longer than the lease sees its beats as missed, as they were."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def stale(marker: Marker, path: str, seen: Sightings) -> bool:
    """Whether the direct marker ``marker`` of another host, read at ``path``, has stood unchanged for
    ``lease_seconds()`` or more as the waiting loop ``seen`` observed it (``Sightings.age``, this host's clock):
    its writer is gone, or hung (a live writer rewrites it every third of that). The marker's own time is not
    trusted: it is the writer's clock."""
    return seen.age(path, marker) >= lease_seconds()


def refresh(
    storage: Storage,
    record: OutputRecord,
    commit: str,
    moves: tuple[tuple[str, str | None], ...],
    signer: Signer | None = None,
    kind: str | None = None,
) -> bool:
    """Rewrite this process's marker of ``commit`` beside ``record``'s manifest with the time now, keeping its kind.

    The heartbeat of a direct writer (``kart_core.direct_write``) until its commit has finished: before the
    commit the marker is its ``direct`` one (rewritten with ``moves``); during a replacing commit it is the
    commit's own (``put``), whose change tells another host that the commit is alive. A marker that is gone
    (the commit removed it, or another process did) or is not this process's (another host took it over) is
    left as it is, and so is one that another process removed or replaced between this read and the write: the
    write is conditional on the marker still being the bytes read (``kart_core.storage.conditional.replace_if``:
    an atomic exchange on local disk, ``If-Match`` on S3; elsewhere a read-compare-write, whose window is one
    request). Before, a marker removed in between was silently re-created. The caller serialises this with the
    commit's ``put`` and ``clear`` (``Transaction.marker_guard``). With ``signer`` the marker is signed.
    ``kind``: rewrite only a marker of that kind (the commit's own heartbeat, ``Transaction.commit``, passes
    "commit": it knows no ``moves``). Returns whether it was rewritten.
    """
    path = marker_path(record)
    data = _read_bytes(storage, path)
    if data is None:
        return False
    current = _parse(data, marker_beside(record.manifest_name), signer)
    if current.refused or (kind is not None and current.kind != kind) or not mine(current, commit):
        return False
    if current.kind == DIRECT:
        fresh = _direct(record, commit, moves)
    else:
        fresh = Marker(commit, host_identity(), os.getpid(), time.time())
    return replace_if(storage, path, data, _encode(record, fresh, signer))


def hand_over(storage: Storage, record: OutputRecord, commit: str, signer: Signer | None = None) -> bool:
    """Replace this process's direct marker of ``commit`` with the marker of its replacing commit (what ``put``
    writes), only while it is still this process's (conditional, as ``refresh``). Returns whether it was.

    A direct writer's commit used to put its marker over whatever was there: a marker another host had put
    since (it took the task over) was overwritten, and removed with the commit's (attacker at9 J9).
    """
    path = marker_path(record)
    data = _read_bytes(storage, path)
    if data is None:
        return False
    current = _parse(data, marker_beside(record.manifest_name), signer)
    if current.refused or not mine(current, commit):
        return False
    fresh = Marker(commit, host_identity(), os.getpid(), time.time())
    return replace_if(storage, path, data, _encode(record, fresh, signer))


def clear_own(storage: Storage, record: OutputRecord, commit: str) -> Marker | None:
    """Remove ``record``'s marker if it is this process's of ``commit`` (``mine``); a marker of anyone else stays.

    Returns the other's marker found there (the caller fails: ``MarkerLostError`` naming its writer), or None
    (removed, or none there). The read and the removal are two steps: a marker put by another process in between
    is removed (one request's window; a writer that takes over waits the lease first).
    """
    path = marker_path(record)
    current = read_marker(storage, path)
    if current is None:
        return None
    if not mine(current, commit):
        return current
    storage.remove(path)
    return None


def undo_marked(
    storage: Storage,
    record: OutputRecord,
    marker: Marker,
    who: str,
    why: str,
    own: Collection[str] = (),
    signer: Signer | None = None,
) -> bool:
    """Under ``record``'s manifest lock, undo the writes of the direct marker ``marker`` and remove it,
    if it is still there unchanged (no writer rewrote it meanwhile). Returns whether it was.

    Only paths ``confined_moves`` allows (``own``: the task's output keys) are touched; a marker naming
    others, or refused by ``signer``, is removed with a warning and nothing it names is touched (the caller
    is the task's run, which writes the outputs again).
    """
    with hold_lock(record.lock_params()):
        current = _read_marker(storage, record, signer)
        if current != marker or current is None:
            return False
        moves, refused = confined_moves(record.workspace, current, own or {record.key})
        refused = current.refused or refused
        if refused:
            _refuse(record, marker_path(record), current, refused)
        else:
            undo_in_workspace(record.workspace, moves, who, why, record.task)
        clear(storage, record)
    return True


def _joined(workspace: str, moves: tuple[tuple[str, str | None], ...]) -> list[tuple[str, str | None]]:
    return [(join_url(workspace, key), None if aside is None else join_url(workspace, aside)) for key, aside in moves]


def undo_in_workspace(workspace: str, moves: tuple[tuple[str, str | None], ...], who: str, why: str, task: str) -> None:
    """``undo_direct`` for ``moves`` given as workspace-relative keys (``confined_moves``): on local disk through
    ``kart_core.confine`` (each folder opened from ``workspace`` without following a symlink, unless the link and
    the folder it leads to are this user's or root's; every removal and move made in the opened folder), so a
    folder that another user made a symlink, or swapped for one, gets nothing outside the workspace touched.

    Raises:
        UnsafeFolderError: an output's folder is another user's symlink (or leads to another user's folder):
            nothing was touched; the message names ``task``, the folder and what to do.
    """
    local = confine.local_path(workspace)
    if local is None:
        undo_direct(_joined(workspace, moves), who, why)
        return
    try:
        confine.undo_local(local, moves, who, why, shown=workspace)
    except confine.Refused as refused:
        unsafe = refused.unsafe
        doing = (
            f"{task}: kart does not undo the files of a killed run that wrote its outputs straight to their paths "
            f"(in the workspace {workspace!r})"
        )
        if unsafe is not None:
            raise UnsafeFolderError(unsafe.folder, unsafe.owner, unsafe.what, doing) from None
        # A file where a folder belongs: nothing of the run's can be under it.
        logger.warning("%s: nothing undone: %s", doing, refused)
    except FileNotFoundError:  # no workspace folder: nothing in it to undo
        pass


def undo_direct(moves: tuple[tuple[str, str | None], ...] | list[tuple[str, str | None]], who: str, why: str) -> None:
    """Put back what a run that wrote outputs straight to their paths replaced: each old output moved aside
    returns to its path, any other file (or folder) there is removed; each step is logged with ``who`` and ``why``.
    """
    for path, backup in moves:
        storage = storage_for(path)
        if backup is not None and storage.exists(backup):
            remove_output(storage, path)
            storage.commit(backup, path)
            logger.warning("%s: %s; its old output %r is back in place", who, why, path)
        elif backup is not None:
            # The old output was never moved aside, or another process put it back (a run on another host that
            # took this one over): what is at the path is not this run's to remove (attacker at11 F6).
            logger.warning("%s: %s; its old output %r was not aside: what is at that path is left", who, why, path)
        elif exists_at(storage, path):
            remove_output(storage, path)
            logger.warning("%s: %s; removed %r, written straight to the output's path", who, why, path)


def exists_at(storage: Storage, path: str) -> bool:
    """Whether a file, folder or symbolic link is at ``path`` (a link is not followed on local disk)."""
    return os.path.lexists(path) if "://" not in path else storage.exists(path)


def remove_output(storage: Storage, path: str) -> None:
    """Remove a file, or a folder a task's code saved at an output path (local disk; a link itself, not its target)."""
    if "://" not in path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        storage.remove(path)


class FencedMoves:
    """The moves of one replacing commit into the outputs of ``record``'s manifest, each made only while its marker
    is still the commit's, and rolled back (local disk) when it was not by the time the move was made.

    A committer paused (SIGSTOP, a suspended machine, a long GC) between its last look at its marker and a move is
    taken for a killed one by a run on another host once the marker has stood unchanged for the lease; that run
    commits over it. Resumed, the paused commit moved its file over the taker's output. Now each move reads the
    marker first (one small read; a marker gone or another's stops the commit before it moves anything), and on
    local disk the move swaps the staged file with the file at the path in one step (so the staged name keeps
    exactly what the move replaced), and the marker is read again after it: not the commit's any more, every move
    of this manifest so far is rolled back (the replaced file put back, or the moved one removed when nothing was
    there), each only while the path still holds the file this commit moved there. What is left: on object storage a pause between the read and the
    copy (one request) still lands the copy over a taker's commit; on local disk a pause between the second read
    and the end of the rollback. The commit's own heartbeat keeps the marker fresh meanwhile.

    Args:
        storage: the manifest's storage (the marker is beside it).
        record: one output's record of that manifest.
        commit: this commit's id (``mine``).
        lost: the error to raise for the marker found instead (None: removed).
    """

    def __init__(
        self, storage: Storage, record: OutputRecord, commit: str, lost: Callable[[Marker | None], Exception]
    ) -> None:
        self._storage = storage
        self._record = record
        self._commit = commit
        self._lost = lost
        self._done: list[tuple[str, str | None, list[object] | None]] = []  # (path, linked aside, stamp moved there)

    def check(self) -> None:
        """Raise ``lost``'s error unless the marker is still this commit's (one small read): before a move made
        outside ``move``, such as a side file's (``kart_core.transaction``), which is not rolled back.

        Raises:
            Exception: ``lost``'s error for the marker found instead (None: removed).
        """
        current = read_marker(self._storage, marker_path(self._record))
        if current is None or not mine(current, self._commit):
            raise self._lost(current)

    def move(self, storage: Storage, staged: str, path: str) -> str | None:
        """Move ``staged`` to ``path`` while the marker is this commit's; the object store's tag of the version put
        there when it answered one (``Storage.commit``: object storage), else None.

        Local disk: the staged file and the file at ``path`` are swapped in one step (``conditional.exchange``), so
        the staged name then holds exactly what the move replaced (a taker's commit, if it came first), kept for a
        rollback until ``finish``; without that call (or with nothing at ``path``) a plain rename.

        Raises:
            Exception: ``lost``'s error: the marker was not this commit's before the move (nothing moved), or after
                it (this manifest's moves are rolled back, where the paths still hold what this commit moved).
            OSError: the move itself failed.
        """
        self.check()
        if protocol_of(path) not in ("", "file", "local"):
            return storage.commit(staged, path)
        target, kept = path.removeprefix("file://"), staged.removeprefix("file://")
        swapped = conditional.exchange(kept, target)
        if swapped:
            self._done.append((target, kept, stamp(target)))
        else:  # nothing at the path (None: no swap here, nothing kept to roll back to)
            storage.commit(staged, path)
            self._done.append((target, None if swapped is False else "", stamp(target)))
        try:
            self.check()
        except Exception:
            self.rollback()
            raise
        return None

    def rollback(self) -> None:
        """Put back what was at each path this commit moved a file to, while the path still holds that file."""
        for target, aside, moved in reversed(self._done):
            if aside == "":
                continue
            if stamp(target) != moved:  # another writer's file since: it stays
                if aside is not None:
                    _unlink_quietly(aside)
                continue
            if aside is None:
                _unlink_quietly(target)
                logger.warning(
                    "%s: removed %r, moved there after the commit lost its marker", self._record.task, target
                )
            else:
                os.replace(aside, target)
                logger.warning(
                    "%s: put back what was at %r (the run that took the commit over), after the commit lost its marker",
                    self._record.task,
                    target,
                )
        self._done.clear()

    def finish(self) -> None:
        """After the last move of the manifest: remove the hard links kept for a rollback."""
        for _, aside, _ in self._done:
            if aside:
                _unlink_quietly(aside)
        self._done.clear()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def clear(storage: Storage, record: OutputRecord) -> None:
    """Remove the marker after the last output moved (still under the commit lock)."""
    storage.remove(marker_path(record))


def clear_refused(storage: Storage, record: OutputRecord, own: Collection[str], signer: Signer | None) -> bool:
    """After a first commit created ``record``'s manifest, remove a marker beside it that no live run holds.

    Such a commit puts no marker of its own (no outputs were there to replace), so without this the marker
    would outlive the task's successful run and make it incomplete again: a marker refused as damaged metadata
    (unsigned or wrongly signed with signing on; a direct marker naming a path that is not one of ``own``, the
    task's output keys in that manifest), or the direct marker of a killed run of this host that wrote the
    outputs by path (``writer_alive``), whose undo would now remove the outputs this commit put in place.
    Nothing the marker names is touched (an old output such a run moved aside stays, a ``.kart-tmp`` file
    ``kart gc`` sweeps): only the marker file goes, under the manifest's lock, with a warning naming it. Any
    other marker (a live writer's; a commit's, which ``settled`` resolves) stays. Called after the commit's
    claim on the manifest is released (a writer holding the lock may be waiting for that claim).
    Returns whether a marker was removed.
    """
    path = marker_path(record)
    if not storage.exists(path):
        return False
    with hold_lock(record.lock_params()):
        marker = _read_marker(storage, record, signer)
        if marker is None:
            return False
        why = marker.refused or (confined_moves(record.workspace, marker, own)[1] if marker.kind == DIRECT else "")
        if why:
            why = f"refused as damaged metadata: {why}"
        elif marker.kind == DIRECT and not writer_alive(marker):
            why = f"left by a killed run of process {marker.pid} on {marker.host} that wrote the outputs by path"
        else:
            return False
        clear(storage, record)
    logger.warning(
        "%s: removed the marker %r (%s): this run's commit replaces it. Nothing it names was touched.",
        record.task,
        path,
        why,
    )
    return True


def settled(
    record: OutputRecord,
    own: Callable[[], Collection[str]] | None = None,
    signer: Callable[[], Signer | None] = signer_from_config,
) -> bool:
    """Whether no commit of ``record``'s task is half done: for ``complete()``.

    One existence check when there is no marker. A live commit is waited for (then True); a marker
    left by a killed commit that wrote its manifest makes it False (the task must run again; its commit
    removes the marker); a marker of a commit that never wrote its manifest is removed (True). A marker
    of another host (no redis) is waited for up to ``FOREIGN_MARKER_SECONDS`` (``age``), logged once.
    A marker refused as damaged metadata (signing on and not signed; a direct marker naming a path that is
    not one of ``own``) is acted upon in no way: False, with a warning naming it.

    Args:
        record: one output's record (the marker lies beside its manifest).
        own: the task's output keys of that manifest (asked only when a direct marker is found);
            None: ``record.key`` alone.
        signer: the signer that markers must be signed by (asked only when a marker is found; None: signing off).
    """
    storage = storage_for(record.manifest)
    if not storage.exists(marker_path(record)):
        return True
    return _resolve(storage, record, own or (lambda: {record.key}), signer()) is None


def _read_marker(storage: Storage, record: OutputRecord, signer: Signer | None = None) -> Marker | None:
    return read_marker(storage, marker_path(record), marker_beside(record.manifest_name), signer)


def _resolve(
    storage: Storage, record: OutputRecord, own: Callable[[], Collection[str]], signer: Signer | None
) -> Marker | None:
    """Wait for a live commit; return the marker a killed commit left when it spoils the outputs, else None.

    Under the commit lock: a marker still there names a commit whose committer is gone. If the manifest
    holds that commit marked pending, some outputs may be new and some old: the marker is kept and
    returned. Otherwise the commit died before writing its manifest (no output moved) or after its
    final manifest (all moved), and the marker is removed. A refused marker is returned as it is.
    """
    params = record.lock_params()
    path = marker_path(record)
    seen = Sightings()
    while True:
        marker = _read_marker(storage, record, signer)
        if marker is None:
            return None
        if marker.refused:
            _refuse(record, path, marker, marker.refused)
            return marker
        if marker.kind == DIRECT:
            return _resolve_direct(storage, record, marker, own(), signer)
        if not params.uses_redis and _foreign_live(storage, path, marker, record, seen):
            time.sleep(_POLL_SECONDS)
            continue
        try:
            with hold_lock(params, wait_seconds=0):
                marker = _read_marker(storage, record, signer)
                if marker is None:
                    return None
                if marker.refused:
                    _refuse(record, path, marker, marker.refused)
                    return marker
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


def _foreign_live(storage: Storage, path: str, marker: Marker, record: OutputRecord, seen: Sightings) -> bool:
    """Whether ``marker`` is another host's commit that counts as live (no shared lock to ask): until this wait
    has seen it unchanged for ``foreign_seconds()`` (``seen.age``, this host's clock; a live committer rewrites
    its marker, which starts the count again), unless the storage's own time of its last write is older than three
    leases (``foreign_left``): a committer killed long ago, which the lineage walk judged so too, is not waited for
    (attacker at23 A3: a build waited two leases, ten minutes, for a marker left hours before)."""
    limit = foreign_seconds()
    if marker.host in ("", host_identity()) or seen.age(path, marker) >= limit:
        return False
    if foreign_left(storage, path):
        return False
    seen.once(
        path,
        dataclasses.replace(marker, written=0.0),  # told once per commit, however often its committer rewrites it
        "%s: waiting for the commit of process %d on %s (its marker %r); without a shared lock (redis_host) it "
        "counts as running while its marker keeps changing, until this process has seen it unchanged for %g s",
        record.task,
        marker.pid,
        marker.host,
        path,
        limit,
    )
    return True


def _resolve_direct(
    storage: Storage, record: OutputRecord, marker: Marker, own: Collection[str], signer: Signer | None
) -> Marker:
    """A run writing the outputs straight to their paths is running, or was killed: the outputs do not count.

    When its writer is known to be dead (this host, process gone), its writes are undone under the
    manifest's lock (old outputs moved back, partial files removed) and the marker removed; the marker
    is returned either way, so the ``complete()`` that found it says False (it checked the files before).
    Its paths are resolved against ``record``'s workspace (``confined_moves``): a marker naming any path
    that is not one of ``own`` is refused, and nothing is touched.
    """
    path = marker_path(record)
    moves, refused = confined_moves(record.workspace, marker, own)
    if refused:
        _refuse(record, path, marker, refused)
        return marker
    if writer_alive(marker):
        return marker
    with hold_lock(record.lock_params()):
        current = _read_marker(storage, record, signer)
        if current is None or current.refused or current.kind != DIRECT or writer_alive(current):
            return marker
        moves, refused = confined_moves(record.workspace, current, own)
        if refused:
            _refuse(record, path, current, refused)
            return marker
        undo_in_workspace(
            record.workspace,
            moves,
            record.task,
            f"the run that wrote its outputs straight to their paths (process {current.pid} on {current.host}) was killed",
            record.task,
        )
        clear(storage, record)
    return marker


def writer_alive(marker: Marker) -> bool:
    """Whether the direct writer of ``marker`` may still run: always for another host (nothing to ask here;
    a run holding the task's lock takes over a ``stale`` one, ``kart_core.direct_write``).

    Also what ``kart verify`` asks before it reports, or undoes, a direct writer's files as left by a kill.
    """
    if marker.host != host_identity() or marker.pid == os.getpid():
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
            # Its commit and pending state, read as the load read them: no inputs (a fan-in records 100,000).
            current = read_unverified(storage_for(path), path, inputs=False)
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
    seen = Sightings()
    while True:
        try:
            with hold_lock(params, wait_seconds=0):
                manifest = read_unverified(storage, record.manifest)
                if manifest is None or not manifest.pending or manifest.commit != commit:
                    return False  # finished, or replaced since
                path = marker_path(record)
                marker = read_marker(storage, path, marker_beside(record.manifest_name), signer_from_config())
                foreign = (
                    marker is not None
                    and not marker.refused
                    and not params.uses_redis
                    and _foreign_live(storage, path, marker, record, seen)
                )
                if not foreign:
                    return True
        except TaskLockException:
            with hold_lock(params):  # a committer holds the lock: wait until it is done
                pass
            return False
        time.sleep(_POLL_SECONDS)  # another host's commit, no shared lock to ask: poll


def read_consistently(load: Callable[[], _T], what: str, earlier: dict[str, str] | None = None) -> _T:
    """Run ``load`` (loads of committed outputs) so that each task's outputs come from one commit.

    Inside another ``read_consistently`` the outer one checks. A load that fails on a size, hash or
    signature mismatch while a commit moved is made again too (it read the new file with the old manifest).

    Args:
        load: reads the outputs (``TargetOnKart.load`` of each).
        what: names what is loaded in the error (``the inputs of Class[8-hex id]``).
        earlier: manifest path -> commit id of the earlier loads of one ``load_generator``, whose values
            were yielded and cannot be loaded again; this load's commits are added to it.

    Raises:
        ConcurrentCommitError: commits kept replacing the outputs during two attempts; or (``earlier``) an
            output of a task whose other output an earlier load read was loaded from a later commit.
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
            if earlier is not None:
                _add_commits(earlier, reads.commits, what)
            return value
        logger.info("Loading %s again: a task's outputs were replaced by a commit while they were read", what)
    raise ConcurrentCommitError(_concurrent_message(what))


def _add_commits(earlier: dict[str, str], commits: dict[str, str], what: str) -> None:
    """Add ``commits`` to ``earlier``; a manifest already there under another commit is an error (see below).

    Raises:
        ConcurrentCommitError: one task's outputs were loaded from two commits by one ``load_generator``.
    """
    for path, commit in commits.items():
        if earlier.setdefault(path, commit) != commit:
            raise ConcurrentCommitError(
                f"Could not load {what} from one commit: load_generator() had yielded an output of a task from "
                f"commit {earlier[path]}, and another process's commit ({commit}, a rerun or a repair) replaced "
                f"that task's outputs before the next one was loaded (manifest {path!r}); what was yielded cannot "
                "be loaded again. Build again when that commit has finished, or load that task's outputs with "
                "load(), which loads them again."
            )


def _concurrent_message(what: str) -> str:
    return (
        f"Could not load {what} from one commit: each of two attempts saw a task's outputs being replaced, by "
        "another process's commit (a rerun or a repair running at the same time) or by a program outside kart "
        "writing to them. Load again when that has finished; `kart verify` tells an outside write from a commit."
    )
