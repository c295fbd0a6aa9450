"""Create plugin managers: specs added, given plugins and entry-point plugins registered."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable

import pluggy

from kart_core.dotted import import_object
from kart_core.errors import PluginError
from kart_core.hooks import discovery, specs
from kart_core.hooks.markers import PROJECT_NAME
from kart_core.hooks.registration import PluginManager

# Third-party packages announce plugins (a module or an object with hookimpls) under this group.
ENTRY_POINT_GROUP = "kart"


def create_hook_manager(
    plugins: Iterable[object] = (),
    load_entry_points: bool = True,
    entry_points: Iterable[tuple[str, str]] | None = None,
) -> pluggy.PluginManager:
    """Return a new manager with kart's specs, the given plugins and, optionally, entry-point plugins.

    Args:
        plugins: plugin objects or modules, registered first.
        load_entry_points: also register the plugins of the ``kart`` entry-point group.
        entry_points: with ``load_entry_points``, the group's ``(name, "module:attribute")`` pairs as
            ``declared_entry_points()`` found them in another process (a worker gets its parent's);
            None: this process's own (its metadata folders are read once per process).

    Raises:
        PluginError: a plugin implements a hook kart does not define (e.g. a misspelt name, which
            would otherwise register silently and never fire), or with arguments the spec lacks.
    """
    manager = PluginManager(PROJECT_NAME)  # pluggy's, registering the same hooks faster
    manager.add_hookspecs(specs.TaskRunSpecs)
    manager.add_hookspecs(specs.FileProcessorSpecs)
    for plugin in plugins:
        _register(manager, plugin, None)
    if load_entry_points:
        loaded = entry_point_plugins() if entry_points is None else _imported(tuple(entry_points))
        for name, plugin in loaded:
            if manager.get_plugin(name) is None:
                _register(manager, plugin, name)
    check_hooks(manager)
    return manager


def _register(manager: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        # pluggy checks the arguments of implementations of known hooks when they register.
        raise PluginError(f"kart plugin {_plugin_label(plugin, name)} is invalid: {exc}") from exc


def check_hooks(manager: pluggy.PluginManager) -> None:
    """Refuse implementations of hooks that kart does not define (pluggy's ``check_pending``).

    Raises:
        PluginError: naming the plugin, the unknown hook, and the hooks that exist.
    """
    # The hook callers pluggy made, read from the namespace it sets them on (its own names and dunders are no
    # callers): not dir() and a getattr per name, in every new process's managers.
    callers = vars(manager.hook).items()
    for hook_name, caller in sorted(callers):
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            known = sorted(name for name in dir(manager.hook) if name.startswith("kart_"))
            raise PluginError(
                f"kart plugin {_plugin_label(impl.plugin, impl.plugin_name)} implements {hook_name!r}, which is "
                f"not a kart hook, so it would never be called. Known hooks: {', '.join(known)}. "
                "Fix the name, or mark it @hookimpl(optionalhook=True) if it belongs to a newer kart."
            )


def _plugin_label(plugin: object, name: str | None) -> str:
    qualified = getattr(plugin, "__name__", None) or type(plugin).__qualname__
    return f"{name!r} ({qualified})" if name and name != str(id(plugin)) else repr(qualified)


@functools.cache
def entry_point_plugins() -> tuple[tuple[str, object], ...]:
    """The plugins installed under the ``kart`` entry-point group, loaded once per process."""
    return _imported(declared_entry_points())


@functools.cache
def declared_entry_points() -> tuple[tuple[str, str], ...]:
    """``(name, "module:attribute")`` of each plugin declared under the ``kart`` group, read once per process.

    From the metadata folders on sys.path, or what an earlier process found there while they are
    unchanged (``kart_core.hooks.discovery``).
    """
    return tuple(discovery.declared_entry_points(ENTRY_POINT_GROUP, sys.path))


def _imported(declared: tuple[tuple[str, str], ...]) -> tuple[tuple[str, object], ...]:
    return tuple((name, import_object(target)) for name, target in declared)
