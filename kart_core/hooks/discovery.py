"""Which plugins the installed distributions declare under an entry-point group, remembered between processes.

The declarations are in ``entry_points.txt`` of each ``*.dist-info`` / ``*.egg-info`` folder on
``sys.path``. Reading them (a listing per folder of sys.path, then one open per distribution: 258
with Airflow and Kedro installed) cost 3–5 ms of CPU in every new process, a tenth of the cached
check of a 1,000-task chain. So what one process found is kept in a small JSON file (``cache_path``)
per folder of sys.path, with the folder's modification and status-change times and inode. A later
process stats each folder and reads the metadata again only for a folder whose stamp changed:
installing or removing a distribution (pip, uv, ``pip install -e``) creates or deletes a metadata
folder there, which changes its times; a deployment that sets the times back (``tar``, ``rsync -a``,
reproducible builds) still changes the status-change time, which no user can set.

The file is trusted only when this user owns it and no one else may write it (a cache folder shared
with others, or made by another user, is read past: the file names the modules kart imports as
plugins), and only records of the expected shape are taken from it; anything else is read afresh.

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
_VERSION = 2  # of the file's layout (2: the stamp is [mtime_ns, ctime_ns, inode])
_MAX_FOLDERS = 64  # folders kept in the file: those of this sys.path first

# One folder's record in the file: [stamp, [[metadata folder, entries or None], ...]], the stamp being
# [modification time in ns, status-change time in ns, inode],
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
        record = _record_of(folder, _well_formed_or_none(known.get(folder)), group, now)
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
    stamp = [status.st_mtime_ns, status.st_ctime_ns, status.st_ino]
    if known is not None and known[0] == stamp:
        return known
    names = _metadata_folders(folder)
    settled = now - status.st_mtime_ns >= _SETTLE_SECONDS * 1_000_000_000
    return [stamp if settled and names else None, _scan(folder, names, group)]


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


def _read(cache: str) -> dict[str, Any]:
    """The folders' records in the file, their shapes unchecked; none when it is missing, unreadable or of another
    layout."""
    try:
        descriptor = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        status = os.fstat(descriptor)
        if status.st_uid != os.geteuid() or status.st_mode & 0o022 or not stat.S_ISREG(status.st_mode):
            return {}  # another user's file, or one others may write: it would choose what kart imports
        with os.fdopen(descriptor, encoding="utf-8", closefd=False) as file:
            content = json.load(file)
    except (OSError, ValueError):
        return {}
    finally:
        os.close(descriptor)
    if not isinstance(content, dict) or content.get("version") != _VERSION:
        return {}
    folders = content.get("folders")
    if not isinstance(folders, dict):
        return {}
    # Each record's shape is checked when it is used (``_well_formed_or_none``, ``_write``): the file keeps up to 64
    # folders (other checkouts, test sites), and checking them all cost a cached build a million instructions.
    return {folder: record for folder, record in folders.items() if isinstance(folder, str)}


def _well_formed_or_none(record: Any) -> _Record | None:
    """``record`` when it has a folder record's shape (``_well_formed``), else None (the folder is read afresh)."""
    return record if record is not None and _well_formed(record) else None


def _well_formed(record: Any) -> bool:
    """Whether ``record`` has a folder record's shape (see ``_Record``); a malformed one is read afresh."""
    if not (isinstance(record, list) and len(record) == 2 and isinstance(record[1], list)):
        return False
    stamp, scanned = record
    if not (isinstance(stamp, list) and len(stamp) == 3 and all(isinstance(part, int) for part in stamp)):
        return False
    for item in scanned:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return False
        entries = item[1]
        if entries is not None and not (
            isinstance(entries, list)
            and all(
                isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
                for entry in entries
            )
        ):
            return False
    return True


def _write(cache: str, found: dict[str, _Record], known: dict[str, Any]) -> None:
    """Replace the file with ``found`` and, after them, the other folders it knew (atomically; best effort)."""
    folders = dict(found)
    for folder, record in known.items():
        if len(folders) >= _MAX_FOLDERS:
            break
        if folder not in folders and _well_formed(record):  # a malformed record is dropped, not written again
            folders[folder] = record
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
