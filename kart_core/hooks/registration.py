"""A pluggy PluginManager that finds a plugin's hooks without a static lookup of every name it has.

pluggy (1.6 and later) registers a plugin, or adds a spec class, by looking up each name of
``dir(plugin)`` with ``inspect.getattr_static`` and reading the marker (``kart_impl`` /
``kart_spec``) off what it finds: about 30 names per plugin object, most of them ``object``'s own,
and the look-up is slow Python code (Python 3.11). kart creates its managers in every new process
(a build, a worker, a CLI call): specs and the three built-in plugins cost about 2 ms per manager.

Here the names that can hold a hook are collected first, in one pass over the dictionaries that
pluggy's look-up reads (the plugin's own, its class's and, for a class, its metaclass's, along
the MRO): a value of a kind pluggy accepts (function, bound method, staticmethod, classmethod)
that carries the marker, or a ``__slots__`` member (its value is read only when asked). pluggy
still decides every such name, so what registers is the same; the other names are answered "not
a hook" at once. With a pluggy that looks names up with ``getattr`` (before 1.6), every name goes
to pluggy as before.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import pluggy
import pluggy._manager

__all__ = ["PluginManager"]

# pluggy's static look-up (``_static_hook_attr``, pluggy >= 1.6) reads only the dictionaries
# scanned below; an older pluggy calls getattr(), which may run properties and __getattr__.
_STATIC_LOOKUP = hasattr(pluggy._manager, "_static_hook_attr")

_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)
_CANDIDATE_KINDS = (*_HOOKABLE, types.MemberDescriptorType)
_BUILTIN_NAMESPACES = (object, type, types.ModuleType)
_MRO = type.__dict__["__mro__"]  # the real MRO, as inspect.getattr_static reads it


class PluginManager(pluggy.PluginManager):
    """``pluggy.PluginManager`` registering the same hooks from fewer look-ups (see the module docstring)."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        # (object being scanned, names that may hold a marked hook), set only during one
        # register() / add_hookspecs() call; another object (another thread's call) is decided by pluggy.
        self._kart_candidates: tuple[object, frozenset[str]] | None = None

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """pluggy's ``register``, asking only about the names that may hold a ``kart_impl`` hook."""
        with _Scan(self, plugin, self.project_name + "_impl"):
            return super().register(plugin, name)

    def add_hookspecs(self, module_or_class: Any) -> None:
        """pluggy's ``add_hookspecs``, asking only about the names that may hold a ``kart_spec`` spec."""
        with _Scan(self, module_or_class, self.project_name + "_spec"):
            super().add_hookspecs(module_or_class)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """pluggy's answer, or None at once for a name that holds no marked hook."""
        if self._skips(plugin, name):
            return None
        return super().parse_hookimpl_opts(plugin, name)

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        """pluggy's answer, or None at once for a name that holds no marked spec."""
        if self._skips(module_or_class, name):
            return None
        return super().parse_hookspec_opts(module_or_class, name)

    def _skips(self, scanned: object, name: str) -> bool:
        candidates = self._kart_candidates
        return candidates is not None and candidates[0] is scanned and name not in candidates[1]


class _Scan:
    """Context of one register() / add_hookspecs() call: the candidate names of the object it scans."""

    def __init__(self, manager: PluginManager, scanned: object, marker: str) -> None:
        self.manager, self.scanned, self.marker = manager, scanned, marker
        self.previous: tuple[object, frozenset[str]] | None = None

    def __enter__(self) -> None:
        self.previous = self.manager._kart_candidates
        names = _candidate_names(self.scanned, self.marker) if _STATIC_LOOKUP else None
        self.manager._kart_candidates = (self.scanned, names) if names is not None else None

    def __exit__(self, *exc: object) -> None:
        self.manager._kart_candidates = self.previous


def _candidate_names(scanned: object, marker: str) -> frozenset[str] | None:
    """The names under which pluggy's static look-up could find a hook marked ``marker``; None: ask about all."""
    try:
        names = set()
        for namespace in _namespaces(scanned):
            for name, value in namespace.items():
                # One isinstance for the many values of no kind pluggy registers (_marked's first test).
                if isinstance(value, _CANDIDATE_KINDS) and (
                    isinstance(value, types.MemberDescriptorType) or _marked(value, marker)
                ):
                    names.add(name)
        return frozenset(names)
    except Exception:  # an object too unusual to scan safely: pluggy looks at every name, as without this
        return None


def _namespaces(scanned: object) -> list[Mapping[str, Any]]:
    """The dictionaries ``inspect.getattr_static`` may take ``scanned``'s attributes from."""
    namespaces: list[Mapping[str, Any]] = []
    try:
        own = object.__getattribute__(scanned, "__dict__")
    except AttributeError:
        own = None
    if isinstance(own, dict):
        namespaces.append(own)
    classes = list(_MRO.__get__(type(scanned)))
    if isinstance(scanned, type):
        classes = list(_MRO.__get__(scanned)) + classes
    # object, type and the module type hold no marked hook and no attribute can be set on them (built-in, immutable):
    # their ~120 names (every spec class scans object and type) are no candidates.
    namespaces.extend(vars(klass) for klass in classes if klass not in _BUILTIN_NAMESPACES)
    return namespaces


def _marked(value: object, marker: str) -> bool:
    """Whether ``value`` is a kind pluggy registers and carries ``marker`` (itself or on ``__func__``)."""
    if not isinstance(value, _HOOKABLE):
        return False
    if getattr(value, marker, None) is not None:
        return True
    return getattr(getattr(value, "__func__", None), marker, None) is not None
