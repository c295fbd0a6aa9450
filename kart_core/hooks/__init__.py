"""pluggy hooks: the marker to implement them, the specs, and the manager that loads plugins."""

from kart_core.hooks.manager import ENTRY_POINT_GROUP, create_hook_manager
from kart_core.hooks.markers import hookimpl, hookspec

__all__ = ["ENTRY_POINT_GROUP", "create_hook_manager", "hookimpl", "hookspec"]
