"""A GCS object read in ranges, every range of one generation (``FsspecStorage.open_read`` of an object over
``FIRST_READ_BYTES``).

gcsfs's own file reads each later range of whatever version of the object is there then: another client putting the
object again while it is read gave a load bytes of two versions, with no error (attacker at23 A4). S3's reads are
pinned by s3fs (``If-Match`` on the ETag, ``FileExpired`` once it moved); this file does the same on GCS with the
``generation`` parameter of a media download.
"""

from __future__ import annotations

import errno
from typing import Any

from fsspec.spec import AbstractBufferedFile

from kart_core.storage.stamp import object_tag

__all__ = ["GenerationGoneError", "PinnedGenerationFile"]


class GenerationGoneError(OSError):
    """The generation of a GCS object being read is gone: another client put the object again (or deleted it)
    after the read began, and the bucket keeps no older generation (no object versioning). Nothing of the newer
    version was returned. ``errno`` is ``EBUSY``, as s3fs's ``FileExpired`` for the same case on S3."""

    def __init__(self, path: str, generation: str) -> None:
        super().__init__(
            errno.EBUSY,
            f"{path} was put again while it was read: its generation {generation}, whose first bytes were read, is "
            "gone (another client rewrote or deleted the object). Nothing of the new version was mixed in; read it "
            "again, and if it should not change, find the other writer.",
        )
        self.path = path
        self.generation = generation


class PinnedGenerationFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A read-only file of one generation of a GCS object: every range is a media download naming that generation,
    so all its bytes are of one version even while another client puts the object again.

    ``fs``: the gcsfs file system; ``path``: the object (``gs://bucket/key`` or ``bucket/key``); ``generation``: the
    generation number (as the store sent it); ``size``: that generation's size in bytes; ``head``: its first bytes,
    read already (served from memory, not asked again). ``tag`` is ``generation:<n>``
    (``kart_core.storage.stamp.opened_tag``).

    Raises (on read):
        GenerationGoneError: the generation is gone (rewritten or deleted since it was opened).
        OSError: the store could not be asked.
    """

    def __init__(self, fs: Any, path: str, generation: str, size: int, head: bytes) -> None:
        super().__init__(
            fs,
            path,
            mode="rb",
            block_size=getattr(fs, "default_block_size", None) or "default",
            cache_type="readahead",
            size=size,
        )
        self.generation = generation
        self.tag = object_tag({"generation": generation})
        self._head = head

    def _fetch_range(self, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (end exclusive, cut at the size) of the pinned generation."""
        end = min(end, self.size)
        if start >= end:
            return b""
        known = len(self._head)
        if end <= known:
            return self._head[start:end]
        if start < known:
            return self._head[start:] + self._download(known, end)
        return self._download(start, end)

    def _download(self, start: int, end: int) -> bytes:
        try:
            return bytes(self.fs.cat_file(self.path, start=start, end=end, generation=self.generation))
        except FileNotFoundError as exc:  # GCS answers 404 for a generation no longer kept
            raise GenerationGoneError(self.path, self.generation) from exc
