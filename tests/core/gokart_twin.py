"""Run one script under gokart 1.12.2 and under kart, each in its own process, and compare what they print.

The script is written against gokart (``import gokart``, ``from gokart.build import ...``). For the
kart run an import hook makes every ``gokart`` / ``gokart.x`` import return ``kart_core`` /
``kart_core.x``: exactly the drop-in promise. gokart is a test-only dependency and is never imported
in the pytest process (both libraries register task classes in luigi's one registry).
The script prints one JSON document as its last stdout line; ``run_script`` returns it.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import fork_server
from fork_server import GOKART, KART

_ALIAS = """
import importlib, importlib.abc, importlib.util, sys

class _GokartIsKart(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "gokart" or name.startswith("gokart."):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("kart_core" + spec.name[len("gokart"):])

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _GokartIsKart())
# Modules kart_core already imported are registered under their gokart names up front, so importing
# one (``from gokart.build import X``) does not rebind the facade's attribute (``gokart.build``, the function).
import kart_core
for _name, _module in list(sys.modules.items()):
    if _name == "kart_core" or _name.startswith("kart_core."):
        sys.modules["gokart" + _name[len("kart_core"):]] = _module
"""

LIBRARIES = ("gokart", "kart")


def run_script(
    library: str, script: str, directory: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> Any:
    """Run ``script`` with ``library`` ("gokart" or "kart") in ``directory``; return its last stdout line as JSON.

    Raises:
        AssertionError: the script failed (its stderr is in the message).
    """
    directory.mkdir(parents=True, exist_ok=True)
    body = textwrap.dedent(script)
    path = directory / "script.py"
    path.write_text((_ALIAS if library == "kart" else "") + body, encoding="utf-8")
    environment = {
        key: value for key, value in os.environ.items() if key not in ("LUIGI_CONFIG_PATH", "KART_SIGNING_KEY")
    }
    environment.update(env or {})
    # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
    done = fork_server.run([str(path)], directory, environment, timeout, GOKART if library == "gokart" else KART)
    assert done.returncode == 0, f"{library} run failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_both(script: str, root: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``run_script`` under gokart and under kart, each in ``root/<library>``; ``{library: result}``."""
    return {library: run_script(library, script, root / library, env) for library in LIBRARIES}
