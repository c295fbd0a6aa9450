"""kart_core.lossy_parameters: significant values that their own string form gives back changed (attacker at3 A7)."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import warnings

import attrs
import luigi
import numpy as np
import pandas as pd
import pydantic
import pytest

import kart_core
from kart_core.errors import AmbiguousParameterWarning
from kart_core.param_roundtrip import ambiguous_parameters


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


# --- values whose string form stands for other values too: a build warns (attacker at15 F5) ---------------------


class ApScore(kart_core.TaskOnKart[int]):
    """Sums column x of a frame handed in as a plain luigi.Parameter (a notebook habit)."""

    data = luigi.Parameter()

    def run(self) -> None:
        self.dump(int(self.data.x.sum()))


class ApPlain(kart_core.TaskOnKart[str]):
    """Takes every kind of value whose string form is the whole value."""

    anything = luigi.Parameter()
    listed = luigi.ListParameter(default=[])
    mapped = luigi.DictParameter(default={})
    day = luigi.DateParameter(default=datetime.date(2024, 1, 1))
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(repr(self.anything))


class ApLeaf(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("leaf")


def _frames(n: int) -> list[pd.DataFrame]:
    first = pd.DataFrame({"x": np.arange(1000)})
    frames = [first]
    for i in range(1, n):
        other = first.copy()
        other.loc[500, "x"] = 10**6 + i  # differs in a row str() does not show
        frames.append(other)
    return frames


def test_a_dataframe_parameter_is_named_once_per_build(workspace: str) -> None:
    frames = _frames(3)
    assert len({ApScore(data=frame, workspace_directory=workspace).make_unique_id() for frame in frames}) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kart_core.build([ApScore(data=frame, workspace_directory=workspace) for frame in frames], reset_register=False)
    named = [w for w in caught if issubclass(w.category, AmbiguousParameterWarning)]
    assert len(named) == 1, [str(w.message) for w in named]
    message = str(named[0].message)
    assert message.startswith("ApScore.data holds a pandas.DataFrame whose string form")
    assert "shape (1000, 1)" in message and "two different values get one unique id" in message
    assert "TaskInstanceParameter" in message and "a file the task reads" in message
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        kart_core.build(ApScore(data=frames[0], workspace_directory=workspace), reset_register=False)
    assert len([w for w in again if issubclass(w.category, AmbiguousParameterWarning)]) == 1  # a new build says it


@pytest.mark.parametrize(
    "value",
    [5, "text", 2.5, [1, "a", [2.0]], {"a": 1, "b": [1, 2]}, datetime.date(2024, 5, 1), None, pathlib.Path("a/b")],
)
def test_values_whose_string_is_the_whole_value_are_not_named(workspace: str, value: object) -> None:
    upstream = ApLeaf(workspace_directory=workspace)
    task = ApPlain(
        anything=value,
        listed=[1, 2],
        mapped={"k": "v"},
        day=datetime.date(2024, 2, 2),
        upstream=upstream,
        workspace_directory=workspace,
    )
    assert ambiguous_parameters(task) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kart_core.build(task, reset_register=False)
    assert not [w for w in caught if issubclass(w.category, AmbiguousParameterWarning)]


def test_what_each_ambiguous_value_loses_is_said() -> None:
    class Opaque:
        pass

    found = {
        name: why
        for name, _, why in ambiguous_parameters(
            ApPlain(anything=np.arange(5000), listed=[Opaque()], mapped={"f": pd.Series([1.5])}, upstream=ApLeaf())
        )
    }
    assert found["anything"] == "a ndarray of shape (5000,) prints elided and rounded"
    assert found["listed"] == "a Opaque prints as its memory address"
    assert found["mapped"].startswith("a Series of shape (1,)")


@dataclasses.dataclass(frozen=True)
class ApConfig:
    """A config whose generated repr leaves out its ``secret_weights`` field."""

    name: str
    secret_weights: tuple[float, ...] = dataclasses.field(default=(1.0,), repr=False)


@attrs.define(frozen=True)
class ApAttrsConfig:
    name: str
    salt: int = attrs.field(default=0, repr=False)


class ApPydanticConfig(pydantic.BaseModel):
    name: str
    salt: int = pydantic.Field(default=0, repr=False)


@dataclasses.dataclass(frozen=True)
class ApNested:
    """A config holding a config whose repr leaves out a field (attacker at18 I2)."""

    name: str
    inner: ApConfig


@attrs.define(frozen=True)
class ApAttrsCustomRepr:
    name: str
    salt: int = attrs.field(default=0, repr=lambda value: "<salt>")


@dataclasses.dataclass(frozen=True)
class ApShortStr:
    """A config whose own __str__ prints its name only (attacker at18 I2)."""

    name: str
    lr: float = 0.1

    def __str__(self) -> str:
        return self.name


class ApSecret(pydantic.BaseModel):
    url: str
    password: pydantic.SecretStr


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (ApConfig("a", (1.0,)), ApConfig("a", (2.0,))),
        (ApAttrsConfig("a", 1), ApAttrsConfig("a", 2)),
        (ApPydanticConfig(name="a", salt=1), ApPydanticConfig(name="a", salt=2)),
        ([ApConfig("a", (1.0,))], [ApConfig("a", (2.0,))]),
        (ApNested("n", ApConfig("a", (1.0,))), ApNested("n", ApConfig("a", (2.0,)))),
        (ApAttrsCustomRepr("a", 1), ApAttrsCustomRepr("a", 2)),
        (ApSecret(url="db://h", password="prod"), ApSecret(url="db://h", password="test")),
        (ApShortStr("a", 0.1), ApShortStr("a", 0.2)),
    ],
    ids=["dataclass", "attrs", "pydantic", "in a list", "nested", "attrs custom repr", "pydantic secret", "own str"],
)
def test_a_value_whose_repr_leaves_out_a_field_is_named(workspace: str, first: object, second: object) -> None:
    """Attacker at15 F5's remainder: two configs differing only in a repr=False field share one unique id and were
    not named."""
    tasks = [ApPlain(anything=value, upstream=ApLeaf(), workspace_directory=workspace) for value in (first, second)]
    assert tasks[0].make_unique_id() == tasks[1].make_unique_id()  # gokart's id: the string form, unchanged
    ((name, _, why),) = ambiguous_parameters(tasks[0])
    assert name == "anything"
    assert ("secret_weights" in why or "salt" in why or "own __str__" in why) or why == "a SecretStr prints masked", why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kart_core.build(tasks, reset_register=False)
    named = [str(w.message) for w in caught if issubclass(w.category, AmbiguousParameterWarning)]
    assert len(named) == 1 and named[0].startswith("ApPlain.anything holds a "), named


def test_a_config_whose_repr_shows_every_field_is_not_named() -> None:
    @dataclasses.dataclass(frozen=True)
    class Shown:
        name: str
        weights: tuple[float, ...] = (1.0,)

    assert ambiguous_parameters(ApPlain(anything=Shown("a"), upstream=ApLeaf())) == []
    assert ambiguous_parameters(ApPlain(anything=ApAttrsConfig, upstream=ApLeaf())) == []  # a class, not a value
