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
from collections.abc import Callable

from kart_core.errors import LoadError, LoadOSError, TaskDefinitionError
from kart_core.manifest import Entry, OutputRecord

__all__ = ["Relay", "Relayed", "collect", "collect_checks", "make_folder", "new_folder", "remove", "sweep"]

logger = logging.getLogger(__name__)

_PREFIX = "kart-loads-"
_SUFFIX = ".json"
_CHECK = ".check"


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
    return Relayed(record, Entry(**document["entry"]), stamped, document.get("built") is True)


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
