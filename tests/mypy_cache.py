"""Where the suite's mypy runs keep their caches: in the temporary folder, kept between test sessions.

With a fresh cache, every session's mypy analysed again what does not change between sessions (kart_core's
installed dependencies, luigi, gokart): tests/test_project.py's check ~65 s of CPU, test_mypy_plugin's three
caches ~25 s. mypy's incremental mode checks again each module whose source, or the interface of a module it
imports, changed since the cache was written, and a plugin whose file changed (its hash is in the cache) or
another mypy version invalidates it, so a run reports what a cold run reports. Cache entries are written
atomically (a temporary file, then a rename), so two sessions may share one. A first session on a machine
(a fresh CI box) pays the cold runs as before.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy_cache(name: str) -> Path:
    """The cache folder ``name`` of this checkout, interpreter, mypy version and user (so worktrees and
    virtualenvs do not take turns overwriting one cache); not created here (mypy creates it)."""
    key = f"{ROOT}\0{sys.prefix}\0{version('mypy')}\0{os.getuid()}\0{name}"
    return Path(tempfile.gettempdir()) / f"kart-test-mypy-{hashlib.md5(key.encode()).hexdigest()[:16]}"
