"""A mypy plugin that type-checks task parameters, as gokart 1.12.2's ``gokart.mypy`` does.

Enable it in the mypy configuration: ``plugins = ["kart_core.mypy"]``. Then, for every class
derived from ``TaskOnKart`` (and every direct ``luigi.Task`` subclass):

- the constructor takes each parameter declared in the class or its task ancestors as a keyword
  argument of the parameter's value type, so ``MyTask(n="3")`` for ``n = luigi.IntParameter()``
  and ``MyTask(unknown=1)`` are errors;
- ``self.n`` has the value type (``int``), and ``n: int = luigi.IntParameter()`` type-checks: a
  parameter call has the type of its ``default`` (Any without one).

A parameter's value type is its annotation, else the type its parameter class holds (``str`` for
``luigi.Parameter``, ``int | None`` for ``luigi.OptionalIntParameter``, ``TaskOnKart[Any]`` for
``TaskInstanceParameter``, the ``var_type`` / ``enum`` argument for choice and enum parameters …).
With ``disallow_missing_parameters = true`` under ``[tool.kart-mypy]`` (or gokart's
``[tool.gokart-mypy]``) in pyproject.toml, a parameter without a default must be passed.
Parameter arguments must be passed by name (``luigi.Parameter(default="a")``), as gokart's plugin requires.

The generated ``__init__`` and the collected parameters (kept in the class's mypy metadata, so
subclasses in other modules see them) follow the pattern of mypy's own dataclasses plugin.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from mypy.nodes import (
    ARG_NAMED,
    ARG_NAMED_OPT,
    Argument,
    AssignmentStmt,
    Block,
    CallExpr,
    EllipsisExpr,
    Expression,
    IfStmt,
    JsonDict,
    MemberExpr,
    NameExpr,
    RefExpr,
    TypeAlias,
    TypeInfo,
    Var,
)
from mypy.options import Options
from mypy.plugin import ClassDefContext, FunctionContext, Plugin, SemanticAnalyzerPluginInterface
from mypy.plugins.common import add_method_to_class, deserialize_and_fixup_type
from mypy.types import AnyType, Instance, NoneType, Type, TypeOfAny, UnionType, get_proper_type

__all__ = ["KartTaskPlugin", "PluginOptions", "plugin"]

_METADATA_KEY = "kart_task_parameters"
# Calls whose result is a task parameter: luigi's, kart's and (for mixed code) gokart's parameter classes.
_PARAMETER_CLASS = re.compile(r"^(luigi|kart_core|gokart)(\.\w+)*\.\w*Parameter$")
_KART_ROOTS = frozenset({"kart_core.task.TaskOnKart", "kart_core.task_parameters.TaskParameters"})
_TASK_ROOTS = _KART_ROOTS | {"luigi.task.Task"}

# Parameter class → the builtin or stdlib type of its value (Optional* classes add None).
_VALUE_TYPES = {
    "Parameter": "builtins.str",
    "StrParameter": "builtins.str",
    "IntParameter": "builtins.int",
    "FloatParameter": "builtins.float",
    "BoolParameter": "builtins.bool",
    "ExplicitBoolParameter": "builtins.bool",
    "DateParameter": "datetime.date",
    "MonthParameter": "datetime.date",
    "YearParameter": "datetime.date",
    "DateHourParameter": "datetime.datetime",
    "DateMinuteParameter": "datetime.datetime",
    "DateSecondParameter": "datetime.datetime",
    "ZonedDateSecondParameter": "datetime.datetime",
    "TimeDeltaParameter": "datetime.timedelta",
    "PathParameter": "pathlib.Path",
}
_CONTAINER_TYPES = {
    "DictParameter": "builtins.dict",
    "ListParameter": "builtins.tuple",
    "TupleParameter": "builtins.tuple",
}
# Parameter class → the keyword argument naming the value type (and whether values come as a tuple).
_TYPE_FROM_ARGUMENT = {
    "NumericalParameter": ("var_type", False),
    "ChoiceParameter": ("var_type", False),
    "ChoiceListParameter": ("var_type", True),
    "EnumParameter": ("enum", False),
    "EnumListParameter": ("enum", True),
}


@dataclasses.dataclass(frozen=True)
class PluginOptions:
    """The plugin's settings from pyproject.toml: ``[tool.kart-mypy]``, else gokart's ``[tool.gokart-mypy]``."""

    disallow_missing_parameters: bool = False

    @classmethod
    def from_config_file(cls, config_file: str | None) -> PluginOptions:
        """Read the settings; defaults when there is no config file or it is not a .toml file.

        Raises:
            ValueError: ``disallow_missing_parameters`` is not a boolean.
        """
        if config_file is None or not config_file.endswith(".toml"):
            return cls()
        section = _toml_tool_section(config_file)
        value = section.get("disallow_missing_parameters", False)
        if not isinstance(value, bool):
            raise ValueError(f"[tool.kart-mypy] disallow_missing_parameters must be true or false, not {value!r}")
        return cls(disallow_missing_parameters=value)


def _toml_tool_section(config_file: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            warnings.warn("kart's mypy plugin needs tomli on Python 3.10 to read pyproject.toml", stacklevel=2)
            return {}
    with open(config_file, "rb") as file:
        tool = tomllib.load(file).get("tool", {})
    return dict(tool.get("kart-mypy", tool.get("gokart-mypy", {})))


@dataclasses.dataclass
class _Parameter:
    """One task parameter as the generated ``__init__`` sees it."""

    name: str
    has_default: bool
    type: Type

    def serialize(self) -> JsonDict:
        return {"name": self.name, "has_default": self.has_default, "type": self.type.serialize()}

    @classmethod
    def deserialize(cls, data: JsonDict, api: SemanticAnalyzerPluginInterface) -> _Parameter:
        return cls(data["name"], data["has_default"], deserialize_and_fixup_type(data["type"], api))


class KartTaskPlugin(Plugin):
    """Adds typed ``__init__`` signatures to task classes and types parameter calls by their default."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._settings = PluginOptions.from_config_file(options.config_file)

    def report_config_data(self, ctx: Any) -> dict[str, bool]:
        """The settings that change generated constructors, so mypy's cache is renewed when they change."""
        return {"disallow_missing_parameters": self._settings.disallow_missing_parameters}

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        """Transform classes whose base is ``luigi.Task`` or derives from kart's task classes."""
        if fullname in _TASK_ROOTS:
            return self._transform
        symbol = self.lookup_fully_qualified(fullname)
        node = symbol.node if symbol is not None else None
        if isinstance(node, TypeAlias):  # e.g. TaskParameters' base: ``_Base = luigi.Task`` under TYPE_CHECKING
            target = get_proper_type(node.target)
            node = target.type if isinstance(target, Instance) else None
        if isinstance(node, TypeInfo):
            if node.fullname in _TASK_ROOTS or any(base.fullname in _KART_ROOTS for base in node.mro):
                return self._transform
        return None

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        """Type a parameter call (``luigi.IntParameter(default=1)``) as its default's type."""
        return _type_of_default if _PARAMETER_CLASS.match(fullname) else None

    def _transform(self, ctx: ClassDefContext) -> None:
        parameters = _collect(ctx, self._settings)
        if parameters is None:
            return
        info = ctx.cls.info
        previous = info.metadata.get(_METADATA_KEY, {})
        own_init = info.names.get("__init__")
        ours = own_init is None or own_init.plugin_generated or previous.get("generated_init", False)
        generate = bool(parameters) and ours
        info.metadata[_METADATA_KEY] = {
            "parameters": [p.serialize() for p in parameters],
            "generated_init": generate,
        }
        if generate:
            kind_of = _argument_kind(self._settings)
            arguments = [Argument(Var(p.name, p.type), p.type, None, kind_of(p)) for p in parameters]
            add_method_to_class(ctx.api, ctx.cls, "__init__", args=arguments, return_type=NoneType())
            # luigi.Task is a dataclass_transform: mypy's dataclasses plugin runs after this hook and
            # would replace a plugin-generated __init__ with one of the annotated parameters only.
            info.names["__init__"].plugin_generated = False


def _argument_kind(settings: PluginOptions) -> Callable[[_Parameter], Any]:
    def kind(parameter: _Parameter) -> Any:
        required = settings.disallow_missing_parameters and not parameter.has_default
        return ARG_NAMED if required else ARG_NAMED_OPT

    return kind


def _type_of_default(ctx: FunctionContext) -> Type:
    """The type of the ``default`` argument; Any when there is none (so an annotation decides)."""
    if "default" in ctx.callee_arg_names:
        index = ctx.callee_arg_names.index("default")
        given = ctx.args[index]
        if given and not isinstance(given[0], EllipsisExpr):
            return ctx.arg_types[index][0]
    return AnyType(TypeOfAny.unannotated)


def _collect(ctx: ClassDefContext, settings: PluginOptions) -> list[_Parameter] | None:
    """The parameters of the class: inherited ones first (from ancestors' metadata), then its own; None to defer."""
    api = ctx.api
    found: dict[str, _Parameter] = {}
    for info in reversed(ctx.cls.info.mro[1:-1]):
        stored = info.metadata.get(_METADATA_KEY)
        if stored is None:
            continue
        for data in stored["parameters"]:
            found[data["name"]] = _Parameter.deserialize(data, api)
    for statement in _assignments(ctx.cls.defs):
        parameter = _own_parameter(statement, ctx)
        if parameter is False:
            if not api.final_iteration:
                api.defer()
                return None
            continue
        if isinstance(parameter, _Parameter):
            found[parameter.name] = parameter
    return list(found.values())


def _assignments(block: Block) -> Iterator[AssignmentStmt]:
    for statement in block.body:
        if isinstance(statement, AssignmentStmt):
            yield statement
        elif isinstance(statement, IfStmt):
            for body in [*statement.body, statement.else_body]:
                if body is not None and not body.is_unreachable:
                    yield from _assignments(body)


def _own_parameter(statement: AssignmentStmt, ctx: ClassDefContext) -> _Parameter | None | bool:
    """The parameter declared by ``name = SomeParameter(...)``; None if it declares none; False if not ready."""
    target = statement.lvalues[0]
    class_name = _parameter_class(statement.rvalue)
    if class_name is None or not isinstance(target, NameExpr) or not _PARAMETER_CLASS.match(class_name):
        return None
    symbol = ctx.cls.info.names.get(target.name)
    if symbol is None or not isinstance(symbol.node, Var):
        return None
    keywords = _keywords(statement.rvalue, ctx.api)
    declared = symbol.node.type if statement.type is not None else None
    value_type = declared if declared is not None else _value_type(class_name, keywords, ctx.api)
    if value_type is None:
        return False if not ctx.api.final_iteration else _Parameter(target.name, True, AnyType(TypeOfAny.unannotated))
    return _Parameter(target.name, "default" in keywords, value_type)


def _parameter_class(expression: Expression) -> str | None:
    """The full name of the class called by ``expression``, when it is a call of a class."""
    if not isinstance(expression, CallExpr) or not isinstance(expression.callee, RefExpr):
        return None
    node = expression.callee.node
    if isinstance(node, TypeInfo):
        return node.fullname
    callee = expression.callee
    if isinstance(callee, MemberExpr) and isinstance(callee.expr, NameExpr):
        return f"{callee.expr.name}.{callee.name}"
    return None


def _keywords(call: Expression, api: SemanticAnalyzerPluginInterface) -> dict[str, Expression]:
    assert isinstance(call, CallExpr)  # checked by _parameter_class
    keywords: dict[str, Expression] = {}
    for name, argument in zip(call.arg_names, call.args, strict=False):
        if name is None:
            api.fail(
                "Pass task parameter arguments by name when type-checking with kart's mypy plugin, "
                "e.g. luigi.Parameter(default='foo') instead of luigi.Parameter('foo')",
                call,
            )
            continue
        keywords[name] = argument
    return keywords


def _value_type(class_name: str, keywords: dict[str, Expression], api: SemanticAnalyzerPluginInterface) -> Type | None:
    """The type a parameter of class ``class_name`` holds; None when it cannot be told (yet)."""
    short = class_name.rsplit(".", 1)[-1]
    optional = short.startswith("Optional")
    base = short[len("Optional") :] if optional else short
    any_type = AnyType(TypeOfAny.unannotated)
    value: Type | None = None
    if base in _VALUE_TYPES:
        value = api.named_type_or_none(_VALUE_TYPES[base], [])
    elif base in _CONTAINER_TYPES:
        arguments: list[Type] = [any_type, any_type] if base == "DictParameter" else [any_type]
        value = api.named_type_or_none(_CONTAINER_TYPES[base], arguments)
    elif base in ("TaskInstanceParameter", "ListTaskInstanceParameter"):
        task = api.named_type_or_none("kart_core.task.TaskOnKart", [any_type]) or any_type
        value = task if base == "TaskInstanceParameter" else api.named_type_or_none("builtins.list", [task])
    elif base in _TYPE_FROM_ARGUMENT:
        value = _type_from_argument(base, keywords, api)
    else:
        return any_type  # an unknown parameter class (a project's own): accept any value
    if value is None:
        return None
    return UnionType([value, NoneType()]) if optional else value


def _type_from_argument(
    base: str, keywords: dict[str, Expression], api: SemanticAnalyzerPluginInterface
) -> Type | None:
    key, as_tuple = _TYPE_FROM_ARGUMENT[base]
    argument = keywords.get(key)
    if not isinstance(argument, RefExpr) or not isinstance(argument.node, TypeInfo):
        return AnyType(TypeOfAny.unannotated)
    element = Instance(argument.node, [])
    return api.named_type_or_none("builtins.tuple", [element]) if as_tuple else element


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point: the plugin class for any mypy version."""
    return KartTaskPlugin
