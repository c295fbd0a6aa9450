"""A machine-wide lock per workspace, so parallel Kedro workers build a shared upstream once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["workspace_lock"]


@contextlib.contextmanager
def workspace_lock(workspace: str) -> Iterator[None]:
    """Hold an exclusive file lock named after ``workspace`` (a path or an fsspec URL)."""
    directory = os.path.join(tempfile.gettempdir(), "kart_kedro_locks")
    os.makedirs(directory, exist_ok=True)
    name = hashlib.md5(
        os.path.abspath(workspace).encode() if "://" not in workspace else workspace.encode()
    ).hexdigest()
    with open(os.path.join(directory, f"{name}.lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
