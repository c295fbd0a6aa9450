"""Clean a local workspace: delete the outputs that a task graph does not need (gokart's
``delete_local_unnecessary_outputs``).

Only files whose name has a dot are candidates, as gokart's ``rglob('*.*')`` (every output has an
extension): a ``Makefile`` or a ``raw/README`` kept in the workspace stays. Kept too: every output of
every task under the root (walked iteratively), the run logs under ``{workspace}/log/``, the scratch
directory (locks and model scratch live there) and temporary files (a write may be in progress;
``kart gc`` sweeps old ones).
"""

from __future__ import annotations

import logging
import os

from kart_core.contract import KartTask, target_path
from kart_core.errors import CleanupError
from kart_core.graph import walk
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.utils import flatten
from kart_core.workspace import LOG_DIRECTORY, list_files

__all__ = ["delete_local_unnecessary_outputs"]

logger = logging.getLogger(__name__)


def delete_local_unnecessary_outputs(task: KartTask) -> list[str]:
    """Delete files in ``task``'s local workspace that no task of its graph outputs; return what was deleted.

    Only names with a dot (``x.pkl``, ``.gitignore``) are deleted, as gokart's ``rglob('*.*')``.

    Raises:
        CleanupError: the workspace is not a local directory.
    """
    workspace = str(task.workspace_directory)
    if protocol_of(workspace):
        raise CleanupError(
            f"delete_local_unnecessary_outputs({task.kart_label()}): the workspace {workspace!r} is not local; "
            "only local workspaces can be cleaned."
        )
    needed = _needed_outputs(task)
    kept_directories = [_absolute(os.path.join(workspace, LOG_DIRECTORY)), _absolute(task.local_temporary_directory)]
    deleted = []
    for entry in list_files(workspace):
        if "." not in os.path.basename(entry.path):
            continue  # gokart's rule: a name without a dot is not an output (Makefile, README)
        absolute = _absolute(entry.path)
        if absolute not in needed and not _is_under_any(absolute, kept_directories):
            storage_for(entry.path).remove(entry.path)
            deleted.append(entry.path)
    logger.info("Deleted %d unneeded file(s) from %s: %s", len(deleted), workspace, deleted)
    return deleted


def _needed_outputs(task: KartTask) -> set[str]:
    """Absolute paths of the outputs of every task in the graph under ``task``."""
    graph = walk([task])
    return {_absolute(target_path(target)) for node in graph.nodes.values() for target in flatten(node.output())}


def _absolute(path: str) -> str:
    # "./resources/a.pkl" and "resources/a.pkl" name the same file; compare normalized absolute paths.
    return os.path.normpath(os.path.abspath(path))


def _is_under_any(path: str, directories: list[str]) -> bool:
    return any(path == directory or path.startswith(directory + os.sep) for directory in directories)
