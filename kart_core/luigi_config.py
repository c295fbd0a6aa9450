"""luigi's configuration as it is now: edited config files re-read, ``${ENV_VAR}`` values followed.

luigi reads its config files once per process and interpolates ``${VAR}`` from the environment each
time a value is read. kart caches parameter resolution per configuration (``param_plan``), so its
cache key (``fingerprint``) must change whenever a value luigi would return may change:

- a config file was edited, added or removed: a cheap ``stat`` of luigi's config paths notices it
  (``refresh``), and at the start of every build the files are parsed and compared
  (``refresh(thorough=True)``, which also catches an edit within one mtime tick);
- an environment variable that a value interpolates changed: the fingerprint holds their values.

The cheap check runs whenever a task is created outside a build (inside one the config is frozen):
one ``stat`` per luigi config path, four by default (measured 15 µs for the four on this project's
loaded 2-core CI machine, whose system calls are slow; about a microsecond each elsewhere).

Re-reading merges three ways, key by key: a value the program set or removed after the files were
read (``config.set(...)``) stays; a value that came from a file takes the file's new value, and a key
deleted from the file is removed (luigi's own ``reload()`` would keep deleted keys and overwrite
values set by the program). The bookkeeping lives on luigi's config object, so a new config object
starts afresh. The first baseline is taken when this module is imported (creating luigi's config
object if needed, so the baseline is what luigi read): a file written after ``import kart_core``
and before the first task is then an edit like any other.
"""

from __future__ import annotations

import configparser
import os
import re
from typing import Any

import luigi.configuration
from luigi import task_register
from luigi.configuration import LuigiConfigParser

__all__ = ["files_setting", "fingerprint", "refresh", "swap_build_fingerprint"]

Sections = dict[str, dict[str, Any]]

# luigi's EnvironmentInterpolation syntax.
_ENVIRONMENT_REFERENCE = re.compile(r"\$\{([^}]+)\}")
_MISSING = object()


def fingerprint(*extra: Any) -> tuple[Any, ...]:
    """Changes whenever a value read from luigi's config may differ: the config object, its raw values
    (after re-reading changed files), the environment variables they interpolate, and ``extra``.

    When it differs from the previous fingerprint, luigi's task instance cache is emptied, so a
    task created after a change is a new object.
    """
    config = refresh()
    raw = _raw_text(config)
    result = (id(config), raw, _interpolated_environment(config, raw), *extra)
    _forget_tasks_on_change(config, result)
    return result


def refresh(thorough: bool = False) -> Any:
    """Re-read luigi's config files if they changed since they were read; return luigi's config object.

    Args:
        thorough: parse the files and compare their values instead of trusting their size and mtime
            (once per build; a few hundred microseconds for a small config).
    """
    config = luigi.configuration.get_config()
    state = vars(config)
    _follow_config_path_variable(type(config), state)
    stamps = _file_stamps(type(config)._config_paths)
    if "_kart_file_values" not in state:
        state["_kart_file_values"], state["_kart_file_stamps"] = _file_values(config), stamps
        return config
    if not thorough and stamps == state["_kart_file_stamps"]:
        return config
    now = _file_values(config)
    if now != state["_kart_file_values"]:
        _merge(config, state["_kart_file_values"], now)
    state["_kart_file_values"], state["_kart_file_stamps"] = now, stamps
    return config


def _follow_config_path_variable(parser_class: Any, state: dict[str, Any]) -> None:
    """Make luigi's config paths follow ``LUIGI_CONFIG_PATH`` as it is now.

    luigi adds the file the variable names to its paths once, when it is imported; a notebook that sets the
    variable to another file (``dev.cfg`` -> ``prod.cfg``) would keep the first one. kart removes the file it
    (or luigi) added for the previous value and adds the new one when it exists, as luigi's
    ``add_config_path`` would (read last: it wins); the stamps of the paths then differ, so ``refresh`` reads
    the files again. The first call takes as its baseline the value luigi added (None when luigi added
    none: a value set after luigi's import is then added here).
    """
    current = os.environ.get("LUIGI_CONFIG_PATH")
    paths = parser_class._config_paths
    if "_kart_env_config_path" not in state:
        state["_kart_env_config_path"] = current if current in paths else None
    previous = state["_kart_env_config_path"]
    if current == previous:
        return
    if previous is not None and previous in paths:
        del paths[len(paths) - 1 - paths[::-1].index(previous)]  # the last: a default path may also be listed
    # a variable naming no file: luigi reads none (it warns); it is looked for again at the next refresh
    added = current is not None and os.path.isfile(current)
    if added:
        paths.append(current)
    state["_kart_env_config_path"] = current if added else None


def _forget_tasks_on_change(config: Any, fingerprint: tuple[Any, ...]) -> None:
    """Empty luigi's task instance cache when ``fingerprint`` differs from the last one seen.

    luigi hands back an existing task object for equal parameter values, with the upstreams and
    unique id it computed under the old configuration; a task created after a change must derive
    them afresh (e.g. an upstream created in ``requires()`` whose parameter comes from the config).
    The cache is emptied in place: luigi's ``Register.__call__`` holds on to the dict it read.
    """
    state = vars(config)
    if state.get("_kart_last_fingerprint") == fingerprint:
        return
    state["_kart_last_fingerprint"] = fingerprint
    cache = getattr(task_register.Register, "_Register__instance_cache", None)
    if cache:
        cache.clear()


def swap_build_fingerprint(fingerprint: tuple[Any, ...]) -> bool:
    """Remember ``fingerprint`` as the current build's; return whether it differs from the previous build's."""
    state = vars(luigi.configuration.get_config())
    previous = state.get("_kart_build_fingerprint")
    state["_kart_build_fingerprint"] = fingerprint
    return previous != fingerprint


def files_setting(section: str, key: str) -> list[str]:
    """The config files luigi reads that set ``key`` under ``[section]``, in reading order (the last one wins).

    Read afresh, one file at a time, by a parser of luigi's kind (cfg or toml); a file that cannot be
    read is skipped. Empty when the value was set by the program (``config.set``) or by no file.
    """
    config = luigi.configuration.get_config()
    found = []
    for path in type(config)._config_paths:
        if not os.path.isfile(path):
            continue
        fresh = type(config)()
        try:
            fresh.read([path])
        except Exception:  # a file luigi itself would fail on is not the one to name
            continue
        if key in _sections_of(fresh).get(section, {}):
            found.append(path)
    return found


def _file_stamps(paths: list[str]) -> tuple[Any, ...]:
    stamps: list[Any] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            stamps.append((path, None))
            continue
        stamps.append((path, info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamps)


def _file_values(config: Any) -> Sections:
    """What luigi's config files hold now, read into a fresh parser of the same kind."""
    fresh = type(config)()
    fresh.read(type(config)._config_paths)
    return _sections_of(fresh)


def _sections_of(config: Any) -> Sections:
    """Raw values by section (cfg: before interpolation, ``DEFAULT`` included; toml: as parsed)."""
    if isinstance(config, LuigiConfigParser):
        stored, defaults = _cfg_storage(config)
        sections = {name: dict(values) for name, values in stored.items()}
        if defaults:
            sections[config.default_section] = dict(defaults)
        return sections
    return {name: dict(values) for name, values in getattr(config, "data", {}).items()}


def _raw_text(config: Any) -> str:
    # repr of luigi's own storage, without copying it (this runs for every task created outside a build).
    if isinstance(config, LuigiConfigParser):
        return repr(_cfg_storage(config))
    return repr(getattr(config, "data", None))


def _cfg_storage(config: LuigiConfigParser) -> tuple[Sections, dict[str, Any]]:
    """configparser's own storage: raw values by section, and the DEFAULT section's."""
    state = vars(config)
    return state["_sections"], state["_defaults"]


def _merge(config: Any, before: Sections, after: Sections) -> None:
    """Apply the files' change from ``before`` to ``after``, keeping what the program set itself."""
    current = _sections_of(config)
    for section in before.keys() | after.keys():
        old, new = before.get(section, {}), after.get(section, {})
        for key in old.keys() | new.keys():
            here = current.get(section, {}).get(key, _MISSING)
            set_by_program = here != old[key] if key in old else here is not _MISSING
            if set_by_program:
                continue
            if key in new:
                _put(config, section, key, new[key])
            else:
                _drop(config, section, key)


def _put(config: Any, section: str, key: str, value: Any) -> None:
    if not isinstance(config, LuigiConfigParser):
        config.data.setdefault(section, {})[key] = value
        return
    stored, defaults = _cfg_storage(config)
    if section == config.default_section:
        defaults[key] = value
        return
    if not config.has_section(section):
        configparser.RawConfigParser.add_section(config, section)
    # Raw, as read from a file: ConfigParser.set would reject a literal "%" that reading accepts.
    stored[section][key] = value


def _drop(config: Any, section: str, key: str) -> None:
    if not isinstance(config, LuigiConfigParser):
        config.data.get(section, {}).pop(key, None)
        return
    stored, defaults = _cfg_storage(config)
    (defaults if section == config.default_section else stored.get(section, {})).pop(key, None)


def _interpolated_environment(config: Any, raw: str) -> tuple[str | None, ...]:
    """The values of the environment variables that ``${VAR}`` references in the config name."""
    state = vars(config)
    known = state.get("_kart_environment_names")
    if known is None or known[0] != raw:
        names = tuple(sorted(set(_ENVIRONMENT_REFERENCE.findall(raw))))
        known = state["_kart_environment_names"] = (raw, names)
    return tuple(os.environ.get(name) for name in known[1])


# The baseline must be what luigi read. Taken later (at the first task), a config file written in
# between would count as already read, and the first build would use luigi's older values.
refresh()
