"""Golden values for the unique-id recipe (kart_core.hashing), without any task objects."""

from __future__ import annotations

import hashlib

from kart_core.hashing import decode_task_reference, serialize_task_reference, short_id, unique_id_from_parts


def test_seed_example_id_matches_the_tutorial() -> None:
    assert unique_id_from_parts([], {}, "Example") == "8441c59b5ce0113396d53509f19371fb"


def test_bare_task_on_kart_id() -> None:
    assert unique_id_from_parts([], {}, "TaskOnKart") == "7757badf81370beccb26f204c5bddba5"


def test_recipe_is_md5_of_the_list_repr() -> None:
    expected = hashlib.md5(str(["abc", {"a": "1", "b": "x"}, "Task", "code"]).encode()).hexdigest()
    assert unique_id_from_parts(["abc"], {"a": "1", "b": "x"}, "Task", "code") == expected


def test_parameter_order_changes_the_id() -> None:
    assert unique_id_from_parts([], {"a": "1", "b": "2"}, "T") != unique_id_from_parts([], {"b": "2", "a": "1"}, "T")


def test_task_reference_round_trip() -> None:
    text = serialize_task_reference("Load", {"day": "2024-01-01"})
    assert text.startswith('{"type": "Load", "params": "')
    assert decode_task_reference(text) == {"type": "Load", "params": {"day": "2024-01-01"}}


def test_short_id() -> None:
    assert short_id("8441c59b5ce0113396d53509f19371fb") == "8441c59b"
