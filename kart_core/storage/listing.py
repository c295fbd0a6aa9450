"""Existence checks (and object tags) answered from directory listings, for checking a whole graph at once.

On object storage each ``exists()`` is a request; a listing returns a whole "directory" (up to
a thousand names per request on S3), with each object's version tag (S3's ETag, GCS's generation:
``kart_core.storage.stamp.object_tag``). Inside ``listing_scope()`` remote storages list each
directory once and answer every later check in it from that listing: whether an object is there,
and which version (``kart_core.damage.maybe_rewritten``: a lineage walk's look at an upstream output).
The scope is meant for a read-only pass (walking a graph): writes made meanwhile are not seen, so
callers check again before acting.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping

__all__ = ["Lister", "listing_scope", "exists_in_listing", "tag_in_listing"]

# A directory's listing: each name under it (an object, or a "directory" prefix) with its object's tag (None: none).
Lister = Callable[[str], Mapping[str, str | None]]

_listings: contextvars.ContextVar[dict[str, Mapping[str, str | None]] | None] = contextvars.ContextVar(
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


def _listed(path: str, list_dir: Lister) -> tuple[Mapping[str, str | None], str] | None:
    """The scope's listing of ``path``'s directory (listed now if not yet) and ``path``'s name; None outside a scope."""
    listings = _listings.get()
    if listings is None:
        return None
    directory, _, name = path.rstrip("/").rpartition("/")
    if directory not in listings:
        listings[directory] = list_dir(directory)
    return listings[directory], name


def exists_in_listing(path: str, list_dir: Lister) -> bool | None:
    """Answer ``exists(path)`` from the scope's listing of its directory; None outside a scope."""
    found = _listed(path, list_dir)
    return None if found is None else found[1] in found[0]


def tag_in_listing(path: str, list_dir: Lister) -> tuple[bool, str | None] | None:
    """``(there, tag)`` of the object at ``path`` from the scope's listing of its directory (the tag None when it is
    not there or the listing gave none); None outside a scope."""
    found = _listed(path, list_dir)
    if found is None:
        return None
    listing, name = found
    return name in listing, listing.get(name)
