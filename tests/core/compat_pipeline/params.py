"""One task per luigi / gokart parameter type; each dumps its parameter values as they were parsed."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

import luigi
import luigi.date_interval
from luigi.parameter import ParameterVisibility

from compat_pipeline.impl import gokart

JST = datetime.timezone(datetime.timedelta(hours=9))


class Color(enum.Enum):
    """An enum for EnumParameter and EnumListParameter."""

    RED = 1
    GREEN = 2
    BLUE = 3


@dataclasses.dataclass(frozen=True)
class Window:
    """A value for SerializableParameter: a range of days."""

    start: int
    end: int

    def gokart_serialize(self) -> str:
        """``start:end``."""
        return f"{self.start}:{self.end}"

    @classmethod
    def gokart_deserialize(cls, text: str) -> Window:
        """Parse ``start:end``."""
        start, end = text.split(":")
        return cls(int(start), int(end))


class DumpParams(gokart.TaskOnKart):
    """Base: dump the significant string params and the parsed values of this class's own params."""

    def run(self) -> None:
        """Dump ``{'str': to_str_params, 'values': {name: value}}``."""
        own = {name for name, _ in type(self).get_params()} - {name for name, _ in gokart.TaskOnKart.get_params()}
        values = {name: getattr(self, name) for name in sorted(own)}
        self.dump({"str": self.to_str_params(only_significant=True), "values": values})


class IntParam(DumpParams):
    """luigi.IntParameter."""

    value = luigi.IntParameter(default=7)


class FloatParam(DumpParams):
    """luigi.FloatParameter."""

    value = luigi.FloatParameter(default=0.25)


class StrParams(DumpParams):
    """luigi.Parameter and luigi.StrParameter."""

    name = luigi.Parameter(default="kart")
    title = luigi.StrParameter(default="a title with spaces, commas and 'quotes'")


class BoolParams(DumpParams):
    """luigi.BoolParameter and gokart.ExplicitBoolParameter."""

    flag = luigi.BoolParameter(default=True)
    explicit = gokart.ExplicitBoolParameter(default=False)


class DateParams(DumpParams):
    """Date, DateHour, DateMinute, DateSecond, Month and Year parameters."""

    day = luigi.DateParameter(default=datetime.date(2024, 1, 31))
    hour = luigi.DateHourParameter(default=datetime.datetime(2024, 1, 31, 13))
    minute = luigi.DateMinuteParameter(default=datetime.datetime(2024, 1, 31, 13, 45))
    second = luigi.DateSecondParameter(default=datetime.datetime(2024, 1, 31, 13, 45, 59))
    month = luigi.MonthParameter(default=datetime.date(2024, 2, 1))
    year = luigi.YearParameter(default=datetime.date(2024, 1, 1))


class IntervalParams(DumpParams):
    """DateIntervalParameter and TimeDeltaParameter."""

    interval = luigi.DateIntervalParameter(default=luigi.date_interval.Month(2024, 2))
    delta = luigi.TimeDeltaParameter(default=datetime.timedelta(days=1, hours=2, minutes=3))


class EnumParams(DumpParams):
    """EnumParameter and EnumListParameter."""

    color = luigi.EnumParameter(enum=Color, default=Color.GREEN)
    colors = luigi.EnumListParameter(enum=Color, default=(Color.RED, Color.BLUE))


class ChoiceParams(DumpParams):
    """ChoiceParameter and ChoiceListParameter."""

    mode = luigi.ChoiceParameter(choices=["train", "test"], default="test", var_type=str)
    modes = luigi.ChoiceListParameter(choices=["a", "b", "c"], default=("c", "a"))


class CollectionParams(DumpParams):
    """ListParameter, TupleParameter and DictParameter (nested values, unsorted keys)."""

    items = luigi.ListParameter(default=[3, 1, 2, "x", [4, 5]])
    pairs = luigi.TupleParameter(default=((1, "a"), (2, "b")))
    mapping = luigi.DictParameter(default={"b": 1, "a": [1, 2], "c": {"z": None, "y": 1.5}})


class OptionalParams(DumpParams):
    """The Optional* parameters, some set and some None."""

    opt = luigi.OptionalParameter(default=None)
    opt_str = luigi.OptionalStrParameter(default="set")
    opt_int = luigi.OptionalIntParameter(default=5)
    opt_float = luigi.OptionalFloatParameter(default=None)
    opt_bool = luigi.OptionalBoolParameter(default=False)
    opt_list = luigi.OptionalListParameter(default=[1, 2])
    opt_tuple = luigi.OptionalTupleParameter(default=None)
    opt_dict = luigi.OptionalDictParameter(default={"k": "v"})
    opt_choice = luigi.OptionalChoiceParameter(choices=["x", "y"], default=None, var_type=str)
    opt_number = luigi.OptionalNumericalParameter(var_type=float, min_value=0.0, max_value=1.0, default=0.5)
    opt_path = luigi.OptionalPathParameter(default=None)


class NumericalParams(DumpParams):
    """NumericalParameter (int and float) and PathParameter."""

    count = luigi.NumericalParameter(var_type=int, min_value=0, max_value=10, default=4)
    ratio = luigi.NumericalParameter(
        var_type=float, min_value=0.0, max_value=1.0, left_op=lambda a, b: a <= b, default=0.0
    )
    path = luigi.PathParameter(default="data/input.csv")


class GokartParams(DumpParams):
    """gokart's SerializableParameter and ZonedDateSecondParameter."""

    window = gokart.SerializableParameter(object_type=Window, default=Window(3, 9))
    at = gokart.ZonedDateSecondParameter(default=datetime.datetime(2024, 7, 10, 19, 7, 38, tzinfo=JST))


class NonSignificantParams(DumpParams):
    """A significant and a non-significant parameter: only the first is in the id."""

    value = luigi.IntParameter(default=1)
    note = luigi.Parameter(default="not in the id", significant=False)


class VisibilityParams(DumpParams):
    """PUBLIC, HIDDEN and PRIVATE parameters: PRIVATE ones are left out of the id."""

    public = luigi.Parameter(default="pub")
    hidden = luigi.Parameter(default="hid", visibility=ParameterVisibility.HIDDEN)
    private = luigi.Parameter(default="priv", visibility=ParameterVisibility.PRIVATE)


def parameter_roots() -> list[Any]:
    """Every parameter task, with default values and with values given by the caller."""
    return [
        IntParam(),
        IntParam(value=-3),
        FloatParam(),
        StrParams(),
        StrParams(name="ünïcode"),
        BoolParams(),
        BoolParams(flag=False, explicit=True),
        DateParams(),
        DateParams(day=datetime.date(1999, 12, 31)),
        IntervalParams(),
        IntervalParams(interval=luigi.date_interval.Custom(datetime.date(2024, 1, 1), datetime.date(2024, 1, 15))),
        EnumParams(),
        ChoiceParams(),
        CollectionParams(),
        CollectionParams(items=[], mapping={}),
        OptionalParams(),
        OptionalParams(opt="given", opt_float=1.5, opt_tuple=(1, 2)),
        NumericalParams(),
        GokartParams(),
        GokartParams(at=datetime.datetime(2024, 1, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)),
        NonSignificantParams(),
        NonSignificantParams(note="changed, same id"),
        VisibilityParams(),
        VisibilityParams(private="other private value"),
    ]
