"""Walk the nested dicts, lists and tuples that ``output()`` and ``requires()`` return. Pure, a leaf module.

One place for the shape rule every layer needs (loading outputs, loading inputs, hashing outputs):
dict values, list and tuple items, anything else is a leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["leaves", "map_structure"]


def map_structure(func: Callable[[Any], Any], items: Any) -> Any:
    """``func`` applied to every leaf of nested dicts, lists and tuples (tuples come back as lists)."""
    if isinstance(items, dict):
        return {key: map_structure(func, value) for key, value in items.items()}
    if isinstance(items, list | tuple):
        return [map_structure(func, value) for value in items]
    return func(items)


def leaves(items: Any) -> list[Any]:
    """The leaves of nested dicts (their values), lists and tuples, in order; anything else is one leaf."""
    if isinstance(items, dict):
        return [leaf for value in items.values() for leaf in leaves(value)]
    if isinstance(items, list | tuple):
        return [leaf for value in items for leaf in leaves(value)]
    return [items]
