"""The content of a file no integrity record vouches for (a raw file dropped in by hand, gokart's output): its stamp and
hash, remembered per stamp in this process, for the tasks that read it (``kart_core.transaction``, ``kart_core.damage``,
``kart_core.lineage``).
"""

from __future__ import annotations

import os
import sys

import luigi

from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.storage import stamp as stamps  # looked up per call: a test's stand-in stat reaches it
from kart_core.storage import storage_for

__all__ = ["readable_file", "unrecorded_content"]

# Content hashes of files without a record, by (path, stamp): a stamp changes with every write kart can see.
_CONTENT: dict[tuple[str, tuple[object, ...]], str] = {}
_CONTENT_LIMIT = 4096


def unrecorded_content(path: str, known: tuple[object, ...] | None = None) -> tuple[tuple[object, ...], str] | None:
    """``(stamp, "{algorithm}:{hex}")`` of the file at ``path`` (local path or URL), which has no integrity record:
    its stamp (``kart_core.storage.stamp``: mtime, size, inode and status-change time on local disk; ETag, size
    and time on object storage) and the content hash a manifest entry of it would hold (``kart_core.integrity``, the whole file).
    None when it is missing, a folder or cannot be read.

    ``known``: the stamp a downstream recorded with its load (``kart_core.lineage``): while the file's stamp is
    still that one the file is not read, and the hash returned is "" (unchanged). A file
    whose stamp changed is hashed once per stamp in this process (``_CONTENT``): a check repeated while nothing
    changes costs one stat, as the rewrite check of recorded outputs (``maybe_rewritten``) does.
    """
    try:
        found = stamps.stamp(path, status_change=True)  # a same-size file with its times set back: read again (at16 G1)
    except OSError:
        return None
    if found is None:
        return None
    now = tuple(found)
    if known is not None and now == tuple(known):
        return now, ""
    cached = _CONTENT.get((path, now))
    if cached is not None:
        return now, cached
    try:
        with storage_for(path).open_read(path) as file:
            _, digest = digest_stream(file, DEFAULT_ALGORITHM)
    except (OSError, ValueError):  # gone meanwhile, a folder, or not readable here
        return None
    content = f"{DEFAULT_ALGORITHM}:{digest}"
    if len(_CONTENT) >= _CONTENT_LIMIT:
        _CONTENT.clear()
    _CONTENT[(path, now)] = content
    return now, content


def readable_file(target: object) -> str | None:
    """The full path (local, absolute) or URL of the file ``target`` names, for a target whose file kart can stat and
    read without an integrity record: a kart file target without one (a bare ``kart_core.target.make_target(path)``,
    its path as given when it is a URL), a ``luigi.LocalTarget`` (its path made absolute: luigi reads a relative one
    from the working directory), and, when the program imported their modules, ``luigi.contrib.s3.S3Target`` and
    ``luigi.contrib.gcs.GCSTarget`` (read here through kart's own storage, ``kart_core.storage``). None for any other
    target (a database table, a luigi ``MockTarget``, an in-memory value): nothing kart can watch.
    """
    if isinstance(target, luigi.LocalTarget):
        path = target.path
        return os.path.abspath(path) if isinstance(path, str) and "://" not in path else path
    for module, name in _OBJECT_TARGETS:
        found = getattr(sys.modules.get(module), name, None)  # never imported here: luigi's gcs module warns on import
        if isinstance(found, type) and isinstance(target, found):
            path = getattr(target, "path", None)
            return path if isinstance(path, str) and "://" in path else None
    if type(target).__module__.startswith("kart_core.in_memory"):
        return None  # its "path" is a key of an in-memory store
    path = getattr(target, "_path", None)  # a kart target's file (not path(): a run may hand out a private name)
    if isinstance(path, str) and type(target).__module__.startswith("kart_core."):
        return path if "://" in path else os.path.abspath(path)
    return None


_OBJECT_TARGETS = (("luigi.contrib.s3", "S3Target"), ("luigi.contrib.gcs", "GCSTarget"))
