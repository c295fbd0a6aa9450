"""YAML values checked and normalised by their luigi parameter: the task equals the one built in Python."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kart_kedro import TaskOnKartDataset
from kart_kedro.param_values import ParameterValueError, checked_value
from kedro.io import DataCatalog, DatasetError
from kedro_test_tasks import Color, Typed

GOOD: list[tuple[str, Any, Any]] = [
    ("count", 3, 3),
    ("count", "3", 3),
    ("ratio", 2, 2.0),
    ("ratio", 0.25, 0.25),
    ("flag", True, True),
    ("flag", "true", True),
    ("name", "seven", "seven"),
    ("maybe", None, None),
    ("maybe", 4, 4),
    ("day", datetime.date(2024, 3, 1), datetime.date(2024, 3, 1)),
    ("day", "2024-03-01", datetime.date(2024, 3, 1)),
    ("moment", datetime.datetime(2024, 3, 1, 10, 30), datetime.datetime(2024, 3, 1, 10, 30)),
    ("items", [1, [2, 3]], (1, (2, 3))),
    ("mapping", {"b": 1, "a": [1]}, {"b": 1, "a": (1,)}),
    ("choice", "b", "b"),
    ("color", "BLUE", Color.BLUE),
]


@pytest.mark.parametrize(("name", "value", "expected"), GOOD)
def test_a_fitting_value_builds_the_same_task_as_python(name: str, value: Any, expected: Any, workspace: str) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Typed", {name: value}, workspace)
    assert getattr(dataset.task, name) == expected
    assert dataset.task.make_unique_id() == Typed(**{name: expected}).make_unique_id()


BAD: list[tuple[str, Any, str]] = [
    ("count", 7.5, "is an IntParameter and takes an int; got float 7.5"),
    ("count", True, "is an IntParameter and takes an int; got bool True"),
    ("count", None, "is an IntParameter and takes an int; got null (None)"),
    ("ratio", False, "is a FloatParameter and takes a number; got bool False"),
    ("flag", 1, "is a BoolParameter and takes a bool (true/false); got int 1"),
    ("name", 7, "is a Parameter and takes a string; got int 7. Quote it in YAML ('7')"),
    ("name", 1.1, "takes a string; got float 1.1"),
    ("day", datetime.datetime(2024, 1, 1, 5), "is a DateParameter and takes a date (2024-01-01); got datetime"),
    ("moment", datetime.date(2024, 1, 1), "takes a date and time (2024-01-01 10:00:00); got date"),
    ("items", {"a": 1}, "is a ListParameter and takes a list; got dict"),
    ("mapping", [1, 2], "is a DictParameter and takes a mapping; got list [1, 2]"),
    ("choice", "c", "cannot parse 'c'"),
    ("color", 1, "is an EnumParameter and takes the name of a member, as a string; got int 1"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_a_wrong_type_is_a_dataset_error_naming_entry_parameter_type_and_value(
    name: str, value: Any, message: str
) -> None:
    catalog = DataCatalog.from_config(
        {
            "typed_entry": {
                "type": "kart_kedro.TaskOnKartDataset",
                "task": "kedro_test_tasks.Typed",
                "params": {name: value},
            }
        }
    )
    with pytest.raises(DatasetError) as raised:
        catalog.get("typed_entry")
    text = str(raised.value)
    assert f"task 'kedro_test_tasks.Typed': parameter {name!r} " in text
    assert message in text
    assert "typed_entry" in text


def test_checked_value_raises_its_own_error_for_direct_use() -> None:
    count = dict(Typed.get_params())["count"]
    assert checked_value(count, "5") == 5
    with pytest.raises(ParameterValueError, match=r"takes an int; got float 2.5"):
        checked_value(count, 2.5)
