"""Where outputs live: one small interface over local disk and any fsspec file system."""

from kart_core.storage.base import Storage, storage_for
from kart_core.storage.listing import listing_scope
from kart_core.storage.local import LocalStorage

__all__ = ["Storage", "LocalStorage", "listing_scope", "storage_for"]
