"""KartRegister: luigi's instance cache, looked up once per new task, with luigi's answers."""

from __future__ import annotations

import warnings
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


class _OwnInit(kart_core.TaskOnKart):
    """A class with its own constructor: made luigi's way (``type.__call__``), its ``__init__`` called."""

    n = luigi.IntParameter()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.made_by_own_init = True


class _Doubled(luigi.IntParameter):
    def normalize(self, x: object) -> object:
        return 2 * int(x)  # type: ignore[call-overload]


class _Normalized(kart_core.TaskOnKart):
    first = _Doubled()
    label = luigi.Parameter(default=3, significant=False)  # a default luigi's check warns about, at every new task
    names = luigi.ListParameter(default=[])


def _made_luigis_way(cls: type, **kwargs: object) -> object:
    """A task made by ``type.__call__`` (luigi's ``__init__``), with luigi's cache off for the call."""
    Register.disable_instance_cache()
    try:
        return cls(**kwargs)
    finally:
        Register.clear_instance_cache()


def test_a_task_made_directly_is_the_one_luigis_way_makes() -> None:
    """The direct path (no second resolution in ``__init__``) gives the same attributes in the same order."""
    luigis = _made_luigis_way(_Cached, n=4, payload="p")
    direct = _Cached(n=4, payload="p")
    assert _Cached.__dict__["_kart_direct"][0] is not None
    assert list(vars(direct)) == list(vars(luigis))
    for name, value in vars(luigis).items():
        if name in ("_kart_cache", "_kart_rerun"):
            assert type(vars(direct)[name]) is type(value)
        else:
            assert vars(direct)[name] == value, name
    assert direct.kart_rerun_state().armed is False and _Cached(n=4, payload="p", rerun=True).kart_rerun_state().armed
    assert direct.make_unique_id() == luigis.make_unique_id()  # type: ignore[attr-defined]
    assert "_initialize" not in direct.get_own_code()  # kept in a tuple: not a method of the class


def test_a_class_with_its_own_init_is_made_luigis_way() -> None:
    task = _OwnInit(n=1)
    assert _OwnInit.__dict__["_kart_direct"] == (None,)
    assert task.made_by_own_init and task.n == 1 and _OwnInit(n=1) is task


def test_direct_tasks_normalize_and_check_their_values_as_luigi_does() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        task = _Normalized(first=2, names=["a"])
        assert (task.first, task.names) == (4, ("a",))  # the parameter's normalize; lists become tuples
        assert _Normalized(first=2, names=("a",)) is task  # the same values: luigi's cached object, no check again
        _Normalized(first=5)
    # luigi checks each new task's values in __init__: the default 3 of a luigi.Parameter warns for both new tasks.
    assert [str(w.message) for w in record] == ['Parameter "label" with value "3" is not of type string.'] * 2
    with pytest.raises(kart_core.errors.ParameterTypeError, match=r"^_WithTask: "):
        _WithTask(upstream="not a task")


class _WithTask(kart_core.TaskOnKart):
    upstream = kart_core.TaskInstanceParameter()


class _Shouting(luigi.Parameter):
    """A parameter class with a ``__get__`` of its own: its tasks are read (and made) through it."""

    def __get__(self, instance: object, owner: object) -> object:
        value = super().__get__(instance, owner)
        return value.upper() if isinstance(value, str) else value


class _WithOwnGetter(kart_core.TaskOnKart):
    word = _Shouting()


class _BadStr:
    def __str__(self) -> str:
        return 5  # type: ignore[return-value]


def test_to_str_params_reads_values_plainly_only_where_the_parameters_do() -> None:
    assert _Cached(n=3, payload="p").to_str_params(only_significant=True) == {"n": "3", "payload": "p"}
    task = _WithOwnGetter(word="quiet")
    assert _WithOwnGetter.__dict__["_kart_stores_plainly"] is False and _WithOwnGetter.__dict__["_kart_direct"] == (
        None,
    )
    assert task.word == "QUIET" and task.to_str_params(only_significant=True) == {"word": "QUIET"}
    bad = _Cached(n=_BadStr())  # type: ignore[arg-type]  # an IntParameter checks no value
    with pytest.raises(kart_core.errors.ParameterTypeError, match=r"_Cached\.n: the value .* has no string form"):
        bad.to_str_params(only_significant=True)


class _Patched(kart_core.TaskOnKart):
    n = luigi.IntParameter()


def test_a_constructor_replaced_after_the_first_task_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting __init__ (or get_param_values ...) on the class or a base after its first task decides again."""
    _Patched(n=1)
    assert _Patched.__dict__["_kart_direct"][0] is not None
    made: list[int] = []
    original = kart_core.TaskOnKart.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        made.append(1)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kart_core.TaskOnKart, "__init__", counting)
    assert "_kart_direct" not in _Patched.__dict__  # forgotten for the subclass too
    assert _Patched(n=2).n == 2 and made == [1]
    monkeypatch.undo()
    assert _Patched(n=3).n == 3 and made == [1] and _Patched.__dict__["_kart_direct"][0] is not None
