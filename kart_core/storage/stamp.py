"""A stamp of what is at a path: equal only while the file (or folder) there is unchanged.

What tells, without reading the content, that a file is the one seen earlier: a rerun's commit replaced it or
not (``kart_core.rerun``), a killed by-path writer changed it in place or not (``kart_core.direct_write``'s
``.kart-writing`` marker, ``kart_core.inspect.writing``).
"""

from __future__ import annotations

import contextlib
import os

from kart_core.storage.base import storage_for

__all__ = ["Stamp", "changed_ns", "file_stamp", "local_file_stamp", "stamp", "touch_after_moves"]

# JSON-friendly: a list of ints and strings (a marker keeps one as it is and compares it after a round trip).
Stamp = list[object]


def stamp(path: str, status_change: bool = False) -> Stamp | None:
    """The stamp of the file or folder at ``path`` (a local path, ``file://`` or an fsspec URL); None when missing.

    Local disk: [mtime in ns, size, inode]: a rewrite within the clock's tick (about 4 ms) replaces the file (new
    inode: an atomic write, a rename) or changes its size; a rewrite in place of the same size in the same tick is
    not seen, nor one whose modification time was set back (``touch -r``, ``cp -p``, ``rsync -t``, an archive
    extracted with its times into the inode just freed). ``status_change``: the status-change time (ns) too,
    which no call sets back, so those are seen; it also moves on a ``chmod`` or a new hard link, so only for a
    caller that re-reads the content when the stamp moved (``kart_core.damage.unrecorded_content``), not for
    one that takes a moved stamp for another writer's file. Object storage: [ETag or generation, size, modification time]: the time alone has one-second steps on
    S3, and the ETag of the same bytes is the same, so the same bytes put again within one second are not seen.

    Raises:
        OSError: the store could not be asked (other than the path missing).
    """
    if "://" not in path or path.startswith("file://"):
        try:
            status = os.stat(path.removeprefix("file://"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        found: Stamp = [status.st_mtime_ns, status.st_size, status.st_ino]
        return [*found, status.st_ctime_ns] if status_change else found
    storage = storage_for(path)
    file_system = getattr(storage, "file_system", None)
    if file_system is None:
        return [str(storage.modification_time(path))] if storage.exists(path) else None
    file_system.invalidate_cache(path)  # a listing cached earlier would hide a write since
    try:
        info = file_system.info(path)
    except FileNotFoundError:
        return None
    tag = next((info[key] for key in ("ETag", "etag", "generation", "md5Hash") if info.get(key)), None)
    return [
        None if tag is None else str(tag),
        info.get("size"),
        str(info.get("LastModified") or info.get("updated") or info.get("mtime")),
    ]


def changed_ns(found: os.stat_result) -> int:
    """When a local file last changed (ns): the later of its modification and status-change times."""
    return max(found.st_mtime_ns, found.st_ctime_ns)


def file_stamp(found: os.stat_result) -> tuple[int, int]:
    """What a manifest entry records of the local file it vouches for (``kart_core.manifest.Entry.stamp``): (inode,
    status-change time in ns). No copy, rename, symlink or ``utime`` gives another file both (``kart_core.damage``)."""
    return (found.st_ino, found.st_ctime_ns)


def local_file_stamp(path: str) -> tuple[int, int] | None:
    """``file_stamp`` of the local file at ``path`` (a symlink followed, as a load opens it); None on object storage
    or when it cannot be examined."""
    if "://" in path and not path.startswith("file://"):
        return None
    try:
        return file_stamp(os.stat(path.removeprefix("file://")))
    except OSError:
        return None


def touch_after_moves(manifest: str) -> None:
    """Set a local manifest's times to now, after a first commit moved its outputs into place (each move sets the
    output's status-change time): a kart-committed output then never changed after its manifest. Nothing on
    object storage; a manifest that cannot be touched only costs its loads a hash (``kart_core.damage.maybe_rewritten``)."""
    if "://" in manifest and not manifest.startswith("file://"):
        return
    with contextlib.suppress(OSError):
        os.utime(manifest.removeprefix("file://"))
