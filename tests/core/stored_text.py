"""Text files at a local path or an object-storage URL, written and read the way another program (not kart) would:
for tests that put a file where a task's output goes, or read one back whatever the workspace."""

from __future__ import annotations

import os

from kart_core.storage import storage_for


def put_text(path: str, text: str) -> None:
    """Write ``text`` at ``path`` in place (no temporary name), creating a local file's folders."""
    if "://" in path:
        storage_for(path).file_system.pipe(path, text.encode())  # type: ignore[attr-defined]
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write(text)


def get_text(path: str) -> str:
    """The text at ``path``, read afresh (an object store's listing cache dropped first)."""
    storage = storage_for(path)
    file_system = getattr(storage, "file_system", None)
    if file_system is not None:
        file_system.invalidate_cache()
    with storage.open_read(path) as file:
        return bytes(file.read()).decode()


def exists_fresh(path: str) -> bool:
    """Whether a file is at ``path``, asked afresh (an object store's listing cache dropped first)."""
    storage = storage_for(path)
    file_system = getattr(storage, "file_system", None)
    if file_system is not None:
        file_system.invalidate_cache()
    return storage.exists(path)
