"""How a task class's parameters resolve: luigi's rules, computed once per class and config.

luigi resolves every parameter of every new task from arguments, the config and defaults, and
does it twice per task. For large graphs that dominated building; here the answer is a per-class
plan, recomputed only when luigi's config (a file edited, an interpolated environment variable, a
value set by the program), the command line or KART_WORKSPACE changes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast

import luigi
import luigi.configuration
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import (
    DuplicateParameterException,
    MissingParameterException,
    ParameterVisibility,
    UnknownParameterException,
)
from luigi.task import UnconsumedParameterWarning

from kart_core import luigi_config
from kart_core.errors import SettingValueError
from kart_core.workspace import WORKSPACE_ENVIRONMENT_VARIABLE, default_workspace, environment_workspace

__all__ = [
    "STORES_PLAINLY",
    "WORKSPACE_ENVIRONMENT_VARIABLE",
    "LastResolution",
    "ParameterPlan",
    "check_resolved",
    "checked_params",
    "param_checks",
    "config_frozen",
    "current_plan",
    "last_resolution",
    "list_to_tuple",
    "parameter_plan",
    "reads_given_strings",
    "resolve",
    "section_values",
    "stores_plainly",
    "str_param_selection",
]


_frozen_fingerprint: contextvars.ContextVar[tuple[Any, ...] | None] = contextvars.ContextVar(
    "kart_frozen_config", default=None
)


@contextlib.contextmanager
def config_frozen(record_build: bool = True) -> Iterator[bool]:
    """Within the body, treat luigi's config as unchanged (e.g. while one graph is walked).

    On entry (unless already frozen) the config is read afresh: config files that changed are
    re-read and ``${ENV_VAR}`` values re-evaluated (``luigi_config.refresh``). Yields whether the
    config differs from the one the previous outermost freeze saw (the previous build's).
    Checking for config changes costs a few microseconds per new task, a fifth of creating it.

    Args:
        record_build: False for a walk that is not a build (kart_airflow's ``to_dag``): the config
            seen is not remembered as a build's, so the next build still compares with the last
            build, and the body yields False.
    """
    outermost = _frozen_fingerprint.get() is None
    if outermost:
        luigi_config.refresh(thorough=True)
    fingerprint = _config_fingerprint()
    changed = luigi_config.swap_build_fingerprint(fingerprint) if outermost and record_build else False
    token = _frozen_fingerprint.set(fingerprint)
    try:
        yield changed
    finally:
        _frozen_fingerprint.reset(token)


def _config_fingerprint() -> tuple[Any, ...]:
    """Changes whenever luigi's config, the environment it interpolates or command-line parameters may give other defaults."""
    frozen = _frozen_fingerprint.get()
    if frozen is not None:
        return frozen
    return luigi_config.fingerprint(id(CmdlineParser.get_instance()), environment_workspace())


def cached_per_config(cls: type, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    # Resolving defaults reads the config for every parameter of every new task: cache it per class
    # until the config changes (tens of µs per task instead of a millisecond).
    fingerprint = _config_fingerprint()
    cached = cls.__dict__.get(name)
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, compute())
        type.__setattr__(cls, name, cached)
    elif cached[0] is not fingerprint:
        # The same config under another tuple (e.g. computed before the build froze it): keep the
        # answer under this one, so ``current_plan`` recognises it by identity for the rest of the freeze.
        type.__setattr__(cls, name, (fingerprint, cached[1]))
    return cast("dict[str, Any]", cached[1])  # a string: no generic alias built per call


def section_values(cls: type[luigi.Task], section: str, own_names: frozenset[str]) -> dict[str, Any]:
    """Values of the config ``section`` for the parameters named in ``own_names`` (cached per config)."""

    def compute() -> dict[str, Any]:
        config = luigi.configuration.get_config()
        if not config.has_section(section):
            return {}
        params = dict(cls.get_params())
        values = {}
        for key, value in config.items(section):
            if key in params and key in own_names:
                try:
                    values[key] = params[key].parse(value)
                except Exception as exc:  # each parameter type raises its own error for a malformed value
                    raise _config_value_error(cls, section, key, params[key], exc) from exc
        return values

    return cached_per_config(cls, "_kart_section_values", compute)


@dataclasses.dataclass(frozen=True)
class ParameterPlan:
    names: list[str]
    positional: list[str]
    by_name: dict[str, luigi.Parameter]
    defaults: dict[str, Any]
    section_values: dict[str, Any]
    # The parameters whose ``parse`` reads a str given to the constructor (``reads_given_strings``).
    parses_given_str: frozenset[str] = frozenset()
    # One ``(name, default)`` pair per default, shared by every task that keeps it: luigi keeps each
    # task's resolved pairs in its instance cache key, 20 small tuples per task otherwise (~1 KiB).
    default_pairs: dict[str, tuple[str, Any]] = dataclasses.field(init=False, repr=False, compare=False)

    # The parameters without a default: each task must be given them (luigi's MissingParameterException).
    required: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)

    # ``resolve``'s starting list: each parameter's shared default pair in ``names`` order (None where a
    # value must be given), and each name's position in it, so a task given one parameter of 21 replaces
    # one item instead of choosing between given and default 21 times.
    template: tuple[tuple[str, Any] | None, ...] = dataclasses.field(init=False, repr=False, compare=False)
    position: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    # Each parameter's ``normalize`` by name, None where it is luigi.Parameter's own (the value as given): ``resolve``
    # calls only the others (a chain link's IntParameter is given the value it keeps, without a call).
    normalizers: dict[str, Callable[[Any], Any] | None] = dataclasses.field(init=False, repr=False, compare=False)

    # luigi's value checks (``param_checks``) by name: (position, parameter, silent types), and those a default of the
    # plan needs each time (its value is not of its silent types). ``resolve(..., check=True)`` runs the checks of the
    # values given and those: a default of a silent type passes silently every time, so it is not checked again.
    checks: dict[str, tuple[int, luigi.Parameter, Any]] = dataclasses.field(default_factory=dict, compare=False)
    default_checks: tuple[tuple[int, luigi.Parameter, Any], ...] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        pairs = {name: (name, value) for name, value in self.defaults.items()}
        object.__setattr__(self, "default_pairs", pairs)
        object.__setattr__(self, "required", frozenset(self.names) - frozenset(self.defaults))
        object.__setattr__(self, "template", tuple(pairs.get(name) for name in self.names))
        object.__setattr__(self, "position", {name: index for index, name in enumerate(self.names)})
        object.__setattr__(
            self,
            "normalizers",
            {
                name: None
                if type(param).normalize is _IDENTITY_NORMALIZE and "normalize" not in vars(param)
                else param.normalize
                for name, param in self.by_name.items()
            },
        )
        object.__setattr__(
            self,
            "default_checks",
            tuple(
                check
                for name, check in self.checks.items()
                if name in self.defaults and (check[2] is None or not isinstance(self.defaults[name], check[2]))
            ),
        )


def parameter_plan(
    cls: type[luigi.Task], section: str, own_names: frozenset[str], workspace_default: str
) -> ParameterPlan:
    """How ``cls``'s parameters resolve under the current config: names, defaults, section values."""

    def compute() -> dict[str, Any]:
        params = cls.get_params()
        family = cls.get_task_family()
        _warn_unconsumed_config(cls, family, {name for name, _ in params})
        plan = ParameterPlan(
            names=[name for name, _ in params],
            positional=[name for name, p in params if p.positional],
            by_name=dict(params),
            defaults=_with_workspace_from_environment(workspace_default, _resolved_defaults(cls, family, params)),
            section_values=section_values(cls, section, own_names),
            parses_given_str=frozenset(name for name, p in params if reads_given_strings(p)),
            checks={name: (position, param, silent) for position, name, param, silent in param_checks(cls)},
        )
        return {"plan": plan}

    return cast(ParameterPlan, cached_per_config(cls, "_kart_plan", compute)["plan"])


def reads_given_strings(param: luigi.Parameter) -> bool:
    """Whether a str given for ``param`` to a task's constructor is read through ``param.parse``.

    luigi keeps constructor values as given, and the unique id covers only their string form, so
    ``Twice(n="5")`` for ``n = luigi.IntParameter()`` ran with the str ``"5"`` under the id of ``Twice(n=5)``
    (luigi's command line, a ``[Twice]`` config section and a Kedro catalog entry give the int 5) and whichever
    built first filled that one cache entry for every scheduler (attacker at24 F1). Reading it as luigi reads a
    command-line value gives every scheduler the declared type under that id. A parameter whose ``parse`` is
    luigi.Parameter's (a str is its value) and a task parameter (a task is never given as a string; its own
    type check names the mistake; ``kart_reads_given_strings = False`` on kart's) keep the value as given.
    """
    if getattr(param, "kart_reads_given_strings", True) is False or isinstance(param, luigi.TaskParameter):
        return False
    return type(param).parse is not luigi.Parameter.parse


def _parsed_given_str(cls: type, name: str, param: luigi.Parameter, value: str) -> Any:
    """``param.parse(value)`` for a str given to the constructor (``reads_given_strings``).

    Raises:
        Exception: what ``param.parse`` raises for a malformed string (a ValueError for luigi's types, as
            luigi.ChoiceParameter's own check of a given value), with a note naming the class, the parameter,
            its type and the value.
    """
    try:
        return param.parse(value)
    except Exception as exc:  # each parameter type raises its own error for a malformed string
        exc.add_note(
            f"{_family(cls)}: the str {value!r} given for parameter {name!r} ({type(param).__name__}) does not "
            "parse as its value. Pass a value of the declared type, or a string that luigi's command line would "
            "accept for it."
        )
        raise


def _resolved_defaults(cls: type, family: str, params: list[tuple[str, luigi.Parameter]]) -> dict[str, Any]:
    """luigi's value of each parameter that has one (command line, ``[family]`` in the config, default).

    Raises:
        SettingValueError: a config value does not parse (luigi's own error names neither it nor its file).
    """
    defaults = {}
    for name, p in params:
        try:
            if p.has_task_value(family, name):
                value = p.task_value(family, name)
                if value.__class__ is str and reads_given_strings(p):
                    # A str default of a typed parameter (default=os.environ.get("N", "5")) is read as a given str is:
                    # luigi keeps it as written, under the id of the value it parses to (attacker at24 F13).
                    value = _parsed_given_str(cls, name, p, value)
                defaults[name] = list_to_tuple(value)
        except Exception as exc:  # each parameter type raises its own error for a malformed value
            raise _config_value_error(cls, family, name, p, exc) from exc
    return defaults


def _config_value_error(cls: type, section: str, name: str, param: luigi.Parameter, exc: Exception) -> Exception:
    """A ``SettingValueError`` naming the task class, the parameter, and the config line and its file, or (no config
    value of ``[section] name`` is there to blame) the command-line flag that gave the value."""
    raw = luigi.configuration.get_config().get(section, name, None)
    # What the parameter type says about the form it reads (TaskInstanceParameter's JSON), after the error.
    form = "".join(f" {note}" for note in getattr(exc, "__notes__", ()))
    if raw is None and not _on_command_line(section, name):
        return exc  # a default in the code: its own note (``_parsed_given_str``) names the parameter
    if raw is None:
        # luigi's command line (attacker at25 F4: a bare JSONDecodeError named neither the task nor the parameter).
        flag = f"--{section}-{name}".replace("_", "-")
        said = (
            f"The value given on the command line for the parameter {name!r} of {cls.__name__} ({flag}, or --"
            f"{name.replace('_', '-')} for the task named on the command line) is not a valid {type(param).__name__} value"
        )
        if not isinstance(exc, ValueError):  # a custom parse's own error type stays catchable as it was
            exc.add_note(f"{said}. Fix the value on the command line.")
            return exc
        return SettingValueError(f"{said} ({type(exc).__name__}: {exc}).{form} Fix the value on the command line.")
    files = luigi_config.files_setting(section, name)
    where = f"in {', '.join(repr(path) for path in files)}" if files else "set by the program"
    return SettingValueError(
        f"[{section}] {name} = {raw!r} in luigi's config ({where}) is not a valid {type(param).__name__} value "
        f"for the parameter {name!r} of {cls.__name__} ({type(exc).__name__}: {exc}).{form} Fix the value in the "
        f"config, or pass {name}=... when creating the task."
    )


def _on_command_line(section: str, name: str) -> bool:
    """Whether luigi's command line parser in use gave ``--{section}-{name}`` (its dest ``{section}_{name}``)."""
    from luigi.cmdline_parser import CmdlineParser

    parser = CmdlineParser.get_instance()
    return parser is not None and getattr(parser.known_args, f"{section}_{name}", None) is not None


def current_plan(cls: type) -> ParameterPlan | None:
    """The plan ``parameter_plan`` keeps for ``cls`` under the frozen config, or None (not frozen, none kept).

    Inside ``config_frozen`` the fingerprint is one tuple for the whole body, so the kept plan is
    recognised by identity: a dictionary read per new task, where ``parameter_plan`` costs four calls.
    """
    cached = cls.__dict__.get("_kart_plan")
    frozen = _frozen_fingerprint.get()
    if cached is None or frozen is None or cached[0] is not frozen:
        return None
    plan: ParameterPlan = cached[1]["plan"]  # not typing.cast: a Python call per new task
    return plan


_SELECTION_KEYS = {
    (sig, pub): f"_kart_str_params_{int(sig)}{int(pub)}" for sig in (False, True) for pub in (False, True)
}


def str_param_selection(
    cls: type, only_significant: bool, only_public: bool
) -> list[tuple[str, luigi.Parameter, bool]]:
    """The parameters luigi's to_str_params would include for these flags, in order (cached per class), each with
    whether its ``serialize`` is luigi.Parameter's own (``str(value)``: the caller may write it without the call)."""
    selected: list[tuple[str, luigi.Parameter, bool]] | None = cls.__dict__.get(
        _SELECTION_KEYS[bool(only_significant), bool(only_public)]
    )
    if selected is None:
        selected = [
            (name, p, type(p).serialize is _STR_SERIALIZE and "serialize" not in vars(p))
            for name, p in cls.get_params()  # type: ignore[attr-defined]
            if (not only_significant or p.significant)
            and (not only_public or p.visibility == ParameterVisibility.PUBLIC)
            and p.visibility != ParameterVisibility.PRIVATE
        ]
        type.__setattr__(cls, _SELECTION_KEYS[bool(only_significant), bool(only_public)], selected)
    return selected


_STR_SERIALIZE = luigi.Parameter.serialize


# luigi 3.8.1's own Parameter.__set__ implementations: each stores the value in the instance __dict__
# under the parameter's name (OptionalParameterMixin's only re-declares it for typing).
_PLAIN_SETTERS = frozenset({luigi.Parameter.__set__, luigi.parameter.OptionalParameterMixin.__set__})
# ... and its __get__ implementations: each reads the instance __dict__ under the parameter's name (the other two call
# luigi.Parameter's).
_PLAIN_GETTERS = frozenset(
    {luigi.Parameter.__get__, luigi.parameter.OptionalParameterMixin.__get__, luigi.ChoiceListParameter.__get__}
)

# The class attribute ``stores_plainly`` keeps its answer in (read as ``cls.__dict__.get(STORES_PLAINLY)``: None
# until asked; a task class is asked before its first task is made).
STORES_PLAINLY = "_kart_stores_plainly"


def stores_plainly(cls: type) -> bool:
    """Whether every parameter of ``cls`` stores its value under its own name (luigi's Parameter.__set__) and reads
    it from there (luigi's Parameter.__get__); kept on the class (``STORES_PLAINLY``).

    Then a task's values can go into its ``__dict__`` at once, and a parameter's value be read from there
    (``task.__dict__[name]`` is what reading the attribute returns, without the parameter's ``__get__``, a Python
    call); a parameter class with its own ``__set__`` or ``__get__``, or one bound under another name, is set
    attribute by attribute as luigi does, and read through it.
    """
    plain = cls.__dict__.get(STORES_PLAINLY)
    if plain is None:
        plain = all(
            type(param).__set__ in _PLAIN_SETTERS
            and type(param).__get__ in _PLAIN_GETTERS
            and getattr(param, "_attribute_name", None) == name
            for name, param in cls.get_params()  # type: ignore[attr-defined]
        )
        type.__setattr__(cls, STORES_PLAINLY, plain)
    return bool(plain)


def checked_params(cls: type) -> list[tuple[str, luigi.Parameter]]:
    """Parameters whose ``_warn_on_wrong_param_type`` does something (cached per class)."""
    checked = cls.__dict__.get("_kart_checked_params")
    if checked is None:
        base = luigi.Parameter._warn_on_wrong_param_type
        checked = [
            (name, p)
            for name, p in cls.get_params()  # type: ignore[attr-defined]
            if type(p) is luigi.Parameter or type(p)._warn_on_wrong_param_type is not base
        ]
        type.__setattr__(cls, "_kart_checked_params", checked)
    return cast(list[tuple[str, luigi.Parameter]], checked)


# What a value must be for luigi 3.8.1's own checks to stay silent, so they need not be called:
# luigi.Parameter's (a str, only for luigi.Parameter itself) and OptionalParameterMixin's (None or
# an instance of ``expected_type``). Any other parameter class's check is always called.
_STR_CHECK = luigi.Parameter._warn_on_wrong_param_type
_OPTIONAL_CHECK = luigi.parameter.OptionalParameterMixin._warn_on_wrong_param_type


def param_checks(cls: type) -> list[tuple[int, str, luigi.Parameter, Any]]:
    """``checked_params`` as ``(position in get_params, name, parameter, silent types)`` (cached per class).

    ``silent types`` is what ``isinstance`` accepts without calling the parameter's check (a value of
    those types passes luigi's check silently), or None: call the check for every value.
    """
    checks = cls.__dict__.get("_kart_param_checks")
    if checks is None:
        position = {name: index for index, (name, _) in enumerate(cls.get_params())}  # type: ignore[attr-defined]
        checks = []
        for name, param in checked_params(cls):
            method = type(param)._warn_on_wrong_param_type
            silent: Any = None
            if type(param) is luigi.Parameter and method is _STR_CHECK:
                silent = str
            elif method is _OPTIONAL_CHECK and isinstance(param.expected_type, type):  # type: ignore[attr-defined]
                silent = (param.expected_type, type(None))  # type: ignore[attr-defined]
            checks.append((position[name], name, param, silent))
        type.__setattr__(cls, "_kart_param_checks", checks)
    return cast(list[tuple[int, str, luigi.Parameter, Any]], checks)


class LastResolution(threading.local):
    """The previous get_param_values call of this thread, so luigi's second call for a task is free.

    luigi resolves parameters in its metaclass (for the instance cache) and again in ``__init__``
    right after; only that second call, made while ``initializing``, may reuse the answer.
    """

    entry: tuple[type, tuple[Any, ...], dict[str, Any], list[tuple[str, Any]]] | None = None
    initializing = False

    def remember(self, cls: type, args: Any, kwargs: Any, resolved: list[tuple[str, Any]]) -> None:
        """Keep this call's inputs and answer."""
        self.entry = (cls, tuple(args), dict(kwargs), resolved)

    def repeat_of(self, cls: type, args: Any, kwargs: Any) -> list[tuple[str, Any]] | None:
        """The remembered answer if this call repeats the previous one (and forget it)."""
        entry, self.entry = self.entry, None
        if entry is None or entry[0] is not cls:
            return None
        try:
            same = entry[1] == tuple(args) and entry[2] == kwargs
        except Exception:  # values without a boolean == (e.g. arrays): resolve again
            return None
        return list(entry[3]) if same else None


last_resolution = LastResolution()


def resolve(cls: type, plan: ParameterPlan, args: Any, kwargs: Any) -> list[tuple[str, Any]]:
    """luigi's ``get_param_values`` from ``plan``: positional and keyword arguments over config and defaults.

    Raises:
        UnknownParameterException / DuplicateParameterException / MissingParameterException: as luigi.
    """
    given = {**plan.section_values, **kwargs} if plan.section_values else kwargs
    values: dict[str, Any] = {}
    normalizers = plan.normalizers
    parses = plan.parses_given_str
    if args:
        if len(args) > len(plan.positional):
            raise UnknownParameterException(
                f"{_family(cls)}: takes at most {len(plan.positional)} positional parameters ({len(args)} given)"
            )
        for name, arg in zip(plan.positional, args, strict=False):  # fewer args than positional params is fine
            if arg.__class__ is str and name in parses:
                arg = _parsed_given_str(cls, name, plan.by_name[name], arg)
            normalize = normalizers[name]
            values[name] = arg if normalize is None else normalize(arg)
    for name, arg in given.items():
        if name in values:
            raise DuplicateParameterException(
                f"{_family(cls)}: parameter {name} was already set as a positional parameter"
            )
        normalize = normalizers.get(name, _UNKNOWN)
        if normalize is _UNKNOWN:
            raise UnknownParameterException(f"{_family(cls)}: unknown parameter {name}")
        if arg.__class__ is str and name in parses:
            arg = _parsed_given_str(cls, name, plan.by_name[name], arg)
        if normalize is None:  # luigi.Parameter.normalize: the value itself
            values[name] = arg
        else:
            try:
                values[name] = normalize(arg)
            except Exception as exc:  # luigi's and kart's normalize errors name neither the task nor the parameter
                param = plan.by_name[name]
                exc.add_note(f"{_family(cls)}: parameter {name!r} ({type(param).__name__}) refused the value given")
                raise
    if plan.required and not plan.required.issubset(values):
        _raise_missing(cls, plan, {**plan.defaults, **values})
    # A parameter not given keeps the plan's shared (name, default) pair (defaults are already tuples);
    # every None of the template is a required parameter, given (checked above).
    resolved: list[tuple[str, Any]] = list(plan.template)  # type: ignore[arg-type]
    position = plan.position
    for name, value in values.items():
        # list_to_tuple(value), inline: asked per value given to every new task
        resolved[position[name]] = (name, tuple(value) if isinstance(value, (list, set)) else value)  # noqa: UP038
    return resolved


_IDENTITY_NORMALIZE = luigi.Parameter.normalize
_UNKNOWN: Any = object()


def check_resolved(plan: ParameterPlan, resolved: list[tuple[str, Any]], args: Any, kwargs: Any) -> None:
    """luigi 3.8.1's value checks (``Task._warn_on_wrong_param_types``, run by its ``__init__`` on the values it set) of
    ``resolved``, what ``resolve(cls, plan, args, kwargs)`` returned, in parameter order as luigi runs them.

    Only the checks that can say something run: each value given (``args``, ``kwargs``, the plan's section values)
    whose parameter checks values (``plan.checks``), and each default that does not pass its check silently (a
    default of a silent type passes every time). A chain link given an ``IntParameter`` runs none.

    Raises:
        Whatever a parameter's check raises (a task parameter's ``ParameterTypeError``).
    """
    checks = plan.checks
    if not plan.default_checks and not args and not plan.section_values and checks.keys().isdisjoint(kwargs):
        return
    given = {*kwargs, *plan.section_values, *plan.positional[: len(args)]}
    due = [checks[name] for name in given if name in checks]
    template = plan.template
    due.extend(check for check in plan.default_checks if resolved[check[0]] is template[check[0]])
    due.sort(key=_first)
    for position, param, silent in due:
        name, value = resolved[position]
        if silent is None or not isinstance(value, silent):
            param._warn_on_wrong_param_type(name, value)


def _first(check: tuple[int, luigi.Parameter, Any]) -> int:
    return check[0]


def _family(cls: type) -> str:
    return str(cls.get_task_family())  # type: ignore[attr-defined]


def _with_workspace_from_environment(workspace_default: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The built-in ./resources/ default becomes kart's default workspace (config, then KART_WORKSPACE).

    Arguments and ``[Class]`` / ``[TaskOnKart]`` values still win: they are applied over these defaults.
    """
    if defaults.get("workspace_directory") == workspace_default:
        defaults["workspace_directory"] = default_workspace()
    return defaults


def _raise_missing(cls: type, plan: ParameterPlan, values: dict[str, Any]) -> None:
    name = next(name for name in plan.names if name not in values)
    family = _family(cls)
    raise MissingParameterException(
        f"{family}: requires the '{name}' parameter to be set. "
        f"Pass it to the constructor, or set it under [{family}] in the luigi config."
    )


def list_to_tuple(value: Any) -> Any:
    # luigi stores lists and sets as tuples so that tasks stay hashable.
    return tuple(value) if isinstance(value, (list, set)) else value  # noqa: UP038 (a tuple checks faster)


def _warn_unconsumed_config(cls: type, family: str, names: set[str]) -> None:
    config = luigi.configuration.get_config()
    if not config.has_section(family):
        return
    for key, value in config.items(family):
        if key.replace("-", "_") not in names and key not in getattr(cls, "ignore_unconsumed", set()):
            warnings.warn(
                f"The configuration contains the parameter '{key}' with value '{value}' that is not consumed by the task '{family}'.",
                UnconsumedParameterWarning,
                stacklevel=2,
            )
