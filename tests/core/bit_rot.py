"""Damage to a committed output that no write call made: storage corruption (bit rot, a bad sector, a torn copy).

A write from user space always moves the file's status-change time, which kart compares with the stamp its manifest
entry recorded (``kart_core.damage``: another stamp is another writer's file, a new version), or for an entry without
one with its manifest's time. Bit rot moves no time: the tests write the bytes, then record the file's stamp as it is
now in each entry of it and set the times of the workspace's manifests after it, so the output looks as the commit
left it again.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def rot(path: str, data: bytes) -> None:
    """Put ``data`` at the local output ``path`` as corruption would, leaving it not newer than its manifest."""
    Path(path).write_bytes(data)
    for folder in Path(path).parents:
        manifests = folder / "log" / "manifest"
        if manifests.is_dir():
            key = os.path.relpath(path, folder).replace(os.sep, "/")
            for manifest in manifests.glob("*.json"):
                _keep_stamp(manifest, key, os.stat(path))
                os.utime(manifest)
            return
    raise AssertionError(f"no workspace with a log/manifest folder above {path}")


def _keep_stamp(manifest: Path, key: str, found: os.stat_result) -> None:
    """Record ``found``'s stamp for ``key`` in the unsigned ``manifest`` when an entry of it has one."""
    from kart_core.manifest import Manifest

    data = manifest.read_bytes()
    try:
        current = Manifest.from_bytes(data)
    except ValueError:  # signed (its seal binds its bytes, and it records no stamps), or not a manifest
        return
    entry = current.outputs.get(key)
    if entry is None or entry.stamp is None:
        return
    outputs = {**current.outputs, key: dataclasses.replace(entry, stamp=(found.st_ino, found.st_ctime_ns))}
    manifest.write_bytes(dataclasses.replace(current, outputs=outputs).to_bytes())
