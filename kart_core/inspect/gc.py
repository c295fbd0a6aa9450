"""Clean a workspace: find the outputs and run logs that no kept task can reach, and orphaned temporaries.

Outputs and run logs: only files named like kart's (``…_{32-hex unique id}[.ext]``) are
candidates, so notes and configs are never touched, and by default only those that provably belong
to the task classes of the kept graphs, module included (scope ``"classes"``, decided by
``kart_core.inspect.ownership``): a workspace shared with another project keeps that project's
files, even of a class with the same name, and files whose class cannot be told are left alone.
Scope ``"all"`` takes every kart-named file. The kept tasks' scratch directories (locks, model
scratch) are never candidates.

Temporaries (every scope): files with the temporary suffix (writes, staged outputs and uploads of
killed writers) in the workspace, model scratch folders under the kept tasks'
``local_temporary_directory`` and kart's upload spools in the system temp folder, once they
are older than ``temp_age`` seconds: a younger one may be a write in progress and is left alone.
Works on local and object storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from kart_core import side_record
from kart_core.contract import KartTask, LuigiTask, is_kart_task, target_path
from kart_core.errors import CleanupError
from kart_core.graph import walk
from kart_core.inspect import confined
from kart_core.inspect.ownership import OWNED, Ownership
from kart_core.signing import HEADER_SIZE, MAGIC, signature_path
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.storage.remote import upload_spools
from kart_core.utils import flatten
from kart_core.workspace import (
    DEFAULT_TEMP_AGE,
    KART_LOG_KINDS,
    MANIFEST,
    FileEntry,
    examine,
    is_scratch_folder,
    is_temporary,
    list_files,
    log_task_path,
    named_run,
    parse_log_relative,
    relative_key,
    require_workspace,
    scratch_folders,
)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_TEMP_AGE", "GcPlan", "Scope", "plan_gc", "delete_unreachable"]

Scope = Literal["classes", "all"]


@dataclasses.dataclass
class GcPlan:
    """What a clean-up would delete in one workspace, and what it keeps or leaves alone.

    Attributes:
        workspace: the workspace cleaned (local path or URL).
        delete: unreachable outputs and run logs (of the classes in scope).
        kept: reachable outputs and run logs.
        scope: ``"classes"`` (only files that provably belong to ``classes``) or ``"all"`` (every kart-named file).
        classes: the task classes of the kept graphs (bare names), sorted.
        other_classes: kart-named files left alone because they belong to other classes (another
            module's class of the same name included) or their class cannot be told.
        temporaries: orphaned temporary files, scratch folders and upload spools older than ``temp_age``.
        fresh_temporaries: temporaries younger than ``temp_age`` (left alone: maybe in progress).
        temp_age: seconds.
        vouching: side files still in the workspace whose path's record (``kart_core.side_record``) names the
            manifest of a run outside the kept graphs, by workspace-relative path: that manifest's name. Every
            file of that task is kept (its manifest is what a load of the side file checks, attacker at19 J7).
    """

    workspace: str
    delete: list[FileEntry]
    kept: list[FileEntry]
    scope: Scope = "classes"
    classes: list[str] = dataclasses.field(default_factory=list)
    other_classes: list[FileEntry] = dataclasses.field(default_factory=list)
    temporaries: list[FileEntry] = dataclasses.field(default_factory=list)
    fresh_temporaries: list[FileEntry] = dataclasses.field(default_factory=list)
    temp_age: float = DEFAULT_TEMP_AGE
    vouching: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def delete_bytes(self) -> int:
        """Total size of everything to delete (outputs, logs and temporaries), in bytes."""
        return sum(f.size for f in self.delete) + sum(f.size for f in self.temporaries)


def plan_gc(
    tasks: Iterable[KartTask],
    workspace: str | None = None,
    scope: Scope = "classes",
    temp_age: float = DEFAULT_TEMP_AGE,
) -> GcPlan:
    """What to delete under the workspace of ``tasks``: files no task of their graphs outputs or logs, and old temporaries.

    Args:
        tasks: the tasks to keep, with everything upstream of them.
        workspace: the workspace to clean; default the tasks' own (they must share one).
        scope: ``"classes"`` considers only files that provably belong to the task classes in the
            kept graphs (``module.Class``: ``kart_core.inspect.ownership``); ``"all"`` every
            kart-named file in the workspace.
        temp_age: seconds since the last write after which a temporary is an orphan.

    Raises:
        CleanupError: no task was given, the tasks live in different workspaces, or ``scope`` is unknown.
        WorkspaceNotFoundError: nothing is at the workspace (no local folder, no object under the URL).
    """
    roots = list(tasks)
    if not roots:
        raise CleanupError("kart gc: give at least one task to keep (--keep module.Class ...).")
    if scope not in ("classes", "all"):
        raise CleanupError(f"kart gc: scope must be 'classes' or 'all', not {scope!r}.")
    workspace = workspace or _shared_workspace(roots)
    graph = walk(roots)
    tasks_in_graph = list(graph.nodes.values())
    reachable = {key for node in tasks_in_graph for key in _reachable_keys(node, workspace)}
    # A file named with a kept task's unique id is that task's too: a side file its run dumped beside its outputs
    # (self.make_target("work/vocab.pkl") not returned by output()), committed with that run (attacker at16 G13).
    kept_ids = {str(node.make_unique_id()) for node in tasks_in_graph if is_kart_task(node)}
    skipped = _scratch_prefixes(tasks_in_graph, workspace)
    classes = sorted({type(node).__name__ for node in tasks_in_graph})
    listing = list_files(workspace, include_temporary=True)
    if not listing:  # a mistyped path must not read as a clean workspace
        require_workspace(workspace, "nothing is there to clean")
    plan = GcPlan(workspace=workspace, delete=[], kept=[], scope=scope, classes=classes, temp_age=temp_age)
    # The last writer of a side file still there: a load checks the file against that run's manifest, whichever
    # task's make_target it goes through, so deleting it would leave the file refused for good.
    vouchers = _side_vouchers(listing)
    plan.vouching = {key: manifest for key, (manifest, unique_id) in vouchers.items() if unique_id not in kept_ids}
    kept_ids |= {unique_id for _, unique_id in vouchers.values()}
    ownership = _ownership(tasks_in_graph, workspace, listing)
    for info in listing:
        if any(info.relative.startswith(prefix) for prefix in skipped) or is_temporary(info.relative):
            continue
        named = named_run(info.relative)
        if named is None:
            continue  # not a kart file: notes, configs, data the user put there
        if info.relative in reachable or named[1] in kept_ids:
            plan.kept.append(info)
        else:
            in_scope = scope == "all" or ownership.file(info.relative) == OWNED
            (plan.delete if in_scope else plan.other_classes).append(info)
    _plan_temporaries(plan, listing, tasks_in_graph)
    return plan


def delete_unreachable(plan: GcPlan) -> list[str]:
    """Delete the outputs, run logs and temporaries of ``plan``; return their paths.

    A temporary written to since the plan was made (a writer came back) is left alone. An output or run log is
    removed through its folder opened from the workspace (``kart_core.inspect.confined``); one whose folder is now
    another user's symlink is left alone with a warning.
    """
    deleted = []
    for info in plan.delete:
        # Through a descriptor of the file's folder opened from the workspace (``confined``): a folder swapped for
        # another user's symlink after the plan was made gets nothing outside the workspace deleted.
        try:
            deleted += confined.remove_files_within(plan.workspace, [info.relative])
        except confined.Refused as refused:
            logger.warning("kart gc left %r alone: %s", info.path, refused)
    for info in plan.temporaries:
        if _remove_temporary(info, plan.temp_age):
            deleted.append(info.path)
    return deleted


def _side_vouchers(listing: list[FileEntry]) -> dict[str, tuple[str, str]]:
    """The side files in ``listing`` that a path's record (``log/side/…``, ``kart_core.side_record``) names, by
    workspace-relative path: ``(the manifest it names, that task's unique id)``.

    Nothing is verified (gc has no signing key to use, and keeping more is the safe side): a record that cannot be
    read or parsed, or names no kart manifest, is skipped.
    """
    present = {info.relative for info in listing}
    found: dict[str, tuple[str, str]] = {}
    for info in listing:
        if not info.relative.startswith(f"{side_record.FOLDER}/") or not info.relative.endswith(".json"):
            continue
        try:
            data = storage_for(info.path).read_bytes(info.path)
            document = json.loads(bytes(data[HEADER_SIZE:] if data.startswith(MAGIC) else data).decode("utf-8"))
            key, manifest = str(document["key"]), str(document["manifest"])
        except Exception:  # noqa: BLE001 - not a record kart wrote, or gone meanwhile: nothing to keep for it
            continue
        parsed = parse_log_relative(manifest)
        if key in present and parsed is not None and parsed[0] == MANIFEST:
            found[key] = (manifest, parsed[2])
    return found


def _ownership(tasks: list[LuigiTask], workspace: str, listing: list[FileEntry]) -> Ownership:
    """Who owns what in ``listing``, for the classes of the kept graph as ``module.Class``."""
    return Ownership(workspace, listing, {f"{type(task).__module__}.{type(task).__name__}" for task in tasks})


def _plan_temporaries(plan: GcPlan, listing: list[FileEntry], tasks: list[LuigiTask]) -> None:
    candidates = [info for info in listing if is_temporary(info.relative)]
    for directory in sorted({str(t.local_temporary_directory) for t in tasks if is_kart_task(t)}):
        if not protocol_of(directory):
            candidates += scratch_folders(directory)
    candidates += upload_spools()
    for info in candidates:
        (plan.temporaries if _is_old(info, plan.temp_age) else plan.fresh_temporaries).append(info)


def _is_old(info: FileEntry, age: float) -> bool:
    # Without a modification time nothing proves the writer is gone.
    return info.mtime is not None and info.mtime <= datetime.now() - timedelta(seconds=age)


def _remove_temporary(info: FileEntry, age: float) -> bool:
    """Delete a planned temporary unless it was written to since; True when it is gone."""
    if protocol_of(info.path):
        storage_for(info.path).remove(info.path)
        return True
    try:
        now = examine(os.path.dirname(info.path), info.path)
    except OSError:  # gone meanwhile
        return False
    if not _is_old(now, age):
        return False  # its writer came back
    if not os.path.isdir(info.path) or os.path.islink(info.path):
        storage_for(info.path).remove(info.path)
        return True
    parent = os.path.dirname(info.path)
    parent_idle = is_scratch_folder(parent) and _is_old(examine(os.path.dirname(parent), parent, deep=False), age)
    shutil.rmtree(info.path, ignore_errors=True)
    if parent_idle:  # a {md5} folder nobody used for temp_age: remove it once empty, as a later plan would
        with contextlib.suppress(OSError):
            os.rmdir(parent)
    return not os.path.exists(info.path)


def _shared_workspace(roots: list[KartTask]) -> str:
    workspaces = {str(root.workspace_directory) for root in roots}
    if len(workspaces) > 1:
        raise CleanupError(
            f"kart gc: the kept tasks live in different workspaces {sorted(workspaces)}; clean one at a time."
        )
    return workspaces.pop()


def _reachable_keys(task: LuigiTask, workspace: str) -> list[str]:
    paths = [target_path(target) for target in flatten(task.output())]
    if is_kart_task(task):
        paths += [log_task_path(task, kind) for kind in KART_LOG_KINDS]
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
