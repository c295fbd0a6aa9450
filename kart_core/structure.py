"""Walk the nested dicts, lists and tuples that ``output()`` and ``requires()`` return. Pure, a leaf module.

One place for the shape rule every layer needs (loading outputs, loading inputs, hashing outputs):
dict values, list and tuple items, anything else is a leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from luigi.task import flatten as _luigi_flatten

__all__ = ["flatten", "is_leaf_type", "leaves", "map_flattenable_items", "map_structure"]


def map_structure(func: Callable[[Any], Any], items: Any) -> Any:
    """``func`` applied to every leaf of nested dicts, lists and tuples (tuples come back as lists)."""
    if isinstance(items, dict):
        return {key: map_structure(func, value) for key, value in items.items()}
    if isinstance(items, list | tuple):
        return [map_structure(func, value) for value in items]
    return func(items)


def map_flattenable_items(func: Callable[[Any], Any], items: Any) -> Any:
    """gokart's ``map_flattenable_items``: ``func`` applied to every leaf, keeping the dict / list / tuple shape."""
    if isinstance(items, dict):
        return {key: map_flattenable_items(func, value) for key, value in items.items()}
    if isinstance(items, tuple):
        return tuple(map_flattenable_items(func, value) for value in items)
    if isinstance(items, list):
        return [map_flattenable_items(func, value) for value in items]
    return func(items)


def leaves(items: Any) -> list[Any]:
    """The leaves of nested dicts (their values), lists and tuples, in order; anything else is one leaf."""
    if isinstance(items, dict):
        return [leaf for value in items.values() for leaf in leaves(value)]
    if isinstance(items, list | tuple):
        return [leaf for value in items for leaf in leaves(value)]
    return [items]


def flatten(structure: Any) -> list[Any]:
    """``luigi.task.flatten(structure)``: the same list, in the same order, for any structure.

    luigi learns that a leaf (a target, a task) is not iterable by catching the TypeError of ``iter()``,
    whose message is formatted each time: a task run flattens its outputs about ten times (the outputs
    check, the commit, the run logs), a cached check flattens each task's requirements. Plain dicts,
    lists and tuples are walked here, and a leaf is returned at once when its class cannot be iterated
    (``is_leaf_type``); anything else (None, strings, dict subclasses, generators, iterable classes) is
    luigi's own ``flatten``.
    """
    kind = type(structure)
    if kind is dict:
        return _flattened(structure.values())
    if kind is list or kind is tuple:
        return _flattened(structure)
    if structure is not None and is_leaf_type(kind):
        return [structure]
    return cast("list[Any]", _luigi_flatten(structure))


def _flattened(values: Iterable[Any]) -> list[Any]:
    """``flatten`` of each of ``values``, joined; a value of a class known to be a leaf (``_LEAF_TYPES``) is taken
    as it is, without a call (a task's outputs are flattened about ten times per run)."""
    leaves: list[Any] = []
    for value in values:
        if _LEAF_TYPES.get(type(value)) and value is not None:
            leaves.append(value)
        else:
            leaves.extend(flatten(value))
    return leaves


def is_leaf_type(kind: type) -> bool:
    """Whether ``iter()`` refuses every instance of ``kind``: neither ``__iter__`` nor ``__getitem__`` (the
    sequence protocol) is defined for it (``__iter__ = None`` counts as undefined). Kept per class: asking a
    class for an attribute it lacks formats an AttributeError each time."""
    known = _LEAF_TYPES.get(kind)
    if known is None:
        known = getattr(kind, "__iter__", None) is None and not hasattr(kind, "__getitem__")
        if len(_LEAF_TYPES) >= _LEAF_TYPES_MAX:  # classes made in a loop: the cache must not keep them all
            _LEAF_TYPES.clear()
        _LEAF_TYPES[kind] = known
    return known


# Class -> whether its instances cannot be iterated (is_leaf_type); a few classes per process (targets, tasks).
_LEAF_TYPES: dict[type, bool] = {}
_LEAF_TYPES_MAX = 1024
