"""Object storage and other fsspec file systems (``s3://``, ``gs://``, ``memory://``, ...)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

from kart_core.errors import KartError

_EXTRA_FOR_PROTOCOL = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


class FsspecStorage:
    """Files on an fsspec file system; a write is uploaded in one put, so readers never see half."""

    def __init__(self, fs: Any, protocol: str) -> None:
        self._fs = fs
        self._protocol = protocol

    @classmethod
    def for_protocol(cls, protocol: str, **options: Any) -> FsspecStorage:
        """Create the file system for ``protocol``, saying which extra to install when it is missing."""
        try:
            import fsspec

            fs = fsspec.filesystem(protocol, **options)
        except ImportError as exc:
            extra = _EXTRA_FOR_PROTOCOL.get(protocol, "all")
            raise KartError(
                f"Storage for '{protocol}://' paths needs an extra package: pip install 'kart-suite[{extra}]'. ({exc})"
            ) from exc
        return cls(fs, protocol)

    def exists(self, path: str) -> bool:
        """Whether an object is at ``path``."""
        return bool(self._fs.exists(path))

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """Open ``path`` for binary reading."""
        with self._fs.open(path, "rb") as file:
            yield file

    @contextlib.contextmanager
    def atomic_write(self, path: str) -> Iterator[IO[bytes]]:
        """Spool to a local temporary file, then upload it as one object."""
        with tempfile.NamedTemporaryFile(prefix="kart-upload-", delete=False) as file:
            local = file.name
        try:
            with open(local, "w+b") as file:
                yield file
            parent = path.rsplit("/", 1)[0]
            with contextlib.suppress(Exception):
                self._fs.makedirs(parent, exist_ok=True)
            self._fs.put_file(local, path)
        finally:
            os.unlink(local)

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def modification_time(self, path: str) -> datetime:
        """When ``path`` was last written (UTC turned into local naive time, like local files)."""
        modified = self._fs.modified(path)
        if modified.tzinfo is not None:
            modified = modified.astimezone().replace(tzinfo=None)
        return modified if modified.tzinfo is None else modified.replace(tzinfo=timezone.utc)

    def list_dir(self, path: str) -> Iterator[str]:
        """Names of the objects directly under ``path``."""
        try:
            entries = self._fs.ls(path, detail=False)
        except FileNotFoundError:
            return
        for entry in entries:
            yield str(entry).rstrip("/").rsplit("/", 1)[-1]
