"""KartRegister: luigi's instance cache, looked up once per new task, with luigi's answers."""

from __future__ import annotations

from collections.abc import Iterator

import luigi
import pytest
from luigi.task_register import Register

import kart_core
from kart_core.task_parameters import KartRegister


class _Cached(kart_core.TaskOnKart):
    n = luigi.IntParameter()
    payload = luigi.Parameter(default="")


class _NotComparable:
    """Hashable, but its == raises TypeError (a look-up that meets an equal hash compares)."""

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        raise TypeError("not comparable")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    Register.clear_instance_cache()
    yield
    Register.clear_instance_cache()


def test_task_classes_use_kart_register_on_luigis_cache() -> None:
    assert type(_Cached) is KartRegister and isinstance(_Cached, Register)
    first = _Cached(n=1)
    assert _Cached(n=1) is first and _Cached(n=1, payload="") is first  # the same resolved values: the same object
    assert _Cached(n=2) is not first
    key = (_Cached, tuple(_Cached.get_param_values(_Cached.get_params(), (), {"n": 1})))
    assert Register._Register__instance_cache[key] is first  # type: ignore[attr-defined]


def test_a_cleared_or_disabled_cache_gives_new_objects() -> None:
    first = _Cached(n=1)
    Register.clear_instance_cache()
    second = _Cached(n=1)
    assert second is not first and second.n == 1
    Register.disable_instance_cache()
    try:
        assert _Cached(n=1) is not _Cached(n=1)
    finally:
        Register.clear_instance_cache()


def test_an_unhashable_value_gives_a_new_object_each_time() -> None:
    with pytest.warns(UserWarning, match="not of type string"):
        first = _Cached(n=1, payload={"a": [1]})
        second = _Cached(n=1, payload={"a": [1]})
    assert first is not second and first.payload == {"a": [1]}


def test_a_value_whose_comparison_raises_raises_as_in_luigi() -> None:
    with pytest.warns(UserWarning, match="not of type string"):
        _Cached(n=1, payload=_NotComparable())
        with pytest.raises(TypeError, match="not comparable"):
            _Cached(n=1, payload=_NotComparable())
