"""A stamp of what is at a path: equal only while the file (or folder) there is unchanged.

What tells, without reading the content, that a file is the one seen earlier: a rerun's commit replaced it or
not (``kart_core.rerun``), a killed by-path writer changed it in place or not (``kart_core.direct_write``'s
``.kart-writing`` marker, ``kart_core.inspect.writing``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from kart_core.storage.base import storage_for

__all__ = [
    "Stamp",
    "changed_ns",
    "current_tag",
    "file_stamp",
    "local_file_stamp",
    "object_tag",
    "opened_tag",
    "read_pinned",
    "stamp",
    "touch_after_moves",
]

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


def object_tag(info: Mapping[str, object]) -> str | None:
    """The version tag of an object as a manifest entry records it (``Entry.tag``), from what the store said of it (an
    fsspec ``info`` or listing entry, a response's fields): ``"generation:<n>"`` on GCS (a new number for every write
    of the object, a copy or a rewrite of the same bytes included), else ``"etag:<ETag>"`` (S3: for an object put or
    copied in one request without KMS encryption, the MD5 of its bytes, so the same bytes put again keep it; another
    content gets another); None when it carries neither. GCS's own lowercase ``etag`` (which moves with metadata
    updates) is not used."""
    generation = info.get("generation")
    if generation not in (None, ""):
        return f"generation:{generation}"
    etag = info.get("ETag")
    if etag not in (None, ""):
        return f"etag:{str(etag).strip(chr(34))}"
    return None


def opened_tag(file: object) -> str | None:
    """The tag (``object_tag``) of the object version an open file of ``FsspecStorage.open_read`` reads: the one the
    store sent with the bytes of a small object read whole or of a larger GCS object's first range (its file's
    ``tag``), or the one a larger S3 object's file was opened at (its ``details``). None for a local file, or when
    the store sent none."""
    tag = getattr(file, "tag", None)
    if isinstance(tag, str):
        return tag
    details = getattr(file, "details", None)
    return object_tag(details) if isinstance(details, Mapping) else None


def read_pinned(file: object) -> bool:
    """Whether every byte read from ``file`` (of ``FsspecStorage.open_read``) is of the version ``opened_tag`` names: a
    small object read whole in one GET, an S3 object read in ranges on condition that its ETag is still that one
    (s3fs's ``If-Match``: a range of another version fails), or a GCS object read in ranges of one generation
    (``kart_core.storage.pinned``). Not gcsfs's own file (a zonal bucket's, a store that names no generation), whose
    later ranges are of whatever version is there then."""
    if isinstance(getattr(file, "tag", None), str):
        return True
    conditions = getattr(file, "read_kw", None)
    return isinstance(conditions, Mapping) and conditions.get("IfMatch") is not None


def current_tag(path: str, listed: bool = True) -> str | None:
    """The tag (``object_tag``) of the object at ``path`` now: from the open ``listing_scope``'s listing of its
    directory (unless ``listed`` is False: a caller that just wrote the object), else one request (a HEAD on S3, a
    metadata GET on GCS). None when nothing is there, the store gives no tag, or ``path`` is not on object storage.

    Raises:
        OSError: the store could not be asked.
    """
    if "://" not in path or path.startswith("file://"):
        return None
    tag_of = getattr(storage_for(path), "object_tag", None)
    return None if tag_of is None else tag_of(path, listed)  # type: ignore[no-any-return]
