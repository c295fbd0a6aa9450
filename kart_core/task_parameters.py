"""The parameters every kart task has (gokart 1.12.2's names, defaults and meanings), and how they resolve.

``TaskOnKart`` inherits them from ``TaskParameters``, a plain mixin (not a luigi.Task, so luigi
registers no task for it). luigi orders parameters by creation, and these are created when
kart_core is imported, before any user class: the order, and so every unique id, is gokart's.
All are insignificant: none changes a unique id. A ``[TaskOnKart]`` config section sets them
(gokart's config injection), and resolution runs from per-class plans (``kart_core.param_plan``).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, ClassVar, cast

import luigi
from luigi.task_register import Register

from kart_core.errors import TaskParameterTooLargeError
from kart_core.param_plan import (
    STORES_PLAINLY,
    ParameterPlan,
    checked_params,
    current_plan,
    last_resolution,
    param_checks,
    parameter_plan,
    resolve,
    section_values,
    str_param_selection,
)
from kart_core.parameter import ExplicitBoolParameter, serialize_value

__all__ = ["CONFIG_SECTION", "KART_SETTINGS", "KartRegister", "TaskParameters", "check_task_on_kart_section"]

logger = logging.getLogger(__name__)

CONFIG_SECTION = "TaskOnKart"
# kart's own options in [TaskOnKart] that are no task parameter (kart_core.signing, kart_core.target_config).
KART_SETTINGS = frozenset(
    {"signing_key", "signing_old_keys", "verify_outputs", "integrity_record", "repair_damaged_outputs"}
)


class KartRegister(Register):
    """luigi's task metaclass with its instance cache looked up once per new task instead of four times.

    luigi 3.8.1's ``Register.__call__`` resolves the parameters, then hashes the key ``(class, the
    (name, value) pairs)`` for a ``hash()`` probe, a ``not in``, a store and a read: four hashes of a
    tuple of ~21 pairs (tuples do not keep their hash) per new task: 3.5 % of the instructions of a
    cached check of a chain of 1,000. This does the same with one ``dict.get`` (and one store for a new
    task). The same
    cache (``Register.clear_instance_cache`` / ``disable_instance_cache`` act on it), key, answers, and
    fallback when a value is unhashable (a new object each time, as luigi).

    A class that keeps TaskOnKart's constructor (no ``__init__``, ``__new__``, ``get_params``, ``get_param_values`` or
    value checks of its own, parameters stored plainly: ``TaskOnKart._kart_direct_initializer``) is made directly
    from the values resolved for the key: luigi resolves them again in ``__init__``, which kart answered from a
    remembered first resolution (``param_plan.last_resolution``) at the cost of comparing the arguments. The task
    is the same object with the same attributes (``TaskOnKart.__init__`` runs the same steps); luigi's value checks
    run only on a new task, as luigi runs them in ``__init__``, and only those that can warn
    (``param_plan.check_resolved``). About a third of making each task of a cached chain's check.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        cache = cls._Register__instance_cache  # type: ignore[attr-defined]
        if cache is None:  # disabled (Register.disable_instance_cache)
            return super(Register, cls).__call__(*args, **kwargs)
        direct = cls.__dict__.get("_kart_direct")  # decided per class (not inherited: its own dict); forgotten when
        if direct is None:  # what it relies on is set on the class or a base since (__setattr__, __delattr__)
            direct = _direct_initializer(cls)
        initialize = direct[0]
        if initialize is not None:
            plan = _parameter_plan(cls)  # type: ignore[arg-type]
            values = resolve(cls, plan, args, kwargs)
        else:
            values = cls.get_param_values(cls.get_params(), args, kwargs)  # type: ignore[attr-defined]
        key = (cls, tuple(values))
        try:
            instance = cache.get(key)
        except TypeError:
            try:
                hash(key)
            except TypeError:  # luigi's own test: unhashable values get a new object, not an error
                logger.debug("Not all parameter values are hashable so instance isn't coming from the cache")
                return super(Register, cls).__call__(*args, **kwargs)
            raise  # the look-up itself raised (a value's __eq__), as luigi's `not in` would
        if instance is None:
            if initialize is not None:
                instance = object.__new__(cls)  # type: ignore[arg-type]
                initialize(instance, values, plan, args, kwargs)
                cache[key] = instance
            else:
                instance = cache[key] = super(Register, cls).__call__(*args, **kwargs)
        return instance

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _DIRECT_RELIES_ON:
            _forget_direct(cls)

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        if name in _DIRECT_RELIES_ON:
            _forget_direct(cls)


# What TaskOnKart._kart_direct_initializer looks at: a class (or a base) given another one since its first task (a
# test's monkeypatch of get_param_values, a replaced __init__) decides again.
_DIRECT_RELIES_ON = frozenset(
    {"__init__", "__new__", "get_params", "get_param_values", "_warn_on_wrong_param_types", "_kart_direct_initializer"}
)


def _forget_direct(cls: type) -> None:
    """Drop the direct construction decided for ``cls`` and its subclasses (``_direct_initializer``)."""
    stack = [cls]
    while stack:
        current = stack.pop()
        if "_kart_direct" in current.__dict__:
            type.__delattr__(current, "_kart_direct")
        stack.extend(current.__subclasses__())


def _direct_initializer(cls: type) -> tuple[Any]:
    """``(what KartRegister makes cls's new tasks with,)`` (``TaskOnKart._kart_direct_initializer``), or ``(None,)``:
    luigi's way (``type.__call__``). Kept in the class's own ``__dict__``, so a subclass decides for itself; in a
    tuple, not as a function, which the class would show as a method of its own (``identity.own_code``)."""
    decide = getattr(cls, "_kart_direct_initializer", None)
    direct = (decide() if decide is not None else None,)
    type.__setattr__(cls, "_kart_direct", direct)
    return direct


_NO_VALUES: dict[str, Any] = {}  # ``to_str_params`` of a class whose parameters do not store plainly: read each

# The key of ``kart_by_values``'s tables inside luigi's instance cache (with the class).
_BY_VALUES = object()

# The mixin is only ever combined with luigi.Task; type-check it as one so super() calls are known.
if TYPE_CHECKING:
    _Base = luigi.Task
else:
    _Base = object


class TaskParameters(_Base):
    """gokart's TaskOnKart parameters (workspace, rerun, checks, seeds, locks, logs) and their resolution."""

    workspace_directory = luigi.Parameter(
        default="./resources/", description="Where outputs live (a path or an fsspec URL).", significant=False
    )
    local_temporary_directory = luigi.Parameter(
        default="./resources/tmp/", description="Scratch space for model targets and locks.", significant=False
    )
    rerun = luigi.BoolParameter(
        default=False,
        description="Run even if the outputs exist (they are replaced when the rerun commits).",
        significant=False,
    )
    strict_check = luigi.BoolParameter(
        default=False, description="Complete only if the inputs exist too.", significant=False
    )
    modification_time_check = luigi.BoolParameter(
        default=False, description="Complete only if no input is newer than the outputs.", significant=False
    )
    serialized_task_definition_check = luigi.BoolParameter(
        default=False, description="Include the task's own source code in its unique id.", significant=False
    )
    delete_unnecessary_output_files = luigi.BoolParameter(
        default=False, description="Delete outputs not needed by the task tree.", significant=False
    )
    significant = luigi.BoolParameter(
        default=True, description="If false, this task is left out of its dependants' unique ids.", significant=False
    )
    fix_random_seed_methods = luigi.ListParameter(
        default=("random.seed", "numpy.random.seed"),
        description="Seed functions called before run().",
        significant=False,
    )
    FIX_RANDOM_SEED_VALUE_NONE_MAGIC_NUMBER: ClassVar[int] = -42497368
    fix_random_seed_value = luigi.IntParameter(
        default=FIX_RANDOM_SEED_VALUE_NONE_MAGIC_NUMBER,
        description="Seed value (default: derived from the unique id).",
        significant=False,
    )
    redis_host = luigi.OptionalParameter(
        default=None, description="Redis host for locks; no redis lock when unset.", significant=False
    )
    redis_port = luigi.OptionalIntParameter(
        default=None, description="Redis port for locks; no redis lock when unset.", significant=False
    )
    redis_timeout = luigi.IntParameter(
        default=180, description="Seconds after which a redis lock expires.", significant=False
    )
    fail_on_empty_dump = ExplicitBoolParameter(
        default=False, description="Fail when the task dumps an empty DataFrame.", significant=False
    )
    store_index_in_feather = ExplicitBoolParameter(
        default=True, description="Keep the DataFrame index in feather files.", significant=False
    )
    cache_unique_id = ExplicitBoolParameter(
        default=True, description="Compute the unique id once per task object.", significant=False
    )
    should_dump_supplementary_log_files = ExplicitBoolParameter(
        default=True, description="Write the run logs under log/.", significant=False
    )
    complete_check_at_run = ExplicitBoolParameter(
        default=True, description="Skip run() when the outputs already exist.", significant=False
    )
    should_lock_run = ExplicitBoolParameter(
        default=False,
        description="Hold a lock (redis when configured, else a file lock) while running.",
        significant=False,
    )

    @classmethod
    def kart_by_values(cls, **kwargs: Any) -> Any:
        """``cls(**kwargs)``, found by the keyword values as given when they are hashable (``str``, tuples of ``str``).

        The object luigi 3.8.1's instance cache hands back for them, without resolving every parameter and
        hashing luigi's key (the class and its ~29 resolved ``(name, value)`` pairs) for each look-up: a fifth
        of KartRunner's check of a cached node in a process that ran the node before. The table lives inside
        luigi's instance cache, so whatever empties that (``Register.clear_instance_cache``, kart's emptying on
        a config change) empties it; one table per parameter plan (``param_plan``: a config that gives other
        defaults makes another plan; luigi resolves a task from the plan and the arguments alone). A miss creates
        the task with ``cls(**kwargs)``, which stores it in luigi's cache too. With luigi's cache disabled, or for
        a value that cannot be hashed, this is ``cls(**kwargs)``.

        Raises:
            As ``cls(**kwargs)``.
        """
        cache = cls._Register__instance_cache  # type: ignore[attr-defined]
        if cache is None:
            return cls(**kwargs)
        plan = _parameter_plan(cls)  # the config's: inside a build's config_frozen, one dictionary read
        slot = (_BY_VALUES, cls)  # not a luigi key: luigi's start with the class
        table = cache.get(slot)
        if table is None or table[0] is not plan:
            table = cache[slot] = (plan, {})
        key = tuple(kwargs.items())  # in the caller's order: another order is another entry for the same task
        try:
            instance = table[1].get(key)
        except TypeError:  # a list or another unhashable value: luigi's own look-up
            return cls(**kwargs)
        if instance is None:
            instance = table[1][key] = cls(**kwargs)
        return instance

    @classmethod
    def kart_by_values_if_made(cls, **kwargs: Any) -> Any:
        """The object ``kart_by_values(**kwargs)`` would hand back when one was made already for these values as given
        (in this order), under the current parameter plan; None when none was (nothing is made or resolved).

        For a caller with a cheaper path than making the task (kart_kedro's check of a cached node by its key's id)
        that would rather use a task it has: its memoized outputs and unique id cost nothing more.
        """
        cache = cls._Register__instance_cache  # type: ignore[attr-defined]
        if cache is None:
            return None
        table = cache.get((_BY_VALUES, cls))
        if table is None or table[0] is not _parameter_plan(cls):
            return None
        try:
            return table[1].get(tuple(kwargs.items()))
        except TypeError:  # an unhashable value: kart_by_values would ask luigi
            return None

    @classmethod
    def get_param_values(cls, params: Any, args: Any, kwargs: Any) -> list[tuple[str, Any]]:
        """Resolve parameter values as luigi does (args, kwargs, config, defaults), from a cached plan.

        luigi resolves every new task twice (for its instance cache, then in ``__init__``) and re-reads
        the config for every parameter each time, which dominated building large graphs.
        """
        repeated = last_resolution.repeat_of(cls, args, kwargs) if last_resolution.initializing else None
        if repeated is not None:
            return repeated
        # luigi passes get_params()'s answer: compare with the class's list without copying it again.
        if params != (cls.__dict__.get("_kart_params") or cls.get_params()):
            kwargs = dict(kwargs)
            cls._add_configuration(kwargs, CONFIG_SECTION)
            return cast(list[tuple[str, Any]], super().get_param_values(params, args, kwargs))
        resolved = resolve(cls, _parameter_plan(cls), args, kwargs)
        last_resolution.remember(cls, args, kwargs, resolved)
        return resolved

    @classmethod
    def get_params(cls) -> list[tuple[str, luigi.Parameter]]:
        """luigi's (name, Parameter) list, computed once per class (luigi scans dir() on every call)."""
        cached = cls.__dict__.get("_kart_params")
        if cached is None:
            cached = super().get_params()
            type.__setattr__(cls, "_kart_params", cached)
        return list(cached)

    @classmethod
    def _add_configuration(cls, kwargs: dict[str, Any], section: str) -> None:
        """Fill parameters from the ``[TaskOnKart]`` config section (see ``_section_parameter_names``)."""
        for key, value in section_values(cls, section, _section_parameter_names(cls)).items():
            kwargs.setdefault(key, value)

    def to_str_params(self, only_significant: bool = False, only_public: bool = False) -> dict[str, str]:
        """luigi's string form of the parameters (names in parameter order, values serialized).

        Not kept on the task: the unique id reads it once (and is kept), the task_params run log once
        more; a task parameter's value keeps its own serialized form (``TaskInstanceParameter``), so
        a chain of task parameters is not serialized again.
        """
        strings = {}
        cls = type(self)
        # A class whose parameters store and read their values plainly (param_plan.stores_plainly) keeps each in
        # the instance __dict__ under its name: read there, without the parameter's __get__ (a Python call).
        values = self.__dict__ if cls.__dict__.get(STORES_PLAINLY) else _NO_VALUES
        # Only the selected parameters are read (a chain link's id reads one of its 21, not all).
        for name, param, as_str in str_param_selection(cls, only_significant, only_public):
            value = values[name] if name in values else getattr(self, name)
            if as_str:  # luigi.Parameter.serialize: str(value)
                try:
                    strings[name] = str(value)
                    continue
                except TypeError:
                    pass  # its __str__ returned no string: serialize_value names the parameter
            try:
                strings[name] = serialize_value(cls.__name__, name, param, value)
            except TaskParameterTooLargeError as exc:
                # This task's own id cannot be computed (it would include the value): name the class.
                raise TaskParameterTooLargeError(f"{cls.__name__}.{name}: {exc}") from None
        return strings

    def _warn_on_wrong_param_types(self) -> None:
        # Only parameters that check their values (task parameters, plain luigi.Parameter) are visited.
        for name, param in checked_params(type(self)):
            param._warn_on_wrong_param_type(name, getattr(self, name))

    @classmethod
    def kart_warn_on_wrong_param_types(cls, values: list[tuple[str, Any]]) -> None:
        """``_warn_on_wrong_param_types`` for the ``(name, value)`` pairs a new task is given, without reading them back.

        The same warnings as luigi 3.8.1's; a value that passes luigi's own check silently (a ``str``
        for ``luigi.Parameter``, None or ``expected_type`` for an optional parameter) skips the call.
        """
        for position, name, param, silent in param_checks(cls):
            pair = values[position] if position < len(values) else None
            if pair is None or pair[0] != name:  # not in get_params() order: look it up
                pair = (name, dict(values)[name])
            value = pair[1]
            if silent is None or not isinstance(value, silent):
                param._warn_on_wrong_param_type(name, value)


@functools.cache
def _own_parameter_names() -> frozenset[str]:
    """The parameters declared here: every task class takes them from ``[TaskOnKart]``."""
    return frozenset(name for name, value in vars(TaskParameters).items() if isinstance(value, luigi.Parameter))


def _section_parameter_names(cls: type) -> frozenset[str]:
    """The parameters of ``cls`` that ``[TaskOnKart]`` sets: TaskOnKart's own, plus those declared in the
    body of ``cls`` itself (not those it inherits from an intermediate base class).

    This follows gokart 1.12.2's TaskOnKart._add_configuration, which looks keys up in the class
    dicts of TaskOnKart and of the task's own class; since those values are passed as keyword
    arguments, they outrank ``[ClassName]`` (and so change the unique id).
    """
    cached = cls.__dict__.get("_kart_section_names")
    if cached is None:  # once per class: this runs for every task created
        own = frozenset(name for name, value in vars(cls).items() if isinstance(value, luigi.Parameter))
        cached = _own_parameter_names() | own
        type.__setattr__(cls, "_kart_section_names", cached)
    return cast(frozenset[str], cached)


# luigi's default for workspace_directory, which kart's default workspace replaces (param_plan).
_BUILT_IN_WORKSPACE = str(TaskParameters.workspace_directory._default)


def _parameter_plan(cls: type[TaskParameters]) -> ParameterPlan:
    plan = current_plan(cls)  # the common case inside a build: the plan kept for this config
    if plan is None:
        plan = parameter_plan(cls, CONFIG_SECTION, _section_parameter_names(cls), _BUILT_IN_WORKSPACE)
    return plan


def check_task_on_kart_section(parser: Any = None) -> list[str]:
    """Warn (``IgnoredSettingWarning``) for each ``[TaskOnKart]`` key that looks like a misspelt kart setting.

    Called by every kart build. ``[TaskOnKart]`` may also set a parameter that any task class declares
    (gokart's config injection), so a key counts as misspelt only when it is none of those, nor one of
    TaskOnKart's parameters or kart's own settings (``KART_SETTINGS``), and is close to one of the latter
    two (``difflib``: ``signing_kye`` for ``signing_key``): such a key is read by nothing, and for the
    signing key that means a build without signing and without a word.

    Args:
        parser: luigi's config parser (default: ``luigi.configuration.get_config()``).

    Returns:
        The suspicious keys, in the order the section lists them.
    """
    import warnings

    import luigi.configuration

    from kart_core.errors import IgnoredSettingWarning

    config = parser if parser is not None else luigi.configuration.get_config()
    layout = _layout(config)
    suspicious = _misspelt_sections(config, layout) + _misplaced_settings(config, layout)
    if CONFIG_SECTION not in layout:
        return suspicious
    import difflib  # here: most builds have no [TaskOnKart] section, and its import is a build's 1 ms

    known = sorted(_own_parameter_names() | KART_SETTINGS)
    declared: frozenset[str] | None = None
    for key in layout[CONFIG_SECTION]:
        if _is_toml(config):  # nothing but kart's own settings is read from the section: say why for each other key
            if key not in _READ_UNDER_TOML:
                suspicious.append(key)
                _warn_ignored_under_toml(config, key, known)
            continue
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8) or _signing_guess(key)
        if not close:
            continue
        if declared is None:
            declared = _declared_by_task_classes()
        if key in declared:
            continue
        suspicious.append(key)
        warnings.warn(
            f"[{CONFIG_SECTION}] {key} is read by nothing: no kart setting or task parameter has that name. "
            f"Did you mean {close[0]}?{_where(config)}",
            IgnoredSettingWarning,
            stacklevel=2,
        )
    return suspicious


def _signing_guess(key: str) -> list[str]:
    """The signing setting a key nothing reads most likely meant, by its words (``signature_key``,
    ``hmac_secret``, ``old_signing_keys``), when it is too far from every name for ``difflib``: a missed
    signing key is a build that loads whatever pickle the cache holds."""
    import re

    words = key.lower()
    if not re.search(r"(?:^|[_\-. ])(?:sign|secret|hmac)", words):  # a word starting so (not "design_...")
        return []
    return ["signing_old_keys" if "old" in words else "signing_key"]


# What kart reads from [TaskOnKart] under luigi's TOML parser (luigi's ``get``, which sees its data): its own
# settings and the default workspace (``kart_core.workspace.default_workspace``). Task parameters are set from the
# section by gokart's injection, which looks the section up with ConfigParser calls that see nothing there.
_READ_UNDER_TOML = KART_SETTINGS | {"workspace_directory"}


def _warn_ignored_under_toml(config: Any, key: str, known: list[str]) -> None:
    import difflib
    import warnings

    from kart_core.errors import IgnoredSettingWarning

    close = difflib.get_close_matches(key, sorted(_READ_UNDER_TOML), n=1, cutoff=0.8) or _signing_guess(key)
    if close and key not in known:
        why = f"no kart setting has that name. Did you mean {close[0]}?"
    else:
        why = (
            f"under a TOML luigi config (LUIGI_CONFIG_PARSER=toml) gokart sets no task parameter from "
            f"[{CONFIG_SECTION}] (luigi's TOML parser hides the section from it), and kart keeps gokart's unique ids. "
            f"Set it in each task's own section ([MyTask] {key} = ...), or use a .cfg luigi config."
        )
    warnings.warn(
        f"[{CONFIG_SECTION}] {key} is read by nothing: {why}{_where(config)}", IgnoredSettingWarning, stacklevel=3
    )


def _is_toml(config: Any) -> bool:
    """Whether ``config`` is luigi's TOML parser (``LUIGI_CONFIG_PARSER=toml``)."""
    return type(config).__name__ == "LuigiTomlParser"


def _layout(config: Any) -> dict[str, list[str]]:
    """Option names by section of luigi's config. luigi's TOML parser keeps its values in ``data``, where
    ConfigParser's own ``sections()`` / ``options()`` see nothing; a cfg section's options include
    ``[DEFAULT]``'s, as luigi reads them."""
    if _is_toml(config):
        data = getattr(config, "data", None) or {}
        return {str(name): [str(key) for key in values] for name, values in data.items() if isinstance(values, dict)}
    return {section: list(config.options(section)) for section in config.sections()}


def _misplaced_settings(config: Any, layout: dict[str, list[str]]) -> list[str]:
    """kart's own settings (``KART_SETTINGS``: ``signing_key`` ...) put in another section than ``[TaskOnKart]``
    (``[kart]``, ``[core]``, a task's section), where nothing reads them, unless a task class of that section
    declares a parameter of that name. A section spelt like ``[TaskOnKart]`` is named whole by
    ``_misspelt_sections``. Each is named in an ``IgnoredSettingWarning``; returned as ``[section] key``."""
    import warnings

    from kart_core.errors import IgnoredSettingWarning

    defaults = set(config.defaults()) if hasattr(config, "defaults") else set()  # [DEFAULT] reaches [TaskOnKart] too
    found = []
    for section, keys in layout.items():
        if _folded(section) == _folded(CONFIG_SECTION):
            continue
        misplaced = [key for key in keys if key in KART_SETTINGS and key not in defaults]
        declared = _declared_by_family(section) if misplaced else frozenset()
        for key in misplaced:
            if key in declared:
                continue
            found.append(f"[{section}] {key}")
            warnings.warn(
                f"[{section}] {key} is read by nothing: kart reads {key} from [{CONFIG_SECTION}] only (or its "
                f"environment variable). Move it to [{CONFIG_SECTION}].{_where(config)}",
                IgnoredSettingWarning,
                stacklevel=3,
            )
    return found


def _folded(section: str) -> str:
    return section.lower().replace("_", "").replace("-", "").replace(" ", "")


def _declared_by_family(section: str) -> frozenset[str]:
    """The parameters the task classes of family ``section`` declare (luigi sets those from ``[section]``)."""
    from luigi.task_register import Register

    names: set[str] = set()
    for cls in list(Register._reg):
        if getattr(cls, "get_task_family", lambda: None)() == section:
            names.update(name for name, _ in cls.get_params())
    return frozenset(names)


def _where(config: Any) -> str:
    """`` (luigi configuration: a.cfg, b.cfg)``: the files luigi read (the warning's source), when known."""
    import os

    paths = [path for path in getattr(config, "_config_paths", ()) if os.path.isfile(path)]
    return f" (luigi configuration: {', '.join(dict.fromkeys(paths))})" if paths else ""


def _misspelt_sections(config: Any, layout: dict[str, list[str]]) -> list[str]:
    """Sections spelt like ``[TaskOnKart]`` but not exactly (``[taskonkart]``, ``[TaskOnKArt]``, ``[Task_On_Kart]``):
    luigi's section names are case-sensitive, so nothing reads them. A task family of that name is a real section.
    Each is named in an ``IgnoredSettingWarning``; returned as ``[name]``."""
    import warnings

    from luigi.task_register import Register

    from kart_core.errors import IgnoredSettingWarning

    wanted = _folded(CONFIG_SECTION)
    found = []
    for section in layout:
        if section == CONFIG_SECTION or _folded(section) != wanted:
            continue
        if any(getattr(cls, "get_task_family", lambda: None)() == section for cls in list(Register._reg)):
            continue
        found.append(f"[{section}]")
        warnings.warn(
            f"[{section}] is read by nothing: kart and gokart read [{CONFIG_SECTION}] (section names are "
            f"case-sensitive). Rename the section.{_where(config)}",
            IgnoredSettingWarning,
            stacklevel=3,
        )
    return found


def _declared_by_task_classes() -> frozenset[str]:
    """The parameter names every task class luigi knows declares in its own body (``[TaskOnKart]`` sets those)."""
    from luigi.task_register import Register

    names: set[str] = set()
    for cls in list(Register._reg):
        if isinstance(cls, type) and issubclass(cls, TaskParameters):
            names.update(_section_parameter_names(cls))
    return frozenset(names)
