"""The storage interface and the choice of a backend from a path."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Protocol, runtime_checkable


@runtime_checkable
class Storage(Protocol):
    """What kart needs from a place that holds outputs. Every write is atomic."""

    def exists(self, path: str) -> bool:
        """Whether a whole file is at ``path``."""
        ...

    def open_read(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Open ``path`` for binary reading."""
        ...

    def atomic_write(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Yield a readable and writable binary file; on a clean exit it appears at ``path`` whole, else not at all."""
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


def protocol_of(path: str) -> str:
    """The URL scheme of ``path`` ("" for a local path, including ``file://``)."""
    scheme, sep, _ = path.partition("://")
    if not sep or scheme in ("", "file", "local"):
        return ""
    return scheme


def storage_for(path: str) -> Storage:
    """Return the storage backend that holds ``path``: local disk or an fsspec file system."""
    protocol = protocol_of(path)
    if protocol == "":
        return _local_storage()
    from kart_core.storage.remote import storage_options

    # Options (endpoint, credentials) are read on each call so a changed config takes effect.
    return _remote_storage(protocol, tuple(sorted(storage_options(protocol).items())))


@functools.cache
def _local_storage() -> Storage:
    from kart_core.storage.local import LocalStorage

    return LocalStorage()


@functools.cache
def _remote_storage(protocol: str, options: tuple[tuple[str, object], ...]) -> Storage:
    # One backend object per protocol and options: fsspec file systems are expensive to create.
    from kart_core.storage.remote import FsspecStorage

    return FsspecStorage.for_protocol(protocol, **dict(options))
