"""Undo a killed direct writer's files and remove damaged ones for ``kart verify --delete`` without leaving the
workspace.

A ``.committing`` marker and the manifest beside it are workspace metadata: anyone who can write the
workspace can plant them (unsigned when signing is off), and ``commit_marker.confined_moves`` checks their
paths only lexically. A folder inside the workspace may be a symlink to anywhere (``ws/evil -> /home/u``),
so ``evil/id_rsa`` normalises inside the workspace and names a file outside it (attacker at9 J7, the rest of
at2 G8). On local disk every removal or move goes through ``kart_core.confine``: each folder opened from the
workspace's own folder one component at a time with ``O_NOFOLLOW``, a symlink followed only when it and the
folder it leads to are this user's or root's (a user's own ``resources/<task>`` on a bigger disk), and the
removal made relative to that descriptor, so swapping a folder for a symlink after the check changes nothing.
Object storage has no symlinks: there each path is joined to the workspace from a normalised key.
"""

from __future__ import annotations

from collections.abc import Sequence

from kart_core.commit_marker import undo_direct
from kart_core.confine import Refused, check_within, local_path, open_folder, refusal, remove_local_files, undo_local
from kart_core.confine import remove_empty_folder_within as _remove_empty_folder
from kart_core.storage import storage_for
from kart_core.workspace import join_url

__all__ = [
    "Refused",
    "check_within",
    "local_path",
    "open_folder",
    "refusal",
    "remove_empty_folder_within",
    "remove_files_within",
    "remove_within",
    "undo_within",
]


def undo_within(workspace: str, moves: Sequence[tuple[str, str | None]], who: str, why: str) -> list[str]:
    """Undo ``moves`` (``(output, old output moved aside)`` as workspace-relative normalised keys, from
    ``commit_marker.confined_moves``: the aside lies in its output's folder) as ``commit_marker.undo_direct``
    does, touching nothing outside ``workspace``: each old output moved aside returns to its path, any other
    file or folder there is removed; each step logged with ``who`` and ``why``.

    Returns the removed paths no old output replaced. Raises ``Refused`` (before anything is touched) when
    an output's folder may not be entered (``kart_core.confine.open_folder``).
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
    return [join_url(workspace, key) for key in undo_local(local, moves, who, why, shown=workspace)]


def remove_within(workspace: str, keys: Sequence[str]) -> list[str]:
    """Remove the files at the workspace-relative normalised ``keys`` (an interrupted commit's outputs, listed
    by its pending manifest), touching nothing outside ``workspace``; a folder at a key is left alone.

    Returns the paths (joined to ``workspace``) of the keys handled. Raises ``Refused`` (before anything is
    removed) when a key's folder may not be entered.
    """
    remove_files_within(workspace, keys)
    return [join_url(workspace, key) for key in keys]


def remove_files_within(workspace: str, keys: Sequence[str]) -> list[str]:
    """Remove the files at the workspace-relative normalised ``keys``, touching nothing outside ``workspace``:
    on local disk each through a descriptor of its folder (``kart_core.confine.remove_local_files``), so a
    folder swapped for a symlink after ``kart verify`` looked changes nothing (at9 J6's race, for damaged
    outputs and unreadable manifests). A folder at a key is left alone; a missing key skipped.

    Returns the paths (joined to ``workspace``) of the files removed. Raises ``Refused`` (before anything is
    removed) when a key's folder may not be entered, or a key has a '..' or empty part.
    """
    local = local_path(workspace)
    if local is None:
        removed = []
        for key in keys:
            path = join_url(workspace, key)
            storage = storage_for(path)
            if storage.exists(path):
                storage.remove(path)
                removed.append(path)
        return removed
    return [join_url(workspace, key) for key in remove_local_files(local, keys)]


def remove_empty_folder_within(workspace: str, key: str) -> bool:
    """Remove the empty folder at the workspace-relative ``key`` (one standing where a manifest belongs,
    ``kart_core.manifest.clear_folder``) through a descriptor of its parent; True when one was removed. A folder
    with something in it, a symlink, a file or an object-storage key stays (False). Raises ``Refused`` when the
    parent may not be entered."""
    local = local_path(workspace)
    return local is not None and _remove_empty_folder(local, key)
