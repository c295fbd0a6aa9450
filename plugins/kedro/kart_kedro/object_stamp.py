"""What object storage says of a dataset's objects without downloading them: S3 ETags, GCS generations.

KartRunner keys a node by the content of its raw inputs. Locally a file's inode, size and times say
whether it changed (``output_state.file_stamp``); on object storage the listing (a folder) or one
metadata request (a file) gives each object's content token instead:

- S3 (s3fs, also S3-compatible servers): ``ETag``, which S3 changes whenever the object's bytes
  change. It is the md5 of the bytes only for a single-part upload without SSE-KMS/SSE-C; a
  multipart upload's is ``md5(part md5s)-N`` and an encrypted object's is opaque, but each still
  changes with the content (only its equality is used here, never its value as an md5). With a
  version-aware file system (``version_aware=True``) the ``VersionId`` counts too.
- GCS (gcsfs): ``generation``, a new number for every write of the object (even of the same
  bytes), with ``md5Hash`` (absent for composite objects) and ``crc32c``.

Each object's token, size and modification time, with its name relative to the dataset's path,
make the stamp. One listing request per folder (per 1,000 objects on S3) and one request per single
file, whatever the objects' sizes.

Where the store gives no token kart can rely on, there is no stamp and the caller reads the data:
any other file system (``memory://``, ``http(s)://``, ``ftp://``, Azure, ...: kart has no server here to
check that their tokens change with every write), an object without an ETag (some S3-compatible
gateways), a GCS object with neither ``generation`` nor ``md5Hash``, and a missing path.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable
from typing import Any

__all__ = ["content_token", "modified_ns", "object_files", "object_stamp_parts"]

_S3 = frozenset({"s3", "s3a"})
_GCS = frozenset({"gs", "gcs"})


def object_stamp_parts(filesystem: Any, path: str, *, folder: bool) -> tuple[list[tuple[Any, ...]], int] | None:
    """Per object (relative name, size, modification time in ns, content token), and the newest time.

    Args:
        filesystem: the dataset's fsspec file system (s3fs or gcsfs for a stamp; any other gives None).
        path: the dataset's path on it, without the protocol (``bucket/key``).
        folder: ``path`` is a folder (a PartitionedDataset): one listing. Else one metadata request for the
            file (and a listing when that path turns out to be a folder).

    Returns:
        None where the metadata cannot identify the content (see the module docstring): read the data.
    """
    token = _token_reader(filesystem)
    if token is None:
        return None
    files = object_files(filesystem, path, folder=folder)
    if not files:
        return None
    parts = []
    for relative, info in files:
        found = token(info)
        if not found:
            return None
        parts.append((relative, int(info.get("size") or 0), modified_ns(info), found))
    return parts, max(part[2] for part in parts)


def object_files(filesystem: Any, path: str, *, folder: bool) -> list[tuple[str, dict[str, Any]]]:
    """(name relative to ``path``, "" for the file itself; the store's metadata) of each object, sorted by name;
    [] when nothing is there. The file system's listing cache is dropped first: another client may have written."""
    filesystem.invalidate_cache(path)
    if not folder:
        try:
            info = filesystem.info(path)
        except FileNotFoundError:
            return []
        if info.get("type") != "directory":
            return [("", info)]
    found = filesystem.find(path, detail=True)
    return sorted((posixpath.relpath(name, path), info) for name, info in found.items())


def content_token(filesystem: Any, info: dict[str, Any]) -> str:
    """The store's content token of one object (its metadata ``info`` from ``filesystem``), "" where there is none
    kart relies on (see the module docstring)."""
    token = _token_reader(filesystem)
    return token(info) if token is not None else ""


def _token_reader(filesystem: Any) -> Callable[[dict[str, Any]], str] | None:
    """The function reading an object's content token from its metadata on ``filesystem``'s store, or None."""
    protocols = filesystem.protocol if isinstance(filesystem.protocol, tuple | list) else (filesystem.protocol,)
    if _S3.intersection(protocols):
        return _s3_token
    if _GCS.intersection(protocols):
        return _gcs_token
    return None


def _s3_token(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag")
    if not etag:
        return ""
    return f"s3:{etag}:{info.get('VersionId') or ''}"


def _gcs_token(info: dict[str, Any]) -> str:
    generation, md5 = info.get("generation"), info.get("md5Hash")
    if not generation and not md5:  # crc32c alone is 32 bits: not an identity
        return ""
    return f"gs:{generation or ''}:{md5 or ''}:{info.get('crc32c') or ''}"


def modified_ns(info: dict[str, Any]) -> int:
    """An object's modification time in nanoseconds since the epoch (s3fs ``LastModified``, gcsfs ``mtime``/
    ``updated``); -1 when the metadata has none."""
    value = info.get("mtime", info.get("LastModified", info.get("updated")))
    if value is None:
        return -1
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1e9)
    with contextlib.suppress(TypeError, ValueError):
        return int(float(value) * 1e9)
    return -1
