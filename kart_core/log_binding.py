"""Run logs bound to the run whose outputs are kept: an older run's log copied back is refused.

With signing on, a run log's signature binds its workspace-relative name and content
(``kart_core.signing``). That alone lets an older run's signed ``task_log`` (or ``processing_time``)
be copied back over the current one: same name, valid MAC. The two logs a run commits with its outputs
(staged in its transaction, ``kart_core.runlog``) are therefore sealed with the run's commit id, and the
commit writes that id into the task's signed manifest as ``logs`` (``kart_core.manifest``). A load of
such a log (``TargetOnKart``) and ``kart verify`` accept it only when the manifest names its commit.

What is not bound, because nothing vouches for another version: the logs written before ``run()``
(``task_params`` and ``random_seed``, which the unique id fixes, and ``module_versions``), logs of a
task whose commit writes no manifest (integrity records off, or no recorded output), and logs signed
before this binding while the manifest names no run (kart before 2026-12-01).
"""

from __future__ import annotations

from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.manifest import read_manifest
from kart_core.signing import Signer
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, PROCESSING_TIME, TASK_LOG, log_relative_path, parse_log_relative

__all__ = ["COMMITTED_LOG_KINDS", "commit_fault", "manifest_of"]

# The run logs a run commits with its outputs (after run(), staged in its transaction).
COMMITTED_LOG_KINDS = (PROCESSING_TIME, TASK_LOG)


def manifest_of(path: str, name: str | None) -> tuple[str, str] | None:
    """``(full path, workspace-relative name)`` of the manifest of the task whose committed run log
    (``COMMITTED_LOG_KINDS``) is at ``path`` under the workspace-relative ``name``; None for any other file.

    ``log/task_log/{Class}_{id}.pkl`` at ``{workspace}/log/task_log/...`` -> ``{workspace}/log/manifest/{Class}_{id}.json``.
    """
    parsed = parse_log_relative(name) if name else None
    if parsed is None or parsed[0] not in COMMITTED_LOG_KINDS or name is None:
        return None
    if not path.replace("\\", "/").endswith("/" + name):
        return None
    manifest_name = log_relative_path(MANIFEST, parsed[1], parsed[2])
    return path[: len(path) - len(name)] + manifest_name, manifest_name


def commit_fault(path: str, name: str | None, commit: str | None, signer: Signer) -> str | None:
    """Why the committed run log at ``path`` (its MAC checked, sealed as ``commit``) is not the one its
    task's manifest names (an older run's copied back); None when it is, or when nothing binds it.

    Not compared (None): a pending manifest (a commit moving its files now, or one killed half way: the
    task then runs again), whose logs are being moved into place; and a manifest that is missing, refused
    by signing or unreadable: the task's outputs are refused (or damaged) for that, which is what a build,
    ``kart runs`` and ``kart verify`` show.
    """
    bound = manifest_of(path, name)
    if bound is None:
        return None
    manifest_path, manifest_name = bound
    try:
        found = read_manifest(storage_for(manifest_path), manifest_path, manifest_name, signer, run=False)
    except (IntegrityError, DamagedOutputError):
        return None  # the task's outputs are refused (or damaged) for it: that is the problem to show
    if found is None or found.pending or commit == found.logs:
        return None
    signed = f"signed as run {commit}" if commit is not None else "signed without a run id (by an older kart)"
    if found.logs is None:
        names = f"its task's manifest {manifest_path!r} names no run's logs"
    else:
        names = f"its task's manifest {manifest_path!r} names run {found.logs} as the one whose run logs are current"
    return f"it is {signed}, but {names} (an older version copied back)"
