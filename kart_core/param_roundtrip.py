"""Which significant parameter values a task would get back changed from their own string form.

gokart's unique id covers each significant parameter as ``param.serialize(value)``. Everything that
makes a task from strings — luigi's command line, ``[Class]`` config sections, ``from_str_params``,
``TaskOnKart.restore``, a Kedro catalog entry — hands ``run()`` the value ``param.parse(serialize(value))``.
When that differs from the value itself (an int given to an untyped ``luigi.Parameter()`` runs as
``'5'``; luigi only warns), one unique id stands for two tasks that write different outputs, and
whichever scheduler builds first decides what every later reader loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import math
import numbers
import pathlib
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import luigi
from luigi.parameter import ParameterVisibility

from kart_core.errors import AmbiguousParameterWarning
from kart_core.parameter import ListTaskInstanceParameter, TaskInstanceParameter, serialize_value

__all__ = ["LossyParameter", "ambiguous_parameters", "lossy_parameters", "warn_ambiguous_parameters"]

# The typed luigi parameter whose parse() gives a value of this type back; subclasses before their bases.
_TYPED: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "luigi.BoolParameter"),
    (int, "luigi.IntParameter"),
    (float, "luigi.FloatParameter"),
    (datetime.datetime, "luigi.DateSecondParameter"),
    (datetime.date, "luigi.DateParameter"),
    (datetime.timedelta, "luigi.TimeDeltaParameter"),
    (enum.Enum, "luigi.EnumParameter(enum=...)"),
    (pathlib.PurePath, "luigi.PathParameter"),
    ((list, tuple), "luigi.ListParameter"),
    (Mapping, "luigi.DictParameter"),
    (type(None), "luigi.OptionalParameter (or leave the value out)"),
)


@dataclass(frozen=True)
class LossyParameter:
    """A significant parameter whose value does not survive ``parse(serialize(value))``.

    Attributes:
        name: the parameter's name.
        declared: its class, e.g. ``luigi.parameter.Parameter``.
        value: the value the task holds (what ``build()`` runs with).
        serialized: ``serialize(value)``: what the unique id covers.
        parsed: ``normalize(parse(serialized))``: what a task made from strings runs with (or the exception
            parse raised).
        suggestion: the typed parameter to declare instead (e.g. ``luigi.IntParameter``), or None when none
            fits or the parameter is of that type already (then the value itself does not survive: a
            ``TimeDeltaParameter`` drops fractions of a second).
    """

    name: str
    declared: type
    value: Any
    serialized: str
    parsed: Any
    suggestion: str | None


def lossy_parameters(task: Any) -> list[LossyParameter]:
    """The significant parameters of ``task`` whose value is not ``param.parse(param.serialize(value))``.

    Values equal to the parameter's default are skipped (a task made from strings without that
    parameter gets the same default), and so are task parameters (each is a task of its own, whose
    parameters are checked on that task). Floats compare NaN equal to NaN and ``1 == 1.0``; a numpy
    number compares by the exact value it holds (``np.float32(0.1)`` is not ``0.1``);
    mappings and sequences compare item by item; a value whose type has no ``__eq__`` of its own is
    compared by its string form (``serialize(parsed) == serialized``).

    Args:
        task: a luigi task (a TaskOnKart).

    Returns:
        One entry per such parameter, in the task's parameter order.

    Raises:
        ParameterTypeError: a value has no string form at all (a numpy scalar inside a ``ListParameter``),
            naming the class and the parameter.
    """
    found = []
    for name, param in task.get_params():
        if not param.significant or param.visibility == ParameterVisibility.PRIVATE:
            continue
        if isinstance(param, (TaskInstanceParameter, ListTaskInstanceParameter, luigi.TaskParameter)):
            continue
        value = task.param_kwargs[name]
        if _is_default(param, value):
            continue
        entry = _checked(type(task).__name__, name, param, value)
        if entry is not None:
            found.append(entry)
    return found


def _checked(owner: str, name: str, param: luigi.Parameter, value: Any) -> LossyParameter | None:
    serialized = serialize_value(owner, name, param, value)
    try:
        parsed = param.normalize(param.parse(serialized))  # as luigi's Task.__init__ normalizes it
    except Exception as exc:  # a string parse() cannot read back: any task made from strings fails
        return LossyParameter(name, type(param), value, serialized, exc, _suggestion(param, value))
    if _same(value, parsed, lambda other: param.serialize(other) == serialized):
        return None
    return LossyParameter(name, type(param), value, serialized, parsed, _suggestion(param, value))


def _is_default(param: luigi.Parameter, value: Any) -> bool:
    default = getattr(param, "_default", luigi.parameter._no_value)
    if default is luigi.parameter._no_value:
        return False
    try:
        return value is default or bool(value == param.normalize(default))
    except Exception:  # a value whose comparison raises (an array): not known to be the default
        return False


def _same(value: Any, parsed: Any, same_string: Any) -> bool:
    """``value`` and ``parsed`` hold the same data (``same_string(parsed)`` decides for types without ``__eq__``)."""
    value, parsed = _exact_number(value), _exact_number(parsed)
    if isinstance(value, float) and isinstance(parsed, float) and math.isnan(value) and math.isnan(parsed):
        return True
    if isinstance(value, Mapping) and isinstance(parsed, Mapping):
        return value.keys() == parsed.keys() and all(_same(value[k], parsed[k], _never) for k in value)
    if isinstance(value, (list, tuple)) and isinstance(parsed, (list, tuple)):
        return len(value) == len(parsed) and all(_same(a, b, _never) for a, b in zip(value, parsed, strict=True))
    if type(value) is not type(parsed) and not (_is_number(value) and _is_number(parsed)):
        return False
    try:
        if bool(value == parsed):
            return True
    except Exception:  # numpy arrays and the like compare element-wise
        return bool(same_string(parsed))
    # Without an __eq__ of its own a type compares by identity, which says nothing about its data.
    return type(value).__eq__ is object.__eq__ and bool(same_string(parsed))


def _exact_number(value: Any) -> Any:
    """A numpy number as the Python number it holds exactly; anything else as it is.

    numpy compares its scalars with a Python float at the scalar's own precision (NEP 50):
    ``np.float32(0.1) == 0.1`` is True, yet ``run()`` computes with 0.10000000149011612 while the
    unique id covers ``'0.1'``.
    """
    if isinstance(value, numbers.Number) and type(value).__module__ == "numpy":
        return value.item()  # type: ignore[attr-defined]
    return value


def _never(parsed: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _suggestion(param: luigi.Parameter, value: Any) -> str | None:
    """The typed parameter for ``value``; None when none fits or ``param`` is one already (the value is the problem)."""
    for types, name in _TYPED:
        if isinstance(value, types):
            return None if isinstance(param, _luigi_class(name)) else name
    return None


def _luigi_class(name: str) -> type:
    found = getattr(luigi, name.split(" ")[0].split("(")[0].removeprefix("luigi."), None)
    return found if isinstance(found, type) else type(None)


# The builtin containers' own string forms show every item; a subclass may print itself (``_items_lost``).
_BUILTIN_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
# Builtin scalars a project class may derive from and print otherwise (``_scalar_lost``); bool cannot be derived from.
_SCALAR_BASES = (int, float, complex, str, bytes)
# Standard objects whose repr shows each attribute's repr (``namespace(a=1)``, ``Namespace(a=1)``).
_NAMESPACES = (SimpleNamespace, argparse.Namespace)
# Values whose string form is the whole value: skipped without a look (the check runs for every task a build walks).
_WHOLE = frozenset({str, int, float, bool, type(None), datetime.date, datetime.datetime, datetime.timedelta})
_ITEMS_LOOKED_AT = 1000  # items of a list or dict looked at; past that a long list of plain values is taken as plain


def ambiguous_parameters(task: Any, names_of: dict[type, tuple[str, ...]] | None = None) -> list[tuple[str, Any, str]]:
    """The significant parameters of ``task`` whose value's string form may stand for other values too.

    gokart's (and kart's) unique id covers a parameter as its string form; for a plain ``luigi.Parameter`` that
    is ``str(value)``. pandas and numpy containers (anything with a non-empty ``shape``) print elided and
    rounded, so two frames that differ in a row share one string; so does any value whose string elides
    (``...``), and an object printed by its memory address (``<X object at 0x...>``) shares it with whatever
    object a later process puts there; a dataclass, attrs, pydantic (v2 or ``pydantic.v1``) or namedtuple instance
    with a ``repr=False`` field prints without it, and one whose class prints it through its own ``__repr__`` or
    ``__str__`` (as an object of a project class with its own string form) may leave out any field: each field's
    value must show in the string (its ``repr`` or ``str`` as a whole token), else it is named. Two such values share
    one unique id, so a build may hand back the output cached for the other (attacker at15 F5, at18 I2, at19 J9).
    Task parameters are skipped (their ids cover their values), and so is a parameter of a class with its own
    ``serialize`` (not luigi's or kart's): it decides what the id covers.

    Args:
        task: a luigi task.
        names_of: a cache of each class's significant, public, non-task parameter names (a build's), so that a
            task costs a dict lookup and a type check per such parameter (luigi's ``get_params()`` once per class).

    Returns:
        ``(name, value, why)`` for each such parameter, ``why`` saying what the string form loses.
    """
    cls = type(task)
    names = names_of.get(cls) if names_of is not None else None
    if names is None:
        names = tuple(
            name
            for name, param in cls.get_params()
            if param.significant
            and param.visibility != ParameterVisibility.PRIVATE
            and not isinstance(param, (TaskInstanceParameter, ListTaskInstanceParameter, luigi.TaskParameter))
            and _library_serialize(param)
        )
        if names_of is not None:
            names_of[cls] = names
    values = vars(task)  # luigi's parameters keep their values in the instance's __dict__
    found = []
    for name in names:
        value = values.get(name)
        if type(value) in _WHOLE:
            continue
        why = _ambiguous(value)
        if why is not None:
            found.append((name, value, why))
    return found


def _library_serialize(param: luigi.Parameter) -> bool:
    """Whether ``param`` writes its value's string form by luigi's (or kart's) ``serialize`` (``str(value)`` for a plain
    ``luigi.Parameter``); a parameter class with its own ``serialize`` (one that writes every field of a config)
    decides itself what the id covers, and is trusted."""
    module = str(getattr(type(param).serialize, "__module__", "") or "")
    return module.partition(".")[0] in ("luigi", "kart_core")


def _ambiguous(value: Any, depth: int = 0) -> str | None:
    """What the string form of ``value`` loses (None: it is the whole value)."""
    if type(value) in _WHOLE or isinstance(value, luigi.Task) or depth > 8:
        return None
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and shape:
        return f"a {type(value).__name__} of shape {shape} prints elided and rounded"
    if callable(getattr(value, "get_secret_value", None)):  # pydantic's SecretStr/SecretBytes print as '**********'
        return f"a {type(value).__name__} prints masked"
    plain = isinstance(value, (Mapping, list, set, frozenset)) or type(value) is tuple
    record = None if plain else _fields(value)
    if isinstance(value, Mapping):
        items: list[Any] = [item for pair in list(value.items())[:_ITEMS_LOOKED_AT] for item in pair]
    elif record is not None:
        why = _record_loses(value, record)
        if why is not None:
            return why
        items = [item for _, item, _ in record[:_ITEMS_LOOKED_AT]]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)[:_ITEMS_LOOKED_AT]
    elif isinstance(value, _NAMESPACES) and isinstance(getattr(value, "__dict__", None), dict):
        # ``namespace(a=S)`` shows each attribute's repr: as a list does its items' (attacker at20 K13)
        items = list(vars(value).values())[:_ITEMS_LOOKED_AT]
    else:
        text = str(value)
        if " at 0x" in text:
            return f"a {type(value).__name__} prints as its memory address"
        if "..." in text:
            return f"a {type(value).__name__} prints elided ('...')"
        return _scalar_lost(value, text)
    if plain and type(value) not in _BUILTIN_CONTAINERS and _prints_itself(type(value)):
        why = _items_lost(value)
        if why is not None:
            return why
    return next((why for item in items if (why := _ambiguous(item, depth + 1)) is not None), None)


def _scalar_lost(value: Any, text: str) -> str | None:
    """What ``text``, the string form of ``value``, loses when ``value`` is of a project ``int``/``float``/``str``/
    ``bytes``/``complex`` subclass with its own ``__repr__`` or ``__str__`` that does not show the number or text
    (``Rate(0.1)`` and ``Rate(0.01)`` both printing ``Rate``), or an enum member's that does not show its name; None
    otherwise."""
    method = _printing_method(type(value))
    if isinstance(value, enum.Enum):
        if method is None or _holds(text, value.name):
            return None
        return f"a {type(value).__name__} member prints through its own {method} as {text[:60]!r}, without its name"
    base = next((kind for kind in _SCALAR_BASES if isinstance(value, kind)), None)
    if base is None:
        return None
    forms = {base.__repr__(value), str.__str__(value) if isinstance(value, str) else ""}  # the builtin's own forms
    if method is None or any(_holds(text, form) for form in forms):
        return None
    printer = getattr(getattr(type(value), method, None), "__qualname__", method)
    return f"a {type(value).__name__} prints through its own {method} ({printer}) as {text[:60]!r}, without its value"


def _items_lost(value: Any) -> str | None:
    """What the string form of ``value``, a project ``dict``/``list``/``set``/``tuple`` subclass with its own
    ``__repr__`` or ``__str__``, loses: the items it does not show, a mapping's by key (whose key or value does not
    show), a sequence's by position (attacker at20 K13: ``DictSub(a=1)`` and ``DictSub(a=2)`` both print
    ``DictSub``); None when it shows each."""
    text = str(value)
    if isinstance(value, Mapping):
        pairs = list(value.items())[:_ITEMS_LOOKED_AT]
        missing = [repr(key)[:40] for key, item in pairs if not (_shows(text, key) and _shows(text, item))]
    else:
        items = list(value)[:_ITEMS_LOOKED_AT]
        missing = [str(index) for index, item in enumerate(items) if not _shows(text, item)]
    if not missing:
        return None
    method = _printing_method(type(value)) or "__repr__"
    printer = getattr(getattr(type(value), method, None), "__qualname__", method)
    where = "key(s)" if isinstance(value, Mapping) else "position(s)"
    return f"a {type(value).__name__} prints through its own {method} ({printer}) as {text[:60]!r}, without its " + (
        f"item(s) at {where} {', '.join(missing[:5])}"
    )


def _record_loses(value: Any, record: list[tuple[str, Any, bool]]) -> str | None:
    """What the string form of ``value``, a value with fields (``_fields``), loses: a field its library's repr leaves
    out (``repr=False``), or a field whose value the string does not show (a class's own ``__repr__`` or ``__str__``,
    attacker at19 J9: ``TrainConfig(base)`` for ``TrainConfig(name="base", learning_rate=0.1)``); None when it shows
    every field's value (then each is looked at in turn: a config holding a config)."""
    name = type(value).__name__
    text = str(value)
    if " at 0x" in text:  # ``@dataclass(repr=False)``: object's repr, an address another process reuses
        return f"a {name} prints as its memory address"
    hidden = [field for field, _, shown in record if not shown]
    if hidden:
        return (
            f"a {name} prints without its field(s) {', '.join(hidden)} (repr=False, a custom repr or a pydantic private"
            " attribute)"
        )
    missing = [field for field, item, _ in record[:_ITEMS_LOOKED_AT] if not _shows(text, item)]
    if missing:
        method = "__str__" if type(value).__str__ is not object.__str__ else "__repr__"
        printer = getattr(getattr(type(value), method, None), "__qualname__", method)
        return f"a {name} prints through its own {method} ({printer}) as {text[:60]!r}, without its field(s) " + (
            ", ".join(missing)
        )
    return None


def _shows(text: str, item: Any) -> bool:
    """Whether ``text`` holds ``item``'s ``repr`` or ``str`` as a whole token (``0.1`` not inside ``10.15``)."""
    return any(_holds(text, form) for form in dict.fromkeys((repr(item), str(item))))


def _holds(text: str, form: str) -> bool:
    """Whether ``text`` holds ``form`` as a whole token."""
    return bool(form) and re.search(rf"(?<![\w.]){re.escape(form)}(?![\w.])", text) is not None


def _fields(value: Any) -> list[tuple[str, Any, bool]] | None:
    """``(name, value, shown by its library's repr)`` of each field of a dataclass, attrs, pydantic (v2, and v1 as
    ``pydantic.v1``) or namedtuple instance, or of each attribute of an object of a project class with its own
    ``__repr__``/``__str__``; None for any other value (attacker at15 F5's remainder, at18 I2, at19 J9)."""
    cls = type(value)
    if isinstance(value, type | enum.Enum):  # an enum member is picked by its name (``_scalar_lost``), not its fields
        return None
    if dataclasses.is_dataclass(value):
        return [(f.name, getattr(value, f.name, None), bool(f.repr)) for f in dataclasses.fields(value)]
    declared = getattr(cls, "__attrs_attrs__", None)
    if isinstance(declared, tuple):
        return [(a.name, getattr(value, a.name, None), getattr(a, "repr", True) is True) for a in declared]
    model_fields = getattr(cls, "model_fields", None)  # pydantic v2
    if isinstance(model_fields, Mapping):
        shown = [(n, getattr(value, n, None), getattr(i, "repr", True) is not False) for n, i in model_fields.items()]
        return shown + _private_attributes(value)
    v1_fields = getattr(cls, "__fields__", None)  # pydantic v1 (``pydantic.v1``): name -> ModelField
    if isinstance(v1_fields, Mapping) and all(hasattr(field, "field_info") for field in v1_fields.values()):
        return [
            (n, getattr(value, n, None), getattr(f.field_info, "repr", True) is not False) for n, f in v1_fields.items()
        ]
    names = getattr(cls, "_fields", None)
    if isinstance(value, tuple) and isinstance(names, tuple) and len(names) == len(value):  # a namedtuple
        return [(str(n), item, True) for n, item in zip(names, value, strict=True)]
    if _prints_itself(cls):
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict) and attributes:
            return [(str(n), item, True) for n, item in attributes.items()]
    return None


def _private_attributes(model: Any) -> list[tuple[str, Any, bool]]:
    """``(name, value, False)`` for each private attribute (``pydantic.PrivateAttr``) of the pydantic v2 ``model`` set
    to something other than its default (or set, having none): its repr never shows them, so two models differing
    there print alike (attacker at20 K13). One at its default is left out: what every such model holds."""
    private = getattr(model, "__pydantic_private__", None)
    declared = getattr(type(model), "__private_attributes__", None)
    if not isinstance(private, dict) or not isinstance(declared, Mapping):
        return []
    found = []
    for name, item in private.items():
        try:
            default = declared[name].get_default()
            same = default is item or bool(default == item)
        except Exception:  # noqa: BLE001 - no default, or one that cannot be compared (an array): it may differ
            same = False
        if not same:
            found.append((str(name), item, False))
    return found


def _prints_itself(cls: type) -> bool:
    """Whether ``cls`` is a project class (its module not in the standard library nor installed in ``site-packages``)
    that gives its instances a string form of its own (a ``__repr__`` or ``__str__`` defined in such a class)."""
    return _printing_method(cls) is not None


def _printing_method(cls: type) -> str | None:
    """``"__str__"`` or ``"__repr__"``: the first of the two that a project class in ``cls``'s MRO defines (the one
    ``str()`` then runs); None when neither is."""
    for method in ("__str__", "__repr__"):
        owner = next((klass for klass in cls.__mro__ if method in vars(klass)), object)
        if owner is not object and _is_project_module(owner.__module__):
            return method
    return None


def _is_project_module(name: str) -> bool:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ("luigi", "kart_core"):
        return False
    module = sys.modules.get(name)
    location = str(getattr(module, "__file__", "") or "")
    return "site-packages" not in location and "dist-packages" not in location


def warn_ambiguous_parameters(task: Any, warned: set[str], names_of: dict[type, tuple[str, ...]] | None = None) -> None:
    """Warn (``AmbiguousParameterWarning``) for each parameter ``ambiguous_parameters`` finds on ``task``, once per
    task class and parameter while ``warned`` (a build's set, ``target_config.current().warned``) lives."""
    for name, value, why in ambiguous_parameters(task, names_of):
        cls = type(task)
        key = f"ambiguous:{cls.__module__}.{cls.__qualname__}.{name}"
        if key in warned:
            continue
        warned.add(key)
        warnings.warn(
            f"{cls.__name__}.{name} holds a {type(value).__module__}.{type(value).__qualname__} whose string form, "
            f"which the unique id covers, is not the whole value ({why}): two different values get one unique id, "
            f"so a build may hand back the output cached for another value (gokart does the same). Pass it as a "
            f"TaskInstanceParameter (a task that makes it), save it to a file the task reads (a path parameter), "
            f"give its class a __repr__ that shows every field (a dataclass's generated one does), declare a "
            f"parameter class whose serialize() writes every field, or use a parameter whose string is the whole "
            f"value (a list or dict of plain values, a number, a date).",
            AmbiguousParameterWarning,
            stacklevel=2,
        )
