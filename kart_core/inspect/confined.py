"""Undo a killed direct writer's files for ``kart verify --delete`` without leaving the workspace.

A ``.committing`` marker and the manifest beside it are workspace metadata: anyone who can write the
workspace can plant them (unsigned when signing is off), and ``commit_marker.confined_moves`` checks their
paths only lexically. A folder inside the workspace may be a symlink to anywhere (``ws/evil -> /home/u``),
so ``evil/id_rsa`` normalises inside the workspace and names a file outside it (attacker at9 J7, the rest of
at2 G8). Here each output's folder is opened from the workspace's own folder one component at a time with
``O_NOFOLLOW`` (the kernel refuses a symlink on the way, ``ELOOP``), and every removal or rename is made
relative to that descriptor (``unlinkat``, ``renameat``, ``shutil.rmtree(dir_fd=…)``, which never follows a
symlink inside the tree): no path is looked up twice, so swapping a folder for a symlink after the check
changes nothing. The workspace folder itself is opened as given (the user chose it; it may be a symlink).
Object storage has no symlinks: there ``commit_marker.undo_direct`` undoes the moves as ``complete()`` does.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Iterator, Sequence

from kart_core.commit_marker import undo_direct
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.workspace import join_url

__all__ = [
    "Refused",
    "check_within",
    "refusal",
    "remove_empty_folder_within",
    "remove_files_within",
    "remove_within",
    "undo_within",
]

logger = logging.getLogger(__name__)


class Refused(Exception):
    """A marker's path leads out of the workspace through a symlink (or a file where a folder belongs)."""


def local_path(path: str) -> str | None:
    """``path`` on local disk without its ``file://`` (or ``local://``) scheme; None for object storage."""
    if protocol_of(path):
        return None
    _, separator, rest = path.partition("://")
    return rest if separator else path


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


def open_folder(root: str, parts: Sequence[str]) -> int:
    """A descriptor of the folder ``root/parts...``: ``root`` opened as named, each part from the one before with
    ``O_NOFOLLOW``, so no symlink on the way is followed, whenever it appears. The caller closes it.

    Raises:
        OSError: a part is missing (``ENOENT``), a symlink (``ELOOP``) or not a folder (``ENOTDIR``); its
            ``filename`` is the parts walked up to and including that one.
        ValueError: a part is ``""``, ``"."`` or ``".."``.
    """
    folder = os.open(root, _FOLDER)
    walked = ""
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise ValueError(f"{part!r} in a path to confine")
            walked = f"{walked}/{part}" if walked else part
            try:
                inner = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as error:
                raise OSError(error.errno, error.strerror, walked) from None
            os.close(folder)
            folder = inner
    except BaseException:
        os.close(folder)
        raise
    return folder


@contextlib.contextmanager
def _folders(workspace: str, keys: Sequence[str]) -> Iterator[dict[str, int | None]]:
    """Descriptors of the folders of ``keys`` (workspace-relative, normalised), each opened from the
    workspace's folder with ``O_NOFOLLOW`` per component; None for a folder that does not exist (nothing
    there to undo). Raises ``Refused`` naming the first key whose folder is reached through a symlink."""
    opened: dict[str, int | None] = {}
    try:
        for key in keys:
            folder = key.rpartition("/")[0]
            if folder in opened:
                continue
            try:
                opened[folder] = open_folder(workspace, folder.split("/") if folder else ())
            except ValueError:
                raise Refused(
                    f"its path {key!r} has an empty, '.' or '..' part: it may lead out of the workspace"
                ) from None
            except OSError as error:
                if error.errno == errno.ENOENT:
                    opened[folder] = None
                    continue
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(
                        f"its path {key!r} goes through {error.filename!r}, which is a symlink or not a folder: "
                        "it may lead out of the workspace"
                    ) from None
                raise
        yield opened
    finally:
        for descriptor in opened.values():
            if descriptor is not None:
                os.close(descriptor)


def refusal(workspace: str, keys: Sequence[str]) -> str:
    """Why the workspace-relative ``keys`` may not be undone here ("" when each one's folder is reached
    through no symlink from ``workspace``; always "" for object storage)."""
    local = local_path(workspace)
    if local is None:
        return ""
    try:
        with _folders(local, keys):
            return ""
    except Refused as refused:
        return str(refused)
    except FileNotFoundError:  # no workspace folder: nothing in it to undo
        return ""


def check_within(workspace: str, keys: Sequence[str]) -> None:
    """Raise ``Refused`` (see ``refusal``) when a folder of the workspace-relative ``keys`` is reached through a
    symlink or a file from ``workspace``: a caller removing several files checks all before it removes any."""
    why = refusal(workspace, keys)
    if why:
        raise Refused(why)


def _lexists(name: str, folder: int) -> bool:
    try:
        os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def _remove(name: str, folder: int) -> None:
    """Remove ``name`` in ``folder``: a real folder with its tree (``rmtree`` by descriptors, links inside
    removed, never followed), anything else (a file, a symlink: the link only) unlinked."""
    if stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
        shutil.rmtree(name, ignore_errors=True, dir_fd=folder)  # as commit_marker._remove_output
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=folder)


def undo_within(workspace: str, moves: Sequence[tuple[str, str | None]], who: str, why: str) -> list[str]:
    """Undo ``moves`` (``(output, old output moved aside)`` as workspace-relative normalised keys, from
    ``commit_marker.confined_moves``: the aside lies in its output's folder) as ``commit_marker.undo_direct``
    does, touching nothing outside ``workspace``: each old output moved aside returns to its path, any other
    file or folder there is removed; each step logged with ``who`` and ``why``.

    Returns the removed paths no old output replaced. Raises ``Refused`` (before anything is touched) when
    an output's folder is reached through a symlink or a file (see the module docstring).
    """
    local = local_path(workspace)
    if local is None:
        joined = [
            (join_url(workspace, key), None if aside is None else join_url(workspace, aside)) for key, aside in moves
        ]
        removed = [
            path
            for path, aside in joined
            if storage_for(path).exists(path) and (aside is None or not storage_for(aside).exists(aside))
        ]
        undo_direct(joined, who, why)
        return removed
    removed = []
    with _folders(local, [key for key, _ in moves]) as folders:
        for key, aside in moves:
            folder = folders[key.rpartition("/")[0]]
            if folder is None:
                continue
            name = key.rpartition("/")[2]
            path = join_url(workspace, key)
            aside_name = None if aside is None else aside.rpartition("/")[2]
            if aside_name is not None and _lexists(aside_name, folder):
                if _lexists(name, folder):
                    _remove(name, folder)
                os.replace(aside_name, name, src_dir_fd=folder, dst_dir_fd=folder)
                logger.warning("%s: %s; its old output %r is back in place", who, why, path)
            elif _lexists(name, folder):
                _remove(name, folder)
                removed.append(path)
                logger.warning("%s: %s; removed %r, written straight to the output's path", who, why, path)
    return removed


def remove_within(workspace: str, keys: Sequence[str]) -> list[str]:
    """Remove the files at the workspace-relative normalised ``keys`` (an interrupted commit's outputs, listed
    by its pending manifest), touching nothing outside ``workspace``; a folder at a key is left alone.

    Returns the paths (joined to ``workspace``) of the keys handled. Raises ``Refused`` (before anything is
    removed) when a key's folder is reached through a symlink or a file.
    """
    remove_files_within(workspace, keys)
    return [join_url(workspace, key) for key in keys]


def remove_files_within(workspace: str, keys: Sequence[str]) -> list[str]:
    """Remove the files at the workspace-relative normalised ``keys``, touching nothing outside ``workspace``:
    on local disk each through a descriptor of its folder opened from the workspace without following a symlink
    (``unlinkat``), so a folder swapped for a symlink after ``kart verify`` looked changes nothing (at9 J6's
    race, for damaged outputs and unreadable manifests). A folder at a key is left alone; a missing key skipped.

    Returns the paths (joined to ``workspace``) of the files removed. Raises ``Refused`` (before anything is
    removed) when a key's folder is reached through a symlink or a file, or a key has a '..' or empty part.
    """
    local = local_path(workspace)
    removed = []
    if local is None:
        for key in keys:
            path = join_url(workspace, key)
            storage = storage_for(path)
            if storage.exists(path):
                storage.remove(path)
                removed.append(path)
        return removed
    with _folders(local, keys) as folders:
        for key in keys:
            folder = folders[key.rpartition("/")[0]]
            name = key.rpartition("/")[2]
            if folder is None or not name or name in (".", ".."):
                continue
            try:
                if stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
                    continue
                os.unlink(name, dir_fd=folder)  # never follows: a symlink there is removed itself
            except FileNotFoundError:
                continue
            removed.append(join_url(workspace, key))
    return removed


def remove_empty_folder_within(workspace: str, key: str) -> bool:
    """Remove the empty folder at the workspace-relative ``key`` (one standing where a manifest belongs,
    ``kart_core.manifest.clear_folder``) through a descriptor of its parent folder opened as in
    ``remove_files_within``; True when one was removed. A folder with something in it, a symlink, a file or an
    object-storage key stays (False). Raises ``Refused`` when the parent folder is reached through a symlink.
    """
    local = local_path(workspace)
    if local is None:
        return False
    with _folders(local, [key]) as folders:
        folder = folders[key.rpartition("/")[0]]
        name = key.rpartition("/")[2]
        if folder is None or not name:
            return False
        try:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
                return False
            os.rmdir(name, dir_fd=folder)
        except OSError:  # not empty, or gone meanwhile
            return False
    return True
