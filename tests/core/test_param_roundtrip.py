"""kart_core.lossy_parameters: significant values that their own string form gives back changed (attacker at3 A7)."""

from __future__ import annotations

import datetime
import pathlib
import warnings

import luigi
import numpy as np
import pytest

import kart_core


class Up(kart_core.TaskOnKart[int]):
    size = luigi.IntParameter(default=0)


class Many(kart_core.TaskOnKart[int]):
    text = luigi.Parameter(default=None)
    count = luigi.IntParameter(default=0)
    ratio = luigi.FloatParameter(default=0.0)
    items = luigi.ListParameter(default=[])
    mapping = luigi.DictParameter(default={})
    day = luigi.DateParameter(default=datetime.date(2024, 1, 1))
    span = luigi.TimeDeltaParameter(default=datetime.timedelta(days=1))
    up = kart_core.TaskInstanceParameter(default=Up())
    hidden = luigi.Parameter(default="", significant=False)


def _many(**values: object) -> Many:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # luigi warns "is not of type string": that is the case under test
        return Many(**values)


@pytest.mark.parametrize(
    ("values", "parsed", "suggestion"),
    [
        ({"text": 5}, "5", "luigi.IntParameter"),
        ({"text": 0.5}, "0.5", "luigi.FloatParameter"),
        ({"text": True}, "True", "luigi.BoolParameter"),
        ({"text": {"a": 1}}, "{'a': 1}", "luigi.DictParameter"),
        ({"text": datetime.date(2024, 1, 2)}, "2024-01-02", "luigi.DateParameter"),
        ({"text": pathlib.Path("/data/x")}, "/data/x", "luigi.PathParameter"),
        # The parameter is of the right type, but its string form drops the fraction of a second.
        ({"span": datetime.timedelta(seconds=1.5)}, datetime.timedelta(seconds=1), None),
        # numpy compares float32(0.1) == 0.1 at float32 precision, but run() computes with 0.10000000149011612
        # while the id covers '0.1' (attacker at7 E1).
        ({"ratio": np.float32(0.1)}, 0.1, None),
        ({"ratio": np.float16(0.1)}, 0.1, None),
    ],
)
def test_a_value_its_parameter_gives_back_changed_is_named(values: dict, parsed: object, suggestion: str) -> None:
    ((name, value),) = values.items()
    (found,) = kart_core.lossy_parameters(_many(**values))
    assert (found.name, found.parsed, found.suggestion) == (name, parsed, suggestion)
    assert found.declared is type(dict(Many.get_params())[name])


@pytest.mark.parametrize(
    "values",
    [
        {},  # defaults (text=None): a task made from strings without them gets the same default
        {"text": None},
        {"text": "5"},
        {"count": np.int64(3), "ratio": 1},  # 1 == 1.0; numpy integers are integers
        {"ratio": float("nan"), "items": [float("nan"), [1, 2]]},  # NaN is NaN, also inside lists
        {"ratio": np.float64(0.1)},
        {"mapping": {"a": [1, {"b": 2}]}},  # a dict against luigi's FrozenOrderedDict
        {"day": datetime.datetime(2024, 1, 2, 3)},  # normalised to a date, which parses back
        {"up": Up(size=2, workspace_directory="/elsewhere")},  # a task parameter is a task of its own
        {"hidden": 5},  # insignificant: not in the unique id
    ],
)
def test_values_that_survive_their_string_form_are_not_named(values: dict) -> None:
    assert kart_core.lossy_parameters(_many(**values)) == []


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ({"items": [np.int64(2)]}, r"\(np.int64\(2\),\)"),
        ({"mapping": {"a": {1, 2}}}, r"'a': \{1, 2\}"),
    ],
)
def test_a_value_without_a_string_form_names_the_class_parameter_and_fix(values: dict, shown: str) -> None:
    # A bare "TypeError: Object of type int64 is not JSON serializable" named nothing (attacker at7 E2);
    # it stays a TypeError, as luigi's is.
    ((name, _),) = values.items()
    match = rf"Many\.{name}: the value .*{shown}.* has no string form .*not JSON serializable.*\.tolist\(\)"
    with pytest.raises(kart_core.errors.ParameterTypeError, match=match) as raised:
        kart_core.lossy_parameters(_many(**values))
    assert isinstance(raised.value, TypeError)
    with pytest.raises(kart_core.errors.ParameterTypeError, match=match):
        _many(**values).make_unique_id()
