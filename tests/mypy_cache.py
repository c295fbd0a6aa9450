"""Where the suite's mypy runs keep their caches: in the temporary folder, kept between test sessions.

With a fresh cache, every session's mypy analysed again what does not change between sessions (kart_core's
installed dependencies, luigi, gokart): tests/test_project.py's check ~65 s of CPU, test_mypy_plugin's three
caches ~25 s. mypy's incremental mode checks again each module whose source, or the interface of a module it
imports, changed since the cache was written, and a plugin whose file changed (its hash is in the cache) or
another mypy version invalidates it, so a run reports what a cold run reports. Cache entries are written
atomically (a temporary file, then a rename), so two sessions may share one.

A checkout or virtualenv of its own (a CI run's fresh clone and .venv) starts with a copy of the newest cache of
the same name, mypy version and user made by another checkout (``seed``), not an empty one: mypy takes a cached
module whose path differs only once its source's hash matches the one recorded (mypy/build.py ``validate_meta``),
so the installed packages' entries hold when their files are the same, and anything else is analysed again. CI's
check went from ~80 s (cold on every fresh clone) to about what a warm run costs. A first session on a machine
(a fresh CI box) pays the cold runs as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_PREFIX = "kart-test-mypy-"


def _digest(*parts: str) -> str:
    return hashlib.md5("\0".join(parts).encode()).hexdigest()[:16]


def mypy_cache(name: str) -> Path:
    """The cache folder ``name`` of this checkout, interpreter, mypy version and user (so worktrees and
    virtualenvs do not take turns overwriting one cache). When missing, it starts as a copy of the newest
    such folder of another checkout or interpreter (``seed``); else mypy creates it."""
    shared = _digest(name, version("mypy"), str(os.getuid()))
    folder = Path(tempfile.gettempdir()) / f"{_PREFIX}{shared}-{_digest(str(ROOT), sys.prefix)}"
    if not folder.exists():
        seed(folder, sorted(folder.parent.glob(f"{_PREFIX}{shared}-*"), key=_modified))
    return folder


def _modified(folder: Path) -> float:
    """When mypy last wrote into ``folder`` (its newest entry's time; 0 when it is unreadable)."""
    try:
        return max((entry.stat().st_mtime for entry in folder.rglob("*")), default=0.0)
    except OSError:
        return 0.0


def seed(folder: Path, candidates: list[Path]) -> None:
    """Make ``folder`` a copy of the last of ``candidates`` (oldest first) that copies whole, or leave it missing.

    The copy is made beside ``folder`` and renamed into place, so a concurrent run sees a whole cache or none.
    mypy's SQLite cache files (``cache*.db``, in WAL mode) are copied through SQLite's backup, which reads a
    consistent state while another mypy may be writing; the ``-wal``/``-shm`` files are not copied.
    """
    for source in reversed([candidate for candidate in candidates if candidate != folder]):
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.seeding-", dir=folder.parent))
        try:
            for path in source.rglob("*"):
                target = staging / path.relative_to(source)
                if path.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                elif path.name.endswith((".db-wal", ".db-shm")):
                    continue
                elif path.name.endswith(".db"):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as read, sqlite3.connect(target) as write:
                        read.backup(write)
                    read.close()
                    write.close()
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            staging.rename(folder)
            return
        except (OSError, sqlite3.Error):  # a cache removed or rewritten meanwhile, or the folder made by another run
            shutil.rmtree(staging, ignore_errors=True)
            if folder.exists():
                return
