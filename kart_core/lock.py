"""Locks that make a task's work happen once: across processes a file lock, or redis when configured;
within one process, turns (``hold_turn``) between its threads.

A lock is keyed by the canonical location of the task's first output (absolute, normalised, symlinks
resolved; for URLs the scheme lower-cased and ``.``/``..``/``//`` collapsed), so two processes that
spell one workspace differently (``./resources/`` and its absolute path) share one lock.

Why the turn table (``_turns``) is the module's, not an object a caller holds: the guarantee is that two
threads building one task run it once, and "one task" means one output location, whoever asks. The
threads that must exclude each other share nothing else: each may hold its own task object (luigi's
instance cache cleared in between, a notebook cell defining the class again, the workspace spelled
``./resources`` in one and absolute in the other), its own ``build()`` call, hook manager or Kedro
dataset, and the workspace is a string, not an object that could carry a lock manager (one found
through a map from workspaces to managers would be the same process-wide table elsewhere). A table on
the task object (its ``RunSlot``) or on a ``build()`` call would let two of them run one task at once.
The file lock does exclude threads too (it is owned by the open file), but costs system calls per run
(an open of the lock file, a lock, an unlock, a close) and needs a writable lock folder, so it stays
opt-in (``should_lock_run``) while turns are always taken. The table is a process's: it holds only keys in use, and a forked child starts empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import logging
import os
import posixpath
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kart_core.errors import LockSettingError, LockUnavailableError, TaskLockException, TurnDeadlockError

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # not POSIX: no file locks (redis only)
    fcntl = None  # type: ignore[assignment]


def canonical_location(location: str) -> str:
    """The canonical form of an output location, resolved afresh: every spelling of one file gives one string.

    Local paths (with or without ``file://``) become absolute and normalised with symlinks resolved;
    URLs keep their scheme (lower-cased) and bucket and get ``.``, ``..`` and repeated ``/`` collapsed.
    What a bare target's signature binds (``TargetOnKart.signing_name``): exact whenever it is asked.
    """
    scheme, separator, rest = location.partition("://")
    if separator and scheme.lower() not in ("file", "local"):
        normalised = posixpath.normpath("/" + rest).lstrip("/")
        return f"{scheme.lower()}://{normalised}"
    local = rest if separator else location
    return os.path.realpath(os.path.abspath(os.path.expanduser(local)))


def canonical_lock_key(location: str) -> str:
    """``canonical_location(location)``, resolved by the kernel where it can: the key of a task's lock and of
    its turn among this process's threads.

    Every task run asks for one, and ``os.path.realpath`` stats each part of the path in Python (~45 us
    idle, most of the key's cost). On Linux the output's folder is opened with ``O_PATH`` (no read
    permission needed) and its name read back from ``/proc/self/fd``: the kernel's own resolution, exact
    at that moment and about a third of realpath's cost. The file itself is checked with one ``lstat``
    (an output that is a symlink is resolved in full). Nothing is remembered between calls: a
    remembered resolution checked by the folder's (device, inode) outlived a folder replaced by a
    symlink to a new folder that got the old inode number back (ext4 and tmpfs reuse them), and two
    threads then ran one task at once. Elsewhere (no ``O_PATH`` or no ``/proc``), and for a folder not
    yet made, ``os.path.realpath``.
    """
    scheme, separator, rest = location.partition("://")
    if separator and scheme.lower() not in ("file", "local"):
        return canonical_location(location)
    absolute = os.path.abspath(os.path.expanduser(rest if separator else location))
    folder, name = os.path.split(absolute)
    try:
        if not name or stat.S_ISLNK(os.lstat(absolute).st_mode):
            return os.path.realpath(absolute)
    except OSError:  # missing (not yet written): realpath keeps the name as it is
        pass
    resolved = _kernel_resolved_folder(folder)
    return os.path.join(resolved, name) if resolved is not None else os.path.realpath(absolute)


def _kernel_resolved_folder(folder: str) -> str | None:
    """The kernel's absolute name of the folder ``folder`` reaches now, or None where it cannot say (not
    Linux, no ``/proc``, the folder missing or not a folder, a name outside this process's root)."""
    if _O_PATH is None:
        return None
    try:
        handle = os.open(folder, _O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        resolved = os.readlink(f"/proc/self/fd/{handle}")
    except OSError:
        return None
    finally:
        os.close(handle)
    # "(unreachable)/..." outside the root, "... (deleted)" for a folder removed since the open: ask realpath
    if not resolved.startswith("/") or resolved.endswith(" (deleted)"):
        return None
    return resolved


_O_PATH: int | None = getattr(os, "O_PATH", None)


@dataclasses.dataclass(frozen=True)
class LockParams:
    """Where and how to lock one output: the key is the output location, so same-named classes never collide.

    ``key`` and ``lock_directory`` are canonicalised on creation (see ``canonical_lock_key``).
    File locks live in ``lock_directory``; by default one folder per machine (``machine_lock_directory``),
    so processes started in different working directories, whose ``local_temporary_directory``
    (``./resources/tmp/``) differ, still share the lock of one output.
    ``redis_name``, when set, is the redis lock's name verbatim instead of ``kart-lock:{key}``: gokart's
    lock wrappers (``kart_core.conflict_prevention_lock``) name theirs as gokart does, so kart and
    gokart processes sharing one redis exclude each other. ``redis_timeout`` None: the redis lock
    never expires (gokart's ``make_task_lock_params`` default). ``owner`` names the task the lock is
    for (``Class[8-hex id]``) in errors; None: the key names it.
    """

    key: str
    redis_host: str | None = None
    redis_port: int | None = None
    redis_timeout: int | None = 180
    lock_directory: str | None = None
    redis_name: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        # A frozen dataclass: set the canonical forms through object.__setattr__.
        object.__setattr__(self, "key", canonical_lock_key(self.key))
        directory = self.lock_directory if self.lock_directory is not None else machine_lock_directory()
        object.__setattr__(self, "lock_directory", canonical_lock_key(directory))
        timeout = self.redis_timeout
        if self.uses_redis and timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            # redis refuses it only when the lock is taken, as "invalid expire time in set" (attacker at26 G6).
            raise LockSettingError(
                f"redis_timeout={timeout!r} for the redis lock of {self.owner or self.key}: it must be a positive "
                "number of seconds (how long the lock outlives its holder's last renewal), or None for a lock that "
                "never expires. Fix redis_timeout (a task parameter, or [TaskOnKart] in the luigi config)."
            )

    @property
    def uses_redis(self) -> bool:
        """Whether the lock lives in redis rather than on the local file system."""
        return self.redis_host is not None and self.redis_port is not None


LOCK_DIRECTORY_VARIABLE = "KART_LOCK_DIR"


def machine_lock_root() -> str:
    """The folder holding kart's file locks on this machine: ``$KART_LOCK_DIR``, else ``/tmp``.

    Not ``tempfile.gettempdir()``: TMPDIR differs between processes of one machine (Slurm and PBS set one
    per job, users set their own), and two processes with different TMPDIRs each took "the" lock of one
    output in their own folder, ran the task at once and committed a mix of both runs. ``/tmp`` is the
    one folder every process of a POSIX machine shares; set KART_LOCK_DIR where it is not (systemd's
    PrivateTmp) or where locks must be shared more widely. Without ``/tmp`` (not POSIX): the system
    temporary folder.

    Raises:
        LockSettingError: KART_LOCK_DIR is a relative path.
    """
    configured = os.path.expanduser(os.environ.get(LOCK_DIRECTORY_VARIABLE, ""))
    if configured:
        if not os.path.isabs(configured):
            # Relative to each process's working directory, it would give processes started in different
            # folders different locks for one output: the exclusion the variable exists for would be lost.
            raise LockSettingError(
                f"{LOCK_DIRECTORY_VARIABLE}={configured!r} is a relative path: processes started in different "
                f"folders would take different locks. Set it to an absolute path (e.g. /var/lock/kart)."
            )
        return configured
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()  # noqa: S108 - shared on purpose


def machine_lock_directory() -> str:
    """``{machine_lock_root()}/kart-locks``: where run locks live unless a LockParams names another folder."""
    return os.path.join(machine_lock_root(), "kart-locks")


def commit_lock_directory() -> str:
    """``{machine_lock_root()}/kart-commit-locks``: where the locks guarding manifest updates live."""
    return os.path.join(machine_lock_root(), "kart-commit-locks")


def location_lock_directory() -> str:
    """``{machine_lock_root()}/kart-location-locks``: where ``hold_location_locks`` keeps its lock files (apart from
    the run locks, so a data file's lock never shares a key with an output's run lock)."""
    return os.path.join(machine_lock_root(), "kart-location-locks")


@contextlib.contextmanager
def hold_location_locks(locations: Iterable[str], wait_seconds: float | None = None) -> Iterator[None]:
    """Hold this machine's lock of each data location in ``locations`` (a local path or a URL; spellings of one
    place share one lock, ``canonical_lock_key``) for the body, for an adapter whose writes to a location and
    reads of what it wrote must not interleave with another process's or thread's (KartRunner: a node's save
    and the state it records of what it saved).

    On 64-bit Linux (x86_64, aarch64) a location's lock is one byte of one file, ``locations.lock`` in
    ``location_lock_directory``, at an offset given by 62 bits of its key's md5: an open file description lock
    (``F_OFD_SETLK``), owned by the open file as an ``flock`` is, so it excludes the threads of one process too,
    and released when its holder dies. Why not a file per location: the folder would grow by a file for every
    output ever locked, and each new location would cost a file creation, the dearest system call on ext4 without
    a journal (it skips every inode freed in the last minutes). Two locations share a lock only if 62 bits of
    their keys' md5 agree (they then wait for each other; taken once per call, so never for itself). Elsewhere:
    one ``flock``-ed file per location, named by its key's md5.

    Taken in ascending order (of offset, or of key: two holders of overlapping sets cannot deadlock) and released
    together. Not re-entrant: a thread holding a location's lock that asks for it again waits for itself.

    Raises:
        TaskLockException: a lock is still held elsewhere after ``wait_seconds`` (None: wait as long as it takes).
        LockUnavailableError: the lock folder cannot be used, or its file system refuses byte-range locks; names it
            and what to do.
    """
    directory = location_lock_directory()
    keys = {canonical_lock_key(location) for location in locations}
    if not keys:
        yield
        return
    command = _OFD_SETLK
    if command is not None:
        by_offset = {_range_offset(key): key for key in keys}
        descriptor, status, shared = _open_location_lock_file(directory, _RANGES_FILE_NAME)
        with _ranges_locked(descriptor, status, shared, sorted(by_offset.items()), directory, command, wait_seconds):
            yield
        return
    with contextlib.ExitStack() as held:
        for key in sorted(keys):
            name = hashlib.md5(key.encode()).hexdigest() + ".lock"
            descriptor, status, shared = _open_location_lock_file(directory, name)
            held.enter_context(_flocked(descriptor, status, shared, key, wait_seconds))
        yield


_RANGES_FILE_NAME = "locations.lock"

# struct flock as the 64-bit Linux kernel reads it: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid (0 for an open file description lock), padded to 32 bytes.
_FLOCK = struct.Struct("@hhqqi4x")
_OFD_SETLK: int | None = (
    getattr(fcntl, "F_OFD_SETLK", None)
    if fcntl is not None and sys.maxsize > 2**32 and _FLOCK.size == 32 and os.uname().machine in ("x86_64", "aarch64")
    else None
)


def _range_offset(key: str) -> int:
    """The byte of ``locations.lock`` (or ``keys.lock``) that stands for ``key``: 62 bits of its md5 (below ``off_t``'s limit)."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big") >> 2


class _ranges_locked:  # noqa: N801 - used as a function: ``with _ranges_locked(...):``
    """Hold an exclusive open file description lock (``command``: ``F_OFD_SETLK``) on one byte of the open lock file
    ``descriptor`` (``status``: its ``fstat``; ``shared``: in one of the machine's shared folders, ``directory``)
    at each of ``offsets`` (``(offset, key)``, ascending) for the body, waiting up to ``wait_seconds`` for each
    (None: forever). On the way out every range is unlocked (before the close: a child forked meanwhile shares
    the open file, and the lock with it) and the descriptor closed, also when a lock is never taken.

    Raises:
        TaskLockException: (on entry) another holder still has a range after ``wait_seconds``.
        LockUnavailableError: (on entry) the file system refuses byte-range locks.
    """

    __slots__ = ("_command", "_descriptor", "_directory", "_offsets", "_shared", "_status", "_wait_seconds")

    def __init__(
        self,
        descriptor: int,
        status: os.stat_result,
        shared: bool,
        offsets: list[tuple[int, str]],
        directory: str,
        command: int,
        wait_seconds: float | None,
    ) -> None:
        self._descriptor, self._status, self._shared, self._offsets = descriptor, status, shared, offsets
        self._directory, self._command, self._wait_seconds = directory, command, wait_seconds

    def __enter__(self) -> None:
        descriptor = self._descriptor
        try:
            _share_lock_file(descriptor, self._status, self._shared)
            for offset, key in self._offsets:
                try:
                    taken = _wait_until(
                        functools.partial(_try_range_lock, descriptor, offset, self._command), self._wait_seconds
                    )
                except OSError as exc:  # EINVAL, ENOLCK: a file system without byte-range locks
                    raise _unusable_folder(self._directory, exc) from exc
                if not taken:
                    raise TaskLockException(f"Another process holds the lock of {key}")
        except BaseException:
            os.close(descriptor)
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            # l_len 0: to the end of the file, every range this open file holds
            fcntl.fcntl(self._descriptor, self._command, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))
        finally:
            os.close(self._descriptor)


def _try_range_lock(descriptor: int, offset: int, command: int) -> bool:
    """Take the exclusive lock of byte ``offset`` of ``descriptor``'s open file if free (``command``:
    ``F_OFD_SETLK``); whether it was taken.

    Raises:
        OSError: the file system refuses the lock (not EAGAIN/EACCES, which mean it is held).
    """
    try:
        fcntl.fcntl(descriptor, command, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class _ReadyFolders:
    """The location lock folders this process made ready (``_make_shared_directory``: made, and shared when they are
    the machine's), by the name it asked for (``location_lock_directory``), each with whether it is shared.

    Asked once per folder name and process, not per lock (resolving the three machine folders' names each time was
    most of a lock's cost: 36 of its 46 system calls). What stays fresh at every lock: the
    lock's key (``canonical_lock_key`` of the location) and the folder itself, which the kernel resolves when the
    lock file is opened by the asked name. A folder removed since (a temporary-file cleaner) is made ready again
    when opening a lock file in it finds it missing. A forked child shares its parent's file system: it keeps them.
    """

    shared: dict[str, bool] = {}  # noqa: RUF012 - the per-process memo itself (see above)


def _open_location_lock_file(directory: str, name: str) -> tuple[int, os.stat_result, bool]:
    """Open (creating it) the lock file ``name`` in the location lock folder ``directory`` (its name as asked, not
    resolved), making the folder ready first unless this process did (``_ReadyFolders``); the descriptor, its
    status and whether the folder is shared.

    Raises:
        LockUnavailableError: see ``_open_lock_file`` and ``_make_shared_directory``.
    """
    path = os.path.join(directory, name)
    shared = _ReadyFolders.shared.get(directory)
    if shared is not None:
        try:
            return (*_open_lock_file(directory, path), shared)
        except LockUnavailableError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise
            _ReadyFolders.shared.pop(directory, None)  # removed since: made ready again below
    shared = _make_shared_directory(canonical_lock_key(directory))
    opened = _open_lock_file(directory, path)
    _ReadyFolders.shared[directory] = shared
    return (*opened, shared)


@contextlib.contextmanager
def hold_lock(params: LockParams, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the lock of ``params.key`` for the body; wait for it up to ``wait_seconds`` (None: forever).

    Raises:
        TaskLockException: the lock is still held elsewhere after ``wait_seconds``, or redis is not installed.
        LockUnavailableError: (a ConnectionError) the redis server at ``redis_host``/``redis_port`` cannot
            be reached, or the file lock's folder cannot be used; names it and what to do.
    """
    holder = _redis_lock if params.uses_redis else _file_lock
    with holder(params, wait_seconds):
        yield


@contextlib.contextmanager
def _file_lock(params: LockParams, wait_seconds: float | None) -> Iterator[None]:
    """``hold_lock``'s lock on this machine, in ``params.lock_directory``: as ``hold_location_locks`` locks, one byte
    (62 bits of the key's md5) of one file, ``keys.lock``, on 64-bit Linux, so the folder does not grow by a file per
    key ever locked and a new key costs no file creation; elsewhere a ``flock``-ed file per key (its md5)."""
    directory = str(params.lock_directory)
    shared = _make_shared_directory(directory)
    command = _OFD_SETLK
    if command is not None:
        descriptor, status = _open_lock_file(directory, os.path.join(directory, _KEYS_FILE_NAME))
        offsets = [(_range_offset(params.key), params.key)]
        with _ranges_locked(descriptor, status, shared, offsets, directory, command, wait_seconds):
            yield
        return
    path = os.path.join(directory, hashlib.md5(params.key.encode()).hexdigest() + ".lock")
    descriptor, status = _open_lock_file(directory, path)
    with _flocked(descriptor, status, shared, params.key, wait_seconds):
        yield


_KEYS_FILE_NAME = "keys.lock"


class _flocked:  # noqa: N801 - used as a function: ``with _flocked(...):``
    """Hold an exclusive ``flock`` on the open lock file ``descriptor`` (``status``: its ``fstat``) for the body,
    waiting up to ``wait_seconds`` (None: forever); the descriptor is closed on the way out, also when the lock is
    never taken. ``shared``: the file is in one of the machine's shared folders.

    A class, not a ``contextlib.contextmanager``: a KartRunner node with persistent outputs takes one per location.

    Raises:
        TaskLockException: (on entry) another holder still has it after ``wait_seconds``.
    """

    __slots__ = ("_descriptor", "_key", "_shared", "_status", "_wait_seconds")

    def __init__(
        self, descriptor: int, status: os.stat_result, shared: bool, key: str, wait_seconds: float | None
    ) -> None:
        self._descriptor, self._status, self._shared = descriptor, status, shared
        self._key, self._wait_seconds = key, wait_seconds

    def __enter__(self) -> None:
        descriptor = self._descriptor
        try:
            _share_lock_file(descriptor, self._status, self._shared)
            if not _wait_until(lambda: _try_flock(descriptor), self._wait_seconds):
                raise TaskLockException(f"Another process holds the lock of {self._key}")
        except BaseException:
            os.close(descriptor)
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        finally:
            os.close(self._descriptor)


def _share_lock_file(descriptor: int, status: os.stat_result, shared: bool) -> None:
    """Make the open lock file ``descriptor`` (``status``: its ``fstat``) readable and writable by every user when it
    is in one of the machine's shared folders (``shared``), and keep it from looking abandoned."""
    # Every user of the machine locks through a shared folder's file: not the creator's umask (0644 let only its
    # first user open it again). Only a file this user owns, with no other name (a hard link planted by another
    # user would make the chmod reach the linked file), is made readable by all.
    if shared and stat.S_IMODE(status.st_mode) != 0o666 and status.st_nlink == 1:
        if status.st_uid == os.geteuid():
            with contextlib.suppress(OSError):
                os.fchmod(descriptor, 0o666)
    # A lock file is opened and locked, never written, so its times stay those of its making: temporary-file
    # cleaners (systemd-tmpfiles: 10 days in /tmp) would remove one that every process still uses, maybe while it
    # is held, and the next process would lock a new file of the same name. Its times are set to now when a day
    # old (by its users, at most once a day each; not through another name).
    if status.st_nlink == 1 and max(status.st_mtime, status.st_atime) < time.time() - _FRESH_SECONDS:
        with contextlib.suppress(OSError):
            os.utime(descriptor)


_FRESH_SECONDS = 86400.0


def _open_lock_file(directory: str, path: str) -> tuple[int, os.stat_result]:
    """Open (creating it) the lock file ``path`` for locking; its descriptor and its status (``fstat``).

    The machine's lock folders are writable by every user, so another user can put anything at a lock
    file's predictable name: the file is opened without following a symbolic link (which would let the
    chmod above, or the open itself, reach the link's target, e.g. a key file) and must be a plain file.

    Raises:
        LockUnavailableError: the folder is unusable, or ``path`` is a symbolic link or not a plain file
            (names it: remove it, or set ``KART_LOCK_DIR`` to a folder only trusted users can write).
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_a_lock_file(path, "a symbolic link") from exc
        raise _unusable_folder(directory, exc) from exc
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise _not_a_lock_file(path, "not a plain file")
    return descriptor, status


def _not_a_lock_file(path: str, what: str) -> LockUnavailableError:
    return LockUnavailableError(
        f"The lock file {path!r} is {what}, so kart does not use it: another user of this machine may have put it "
        f"there. Remove it, or set {LOCK_DIRECTORY_VARIABLE} to an absolute path of a folder that only the users "
        "who run kart can write."
    )


def _make_shared_directory(directory: str) -> bool:
    """Make ``directory`` if missing; whether it is one of the machine's shared lock folders.

    The machine's folders are made (or, when this user owns them, set) like ``/tmp``: writable by every
    user and sticky, so no user removes another's lock file; one made 0755 by an earlier kart is fixed.

    Raises:
        LockUnavailableError: the folder cannot be made or used (a file in its place, no permission).
    """
    names = [
        name
        for name in (machine_lock_directory(), commit_lock_directory(), location_lock_directory())
        if canonical_lock_key(name) == directory
    ]
    shared = bool(names)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        status = os.lstat(directory)
        # Never through a symbolic link put in the folder's place (the chmod would open up its target: the
        # folder arrives here with links resolved), and another user's folder is only its owner's to chmod.
        linked = any(os.path.islink(name) for name in names)
        if shared and not linked and stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid():
            if (status.st_mode & 0o1777) != 0o1777:
                os.chmod(directory, 0o1777)
    except OSError as exc:
        raise _unusable_folder(directory, exc) from exc
    return shared


def _unusable_folder(directory: str, exc: OSError) -> LockUnavailableError:
    return LockUnavailableError(
        f"Cannot take a file lock in {directory!r} ({type(exc).__name__}: {exc.strerror or exc}). Make that folder "
        f"writable by every user that runs kart here (chmod 1777, as /tmp), or set {LOCK_DIRECTORY_VARIABLE} to an "
        "absolute path of a folder they all can write."
    )


def _try_flock(fileno: int) -> bool:
    try:
        fcntl.flock(fileno, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _redis_client(params: LockParams) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise TaskLockException(
            "redis_host is set but redis is not installed: pip install 'kart-suite[redis]'"
        ) from exc
    # Only called when uses_redis is true, so host and port are set.
    return redis.Redis(host=str(params.redis_host), port=int(params.redis_port or 0))


@contextlib.contextmanager
def _redis_lock(params: LockParams, wait_seconds: float | None) -> Iterator[None]:
    client = _redis_client(params)
    name = params.redis_name if params.redis_name is not None else f"kart-lock:{params.key}"
    lock = client.lock(name, timeout=params.redis_timeout, thread_local=False)
    try:
        acquired = _wait_until(lambda: bool(lock.acquire(blocking=False)), wait_seconds)
    except Exception as exc:
        if isinstance(exc, (OSError, *redis_errors())):  # builtin ConnectionError is an OSError
            raise _unreachable(params, exc) from exc
        raise
    if not acquired:
        raise TaskLockException(
            f"Another process holds the redis lock of {params.key} ({params.redis_host}:{params.redis_port})"
        )
    stop = threading.Event()
    # A lock without expiry needs no renewals.
    keeper = threading.Thread(target=_keep_alive, args=(lock, params.redis_timeout, stop, params), daemon=True)
    if params.redis_timeout is not None:
        keeper.start()
    try:
        yield
    finally:
        stop.set()
        if keeper.is_alive():
            keeper.join()
        with contextlib.suppress(Exception):
            lock.release()


def redis_errors() -> tuple[type[BaseException], ...]:
    """redis-py's connection and timeout errors (not subclasses of the builtins in every version)."""
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _unreachable(params: LockParams, exc: BaseException) -> LockUnavailableError:
    who = params.owner if params.owner is not None else params.key
    return LockUnavailableError(
        f"Cannot take the redis lock of {who}: the redis server at redis_host={params.redis_host!r}, "
        f"redis_port={params.redis_port} cannot be reached ({type(exc).__name__}: {exc}). Start redis there, fix "
        "redis_host / redis_port (task parameters or [TaskOnKart] in the luigi config), or unset them to use a "
        "file lock (one machine only)."
    )


def _keep_alive(lock: Any, timeout: float, stop: threading.Event, params: LockParams) -> None:
    """Renew the lock's expiry while its holder runs, so a run longer than ``redis_timeout`` keeps it.

    If the holder process dies, renewals stop and the lock expires after ``redis_timeout`` seconds. A renewal that
    fails (the key expired after a pause longer than the timeout, was removed by a redis restart or ``FLUSHALL``,
    or redis cannot be reached) is warned once, naming the lock: another process may take it and run the task
    meanwhile (attacker at26 G3: it was swallowed). The run goes on: kart's commit still keeps one whole result.
    """
    warned = False
    while not stop.wait(max(0.2, timeout / 3)):
        try:
            lock.reacquire()
        except Exception as exc:  # noqa: BLE001 - a renewal's failure is the holder's to hear, not to die of
            if not warned:
                warned = True
                logger.warning(
                    "kart: the redis lock of %s (%s:%s) could not be renewed (%s: %s): it expired or was removed, "
                    "or redis is unreachable, so another process may take it and run the task too; the first "
                    "commit is kept and the other discarded. Raise redis_timeout above the longest pause of this "
                    "process, or keep redis up for the whole run.",
                    params.owner or params.key,
                    params.redis_host,
                    params.redis_port,
                    type(exc).__name__,
                    exc,
                )


class _Turn:
    """One key's turn: its lock, how many threads hold or wait for it, and the holder's thread ident (0: none)."""

    __slots__ = ("lock", "users", "holder")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.holder = 0


class _Turns:
    """Which keys threads of this process hold or wait for (``hold_turn``): one ``_Turn`` per key while in use.

    An entry lives only while a thread holds or waits for its key (counted), so the table never grows
    with the keys a long process has seen. A forked child starts with an empty table (``_after_fork``):
    the threads holding the parent's turns do not exist in it.
    """

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.entries: dict[str, _Turn] = {}

    def enter(self, key: str) -> _Turn:
        """The turn of ``key``, counted as in use until ``leave``."""
        with self.guard:
            turn = self.entries.get(key)
            if turn is None:
                turn = self.entries[key] = _Turn()
            turn.users += 1
            return turn

    def leave(self, key: str) -> None:
        """Count one user of ``key`` less; forget the key when none is left."""
        with self.guard:
            turn = self.entries[key]
            turn.users -= 1
            if not turn.users:
                del self.entries[key]


_turns = _Turns()


def _after_fork() -> None:
    global _turns
    _turns = _Turns()


os.register_at_fork(after_in_child=_after_fork)


class hold_turn:  # noqa: N801 - used as a function: ``with hold_turn(key) as waited:``
    """Hold this process's turn of ``key`` (a ``canonical_lock_key``) for the body: threads of one process
    that run one task take turns, as processes do through its file or redis lock (``hold_lock``).

    Not re-entrant (the caller keeps track of what its context holds). Yields whether it had to wait for
    another thread (which may have done the work meanwhile: look again). While it waits without a deadline, it
    checks that the holder is not itself waiting for this thread (``kart_core.thread_waits``): a task's ``run()``
    that joins a thread which asks for the same turn would wait forever, so that fails at once (a wait with
    ``wait_seconds`` ends anyway). ``owner``: gives the label of the task the turn is for (``Class[8-hex id]``),
    called only for an error message. A class, not a ``contextlib.contextmanager``: every task run enters one
    (a generator's context manager cost twice as much).

    Raises:
        TaskLockException: another thread of this process still holds it after ``wait_seconds``.
        TurnDeadlockError: (no ``wait_seconds``) the thread holding it waits (``Thread.join``, ``Future.result``,
            ...) for this one.
    """

    __slots__ = ("_key", "_owner", "_turn", "_turns", "_wait_seconds")

    def __init__(self, key: str, wait_seconds: float | None = None, owner: Callable[[], str] | None = None) -> None:
        self._key, self._wait_seconds, self._owner = key, wait_seconds, owner
        self._turns: _Turns | None = None
        self._turn: _Turn | None = None

    def __enter__(self) -> bool:
        key, wait_seconds = self._key, self._wait_seconds
        turns = self._turns = _turns  # the table entered is the one left, even if a fork replaced the module's
        turn = turns.enter(key)
        try:
            waited = not turn.lock.acquire(blocking=False)
            if waited and wait_seconds is not None:
                if not turn.lock.acquire(timeout=wait_seconds):
                    raise TaskLockException(f"Another thread of this process holds the turn of {key}")
            elif waited:
                _wait_for_turn(turn, key, self._owner)
        except BaseException:
            turns.leave(key)
            raise
        turn.holder = threading.get_ident()
        self._turn = turn
        return waited

    def __exit__(self, *_exc: object) -> None:
        turn, turns = self._turn, self._turns
        if turn is None or turns is None:
            return
        self._turn = None
        turn.holder = 0
        try:
            turn.lock.release()
        finally:
            turns.leave(self._key)


def _wait_for_turn(turn: _Turn, key: str, owner: Callable[[], str] | None) -> None:
    """Acquire ``turn.lock``, looking between short waits whether its holder waits for this thread.

    Raises:
        TurnDeadlockError: its holder waits for this thread (or is this thread).
    """
    from kart_core.thread_waits import waits_for  # only a contended wait needs it (and concurrent.futures)

    pause, me = 0.005, threading.get_ident()
    while not turn.lock.acquire(timeout=pause):
        holder = turn.holder
        how = "it holds the turn itself" if holder == me else waits_for(holder, me) if holder else None
        if how is not None:
            raise _deadlock(key, holder, how, owner)
        pause = min(pause * 2, 0.25)  # a long legitimate wait looks a few times a second


def _deadlock(key: str, holder: int, how: str, owner: Callable[[], str] | None) -> TurnDeadlockError:
    me, them = _thread_name(threading.get_ident()), _thread_name(holder)
    what = owner() if owner is not None else key
    return TurnDeadlockError(
        f"{what}: thread {me!r} was asked to build or run it while thread {them!r}, which runs it in this process "
        f"(holding its turn, {key}), waits for {me!r} to finish ({how}): each would wait for the other forever, so "
        "nothing was run. A task cannot be built inside its own run(), e.g. from a thread that run() starts and "
        "joins: build it (or the task that needs it) before or after, outside its run, or compute the value in run()."
    )


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident}"


def _wait_until(try_once: Callable[[], bool], wait_seconds: float | None, pause: float = 0.01) -> bool:
    """Call ``try_once`` until it succeeds or ``wait_seconds`` pass (None: forever); return whether it did."""
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    while not try_once():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(pause)
    return True
