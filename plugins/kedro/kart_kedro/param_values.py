"""A catalog entry's parameter values, parsed and checked by the luigi parameter they are for.

YAML gives typed values (``7`` an int, ``7.5`` a float, ``true`` a bool, ``2024-01-01`` a date,
lists and mappings); strings are parsed by the parameter as luigi parses command-line values.
A typed value must have the parameter's type: ``window: 7.5`` for an IntParameter is an error,
not a different cache key. Values are then normalised by the parameter (lists become tuples), so
the task is the same task its Python constructor makes. Parameter classes not listed below
(SerializableParameter, your own) take any value and check it themselves.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import luigi
import luigi.parameter

__all__ = ["ParameterValueError", "checked_value"]


class ParameterValueError(ValueError):
    """A value that the parameter's type does not take (the message says which type it takes)."""


# (parameter class, what it takes in words, the Python types it takes) — subclasses before their bases.
_DATETIME_PARAMETERS = (luigi.DateHourParameter, luigi.DateMinuteParameter, luigi.DateSecondParameter)
_RULES: tuple[tuple[Any, str, tuple[type, ...]], ...] = (
    (luigi.BoolParameter, "a bool (true/false)", (bool,)),
    (luigi.IntParameter, "an int", (int,)),
    (luigi.FloatParameter, "a number", (int, float)),
    (_DATETIME_PARAMETERS, "a date and time (2024-01-01 10:00:00)", (datetime.datetime,)),
    (luigi.DateParameter, "a date (2024-01-01)", (datetime.date,)),
    (luigi.TimeDeltaParameter, "a duration (a timedelta, or a string like '1 day')", (datetime.timedelta,)),
    (luigi.ListParameter, "a list", (list, tuple)),
    (luigi.DictParameter, "a mapping", (Mapping,)),
    (luigi.EnumParameter, "the name of a member, as a string", ()),
    (luigi.EnumListParameter, "member names, as a comma-separated string", ()),
    (luigi.TaskParameter, "a task class path, as a string", ()),
    (luigi.PathParameter, "a path, as a string", ()),
)
_STRING_PARAMETERS = (luigi.Parameter, luigi.OptionalParameter, luigi.StrParameter, luigi.OptionalStrParameter)


def checked_value(param: luigi.Parameter, value: Any) -> Any:
    """``value`` as the task's constructor should get it: a string parsed, a typed value checked.

    Args:
        param: the luigi parameter the value is for.
        value: the value from YAML (or a Python mapping).

    Raises:
        ParameterValueError: the value does not fit; the message names the expected type and the value.
    """
    if isinstance(value, str):
        try:
            return param.parse(value)
        except Exception as exc:
            raise ParameterValueError(f"cannot parse {value!r}: {exc}") from exc
    if value is None:
        if isinstance(param, luigi.parameter.OptionalParameterMixin) or _default(param) is None:
            return None
        raise ParameterValueError(f"is {_a(type(param).__name__)} and takes {_expected(param)}; got null (None)")
    _check_type(param, value)
    if isinstance(param, luigi.FloatParameter) and not isinstance(value, float):
        value = float(value)
    try:
        return param.normalize(value)
    except Exception as exc:  # ChoiceParameter, NumericalParameter: out of range
        raise ParameterValueError(f"does not take {_shown(value)}: {exc}") from exc


def _check_type(param: luigi.Parameter, value: Any) -> None:
    if type(param) in _STRING_PARAMETERS:
        raise ParameterValueError(
            f"is {_a(type(param).__name__)} and takes a string; got {_shown(value)}. Quote it in YAML "
            f"('{value}') so that the cache key is the string you mean"
        )
    numeric = getattr(param, "_var_type", None)
    if isinstance(param, luigi.NumericalParameter | luigi.ChoiceParameter) and numeric is not None:
        if not isinstance(value, numeric) or (isinstance(value, bool) and numeric is not bool):
            raise ParameterValueError(
                f"is {_a(type(param).__name__)} and takes a {numeric.__name__}; got {_shown(value)}"
            )
        return
    for classes, words, types in _RULES:
        if not isinstance(param, classes):
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        wrong_date = isinstance(value, datetime.datetime) and datetime.datetime not in types
        if not isinstance(value, types) or wrong_bool or wrong_date:
            raise ParameterValueError(f"is {_a(type(param).__name__)} and takes {words}; got {_shown(value)}")
        return


def _expected(param: luigi.Parameter) -> str:
    for classes, words, _ in _RULES:
        if isinstance(param, classes):
            return words
    return "a string" if type(param) in _STRING_PARAMETERS else "a value"


def _default(param: luigi.Parameter) -> Any:
    default = getattr(param, "_default", luigi.parameter._no_value)
    return default if default is not luigi.parameter._no_value else ...


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
