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
        """Yield a binary file; on a clean exit it appears at ``path`` whole, otherwise not at all."""
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
    return _storage_for_protocol(protocol_of(path))


@functools.cache
def _storage_for_protocol(protocol: str) -> Storage:
    # One backend object per protocol and process: fsspec file systems are expensive to create.
    if protocol == "":
        from kart_core.storage.local import LocalStorage

        return LocalStorage()
    from kart_core.storage.remote import FsspecStorage

    return FsspecStorage.for_protocol(protocol)
