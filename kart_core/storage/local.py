"""Local disk storage: temporary file in the target directory, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


class LocalStorage:
    """Files on the local file system."""

    def exists(self, path: str) -> bool:
        """Whether a file is at ``path``."""
        return os.path.exists(_local(path))

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """Open ``path`` for binary reading."""
        with open(_local(path), "rb") as file:
            yield file

    @contextlib.contextmanager
    def atomic_write(self, path: str) -> Iterator[IO[bytes]]:
        """Write to a hidden temporary file beside ``path`` and rename it into place on success."""
        final = _local(path)
        directory = os.path.dirname(final) or "."
        os.makedirs(directory, exist_ok=True)
        # Same directory as the target, so the rename never crosses file systems and stays atomic.
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(final)}.", suffix=".kart-tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                yield file
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

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
            yield from os.listdir(_local(path))
        except (FileNotFoundError, NotADirectoryError):
            return
