"""Lazy package facades (PEP 562): a package's public names import their modules on first use.

``kart_core`` and ``kart_core.inspect`` re-export names from many modules; importing them all
up front costs luigi's and pandas' import (about a second), which ``kart runs`` does not need.
``install`` gives a package a module-level ``__getattr__`` that imports a name's module when the
name is first read, and keeps a facade function bound when a submodule of the same name loads
(``kart_core.build`` the function, not the module ``kart_core.build``), as eager
``from kart_core.build import build`` did.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["install"]


class _Facade(types.ModuleType):
    """A package whose public names load lazily; ``_lazy_exports`` maps each name to its module."""

    _lazy_exports: Mapping[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds a loaded submodule on its package; keep the facade's same-named object.
        if isinstance(value, types.ModuleType) and self.__dict__.get("_lazy_exports", {}).get(name) == value.__name__:
            value = getattr(value, name, value)
        super().__setattr__(name, value)


def install(package: str, exports: Mapping[str, str], submodules: Iterable[str] = ()) -> None:
    """Make ``package``'s ``exports`` (name -> defining module) and ``submodules`` load on first access.

    Args:
        package: the package's ``__name__`` (call this at the end of its ``__init__.py``).
        exports: each public name and the module it is imported from (``"module:attribute"`` when
            the public name is an alias, as ``from module import attribute as name``).
        submodules: subpackage or module names reachable as attributes (``gokart.tree.task_info``).
    """
    module = sys.modules[package]
    known_submodules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is not None:
            module_name, _, attribute = source.partition(":")  # "module:attribute" for an alias
            value = getattr(importlib.import_module(module_name), attribute or name)
            setattr(module, name, value)
            return value
        if name in known_submodules or importlib.util.find_spec(f"{package}.{name}") is not None:
            # any submodule, as when the eager facade had imported it (kart_core.storage, kart_core.inspect, ...)
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*module.__dict__, *exports, *known_submodules})

    module.__class__ = _Facade
    module.__dict__.update(_lazy_exports=dict(exports), __getattr__=__getattr__, __dir__=__dir__)
