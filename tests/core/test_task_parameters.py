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


class _Listed(kart_core.TaskOnKart):
    n = luigi.IntParameter()
    items = luigi.ListParameter(default=())


def test_kart_by_values_finds_luigis_instance_by_the_values_given() -> None:
    """Inside a build's frozen config: the object luigi's cache holds for those values, found again without it."""
    with kart_core.config_frozen():
        first = _Cached.kart_by_values(n=1, payload="x")
        assert first is _Cached(n=1, payload="x")  # luigi's own look-up agrees
        assert _Cached.kart_by_values(n=1, payload="x") is first
        other = _Cached.kart_by_values(n=2, payload="x")
        assert other is not first and (other.n, other.payload) == (2, "x")
        assert _Cached.kart_by_values(n=1) is _Cached(n=1) and _Cached(n=1).payload == ""
        cache = Register._Register__instance_cache  # type: ignore[attr-defined]
        assert _Cached(n=1, payload="x") in cache.values()


def test_kart_by_values_forgets_with_luigis_cache() -> None:
    """Emptying luigi's instance cache (replaced, or emptied in place on a config change) empties the look-up too."""
    with kart_core.config_frozen():
        first = _Cached.kart_by_values(n=1, payload="x")
        Register.clear_instance_cache()
        second = _Cached.kart_by_values(n=1, payload="x")
        assert second is not first and second is _Cached(n=1, payload="x")
        Register._Register__instance_cache.clear()  # type: ignore[attr-defined]  # what kart does on a config change
        third = _Cached.kart_by_values(n=1, payload="x")
        assert third is not second and third is _Cached(n=1, payload="x")


def test_kart_by_values_follows_a_config_change() -> None:
    """Another build's config gives other defaults: the task found is the one luigi resolves under it."""
    config = luigi.configuration.get_config()
    with kart_core.config_frozen():
        plain = _Cached.kart_by_values(n=1)
    assert plain.payload == ""
    config.add_section("_Cached")
    config.set("_Cached", "payload", "from the config")
    try:
        with kart_core.config_frozen():
            configured = _Cached.kart_by_values(n=1)
            assert configured.payload == "from the config" and configured is _Cached(n=1)
    finally:
        config.remove_section("_Cached")
    with kart_core.config_frozen():
        assert _Cached.kart_by_values(n=1).payload == ""


def test_kart_by_values_without_a_frozen_config_disabled_cache_or_unhashable_values_is_the_constructor() -> None:
    assert _Cached.kart_by_values(n=3) is _Cached(n=3)  # outside a build: the plan of the config read now
    with kart_core.config_frozen():
        listed = _Listed.kart_by_values(n=1, items=[1, 2])  # a list: not hashable as given
        assert listed is _Listed(n=1, items=(1, 2)) and listed.items == (1, 2)
        Register.disable_instance_cache()
        try:
            assert _Cached.kart_by_values(n=1) is not _Cached.kart_by_values(n=1)
        finally:
            Register.clear_instance_cache()
