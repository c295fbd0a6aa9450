"""The implementation under test: ``KART_COMPAT_IMPL=gokart`` imports gokart, anything else kart_core."""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

IMPL = os.environ.get("KART_COMPAT_IMPL", "kart")

if IMPL == "gokart":
    import gokart
else:
    import kart_core as gokart  # type: ignore[no-redef]

__all__ = ["IMPL", "gokart", "HAS_CONFIG_PARAMS", "config_params"]

# Both implementations must define the same tasks, so this depends on kart only: gokart always has it.
HAS_CONFIG_PARAMS = importlib.util.find_spec("kart_core.config_params") is not None


def config_params() -> ModuleType:
    """The implementation's ``config_params`` module (``inherits_config_params``)."""
    return importlib.import_module("gokart.config_params" if IMPL == "gokart" else "kart_core.config_params")
