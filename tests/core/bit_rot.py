"""Damage to a committed output that no write call made: storage corruption (bit rot, a bad sector, a torn copy).

A write from user space always moves the file's status-change time, which kart compares with its manifest's
(``kart_core.damage``: an output changed after its manifest was rewritten by another writer: a new version). Bit rot
moves no time: the tests write the bytes, then set the times of the workspace's manifests after it, so the output
looks as old as its commit again.
"""

from __future__ import annotations

import os
from pathlib import Path


def rot(path: str, data: bytes) -> None:
    """Put ``data`` at the local output ``path`` as corruption would, leaving it not newer than its manifest."""
    Path(path).write_bytes(data)
    for folder in Path(path).parents:
        manifests = folder / "log" / "manifest"
        if manifests.is_dir():
            for manifest in manifests.glob("*.json"):
                os.utime(manifest)
            return
    raise AssertionError(f"no workspace with a log/manifest folder above {path}")
