"""kart_kedro.node_cache: a KedroNodeRun's list parameters freeze as luigi's ListParameter does.

Its string lists (inputs, outputs, upstream) skip luigi's generic freezing (node_cache._Strings); its
unique id, its parameters' string form and luigi's instance cache must stay what they were, or every
cached node run would run again.
"""

from __future__ import annotations

from typing import Any

import luigi
import luigi.task_register
import pytest
from kart_kedro.node_cache import KedroNodeRun

import kart_core

FIELDS: dict[str, Any] = {
    "project": "p",
    "node_name": "n1",
    "code": "c" * 32,
    "parameters": "d" * 32,
    "data": "e" * 32,
    "inputs": ["a", "params:x", "\u00fc"],
    "outputs": ["b"],
    "upstream": ["xxh3_128:" + "f" * 32],
    "workspace_directory": "/nowhere",
}


def test_a_node_run_keeps_its_unique_id_and_string_parameters() -> None:
    task = KedroNodeRun(**FIELDS)
    assert task.make_unique_id() == "9dac58c4302d5ce8173810df07d2aab9"  # computed by kart before 2026-12-01
    strings = task.to_str_params(only_significant=True)
    reference = luigi.ListParameter()
    for name in ("inputs", "outputs", "upstream"):
        assert strings[name] == reference.serialize(reference.normalize(FIELDS[name]))
    assert strings["inputs"] == '["a", "params:x", "\\u00fc"]'
    assert task.inputs == ("a", "params:x", "\u00fc")
    assert KedroNodeRun(**{**FIELDS, "inputs": tuple(FIELDS["inputs"])}) is task  # luigi's instance cache


def test_values_other_than_string_lists_go_through_luigi() -> None:
    parameter = KedroNodeRun.inputs
    reference = luigi.ListParameter()
    for value in ([1, [2, "x"]], [{"k": ["v"]}], ("a", 1)):
        assert parameter.normalize(value) == reference.normalize(value)
        assert parameter.serialize(parameter.normalize(value)) == reference.serialize(reference.normalize(value))


def test_string_lists_serialize_as_luigi_s_list_parameter_does() -> None:
    """The fast path (json's default encoder) writes luigi's text for any tuple of strings, escapes included."""
    parameter = KedroNodeRun.inputs
    reference = luigi.ListParameter()
    for value in ((), ("",), ('q"uote', "back\\slash", "tab\tnew\nline", "\u00fc\u2603\U0001f600", "params:a b")):
        assert parameter.serialize(parameter.normalize(value)) == reference.serialize(reference.normalize(value))


def _computed_by_kart(task: KedroNodeRun) -> tuple[str, dict[str, str]]:
    """The unique id and significant strings kart_core computes for ``task`` (its caches dropped first)."""
    task.task_unique_id = None
    task.__dict__.pop("_kart_significant_str_params", None)
    return task.make_unique_id(), task.to_str_params(only_significant=True)


def test_keyed_node_runs_take_kart_s_unique_id_and_strings() -> None:
    """KedroNodeRun.keyed computes the id itself (without luigi's walk): the same id and strings as kart's."""
    variants: list[dict[str, Any]] = [
        FIELDS,
        {**FIELDS, "node_name": "keyed-1", "inputs": [], "outputs": [], "upstream": []},
        {**FIELDS, "node_name": "keyed-2", "inputs": ('q"uote', "back\\slash", "tab\tnl\n", "\U0001f600")},
        {key: value for key, value in FIELDS.items() if key not in ("project", "upstream")} | {"node_name": "keyed-3"},
    ]
    for fields in variants:
        task = KedroNodeRun.keyed(**fields)
        if fields is not FIELDS:  # a new instance: keyed set its id (kart's constructor leaves it for make_unique_id)
            assert task.task_unique_id is not None
        unique_id, strings = task.make_unique_id(), task.to_str_params(only_significant=True)
        assert (unique_id, strings) == _computed_by_kart(task)
    assert KedroNodeRun.keyed(**FIELDS).make_unique_id() == "9dac58c4302d5ce8173810df07d2aab9"


def test_keyed_finds_a_node_run_of_this_process_by_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a run's frozen config, ``keyed`` with tuples hands back luigi's instance for those values (a second
    KartRunner run in one process finds the first run's node runs) without resolving its ~29 parameters again,
    with the id a new object computes."""
    fields = {**FIELDS, "node_name": "keyed-again", "inputs": ("a", "b"), "outputs": ("c",), "upstream": ("u",)}
    resolved: list[str] = []
    resolve = KedroNodeRun.get_param_values.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, params: Any, args: Any, kwargs: Any) -> Any:
        resolved.append(kwargs.get("node_name", ""))
        return resolve(cls, params, args, kwargs)

    monkeypatch.setattr(KedroNodeRun, "get_param_values", classmethod(counted))
    with kart_core.config_frozen():
        first = KedroNodeRun.keyed(**fields)
        assert resolved == ["keyed-again", "keyed-again"]  # luigi's instance cache key, then __init__
        assert KedroNodeRun.keyed(**fields) is first
        assert resolved == ["keyed-again", "keyed-again"]  # found by the values: nothing resolved
        assert KedroNodeRun(**{**fields, "inputs": ["a", "b"]}) is first  # luigi's look-up: the same object
        other = KedroNodeRun.keyed(**{**fields, "upstream": ("v",)})
        assert other is not first and other.upstream == ("v",)
    luigi.task_register.Register.clear_instance_cache()
    with kart_core.config_frozen():
        fresh = KedroNodeRun.keyed(**fields)
    assert fresh is not first and fresh.make_unique_id() == first.make_unique_id()
    assert (fresh.make_unique_id(), fresh.to_str_params(only_significant=True)) == _computed_by_kart(fresh)


def test_keyed_leaves_other_values_to_kart() -> None:
    """A value that is not a string list goes through luigi's serialization (and the id kart computes)."""
    task = KedroNodeRun.keyed(**{**FIELDS, "node_name": "keyed-odd", "inputs": [1, ["x"]]})
    strings = task.to_str_params(only_significant=True)
    assert strings["inputs"] == '[1, ["x"]]'
    assert (task.make_unique_id(), strings) == _computed_by_kart(task)
