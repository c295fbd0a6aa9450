"""Loads made in a child process of a task's run, sent back to the run so its manifest records them.

A run records which committed outputs it loaded (``kart_core.transaction.Transaction.note_load``): the
commit writes them into the task's manifest, and ``kart_core.lineage`` finds the task stale when one of
them is committed again with other content. A child process of the run (a ``multiprocessing`` pool, a
``ProcessPoolExecutor``, joblib) holds a copy of the run, or none: what it noted there was lost, so an
upstream rerun with new content left such a task fresh with its old value (attacker at15 F7).

Each run names a private folder in the system's temporary directory (``Relay.folder``), which the running
process makes when a child may get it (``make_folder``: before the process forks, or when the run's task or a
target is pickled for another process). A child's load writes one small JSON file there (its record, the entry
it read, an unrecorded output's stamp), and a pickle of each check its load asked for at the commit (a RawFile's
md5: ``kart_core.transaction.check_before_commit``); the running process reads them at its commit (``collect``,
``collect_checks``), before it moves or records anything, and removes the folder when the run ends (``remove``).
A child never makes the folder: one it finds missing belongs to a run that is over (a child still loading after
``run()`` returned), and the record is dropped with a warning instead of leaving a folder behind. The folders of
runs whose process died (killed before it removed them) are swept (``sweep``). The folder's name holds the
process id and 128 random bits, is created with mode 0700 and is read only while it is a folder (not a link) of
this user that no one else can write to, so another account can neither plant nor read records.

A child does not always do the work of the run it holds a copy of: a worker of a module-level pool is forked by the
first ``submit``, inside whichever run submits first, and runs the later tasks' jobs in that copied context (attacker
at20 K10); a worker of a pool made before the build holds no run at all. A task or target the job carries names its
run (``RunSlot`` pickles the relay, a target carries one); for the rest the child asks which runs of its parent
execute their ``run()`` now (``for_child``): a run notes that in its folder (``publish``, a small file ``run.info``)
while its ``run()`` executes, when the process may have such children (``kart_core.transaction``), and a child lists
the folders named with its parent's process id (``executing``). When several runs execute, each gets the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from multiprocessing import process as _mp
from typing import ClassVar

from kart_core.errors import LoadError, LoadOSError, TaskDefinitionError
from kart_core.manifest import Entry, OutputRecord

__all__ = [
    "Executing",
    "Relay",
    "Relayed",
    "Relays",
    "collect",
    "collect_checks",
    "executing",
    "for_child",
    "forked",
    "kart_worker",
    "make_folder",
    "new_folder",
    "parent_pids",
    "publish",
    "remove",
    "sweep",
    "unpublish",
]

logger = logging.getLogger(__name__)

_PREFIX = "kart-loads-"
_SUFFIX = ".json"
_CHECK = ".check"
_INFO = "run.info"  # in a run's folder while its run() executes (``publish``): neither a record nor a check


@dataclasses.dataclass(frozen=True)
class Relayed:
    """One load a child process sent: the output's record, the entry it read (``commit`` None: no integrity
    record vouched for it) and, for such an unrecorded output, its stamp (``kart_core.storage.stamp``)."""

    record: OutputRecord
    entry: Entry
    stamp: tuple[object, ...] | None
    built: bool = False  # a root of a build nested in the run, made in the child (``Input.built``)


@dataclasses.dataclass(frozen=True)
class Relay:
    """Where a child process of the run ``label`` (running in process ``pid``) sends the loads it makes.

    Picklable: a task sent to a spawned child carries its run's relay (``kart_core.task_memo.RunSlot``).
    """

    label: str
    pid: int
    folder: str
    error: str | None = None  # why the run could not make ``folder``: a load that would send there fails
    # Found in this process's copy of the run's context (it was forked while the run was in progress), not carried
    # by a pickled task or target: the warning of a dropped record says so.
    inherited: bool = False

    def note_load(self, record: OutputRecord, entry: Entry, built: bool = False) -> None:
        """Send the load of the committed output ``record`` as ``entry`` describes it to the run (``built``: the load
        of a root of a build nested in the run, made in this child: ``Input.built``).

        Raises:
            LoadOSError: the record cannot be written (the temporary directory is full or not writable, or
                the run's folder there is not this user's own): the load fails rather than go unrecorded.
        """
        self._send(record, entry, None, built)

    def note_unrecorded(self, record: OutputRecord, stamp: tuple[object, ...], digest: str) -> None:
        """Send the load of ``record``'s output, which no integrity record vouched for, with its ``stamp`` and
        content hash ``digest`` (``Transaction.note_unrecorded``).

        Raises:
            LoadOSError: as ``note_load``.
        """
        self._send(record, Entry(size=0, digest=digest, commit=None, sealed=False), stamp)

    def note_check(self, check: Callable[[], object]) -> None:
        """Send ``check`` (``kart_core.transaction.check_before_commit``: a RawFile's md5 check) to the run, which calls
        it at its commit: a file the child read that changed meanwhile fails the run as it would in the run's process.

        Raises:
            TaskDefinitionError: ``check`` cannot be pickled (a lambda, a local function): define it at module level.
            LoadOSError: as ``note_load``.
        """
        try:
            data = pickle.dumps(check)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TaskDefinitionError(
                f"{self.label}: a child process ({os.getpid()}) of the process running its run() ({self.pid}) asked "
                f"for a check at the run's commit ({check!r}) that cannot be sent to it ({type(exc).__name__}: {exc}). "
                "Make the check picklable (a module-level function, or functools.partial of one), or load in run()."
            ) from exc
        self._write(data, _CHECK, f"asked for a check at the run's commit ({check!r})")

    def _send(self, record: OutputRecord, entry: Entry, stamp: tuple[object, ...] | None, built: bool = False) -> None:
        document: dict[str, object] = {
            "record": dataclasses.asdict(record),
            "entry": dataclasses.asdict(entry),
            "stamp": list(stamp) if stamp is not None else None,
        }
        if built:
            document["built"] = True
        self._write(json.dumps(document).encode(), _SUFFIX, f"loaded {record.task}'s output {record.key!r}")

    def _write(self, data: bytes, suffix: str, what: str) -> None:
        """Write ``data`` into the run's folder as a file ending in ``suffix``; nothing when the folder is gone (the
        run is over: it removed it, and a child never makes it, so nothing is left behind in the temporary directory).

        Raises:
            LoadOSError: the run could not make the folder, or the file cannot be written there.
        """
        # Named by time first: the running process merges them in the order they were made.
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            if self.error is not None:
                raise OSError(f"the run could not make it: {self.error}")
            if not _present(self.folder):
                self._dropped(what)
                return
            hidden = os.path.join(self.folder, "." + name)
            descriptor = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(hidden, os.path.join(self.folder, name + suffix))  # read whole or not at all
        except FileNotFoundError:  # the run removed its folder meanwhile: it is over
            self._dropped(what)
        except OSError as exc:
            raise LoadOSError(
                f"{self.label}: a child process ({os.getpid()}) of the process running its run() ({self.pid}) "
                f"{what} but could not send that record to the run through "
                f"{self.folder!r} ({type(exc).__name__}: {exc}). Without it the task would not be found stale "
                "when that output changes, so the load fails. Free space in the temporary directory (TMPDIR) or "
                "make it writable, or load the inputs in run() itself and send the values to the child."
            ) from exc

    def _dropped(self, what: str) -> None:
        """Warn that a load sent after the run was over is not recorded. The process is named a child of the run's
        process only when it is one, and never said to be the run's: a target or task pickled during the run may be
        kept past it (in an output, a cache) and loaded by any later process (attacker at18 I9: a later, unrelated
        process that loaded a target an output held was called the run's child)."""
        if self.inherited:
            logger.warning(
                "%s: process %s, forked while that task's run was in progress (a worker of a process pool that run() "
                "used first), %s after that run was over, and found no other run of process %s executing: not "
                "recorded as any run's input. If a run() handed this process the work, it returned before the work "
                "was done: wait for it before run() returns.",
                self.label,
                os.getpid(),
                what,
                self.pid,
            )
            return
        where = (
            f"a child process ({os.getpid()}) of the process that ran it ({self.pid})"
            if os.getppid() == self.pid
            else f"process {os.getpid()} (not a child of the process that ran it, {self.pid})"
        )
        logger.warning(
            "%s: %s %s through a target or task pickled during that run, after the run was over (its run() had "
            "returned): not recorded as the run's input. A target kept past its run (in an output, a cache) belongs "
            "to no run; if run() started this process, wait for it before run() returns.",
            self.label,
            where,
            what,
        )


@dataclasses.dataclass(eq=False)
class Relays:
    """The runs of the parent process that a child's load, or a build nested in the child, is sent to (``for_child``):
    the one run the work is for, or each run that may have handed it the work when kart cannot tell which.

    An input recorded for a run that did not load it makes that task run once more than needed when the input
    changes; one recorded for none would leave the task that did load it served stale. So each candidate records it.

    Attributes:
        relays: one per run, oldest first (never empty).
        built: the manifests (full paths) of the roots of a build nested in this child (``note_built``): their loads
            are sent as built (``Input.built``).
    """

    relays: tuple[Relay, ...]
    built: set[str] = dataclasses.field(default_factory=set)
    ended: ClassVar[bool] = (
        False  # read as a run's (``kart_core.transaction.reader``): the parent's runs are in progress
    )

    @property
    def label(self) -> str:
        """The runs' tasks, as messages name them."""
        return ", ".join(relay.label for relay in self.relays)

    @property
    def pid(self) -> int:
        """The process running them."""
        return self.relays[0].pid

    def note_built(self, manifests: Iterable[str]) -> None:
        """Remember that a ``build()`` nested here built the tasks of ``manifests`` (full paths)."""
        self.built.update(manifests)

    def note_load(self, record: OutputRecord, entry: Entry, built: bool = False) -> None:
        """``Relay.note_load`` to each run (``built`` also when a build nested here built ``record``'s task).

        Raises:
            LoadOSError: as ``Relay.note_load``.
        """
        self._warn_shared(f"loaded {record.task}'s output {record.key!r}")
        for relay in self.relays:
            relay.note_load(record, entry, built or record.manifest in self.built)

    def note_unrecorded(self, record: OutputRecord, stamp: tuple[object, ...], digest: str) -> None:
        """``Relay.note_unrecorded`` to each run.

        Raises:
            LoadOSError: as ``Relay.note_load``.
        """
        self._warn_shared(f"loaded {record.task}'s output {record.key!r}")
        for relay in self.relays:
            relay.note_unrecorded(record, stamp, digest)

    def note_check(self, check: Callable[[], object]) -> None:
        """``Relay.note_check`` to each run.

        Raises:
            TaskDefinitionError, LoadOSError: as ``Relay.note_check``.
        """
        self._warn_shared(f"asked for a check at the run's commit ({check!r})")
        for relay in self.relays:
            relay.note_check(check)

    def _warn_shared(self, what: str) -> None:
        """Warn once per process and set of runs that the work counts for each of several runs."""
        if len(self.relays) < 2:
            return
        labels = tuple(relay.label for relay in self.relays)
        if labels in _Warned.runs:
            return
        _Warned.runs.add(labels)
        logger.warning(
            "%s: process %s (a worker of a process pool, or another child of process %s) %s outside any run of its "
            "own while the runs of %s were in progress in process %s. kart cannot tell which of them handed it the "
            "work, so the load counts as an input of each: each runs again when it changes (one may run once more "
            "than needed; none is served stale). To count it for one run only, send the job the task "
            "(pool.submit(fn, self), self.load() there) or the target self.input() hands out, or build with "
            "workers=1.",
            self.label,
            os.getpid(),
            self.pid,
            what,
            self.label,
            self.pid,
        )


class _Warned:
    """The sets of runs this process warned about (``Relays._warn_shared``): once each."""

    runs: ClassVar[set[tuple[str, ...]]] = set()


@dataclasses.dataclass(frozen=True)
class Executing:
    """A run of another process whose ``run()`` executes now (``publish``): where to send loads, the thread running
    it (``threading.get_ident()`` there) and when it began (``time.monotonic_ns()``, for the order)."""

    relay: Relay
    thread: int
    order: int


def publish(folder: str, label: str, thread: int) -> None:
    """Say in ``folder`` (the run's, made: ``make_folder``) that the run of ``label`` executes its ``run()`` in thread
    ``thread`` now, so a child process that finds no run in its own context can tell which runs of its parent may
    have handed it the work (``executing``). Nothing when it cannot be written (the child then finds no run: its
    load counts for none, as before this was published)."""
    data = json.dumps({"label": label, "thread": thread, "order": time.monotonic_ns()}).encode()
    hidden = os.path.join(folder, f".{_INFO}-{secrets.token_hex(4)}")
    with contextlib.suppress(OSError):
        descriptor = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(hidden, os.path.join(folder, _INFO))


def unpublish(folder: str) -> None:
    """Take back ``publish`` (the run's ``run()`` returned); nothing when it is not there."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(folder, _INFO))


def executing(pid: int) -> list[Executing]:
    """The runs of process ``pid`` (this user's) that ``publish`` says execute their ``run()`` now, oldest first:
    one listing of the temporary directory and a small read per such run."""
    parent = tempfile.gettempdir()
    prefix = f"{_PREFIX}{pid}-"
    try:
        with os.scandir(parent) as entries:
            names = [entry.name for entry in entries if entry.name.startswith(prefix)]
    except OSError:
        return []
    found = []
    for name in names:
        folder = os.path.join(parent, name)
        if _STALE_NAME.fullmatch(name) is None or not _own(folder):
            continue
        try:
            with open(os.path.join(folder, _INFO), encoding="utf-8") as file:
                document = json.load(file)
            found.append(
                Executing(Relay(str(document["label"]), pid, folder), int(document["thread"]), int(document["order"]))
            )
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not executing (no such file), or being replaced
    return sorted(found, key=lambda run: run.order)


class _Parent:
    """Which process this one may do a run's work for (``parent_pids``)."""

    # The process this one was forked from while runs were in progress there (``forked``); None otherwise.
    forked_from: int | None = None
    # A worker of kart's own process pool (``kart_worker``): its work is the tasks it is sent, no parent's run's.
    kart_worker = False


def forked(parent: int | None) -> None:
    """Note, in a process just forked, that ``parent`` (its parent) had runs in progress (None: it had none). A child
    of a worker of kart's pool (a pool a task's ``run()`` uses there) is no such worker itself (``kart_worker``)."""
    _Parent.forked_from = parent
    _Parent.kart_worker = False


def kart_worker() -> None:
    """Mark this process as a worker of kart's own process pool (``kart_core.process_pool.claim_slot``): a load it
    makes outside its tasks' runs is no run's of the building process (``parent_pids`` is empty)."""
    _Parent.kart_worker = True


def parent_pids() -> tuple[int, ...]:
    """The processes whose runs in progress this process may be doing work for: the one that forked it while it had
    runs in progress, and the one that started it as a ``multiprocessing`` process (any start method: a worker of a
    ``multiprocessing`` pool or a ``ProcessPoolExecutor``, also one made before the run); none in a worker of kart's
    own pool or a process started any other way."""
    if _Parent.kart_worker:
        return ()
    found = [] if _Parent.forked_from is None else [_Parent.forked_from]
    parent = _mp.parent_process()
    if parent is not None and parent.pid is not None and parent.pid not in found:
        found.append(parent.pid)
    return tuple(found)


def for_child(hint: Relay | None) -> Relays | None:
    """Where a load (or a build) made here, in a child process outside any run of its own, is sent: to the run it is
    for, among the runs of the parent process(es) (``parent_pids``) whose ``run()`` executes now (``executing``).

    ``hint``: the run this process found in its copy of the context (it was forked while that run was in progress).
    That run is the one while no other run of the parent executes; when it is over (a worker of a module-level pool,
    forked lazily during an earlier task's run, now doing a later task's work: attacker at20 K10) the executing runs
    are; when others execute beside it, it and they. Without a hint (a pool made before the run, spawn, forkserver),
    the executing runs. Runs nested in one thread (a build inside a run's ``run()``) count as the innermost one, also
    when the hint is an outer one of them. When none executes, the hint (whose relay drops the record with a warning:
    ``Relay._dropped``), else None.
    """
    pids = parent_pids()
    found = [run for pid in pids for run in executing(pid)] if pids else []
    runs = _innermost(found)
    folders = {run.relay.folder for run in runs}
    if hint is None:
        chosen = [run.relay for run in runs]
    elif hint.error is None and not _own(hint.folder):  # the hint's run is over: its folder is gone
        chosen = [run.relay for run in runs] or [hint]
    elif hint.folder not in folders and any(run.relay.folder == hint.folder for run in found):
        chosen = [
            run.relay for run in runs
        ]  # it executes a build nested in its run(): the innermost run hands out work
    else:
        chosen = [hint, *(run.relay for run in runs if run.relay.folder != hint.folder)]
    return Relays(tuple(chosen)) if chosen else None


def _innermost(runs: list[Executing]) -> list[Executing]:
    """``runs`` (oldest first), or only the newest when all execute in one thread of one process: each began inside the
    one before it (a build nested in a run's ``run()``), so only the innermost one's code can have handed out work."""
    if len(runs) > 1 and len({(run.relay.pid, run.thread) for run in runs}) == 1:
        return [runs[-1]]
    return runs


def new_folder() -> str:
    """A fresh, not yet created folder name for a run of this process's relay in the system's temporary directory."""
    return os.path.join(tempfile.gettempdir(), f"{_PREFIX}{os.getpid()}-{secrets.token_hex(16)}")


def make_folder(folder: str) -> None:
    """Create ``folder`` (mode 0700; the running process, before a child may send to it), first sweeping the relay
    folders that runs of dead processes left in that temporary directory (``sweep``), once per process and directory.

    Raises:
        OSError: it cannot be created, or a file, a link or another user's (or a shared) folder is there.
    """
    parent = os.path.dirname(folder)
    if _Swept.folder != parent:
        _Swept.folder = parent
        sweep(parent)
    _make_own(folder)


class _Swept:
    """The temporary directory this process last swept (``make_folder``)."""

    folder: str | None = None


def sweep(parent: str, now: float | None = None) -> list[str]:
    """Remove from ``parent`` the relay folders of this user that a run left behind and no one will remove: its
    process is gone (no process has the id in the name) and nothing was sent there for an hour (a process id of
    another pid namespace sharing the directory may look gone), or one of kart's earlier naming (no process id)
    untouched for a day. Returns the folders removed. What cannot be read or removed is left.
    """
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        found = _STALE_NAME.fullmatch(name)
        if found is None:
            continue
        folder = os.path.join(parent, name)
        pid = found.group(1)
        try:
            age = now - os.lstat(folder).st_mtime
        except OSError:
            continue
        stale = age > _DAY if pid is None else age > _HOUR and not _alive(int(pid))
        if stale and _own(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_STALE_NAME = re.compile(re.escape(_PREFIX) + r"(?:(\d+)-)?[0-9a-f]{32}")
_HOUR = 3600.0
_DAY = 86400.0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError): alive
        return True
    return True


def _present(folder: str) -> bool:
    """Whether ``folder`` is there (the run made it and has not removed it).

    Raises:
        PermissionError: something else is there: a file, a link, another user's or a shared folder.
    """
    try:
        os.lstat(folder)
    except FileNotFoundError:
        return False
    if not _own(folder):
        raise PermissionError(f"{folder!r} is not a private folder of this user")
    return True


def collect(folder: str) -> list[Relayed]:
    """The loads child processes sent to ``folder``, oldest first; none when it does not exist (most runs:
    one ``lstat``) or is not this user's private folder. A record that cannot be parsed is skipped."""
    if not _own(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(_SUFFIX):
            continue  # one being written: its child has not returned yet
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            found.append(_parsed(os.path.join(folder, name)))
    return found


def collect_checks(folder: str, label: str) -> list[Callable[[], object]]:
    """The checks child processes sent to ``folder`` (``Relay.note_check``), oldest first; none when it does not exist
    or is not this user's private folder.

    Raises:
        LoadError: a check there cannot be read back (``label`` names the run): the run fails rather than commit
            without it.
    """
    if not _own(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(_CHECK):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as file:
                check = pickle.load(file)  # noqa: S301 - this user's private folder (``_own``), written by its children
        except Exception as exc:  # noqa: BLE001 - any failure to read it back loses the check
            raise LoadError(
                f"{label}: a check that a child process of its run asked for at the commit could not be read back "
                f"from {path!r} ({type(exc).__name__}: {exc}); the run commits nothing. Build again."
            ) from exc
        if not callable(check):
            raise LoadError(f"{label}: {path!r} holds no check ({type(check).__name__}); the run commits nothing.")
        found.append(check)
    return found


def remove(folder: str) -> None:
    """Delete ``folder`` and what children sent there (at the end of the run); nothing when absent."""
    if _own(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _parsed(path: str) -> Relayed:
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    fields = document["record"]
    record = OutputRecord(**{**fields, "redis": tuple(fields["redis"])})
    stamp = document["stamp"]
    stamped = tuple(stamp) if isinstance(stamp, list) else None
    fields = document["entry"]
    # JSON has no tuples: the entry's stamp is one, as the manifest's reader gives it (an Entry stays hashable).
    if isinstance(fields.get("stamp"), list):
        fields["stamp"] = tuple(fields["stamp"])
    return Relayed(record, Entry(**fields), stamped, document.get("built") is True)


def _make_own(folder: str) -> None:
    """Create ``folder`` (mode 0700), or check that the one there is this user's private folder.

    Raises:
        PermissionError: a file, a link or another user's (or a shared) folder is there.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
        return
    if not _own(folder):
        raise PermissionError(f"{folder!r} is not a private folder of this user")


def _own(folder: str) -> bool:
    try:
        status = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(status.st_mode)
        and status.st_uid == os.getuid()
        and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )
