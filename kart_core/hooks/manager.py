"""Create plugin managers: specs added, given plugins and entry-point plugins registered."""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterable

import pluggy

from kart_core.hooks import specs
from kart_core.hooks.markers import PROJECT_NAME

# Third-party packages announce plugins (a module or an object with hookimpls) under this group.
ENTRY_POINT_GROUP = "kart"


def create_hook_manager(plugins: Iterable[object] = (), load_entry_points: bool = True) -> pluggy.PluginManager:
    """Return a new manager with kart's specs, the given plugins and, optionally, entry-point plugins."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(specs.TaskRunSpecs)
    manager.add_hookspecs(specs.FileProcessorSpecs)
    for plugin in plugins:
        manager.register(plugin)
    if load_entry_points:
        for name, plugin in entry_point_plugins():
            if manager.get_plugin(name) is None:
                manager.register(plugin, name=name)
    return manager


@functools.cache
def entry_point_plugins() -> tuple[tuple[str, object], ...]:
    """The plugins installed under the ``kart`` entry-point group, loaded once per process.

    Scanning the installed distributions costs milliseconds; every manager reuses this answer.
    """
    return tuple(
        (entry_point.name, entry_point.load())
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    )
