"""The files of a workspace with their sizes, on local disk or any fsspec file system.

Listing is the one thing kart's Storage interface does not offer (it lists one directory
level, without sizes); everything else here goes through ``kart_core.storage``.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from datetime import datetime
from typing import Any

from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of

__all__ = ["FileInfo", "join", "list_files", "relative_key", "remove_file"]

_TEMPORARY_SUFFIX = ".kart-tmp"  # writes in progress (see kart_core.storage.local)


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One file: its path (in the form the workspace was given), path relative to the workspace, size, mtime."""

    path: str
    relative: str
    size: int
    modified: datetime | None


def join(root: str, relative: str) -> str:
    """``root/relative`` for a local path or an URL."""
    return root.rstrip("/") + "/" + relative if protocol_of(root) else os.path.join(root, relative)


def relative_key(path: str) -> str:
    """A relative path normalized for comparison (forward slashes, no ``./``)."""
    return posixpath.normpath(path.replace(os.sep, "/")).lstrip("/")


def list_files(root: str) -> list[FileInfo]:
    """Every file under ``root`` (recursively), sorted by relative path; nothing if ``root`` is missing."""
    files = _list_remote(root) if protocol_of(root) else _list_local(root)
    return sorted((f for f in files if not f.relative.endswith(_TEMPORARY_SUFFIX)), key=lambda f: f.relative)


def _list_local(root: str) -> list[FileInfo]:
    local = root[len("file://") :] if root.startswith("file://") else root
    files = []
    for directory, _, names in os.walk(local):
        for name in names:
            full = os.path.join(directory, name)
            relative = relative_key(os.path.relpath(full, local))
            with_stat = os.stat(full)
            files.append(
                FileInfo(join(root, relative), relative, with_stat.st_size, datetime.fromtimestamp(with_stat.st_mtime))
            )
    return files


def _list_remote(root: str) -> list[FileInfo]:
    import fsspec

    from kart_core.storage.remote import storage_options

    protocol = protocol_of(root)
    fs = fsspec.filesystem(protocol, **storage_options(protocol))
    stripped = fs._strip_protocol(root).rstrip("/")
    try:
        found = fs.find(stripped, detail=True)
    except FileNotFoundError:
        return []
    files = []
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        relative = relative_key(str(path)[len(stripped) :])
        files.append(FileInfo(join(root, relative), relative, int(info.get("size") or 0), _modified(info)))
    return files


def _modified(info: dict[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("created") or info.get("updated")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value)
    if isinstance(value, datetime):
        # Local naive time, like local files (as kart_core.storage does).
        return value.astimezone().replace(tzinfo=None) if value.tzinfo is not None else value
    return None


def remove_file(path: str) -> None:
    """Delete one file through kart's storage."""
    storage_for(path).remove(path)
