"""Clean a workspace: find the outputs and run logs that no kept task can reach, and delete them.

Only files named like kart outputs (``…_{32-hex unique id}[.ext]``) are candidates, so notes,
configs and scratch files in the workspace are never touched; the scratch directory of the
kept tasks (locks, model scratch) is skipped as a whole. Works on local and object storage.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from kart_core.contract import KartTask, LuigiTask, is_kart_task
from kart_core.errors import CleanupError
from kart_core.graph import walk
from kart_core.signing import signature_path
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.utils import flatten
from kart_core.workspace import LOG_KINDS, FileEntry, is_kart_named, list_files, log_task_path, relative_key

__all__ = ["GcPlan", "plan_gc", "delete_unreachable"]


@dataclasses.dataclass
class GcPlan:
    """What a clean-up would delete in one workspace, and how much it keeps."""

    workspace: str
    delete: list[FileEntry]
    kept: list[FileEntry]

    @property
    def delete_bytes(self) -> int:
        """Total size of the files to delete."""
        return sum(f.size for f in self.delete)


def plan_gc(tasks: Iterable[KartTask], workspace: str | None = None) -> GcPlan:
    """Files under the workspace of ``tasks`` that are neither outputs nor run logs of any task in their graphs.

    Raises:
        CleanupError: no task was given, or the tasks live in different workspaces.
    """
    roots = list(tasks)
    if not roots:
        raise CleanupError("kart gc: give at least one task to keep (--keep module.Class ...).")
    workspace = workspace or _shared_workspace(roots)
    graph = walk(roots)
    reachable = {key for node in graph.nodes.values() for key in _reachable_keys(node, workspace)}
    skipped = _scratch_prefixes(graph.nodes.values(), workspace)
    delete: list[FileEntry] = []
    kept: list[FileEntry] = []
    for info in list_files(workspace):
        if any(info.relative.startswith(prefix) for prefix in skipped) or not is_kart_named(info.relative):
            continue
        (kept if info.relative in reachable else delete).append(info)
    return GcPlan(workspace=workspace, delete=delete, kept=kept)


def delete_unreachable(plan: GcPlan) -> list[str]:
    """Delete the files of ``plan``; return their paths."""
    for info in plan.delete:
        storage_for(info.path).remove(info.path)
    return [info.path for info in plan.delete]


def _shared_workspace(roots: list[KartTask]) -> str:
    workspaces = {str(root.workspace_directory) for root in roots}
    if len(workspaces) > 1:
        raise CleanupError(
            f"kart gc: the kept tasks live in different workspaces {sorted(workspaces)}; clean one at a time."
        )
    return workspaces.pop()


def _reachable_keys(task: LuigiTask, workspace: str) -> list[str]:
    paths = [target.path() for target in flatten(task.output())]
    if is_kart_task(task):
        paths += [log_task_path(task, kind) for kind in LOG_KINDS]
    keys = []
    for path in paths:
        for candidate in (path, signature_path(path)):
            key = _relative_to(candidate, workspace)
            if key is not None:
                keys.append(key)
    return keys


def _relative_to(path: str, workspace: str) -> str | None:
    """``path`` relative to ``workspace`` (None when it lies outside), compared in normalized form."""
    if protocol_of(workspace) or protocol_of(path):
        root, full = _normalized_url(workspace), _normalized_url(path)
    else:
        root, full = os.path.abspath(workspace), os.path.abspath(path)
        root, full = root.replace(os.sep, "/"), full.replace(os.sep, "/")
    if not full.startswith(root.rstrip("/") + "/"):
        return None
    return relative_key(full[len(root.rstrip("/")) + 1 :])


def _normalized_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{relative_key(rest)}"


def _scratch_prefixes(tasks: Iterable[LuigiTask], workspace: str) -> set[str]:
    prefixes = set()
    for task in tasks:
        scratch = getattr(task, "local_temporary_directory", None)
        relative = _relative_to(str(scratch), workspace) if scratch else None
        if relative:
            prefixes.add(relative.rstrip("/") + "/")
    return prefixes
