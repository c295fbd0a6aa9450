"""The content of a file no integrity record vouches for (a raw file dropped in by hand, gokart's output): its stamp and
hash, remembered per stamp in this process, for the tasks that read it (``kart_core.transaction``, ``kart_core.damage``,
``kart_core.lineage``).
"""

from __future__ import annotations

from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.storage import stamp as stamps  # looked up per call: a test's stand-in stat reaches it
from kart_core.storage import storage_for

__all__ = ["unrecorded_content"]

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
