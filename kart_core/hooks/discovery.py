"""Which plugins the installed distributions declare under an entry-point group, remembered between processes.

The declarations are in ``entry_points.txt`` of each ``*.dist-info`` / ``*.egg-info`` folder on
``sys.path``. Reading them (a listing per folder of sys.path, then one open per distribution: 258
with Airflow and Kedro installed) cost 3–5 ms of CPU in every new process, a tenth of the cached
check of a 1,000-task chain. So what one process found is kept in a small JSON file (``cache_path``)
per folder of sys.path, with the folder's modification time. A later process stats each folder and
reads the file again only for a folder whose time changed: installing or removing a distribution
(pip, uv, ``pip install -e``) creates or deletes a metadata folder there, which changes its time.

What is never taken from the file: a folder modified less than ``_SETTLE_SECONDS`` before it was
read (a change in the same clock tick would not change the time again; git's "racy" rule), and
``*.egg-info`` folders, whose ``entry_points.txt`` setuptools rewrites in place (``setup.py
develop``): they are read every time. A hand edit of an installed ``*.dist-info/entry_points.txt``
is seen once something is installed into or removed from that folder, or once the cache file is
deleted. Without a writable cache folder, every process reads the metadata as before.

The first folder of sys.path that declares a name wins; within a folder, the distributions in
sorted order. Only folders holding metadata folders are kept in the file (site-packages, a
project checked out for development), not every working directory a process starts in.
"""

from __future__ import annotations

import configparser
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["cache_path", "declared_entry_points"]

_SETTLE_SECONDS = 5  # more than the coarsest file-time granularity in use (FAT: 2 s)
_VERSION = 1  # of the file's layout
_MAX_FOLDERS = 64  # folders kept in the file: those of this sys.path first

# One folder's record in the file: [modification time in ns, [[metadata folder, entries or None], ...]],
# None standing for an egg-info folder (read every time); folders declaring nothing are left out.
_Record = list[Any]


def cache_path(group: str) -> str:
    """The file holding what was found for ``group``: ``$XDG_CACHE_HOME/kart`` (else ``~/.cache/kart``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "kart", f"entry_points-{group}.json")


def declared_entry_points(group: str, path: Iterable[str]) -> list[tuple[str, str]]:
    """``(name, "module:attribute")`` of each plugin declared under ``group`` in the folders of ``path``.

    Args:
        group: the entry-point group (``[group]`` in entry_points.txt).
        path: the folders searched, in order (``sys.path``); "" is the current directory.

    Returns:
        The declarations sorted by name; a name declared twice keeps the first folder's target.
    """
    known = _read(cache_path(group))
    found: dict[str, _Record] = {}
    declared: dict[str, str] = {}
    now = time.time_ns()
    for directory in path:
        folder = os.path.abspath(directory or ".")
        record = _record_of(folder, known.get(folder), group, now)
        if record is None:
            continue
        if record[0] is not None:
            found[folder] = record
        for name, target in _entries(folder, record[1], group):
            declared.setdefault(name, target)
    if any(known.get(folder) != record for folder, record in found.items()):
        _write(cache_path(group), found, known)
    return sorted(declared.items())


def _record_of(folder: str, known: _Record | None, group: str, now: int) -> _Record | None:
    """``folder``'s record: the known one if its time is unchanged, else read afresh (time None: not to be kept)."""
    try:
        status = os.stat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(status.st_mode):
        return None  # a zip file on sys.path: no metadata folders are listed in one
    if known is not None and known[0] == status.st_mtime_ns:
        return known
    names = _metadata_folders(folder)
    settled = now - status.st_mtime_ns >= _SETTLE_SECONDS * 1_000_000_000
    return [status.st_mtime_ns if settled and names else None, _scan(folder, names, group)]


def _metadata_folders(folder: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
    except OSError:
        return []


def _scan(folder: str, names: list[str], group: str) -> list[list[Any]]:
    """``[metadata folder, entries]`` for each of ``names`` that declares ``group``; each egg-info: entries None."""
    scanned: list[list[Any]] = []
    for name in names:
        if name.endswith(".egg-info"):
            scanned.append([name, None])
            continue
        entries = _group_of(os.path.join(folder, name, "entry_points.txt"), group)
        if entries:
            scanned.append([name, [list(entry) for entry in entries]])
    return scanned


def _entries(folder: str, scanned: list[list[Any]], group: str) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for name, known in scanned:
        if known is None:  # egg-info: setuptools may have rewritten it in place
            entries.extend(_group_of(os.path.join(folder, name, "entry_points.txt"), group))
        else:
            entries.extend((str(entry_name), str(target)) for entry_name, target in known)
    return entries


def _group_of(path: str, group: str) -> list[tuple[str, str]]:
    """The ``(name, target)`` pairs of ``[group]`` in the entry_points.txt at ``path`` (none if it is missing)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return []
    if f"[{group}]" not in text:
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return [(name, value.strip()) for name, value in parser.items(group)]


def _read(cache: str) -> dict[str, _Record]:
    """The folders' records in the file; none when it is missing, unreadable or of another layout."""
    try:
        with open(cache, encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, ValueError):
        return {}
    if not isinstance(content, dict) or content.get("version") != _VERSION:
        return {}
    folders = content.get("folders")
    return folders if isinstance(folders, dict) else {}


def _write(cache: str, found: dict[str, _Record], known: dict[str, _Record]) -> None:
    """Replace the file with ``found`` and, after them, the other folders it knew (atomically; best effort)."""
    folders = dict(found)
    for folder, record in known.items():
        if len(folders) >= _MAX_FOLDERS:
            break
        folders.setdefault(folder, record)
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        handle, staged = tempfile.mkstemp(dir=os.path.dirname(cache), prefix=".entry_points-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"version": _VERSION, "folders": folders}, file)
            os.replace(staged, cache)
        except BaseException:
            os.unlink(staged)
            raise
    except OSError:
        pass  # no writable cache folder: the next process reads the metadata again
