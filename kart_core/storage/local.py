"""Local disk storage: temporary file in the target directory, then ``os.replace``."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Any

from kart_core.integrity import Hasher, new_hasher
from kart_core.storage.base import FileEntry, is_temporary, spooled_write, temporary_name

_PREADV = getattr(os, "preadv", None)  # Linux and the BSDs; elsewhere a spool reads with os.pread
_READ_CHUNK = 1 << 16  # a manifest or a marker is read in one call, then one more to see the end
# exists() checks with the effective user and group ids, as stat() is judged (faccessat's AT_EACCESS), where supported.
_EFFECTIVE_IDS = os.access in os.supports_effective_ids


def local_path(path: str) -> str:
    """``path`` without a ``file://`` scheme: the operating system's path of a local file."""
    return path[len("file://") :] if path.startswith("file://") else path


_local = local_path


def rewrite_claimed(path: str, claimed: bytes, data: bytes) -> bool:
    """Write ``data`` over the local file ``path`` in place (the same inode: no file is created, none is freed) when
    it holds exactly ``claimed``, the bytes the caller's ``LocalStorage.claim_new`` wrote there; whether it did.

    For a first commit's manifest (``kart_core.transaction``): ``claimed`` names the commit's own id, so a file
    holding them is the one the caller created (a settle that replaced it meanwhile wrote other bytes: it stays).
    Only the caller, while its claim is held, writes such a file in place; every other writer replaces it.

    Raises:
        ValueError: ``data`` is not as long as ``claimed`` (a reader amid the write must find a whole document).
        OSError: the file could not be read or written (nothing at ``path`` is no error: False).
    """
    if len(data) != len(claimed):
        raise ValueError(f"rewrite_claimed writes {len(claimed)} bytes in place, not {len(data)}")
    try:
        descriptor = os.open(_local(path), os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        if os.pread(descriptor, len(claimed) + 1, 0) != claimed:
            return False
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(descriptor, view[offset:], offset)
        return True
    finally:
        os.close(descriptor)


class HeldClaim:
    """A manifest ``LocalStorage.claim_new`` created and holds: what its body is given (true, as ``claim_new``'s
    True), with ``rewrite`` to write over the claimed bytes through the claim's own descriptor."""

    __slots__ = ("_descriptor",)

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        """Forget the descriptor (``claim_new`` calls it before closing it: its number may then name another file)."""
        self._descriptor = None

    def __bool__(self) -> bool:
        return True

    def rewrite(self, claimed: bytes, data: bytes) -> bool:
        """``rewrite_claimed(path, claimed, data)`` through the claim's descriptor (open while the claim is held): one
        ``fstat`` and the ``pwrite`` where that opened the path, read it back and closed it again (four calls).

        The file written is the one the claim created, and ``claimed`` its bytes: only the claimer writes it in place
        (every other writer replaces it, and a replacement or removal unlinks it: ``st_nlink`` 0), so reading it
        back could find nothing else. A claimed file no longer at the path (replaced or removed while the claim was
        held) gives False with nothing written, as ``rewrite_claimed`` gives for other bytes or none there.

        Raises:
            ValueError: ``data`` is not as long as ``claimed``.
            OSError: the descriptor could not be examined or written.
        """
        if len(data) != len(claimed):
            raise ValueError(f"rewrite_claimed writes {len(claimed)} bytes in place, not {len(data)}")
        descriptor = self._descriptor
        if descriptor is None:  # the claim has ended: its file is no longer this call's to write in place
            return False
        if os.fstat(descriptor).st_nlink == 0:
            return False
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(descriptor, view[offset:], offset)
        return True

    def rewrite_at(self, places: Sequence[tuple[int, bytes]]) -> bool:
        """``rewrite(claimed, data)`` where ``data`` differs from the claimed bytes only at ``places`` ((offset, text)
        each, inside them): only those texts are written, so the caller needs no changed copy of the document (a
        fan-in's manifest of 100,000 inputs is 30 MB; ``kart_core.transaction``). False, nothing written, as there.

        Raises:
            OSError: the descriptor could not be examined or written.
        """
        descriptor = self._descriptor
        if descriptor is None or os.fstat(descriptor).st_nlink == 0:
            return False
        for at, text in places:
            view, offset = memoryview(text), 0
            while offset < len(text):
                offset += os.pwrite(descriptor, view[offset:], at + offset)
        return True


class LocalStorage:
    """Files on the local file system."""

    def exists(self, path: str) -> bool:
        """Whether a file is at ``path`` (following symlinks: a dangling one is no file), as ``os.path.exists``.

        One ``faccessat`` with the effective ids, as ``stat`` is checked: ``os.path.exists`` raises and catches
        an OSError for every missing path, and most paths asked are missing ones (a cached KartRunner node's
        complete() asks two markers per output, ``kart_core.commit_marker``): their check cost twice an
        existing file's. False for any error (a folder that cannot be searched, a path too long) as there.
        """
        try:
            return os.access(_local(path), os.F_OK, effective_ids=_EFFECTIVE_IDS)
        except ValueError:  # a NUL in the path: os.path.exists says False
            return False

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """Open ``path`` for binary reading."""
        with open(_local(path), "rb") as file:
            yield file

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path``, read with plain descriptor calls.

        A file object would also fstat, ioctl and seek it and wrap it twice: 25 µs of CPU against 13 µs
        for a 1.7 kB manifest, which every cached KartRunner node reads (kart_core.lineage).

        Raises:
            FileNotFoundError: nothing is at ``path``.
        """
        descriptor = os.open(_local(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            chunks = []
            while chunk := os.read(descriptor, _READ_CHUNK):
                chunks.append(chunk)
        finally:
            os.close(descriptor)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def atomic_write(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Write to a hidden temporary file beside ``path`` and rename it into place on success."""
        return spooled_write(self.spool(path))

    def spool(self, path: str, hashed: bool = False) -> LocalSpool:
        """A hidden temporary file beside ``path`` (same directory: the final rename stays atomic); with
        ``hashed``, one that hashes what is written to it (``LocalSpool.written``)."""
        return LocalSpool(_local(path), hashed)

    def commit(self, staged: str, path: str) -> None:
        """Rename the staged file over ``path`` (atomic on one file system)."""
        os.replace(_local(staged), _local(path))

    @contextlib.contextmanager
    def claim_new(self, path: str, data: bytes) -> Iterator[HeldClaim | bool]:
        """Create ``path`` exclusively (``O_EXCL``), ``flock`` it, write ``data`` and hold the lock for the body.

        Yields False when ``path`` exists, else a ``HeldClaim`` (true: its ``rewrite`` writes over ``data`` in place
        through the claim's descriptor while the body runs). The ``flock`` is taken before the data is written, so
        whoever read the data and calls ``wait_claim`` waits for the body; the kernel drops it when the file is
        closed or the process dies, so a killed claimer never blocks anyone.
        """
        import fcntl

        final = _local(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                descriptor = os.open(final, flags, 0o666)
            except FileNotFoundError:  # the directory is made only when missing (one syscall less per manifest)
                os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
                descriptor = os.open(final, flags, 0o666)
        except FileExistsError:
            yield False
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                # Plain writes on the descriptor: a file object would fstat, isatty and seek it first.
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
            except BaseException:
                # The file is this call's own (O_EXCL): a partial one (a full disk) must not stay as the
                # manifest. Removed while the claim is held, so a waiter then finds nothing or a whole file.
                with contextlib.suppress(OSError):
                    os.unlink(final)
                raise
            claim = HeldClaim(descriptor)
            try:
                yield claim
            finally:
                claim.release()
        finally:
            os.close(descriptor)  # drops the claim

    def wait_claim(self, path: str) -> None:
        """Wait while another open file holds ``claim_new``'s lock on ``path`` (a shared ``flock``)."""
        import fcntl

        try:
            descriptor = os.open(_local(path), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        finally:
            os.close(descriptor)  # closing drops the shared lock

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(_local(path))

    def modification_time(self, path: str) -> datetime:
        """When ``path`` was last written."""
        return datetime.fromtimestamp(os.path.getmtime(_local(path)))

    def list_dir(self, path: str) -> Iterator[str]:
        """Names of the entries directly under ``path``."""
        try:
            names = os.listdir(_local(path))
        except (FileNotFoundError, NotADirectoryError):
            return
        # Temporary files of writes in progress (or of killed writers) are not outputs.
        yield from (name for name in names if not is_temporary(name))

    def walk(self, root: str, include_temporary: bool = False) -> Iterator[FileEntry]:
        """Every file under the directory ``root`` with its size and mtime (temporary files only on request).

        Like ``os.walk`` (directories it cannot read are skipped, linked directories are not entered),
        with ``os.scandir`` and relative paths built as strings: 60,000 files in a fraction of the
        time ``os.walk`` plus ``os.path.relpath`` per file take (``kart runs`` on 10,000 runs).
        """
        stack = [(_local(root), "")]
        while stack:
            directory, prefix = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:  # unreadable or removed meanwhile: skipped, as os.walk does
                continue
            for item in entries:
                relative = prefix + item.name
                if _is_real_directory(item):
                    stack.append((item.path, relative + "/"))
                elif include_temporary or not is_temporary(relative):
                    entry = _entry(root, item, relative)
                    if entry is not None:
                        yield entry


class LocalSpool:
    """A ``.{name}.{random hex}.kart-tmp`` file beside the final path, open for reading and writing.

    ``file`` is buffered (``io.BufferedRandom``) over ``_SpoolFile``, which writes and reads at a
    position it keeps itself (``pwrite``/``preadv``: no ``lseek`` per ``tell`` or ``seek``). With
    ``hashed`` it hashes the bytes as they are written, so ``written`` can give the integrity
    record's size and digest without reading the file back.
    """

    def __init__(self, final: str, hashed: bool = False) -> None:
        # Opened exclusively with mode 0666, which os.open lessens by the umask: the mode a plain open()
        # gives (gokart's files), so another user of a shared workspace can read the output. The
        # directory is made only when missing: makedirs and mkstemp's name generator on every write
        # were a sixth of a trivial task's run.
        self.location = temporary_name(final)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.location, flags, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
            fd = os.open(self.location, flags, 0o666)
        self.final = final
        self._raw = _SpoolFile(fd, new_hasher() if hashed else None)
        self.file: IO[bytes] = io.BufferedRandom(self._raw, io.DEFAULT_BUFFER_SIZE)
        self._done = False

    def written(self) -> tuple[int, str] | None:
        """``(size in bytes, hex digest)`` of the file (``kart_core.integrity``'s default algorithm), hashed
        as it was written; None when it was not asked to hash (``hashed``) or the writer did what hashing
        in order cannot follow (wrote over or past bytes already written, truncated the file, took its
        descriptor): then the caller reads the file back. Flushes ``file`` first.
        """
        self.file.flush()
        return self._raw.written()

    @property
    def stamp(self) -> tuple[int, int] | None:
        """The file's ``file_stamp`` (inode, status-change time in ns) as the last ``written`` found it with the
        ``fstat`` it makes; None when it made none (not hashed, written out of order) or found another size.
        Nothing changes the file's status after that until it is moved (closing it does not): what a ``stat``
        of the staged file by its path would give, without the path's lookup (``Transaction`` stamps a first
        commit's claimed manifest with it)."""
        return self._raw.stamp

    def publish(self) -> None:
        """Rename into place."""
        self.file.close()
        os.replace(self.location, self.final)
        self._done = True

    def stage(self) -> str:
        """Keep the temporary file where it is; return its path."""
        self.file.close()
        self._done = True
        return self.location

    def discard(self) -> None:
        """Close and delete the temporary file (nothing after publish or stage)."""
        if self._done:
            return
        self._done = True
        try:
            # After a failed write (a full disk) the buffer still holds bytes: closing flushes them and
            # fails again; the file goes all the same.
            with contextlib.suppress(OSError):
                self.file.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.location)


class _SpoolFile(io.RawIOBase):
    """The unbuffered file under a spool: ``os.pwrite``/``os.preadv`` at a position kept here.

    ``io.FileIO`` would ask the kernel for its position (``lseek``) when the buffer above it is made,
    on ``seekable()``, on each ``tell()``/``seek()`` and after each flush; a small dump made 10 of its
    31 system calls so (strace, KartRunner first run). Here they are arithmetic. The file's size is
    kept too (only this object writes to the descriptor until ``fileno()`` hands it out).

    ``hasher``: fed each write that continues the bytes hashed so far, so ``written`` knows the digest
    of a file written front to back (every dump but those of formats that seek back to patch a header:
    a zip, an ``.npz``). Once ``fileno()`` is asked, the descriptor's own offset is the position again
    (code writing through it expects that of a file object) and hashing stops.
    """

    def __init__(self, fd: int, hasher: Hasher | None) -> None:
        super().__init__()
        self._fd = fd
        self._position = 0
        self._size = 0
        self._hasher = hasher
        self._hashed = 0  # the first bytes of the file, all fed to the hasher in order
        self._kernel: io.FileIO | None = None  # the descriptor's own file object, once fileno() was asked
        self.stamp: tuple[int, int] | None = None  # (inode, status-change ns) as the last ``written`` found them

    @property
    def mode(self) -> str:
        """As ``io.FileIO`` says of a file opened for reading and writing."""
        return "rb+"

    @property
    def name(self) -> int:
        """The descriptor, as ``io.FileIO`` names a file opened from one (``os.fdopen``); handed out as by
        ``fileno()`` (code may write through it, ``os.pwrite(file.name, ...)`` or ``/proc/self/fd/<name>``)."""
        return self.fileno()

    def readable(self) -> bool:
        """True."""
        return True

    def writable(self) -> bool:
        """True."""
        return True

    def seekable(self) -> bool:
        """True."""
        return True

    def fileno(self) -> int:
        """The descriptor; from now on its offset is the file's position, and the bytes are read back to hash them."""
        self._checkClosed()
        if self._kernel is None:
            self._hasher = None
            self._kernel = io.FileIO(self._fd, "r+", closefd=False)
            self._kernel.seek(self._position)
        return self._fd

    def write(self, data: Any) -> int:
        """Write ``data`` (any bytes-like object) at the position; return how many bytes were written."""
        self._checkClosed()
        if self._kernel is not None:
            return self._kernel.write(data)  # type: ignore[no-any-return]
        view = data if isinstance(data, bytes) else memoryview(data).cast("B")
        count = os.pwrite(self._fd, view, self._position)
        if self._hasher is not None:
            if self._position == self._hashed:
                self._hasher.update(view if count == len(view) else view[:count])
                self._hashed += count
            else:  # over or past the bytes hashed so far: the caller reads the file back
                self._hasher = None
        self._position += count
        self._size = max(self._size, self._position)
        return count

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` from the position; return how many bytes were read (0 at the end)."""
        self._checkClosed()
        if self._kernel is not None:
            return self._kernel.readinto(buffer)  # type: ignore[no-any-return]
        if _PREADV is not None:
            count = _PREADV(self._fd, [buffer], self._position)
        else:  # a platform without preadv (os.pread is POSIX): one copy more
            data = os.pread(self._fd, len(memoryview(buffer).cast("B")), self._position)
            count = len(data)
            memoryview(buffer).cast("B")[:count] = data
        self._position += count
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``whence`` as ``os.lseek``'s); return it.

        Raises:
            OSError: EINVAL for a position before the start, as ``lseek`` does.
            ValueError: an unknown ``whence``.
        """
        self._checkClosed()
        if self._kernel is not None:
            return self._kernel.seek(offset, whence)
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._position = position
        return position

    def tell(self) -> int:
        """The position."""
        return self.seek(0, os.SEEK_CUR)

    def truncate(self, size: int | None = None) -> int:
        """Cut (or extend with zeros) the file to ``size`` bytes (default: the position); return ``size``."""
        self._checkClosed()
        if self._kernel is not None:
            return self._kernel.truncate(size)
        size = self._position if size is None else size
        os.ftruncate(self._fd, size)
        if size != self._hashed:
            self._hasher = None
        self._size = size
        return size

    def written(self) -> tuple[int, str] | None:
        """``(size, hex digest)`` when every byte of the file was hashed in order; else None.

        Also None when the file's size on disk is not the one written here: something wrote through a
        descriptor it got elsewhere (another open of ``/proc/self/fd/N``, a child process). The ``fstat`` that
        tells also gives the file's ``file_stamp`` (``stamp``).
        """
        self.stamp = None
        if self._hasher is None or self._hashed != self._size:
            return None
        status = os.fstat(self._fd)
        if status.st_size != self._size:
            return None
        self.stamp = (status.st_ino, status.st_ctime_ns)  # ``kart_core.storage.stamp.file_stamp``
        return self._size, self._hasher.hexdigest()

    def close(self) -> None:
        """Close the descriptor (once)."""
        if not self.closed:
            try:
                super().close()
            finally:
                os.close(self._fd)


def _is_real_directory(item: os.DirEntry[str]) -> bool:
    """A directory to enter: not a link to one (os.walk's default, so a link loop cannot trap the walk)."""
    try:
        return item.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _entry(root: str, item: os.DirEntry[str], relative: str) -> FileEntry | None:
    try:
        status = item.stat()  # follows a link to a file, as os.stat does
    except OSError:  # removed meanwhile, or a dangling link: not a file to report
        return None
    if not stat.S_ISREG(status.st_mode):  # a pipe, a device or a linked folder: kart never writes one
        return None
    return FileEntry(os.path.join(root, relative), relative, status.st_size, datetime.fromtimestamp(status.st_mtime))
