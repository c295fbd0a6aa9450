"""Create plugin managers: specs added, given plugins and entry-point plugins registered."""

from __future__ import annotations

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
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager
