"""The storage interface and the choice of a backend from a path."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Protocol, runtime_checkable

from kart_core.errors import UnknownSchemeError

__all__ = [
    "TEMPORARY_SUFFIX",
    "FileEntry",
    "Spool",
    "Storage",
    "PRIVATE_PREFIX",
    "is_temporary",
    "options_key",
    "protocol_of",
    "spooled_write",
    "storage_for",
    "temporary_name",
]

# The name ending of files that are not outputs yet: atomic writes in progress, staged task outputs,
# and leftovers of killed writers. Defined here because the storage layer creates them;
# kart_core.workspace re-exports it as the layout's temporary suffix.
TEMPORARY_SUFFIX = ".kart-tmp"


# The name start of the private file a run writes an output by path under until its commit moves it into place
# (``kart_core.direct_write.private_name``: ``.kart-took-{hex}.{name}``, the output's extension kept for libraries).
PRIVATE_PREFIX = ".kart-took-"


def is_temporary(name: str) -> bool:
    """Whether the file name or path ``name`` is one of kart's temporary files (a killed by-path writer's private
    file included, and the files of a folder it saved under a private name: never an output, and ``kart gc``
    sweeps them once they are old)."""
    return name.endswith(TEMPORARY_SUFFIX) or any(part.startswith(PRIVATE_PREFIX) for part in name.split("/"))


def temporary_name(path: str) -> str:
    """A fresh hidden name beside ``path``: ``{dir}/.{name}.{random}{TEMPORARY_SUFFIX}`` ("/" joins URLs too)."""
    directory, separator, name = path.rpartition("/")
    return f"{directory}{separator}.{name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"


class Spool(Protocol):
    """A file being written for one path: readable and writable, visible at no final path yet.

    End it with exactly one of ``publish`` (now, atomically), ``stage`` (keep it beside the path
    for a later ``Storage.commit``) or ``discard``.
    """

    file: IO[bytes]

    def publish(self) -> None:
        """Put the bytes at the path, whole or not at all (replacing what was there)."""
        ...

    def stage(self) -> str:
        """Keep the bytes under a temporary name beside the path (same directory or bucket prefix); return it."""
        ...

    def discard(self) -> None:
        """Drop the bytes (safe to call after publish or stage: then it does nothing)."""
        ...

    def written(self) -> tuple[int, str] | None:
        """``(size, hex digest)`` of the bytes written, hashed while they were written (``kart_core.integrity``'s
        default algorithm), for a spool made with ``hashed``; None when the caller must read the file back
        to hash it (not asked, not supported by the backend, or written out of order). Flushes ``file`` first.
        """
        ...

    @property
    def stamp(self) -> tuple[int, int] | None:
        """A local file's ``file_stamp`` (inode, status-change time in ns) as ``written`` last found it; None when
        it took none (object storage, no hashing)."""
        ...


@contextlib.contextmanager
def spooled_write(spool: Spool) -> Iterator[IO[bytes]]:
    """Yield ``spool.file``; publish the spool on a clean exit, discard it on any exception (or a kill's exit).

    The one ``atomic_write`` of every backend: a backend only says how it spools.
    """
    try:
        yield spool.file
        spool.publish()
    finally:
        spool.discard()


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file found by ``Storage.walk``.

    Attributes:
        path: the file's full path, in the form the walked root was given (local path or URL).
        relative: the path below the root, with forward slashes and no leading ``./``.
        size: bytes.
        mtime: when it was last written, as local naive time (None when the storage does not say).
    """

    path: str
    relative: str
    size: int
    mtime: datetime | None


@runtime_checkable
class Storage(Protocol):
    """What kart needs from a place that holds outputs. Every write is atomic."""

    def exists(self, path: str) -> bool:
        """Whether a whole file is at ``path``."""
        ...

    def open_read(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Open ``path`` for binary reading."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path`` (a small file: a manifest, a marker, a record).

        Raises:
            FileNotFoundError: nothing is at ``path``.
        """
        ...

    def atomic_write(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Yield a readable and writable binary file; on a clean exit it appears at ``path`` whole, else not at all."""
        ...

    def spool(self, path: str, hashed: bool = False) -> Spool:
        """Start writing the file for ``path`` (see ``Spool``); ``hashed``: hash the bytes as they are
        written, when the backend can (``Spool.written``)."""
        ...

    def commit(self, staged: str, path: str) -> str | None:
        """Move a staged file (``Spool.stage``'s location) to ``path``, atomically, replacing what was there.

        Returns the object store's tag of the version now at ``path`` when the move's answer carries one (S3's ETag,
        GCS's generation, as ``kart_core.storage.stamp.object_tag`` spells them); None on local disk or when the
        store said none.
        """
        ...

    def claim_new(self, path: str, data: bytes) -> AbstractContextManager[object]:
        """Write ``data`` at ``path`` only if nothing is there, and hold a claim on it for the body.

        Yields a true value if written (``LocalStorage``: a ``HeldClaim``, which can write over ``data`` in place
        while the claim is held), False if something was there, None when the storage cannot tell
        atomically (nothing is written; the caller settles it under a lock). While the body runs (a
        first commit moving its outputs into place) ``wait_claim`` on ``path`` waits; the claim ends
        with the body or with the process. Callers use it for small records (the manifest).
        """
        ...

    def wait_claim(self, path: str) -> None:
        """Wait until no ``claim_new`` on ``path`` is held (returns at once where claims do not exist)."""
        ...

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""
        ...

    def modification_time(self, path: str) -> datetime:
        """When ``path`` was last written."""
        ...

    def list_dir(self, path: str) -> Iterator[str]:
        """Names of the files directly under the directory ``path`` (nothing if it is missing)."""
        ...

    def walk(self, root: str, include_temporary: bool = False) -> Iterator[FileEntry]:
        """Every file under ``root``, recursively, in no particular order (nothing if ``root`` is missing).

        Temporary files (``TEMPORARY_SUFFIX``) are skipped unless ``include_temporary`` is set;
        a file that vanishes or cannot be examined while the walk runs is skipped.
        """
        ...


def protocol_of(path: str) -> str:
    """The URL scheme of ``path`` ("" for a local path, including ``file://``)."""
    scheme, sep, _ = path.partition("://")
    if not sep or scheme in ("", "file", "local"):
        return ""
    return scheme


def no_space_note(path: str) -> str:
    """What a ``NoSpaceError`` about a write to ``path`` adds after the OS error: "" on local disk.

    A write to object storage goes through a local spool file in the system temporary folder
    (``tempfile.gettempdir()``: ``TMPDIR``; ``RemoteSpool``), and an object store raises no ``ENOSPC``:
    a full disk there is that local folder's, which the note names, with what to do.
    """
    if protocol_of(path) == "":
        return ""
    return (
        f": kart buffers each upload in the local folder {tempfile.gettempdir()!r}, whose disk is full, not the "
        "object store (free space there, or set TMPDIR to a folder with room)"
    )


def storage_for(path: str) -> Storage:
    """Return the storage backend that holds ``path``: local disk or an fsspec file system.

    Raises:
        UnknownSchemeError: no storage serves the scheme of ``path`` (``foo://x``); names the URL and the
            supported schemes.
        MissingExtraError: the scheme's package is not installed (s3fs, gcsfs).
    """
    protocol = protocol_of(path)
    if protocol == "":
        return _local_storage()
    from kart_core.storage.remote import storage_options

    # Options (endpoint, credentials) are read on each call so a changed config takes effect.
    try:
        return _remote_storage(protocol, options_key(storage_options(protocol)))
    except UnknownSchemeError as exc:
        raise UnknownSchemeError(path, exc.scheme) from None  # the URL itself, not just its scheme


def options_key(options: dict[str, object]) -> tuple[tuple[str, object], ...]:
    """``options`` as a hashable key for the backend cache, each value still usable as given.

    A dict or list value (gcsfs's ``token`` as parsed service-account JSON, from ``[GCSConfig]``)
    becomes an equal dict or list that can be hashed; ``tuple(options.items())`` would raise TypeError.
    """
    return tuple(sorted((name, _hashable(value)) for name, value in options.items()))


class _HashableDict(dict):  # type: ignore[type-arg]
    """A dict that can be a cache key (hashed by its sorted JSON); still a plain dict for the library."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, default=repr))


class _HashableList(list):  # type: ignore[type-arg]
    """A list that can be a cache key (hashed by its JSON)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, default=repr))


def _hashable(value: object) -> object:
    if isinstance(value, dict):
        return _HashableDict(value)
    if isinstance(value, list):
        return _HashableList(value)
    return value


@functools.cache
def _local_storage() -> Storage:
    from kart_core.storage.local import LocalStorage

    return LocalStorage()


@functools.cache
def _remote_storage(protocol: str, options: tuple[tuple[str, object], ...]) -> Storage:
    # One backend object per protocol and options: fsspec file systems are expensive to create.
    from kart_core.storage.remote import FsspecStorage

    return FsspecStorage.for_protocol(protocol, **dict(options))
