"""luigi's import without ``requests``: luigi's RPC client imports it when it first needs it.

``import luigi`` imports ``luigi.rpc`` (the client of luigi's central scheduler), and that module
imports ``requests`` at its top (``requests_unixsocket`` first, when installed): about 0.1 s of
CPU and half of luigi's import, paid by every kart process (each Airflow worker that starts a
task, each ``kart`` command), though kart builds run with the local scheduler. ``defer_requests``
(called once by ``import kart_core``) lets ``luigi.rpc`` load as written except that the name
``requests`` in it is bound to a stand-in which imports the real module on first attribute use
(``requests.Session()`` in ``luigi.rpc.RequestsFetcher``, when a ``RemoteScheduler`` is made).
``HAS_REQUESTS`` / ``HAS_UNIX_SOCKET`` keep the values luigi 3.8's ``luigi/rpc.py`` would set, so
luigi picks the same fetcher. Nothing changes when luigi was imported before kart_core, or when
``requests`` is imported already.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["defer_requests"]

_DEFERRED = ("requests_unixsocket", "requests")  # what luigi/rpc.py tries, in its order


def defer_requests() -> None:
    """Install a one-shot import hook for ``luigi.rpc`` (no-op when luigi.rpc or requests is loaded)."""
    if "luigi.rpc" in sys.modules or "requests" in sys.modules:
        return
    if not any(isinstance(finder, _RpcFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RpcFinder())


class _RpcFinder(importlib.abc.MetaPathFinder):
    """Finds ``luigi.rpc`` as the path finder does, with a loader that defers ``requests``; then leaves."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "luigi.rpc":
            return None
        sys.meta_path.remove(self)  # one module, once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or "requests" in sys.modules:
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


class _DeferringLoader(importlib.abc.Loader):
    """Runs ``luigi/rpc.py`` while ``requests`` imports resolve to stand-ins, then binds the stand-in."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        found = next((name for name in _DEFERRED if importlib.util.find_spec(name) is not None), None)
        if found is None:  # neither is installed: luigi's own fallback (urllib) applies
            self.loader.exec_module(module)
            return
        stand_in = _OnFirstUse(found)
        saved = {name: sys.modules.get(name) for name in _DEFERRED}
        # ``import requests_unixsocket as requests`` / ``import requests`` read sys.modules first.
        sys.modules[found] = stand_in  # type: ignore[assignment]
        if found == "requests":
            sys.modules["requests_unixsocket"] = None  # type: ignore[assignment]  # ImportError, as when missing
        try:
            self.loader.exec_module(module)
        finally:
            for name, value in saved.items():
                if value is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = value


class _OnFirstUse(types.ModuleType):
    """Stands for module ``name``; the first attribute read imports it and answers from it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)
