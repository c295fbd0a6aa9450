"""A config whose string form does not show every field is named by AmbiguousParameterWarning (attacker at19 J9).

gokart's unique id covers a plain ``luigi.Parameter`` as ``str(value)``. A dataclass with its own short ``__repr__``
(a label for logs), a ``pydantic.v1`` model holding a ``SecretStr`` or a ``repr=False`` field, an attrs class or a
``NamedTuple`` with its own ``__repr__``, a dataclass holding one of these, an object of a project class with its own
short ``__repr__``: two values that differ print the same, share one id, and a build hands the second the first's
output. kart keeps gokart's id and names the parameter; a value whose string shows every field is not named.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import warnings

import attrs
import luigi
import pydantic
import pydantic.v1
import pytest

import kart_core
from kart_core.errors import AmbiguousParameterWarning
from kart_core.param_roundtrip import ambiguous_parameters


class Train(kart_core.TaskOnKart[float]):
    """Trains with the learning rate its config holds (a config passed as a plain luigi.Parameter)."""

    config = luigi.Parameter()

    def run(self) -> None:
        config = self.config
        self.dump(float(config["learning_rate"] if isinstance(config, dict) else config.learning_rate))


@dataclasses.dataclass(frozen=True)
class LabelledConfig:
    name: str
    learning_rate: float

    def __repr__(self) -> str:  # a short label for logs
        return f"LabelledConfig({self.name})"


@dataclasses.dataclass(frozen=True)
class FaithfulConfig:
    name: str
    learning_rate: float

    def __repr__(self) -> str:  # its own, but every field shows
        return f"FaithfulConfig[{self.name!r} @ {self.learning_rate}]"


class V1Secret(pydantic.v1.BaseModel):
    learning_rate: float
    token: pydantic.v1.SecretStr


class V1Hidden(pydantic.v1.BaseModel):
    name: str
    learning_rate: float = pydantic.v1.Field(0.1, repr=False)


class V1Plain(pydantic.v1.BaseModel):
    name: str
    learning_rate: float


@attrs.define(frozen=True, repr=False)
class AttrsLabelled:
    name: str
    learning_rate: float

    def __repr__(self) -> str:
        return f"AttrsLabelled({self.name})"


class TupleLabelled(typing.NamedTuple):
    name: str
    learning_rate: float

    def __repr__(self) -> str:
        return f"TupleLabelled({self.name})"


class TuplePlain(typing.NamedTuple):
    name: str
    learning_rate: float


@attrs.define(frozen=True)
class AttrsPlain:
    name: str
    learning_rate: float


@dataclasses.dataclass(frozen=True)
class Outer:
    """A config holding a config whose own repr is short: the outer repr shows the inner's label only."""

    stage: str
    inner: LabelledConfig

    @property
    def learning_rate(self) -> float:
        return self.inner.learning_rate


class Plain:
    """An object of a project class with its own short repr."""

    def __init__(self, name: str, learning_rate: float) -> None:
        self.name = name
        self.learning_rate = learning_rate

    def __repr__(self) -> str:
        return f"Plain({self.name})"


@dataclasses.dataclass(repr=False)
class NoRepr:
    learning_rate: float


class DictLabelled(dict):
    """A dict subclass with its own short repr (attacker at20 K13)."""

    def __repr__(self) -> str:
        return f"DictLabelled({self['name']})"

    @property
    def learning_rate(self) -> float:
        return float(self["learning_rate"])


class DictFaithful(dict):
    def __repr__(self) -> str:  # its own, but every item shows
        return f"DictFaithful({dict.__repr__(self)})"


class V2Private(pydantic.BaseModel):
    """A pydantic v2 model whose private attribute its repr never shows (attacker at20 K13)."""

    learning_rate: float
    _run: str = pydantic.PrivateAttr(default="")


def _v2_private(run: str) -> V2Private:
    model = V2Private(learning_rate=0.1)
    model._run = run
    return model


class Rate(float):
    """A float subclass printing a label, not its number."""

    def __repr__(self) -> str:
        return "Rate"

    @property
    def learning_rate(self) -> float:
        return float(self)


class Stage(enum.Enum):
    BASE = 0.1
    FINE = 0.01

    def __str__(self) -> str:  # its own, showing the member's name
        return f"stage {self.name}"

    @property
    def learning_rate(self) -> float:
        return float(self.value)


AMBIGUOUS = {
    "dataclass with its own short __repr__": (
        LabelledConfig("base", 0.1),
        LabelledConfig("base", 0.01),
        "own __repr__",
    ),
    "pydantic.v1 model with a SecretStr": (
        V1Secret(learning_rate=0.1, token="a"),
        V1Secret(learning_rate=0.1, token="b"),
        "masked",
    ),
    "pydantic.v1 model with a repr=False field": (
        V1Hidden(name="base", learning_rate=0.1),
        V1Hidden(name="base", learning_rate=0.01),
        "learning_rate",
    ),
    "attrs class with its own __repr__": (AttrsLabelled("base", 0.1), AttrsLabelled("base", 0.01), "own __repr__"),
    "NamedTuple with its own __repr__": (TupleLabelled("base", 0.1), TupleLabelled("base", 0.01), "own __repr__"),
    "dataclass holding one": (
        Outer("s", LabelledConfig("base", 0.1)),
        Outer("s", LabelledConfig("base", 0.01)),
        "own __repr__",
    ),
    "project object with its own __repr__": (Plain("base", 0.1), Plain("base", 0.01), "own __repr__"),
    # attacker at20 K13
    "dict subclass with its own __repr__": (
        DictLabelled(name="base", learning_rate=0.1),
        DictLabelled(name="base", learning_rate=0.01),
        "without its item(s) at key(s) 'name', 'learning_rate'",
    ),
    "SimpleNamespace holding a config with its own short __repr__": (
        types.SimpleNamespace(learning_rate=0.1, inner=LabelledConfig("base", 0.1)),
        types.SimpleNamespace(learning_rate=0.1, inner=LabelledConfig("base", 0.01)),
        "a LabelledConfig prints through its own __repr__",
    ),
    "pydantic v2 model with a private attribute that differs": (_v2_private("a"), _v2_private("b"), "_run"),
    "float subclass with its own __repr__": (Rate(0.1), Rate(0.01), "own __repr__ (Rate.__repr__) as 'Rate'"),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_two_configs_that_print_the_same_are_named(workspace: str, case: str) -> None:
    first, second, why_part = AMBIGUOUS[case]
    tasks = [Train(config=value, workspace_directory=workspace) for value in (first, second)]
    assert tasks[0].make_unique_id() == tasks[1].make_unique_id()  # gokart's id: the string form, kept
    ((name, _, why),) = ambiguous_parameters(tasks[0])
    assert name == "config" and why_part in why, why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kart_core.build(tasks[0], reset_register=False)
        served = kart_core.build(tasks[1], reset_register=False)
    assert served == first.learning_rate  # what gokart's id gives; the warning is what kart adds
    named = [str(w.message) for w in caught if issubclass(w.category, AmbiguousParameterWarning)]
    assert len(named) == 2 and named[0] == named[1], named  # once per task class and parameter in each build
    message = named[0]
    assert message.startswith(f"Train.config holds a {type(first).__module__}.{type(first).__qualname__} ")
    assert "two different values get one unique id" in message
    assert "give its class a __repr__ that shows every field" in message and "serialize()" in message


def test_the_own_repr_is_named_with_the_fields_it_leaves_out() -> None:
    ((_, _, why),) = ambiguous_parameters(Train(config=LabelledConfig("base", 0.1)))
    assert why == (
        "a LabelledConfig prints through its own __repr__ (LabelledConfig.__repr__) as 'LabelledConfig(base)', "
        "without its field(s) learning_rate"
    )


def test_an_object_printed_by_its_address_is_named() -> None:
    """``@dataclass(repr=False)``: object's repr, an address another process may give another value."""
    ((_, _, why),) = ambiguous_parameters(Train(config=NoRepr(0.1)))
    assert why == "a NoRepr prints as its memory address"


@pytest.mark.parametrize(
    "value",
    [
        FaithfulConfig("base", 0.1),
        V1Plain(name="base", learning_rate=0.1),
        TuplePlain("base", 0.1),
        AttrsPlain("base", 0.1),
        {"name": "base", "learning_rate": 0.1},
        DictFaithful(name="base", learning_rate=0.1),
        types.SimpleNamespace(name="base", learning_rate=0.1),
        V2Private(learning_rate=0.1),
        Stage.FINE,
    ],
    ids=[
        "own faithful __repr__",
        "pydantic.v1 model",
        "NamedTuple",
        "attrs class",
        "a dict",
        "dict subclass with a faithful __repr__",
        "SimpleNamespace of plain values",
        "pydantic v2 model, private attribute at its default",
        "enum member printing its name",
    ],
)
def test_a_value_whose_string_shows_every_field_is_not_named(workspace: str, value: object) -> None:
    task = Train(config=value, workspace_directory=workspace)
    assert ambiguous_parameters(task) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kart_core.build(task, reset_register=False)
    assert not [w for w in caught if issubclass(w.category, AmbiguousParameterWarning)]


class ConfigParameter(luigi.Parameter):
    """A dedicated parameter type: its string form, which the id covers, writes every field."""

    def serialize(self, x: typing.Any) -> str:
        return f"{x.name}:{x.learning_rate!r}"


class TrainTyped(kart_core.TaskOnKart[float]):
    config = ConfigParameter()

    def run(self) -> None:
        self.dump(float(self.config.learning_rate))


def test_a_parameter_type_with_its_own_serialize_is_trusted(workspace: str) -> None:
    tasks = [TrainTyped(config=LabelledConfig("base", lr), workspace_directory=workspace) for lr in (0.1, 0.01)]
    assert tasks[0].make_unique_id() != tasks[1].make_unique_id()
    assert ambiguous_parameters(tasks[0]) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [kart_core.build(task, reset_register=False) for task in tasks] == [0.1, 0.01]
    assert not [w for w in caught if issubclass(w.category, AmbiguousParameterWarning)]
