"""kart_core.structure: the shapes output() and requires() return, flattened as luigi flattens them."""

from __future__ import annotations

import collections
from typing import Any

import luigi
import pytest
from luigi.task import flatten as luigi_flatten

from kart_core.structure import flatten, is_leaf_type


class _Leaf:
    """A target-like object: not iterable."""


class _Sequence:
    """Iterable through the old sequence protocol only (``__getitem__``): luigi walks it."""

    def __getitem__(self, index: int) -> int:
        if index >= 2:
            raise IndexError(index)
        return index


class _NotIterable:
    """``__iter__ = None`` marks a class not iterable although it names the method."""

    __iter__ = None


class _Task(luigi.Task):
    pass


def _generator() -> Any:
    yield _LEAF
    yield [_LEAF, "s"]


_LEAF = _Leaf()
_NONE_ITER = _NotIterable()
_SEQUENCE = _Sequence()
_TASK = _Task()

SHAPES = [
    None,
    _LEAF,
    _TASK,
    "a string",
    42,
    [],
    {},
    [_LEAF, (_TASK, [None, {"k": _LEAF}]), "s"],
    {"b": _LEAF, "a": [_TASK, _LEAF], "c": None},
    collections.OrderedDict([("x", _LEAF), ("y", (_TASK,))]),
    _SEQUENCE,
    _NONE_ITER,
    {1, 2},
]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"shape{index}" for index in range(len(SHAPES))])
def test_flatten_gives_luigis_answer(shape: Any) -> None:
    expected = luigi_flatten(shape)
    assert flatten(shape) == expected
    assert [type(item) for item in flatten(shape)] == [type(item) for item in expected]


def test_flatten_walks_a_generator_as_luigi_does() -> None:
    assert flatten(_generator()) == luigi_flatten(_generator()) == [_LEAF, _LEAF, "s"]


def test_leaf_types_are_the_classes_iter_refuses() -> None:
    assert is_leaf_type(_Leaf) and is_leaf_type(_Task) and is_leaf_type(_NotIterable) and is_leaf_type(int)
    assert not is_leaf_type(_Sequence) and not is_leaf_type(str) and not is_leaf_type(dict)
    for kind, sample in ((_Leaf, _LEAF), (_Task, _TASK), (_NotIterable, _NONE_ITER)):
        with pytest.raises(TypeError):
            iter(sample)
        assert is_leaf_type(kind)
