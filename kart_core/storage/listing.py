"""Existence checks answered from directory listings, for checking a whole graph at once.

On object storage each ``exists()`` is a request; a listing returns a whole "directory" (up to
a thousand names per request on S3). Inside ``listing_scope()`` remote storages list each
directory once and answer every later check in it from that listing. The scope is meant for a
read-only pass (walking a graph): writes made meanwhile are not seen, so callers check again
before acting.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator

__all__ = ["listing_scope", "exists_in_listing"]

_listings: contextvars.ContextVar[dict[str, frozenset[str]] | None] = contextvars.ContextVar(
    "kart_listings", default=None
)


@contextlib.contextmanager
def listing_scope() -> Iterator[None]:
    """Within the body, remote existence checks list each directory once."""
    token = _listings.set({})
    try:
        yield
    finally:
        _listings.reset(token)


def exists_in_listing(path: str, list_dir: Callable[[str], Iterable[str]]) -> bool | None:
    """Answer ``exists(path)`` from the scope's listing of its directory; None outside a scope."""
    listings = _listings.get()
    if listings is None:
        return None
    directory, _, name = path.rstrip("/").rpartition("/")
    if directory not in listings:
        listings[directory] = frozenset(list_dir(directory))
    return name in listings[directory]
