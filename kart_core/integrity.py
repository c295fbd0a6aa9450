"""Content hashes for the integrity record: fast, non-cryptographic, named by algorithm.

xxHash's XXH3-128 (the ``xxhash`` package, a maintained binding of the reference C library) hashes
at several GB/s, so recording every committed output costs little next to writing it. When the
package is missing, BLAKE2b-128 from hashlib is used; the manifest names the algorithm, so a
reader without xxhash still checks sizes and the outputs whose hash it can compute.

These hashes detect damage (truncation, bit rot, an overwritten file); they do not resist an
attacker. Tampering is what signing (``kart_core.signing``, HMAC-SHA256) is for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO, Any, Protocol

__all__ = ["DEFAULT_ALGORITHM", "Hasher", "available", "digest_bytes", "digest_stream", "new_hasher"]

_CHUNK = 1 << 20


class Hasher(Protocol):
    """An incremental hash (hashlib's and xxhash's objects both fit)."""

    def update(self, data: bytes | memoryview, /) -> None:
        """Add ``data``."""
        ...

    def hexdigest(self) -> str:
        """The hash so far, as hex."""
        ...


def _xxh3_128() -> Callable[[], Hasher] | None:
    try:
        import xxhash
    except ImportError:
        return None
    return xxhash.xxh3_128  # type: ignore[no-any-return]


def _blake2b_128() -> Hasher:
    return hashlib.blake2b(digest_size=16)


_FACTORIES: dict[str, Callable[[], Hasher] | None] = {"xxh3_128": _xxh3_128(), "blake2b_128": _blake2b_128}

DEFAULT_ALGORITHM = "xxh3_128" if _FACTORIES["xxh3_128"] is not None else "blake2b_128"


def available(algorithm: str) -> bool:
    """Whether this process can compute ``algorithm`` (a name a manifest may record)."""
    return _FACTORIES.get(algorithm) is not None


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    """A fresh hasher for ``algorithm``.

    Raises:
        KeyError: the algorithm is unknown or not available here (see ``available``).
    """
    factory = _FACTORIES.get(algorithm)
    if factory is None:
        raise KeyError(algorithm)
    return factory()


def digest_bytes(data: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The hex digest of ``data``."""
    hasher = new_hasher(algorithm)
    hasher.update(bytes(data) if isinstance(data, memoryview) else data)
    return hasher.hexdigest()


def digest_stream(
    stream: IO[bytes], algorithm: str = DEFAULT_ALGORITHM, *also: Any, length: int | None = None
) -> tuple[int, str]:
    """``(size in bytes, hex digest)`` of what ``stream`` yields from its position; each of ``also``
    (objects with ``update``) sees the same chunks, so one pass can feed a MAC too.

    ``length``: the bytes left in ``stream`` when the caller knows it (a file it just wrote). Reads
    then ask for no more than that: each ``read(1 MiB)`` allocates a 1 MiB buffer first, which cost a
    small output's commit more than writing it did. Reading stops at the end of the stream either way.
    """
    hasher = new_hasher(algorithm)
    size = 0
    left = length if length is not None else -1
    while left != 0:
        chunk = stream.read(_CHUNK if left < 0 else min(left, _CHUNK))
        if not chunk:
            break
        hasher.update(chunk)
        for other in also:
            other.update(chunk)
        size += len(chunk)
        if left > 0:
            left -= len(chunk)
    return size, hasher.hexdigest()
