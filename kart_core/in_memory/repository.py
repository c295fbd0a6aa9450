"""The process's store of in-memory outputs, by key (gokart 1.12.2's ``InMemoryCacheRepository`` interface)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from kart_core.errors import InMemoryKeyError
from kart_core.in_memory.data import InMemoryData

__all__ = ["InMemoryCacheRepository"]


class InMemoryCacheRepository:
    """Every instance sees one store per process, as gokart's does.

    The store is shared on purpose: keeping outputs in memory means keeping them where every task of
    the process finds them (notebooks and tests clear it with ``clear()``). A lock makes each
    operation atomic for thread workers.
    """

    _cache: ClassVar[dict[str, InMemoryData]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def get_value(self, key: str) -> Any:
        """The value stored under ``key``.

        Raises:
            InMemoryKeyError: nothing is stored under ``key`` (a ``KeyError``, as gokart's).
        """
        return self._get_data(key).value

    def get_last_modification_time(self, key: str) -> datetime:
        """When the value under ``key`` was stored. Raises ``InMemoryKeyError`` when there is none."""
        return self._get_data(key).last_modification_time

    def _get_data(self, key: str) -> InMemoryData:
        try:
            return self._cache[key]
        except KeyError:
            raise InMemoryKeyError(
                f"No in-memory output under {key!r}: build the task that writes it first in this process "
                "(in-memory outputs live only in the process that dumped them)."
            ) from None

    def set_value(self, key: str, obj: Any) -> None:
        """Store ``obj`` under ``key`` (replacing what was there), stamped now."""
        with self._guard:
            self._cache[key] = InMemoryData.create_data(obj)

    def has(self, key: str) -> bool:
        """Whether a value is stored under ``key``."""
        return key in self._cache

    def remove(self, key: str) -> None:
        """Forget the value under ``key``.

        Raises:
            InMemoryKeyError: nothing is stored under ``key`` (an ``AssertionError``, as gokart's).
        """
        with self._guard:
            if key not in self._cache:
                raise InMemoryKeyError(f"{key} does not exist in the in-memory store; nothing to remove.")
            del self._cache[key]

    def move(self, source: str, key: str) -> None:
        """Put the value under ``source`` under ``key`` (how a staged dump is committed)."""
        with self._guard:
            self._cache[key] = self._cache.pop(source)

    def empty(self) -> bool:
        """Whether nothing is stored."""
        return not self._cache

    def clear(self) -> None:
        """Forget every value."""
        with self._guard:
            self._cache.clear()

    def get_gen(self) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` of every stored value (a snapshot)."""
        for key, data in list(self._cache.items()):
            yield key, data.value

    @property
    def size(self) -> int:
        """How many values are stored."""
        return len(self._cache)
