"""Cached runs read back from a workspace's run logs (``{ws}/log/{kind}/{Class}_{unique_id}.pkl``).

A run appears when it has a ``task_params`` or a ``task_log`` record, or a manifest holding a run
record (``kart_run_record_in_manifest`` classes: both in the manifest, read as JSON). ``task_log``
is written only after a successful run, so a run with parameters and no task log started and did
not finish. A run finished when its compact task log says (``kart_built_at``), else when its task log
file was written; a run record in a manifest without that key has no known finish time (the manifest
file is written again after the run, so its time is not the run's).
A finished run whose output in the workspace has another size than its integrity manifest
(``log/manifest/{Class}_{uid}.json``, read as JSON) records, or whose manifest cannot be read, is
"damaged output": a build takes it as cached and loading it fails. With signing on, a finished run
whose manifest or output a load refuses (``kart_core.refusal``: not signed, another task's manifest,
a removed manifest) is "refused": a build takes it as cached and loading it fails (``IntegrityError``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from kart_core import log_binding
from kart_core.manifest import read_unverified
from kart_core.refusal import is_unsigned, refusals
from kart_core.runlog_reader import built_at, compact_value, one_line, plain_pickle_allowed, read_log_safely
from kart_core.signing import HEADER_SIZE, Signer, read_seal, signer_from_config
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.workspace import (
    MANIFEST,
    PROCESSING_TIME,
    TASK_LOG,
    TASK_PARAMS,
    FileEntry,
    LogKind,
    list_files,
    relative_key,
    run_logs,
)

__all__ = ["RunRecord", "id_lookup", "locate_size", "read_runs"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RunRecord:
    """One cached run: what its logs say, and where and how large its outputs are now."""

    class_name: str
    unique_id: str
    params: dict[str, str]
    processing_time: float | None
    finished_at: datetime | None
    outputs: list[str]
    output_size: int | None
    status: str  # "complete", "damaged output", "refused", "outputs missing", "unfinished" or "damaged log"
    logs: list[FileEntry]


def read_runs(workspace: str, files: list[FileEntry] | None = None, class_name: str | None = None) -> list[RunRecord]:
    """Every run recorded under ``workspace`` (optionally of one class), oldest first."""
    files = files if files is not None else list_files(workspace)
    by_relative = {f.relative: f for f in files}
    logs = _logs_by_run(files)
    plain = plain_pickle_allowed()  # asked once, not per log: it reads luigi's config files
    signer = None if plain else signer_from_config()
    records = []
    for (cls, uid), logs_of_run in logs.items():
        if class_name is None or cls == class_name:
            record: RunRecord | None
            if TASK_PARAMS in logs_of_run or TASK_LOG in logs_of_run:
                record = _record(workspace, cls, uid, logs_of_run, by_relative, plain)
            else:
                record = _manifest_record(workspace, cls, uid, logs_of_run, by_relative)
            if record is not None:
                records.append(_refused(record, logs_of_run, by_relative, signer))
    return sorted(records, key=lambda r: (r.finished_at or datetime.max, r.class_name, r.unique_id))


def id_lookup(records: Iterable[RunRecord]) -> Callable[[str, Mapping[str, str]], str | None]:
    """Find a run's unique id by class name and stored parameters (``kart_core.display.IdLookup``).

    A task stored inside another task's parameter keeps only its class and parameters; its id is the
    one run of that class with exactly those parameters. None when there is no such run, or several
    (the same parameters with different upstreams, e.g. a ``requires()`` that reads the config).
    """
    found: dict[tuple[str, tuple[tuple[str, str], ...]], set[str]] = {}
    for record in records:
        found.setdefault((record.class_name, tuple(sorted(record.params.items()))), set()).add(record.unique_id)

    def lookup(class_name: str, params: Mapping[str, str]) -> str | None:
        ids = found.get((class_name, tuple(sorted(params.items()))), set())
        return next(iter(ids)) if len(ids) == 1 else None

    return lookup


def _logs_by_run(files: Iterable[FileEntry]) -> dict[tuple[str, str], dict[LogKind, FileEntry]]:
    # Only kinds that mark a run; a lone random_seed or module_versions file does not. A lone manifest
    # marks one when it holds a run record (read in read_runs).
    return {
        key: logs
        for key, logs in run_logs(files).items()
        if TASK_PARAMS in logs or TASK_LOG in logs or MANIFEST in logs
    }


def _manifest_record(
    workspace: str, cls: str, uid: str, logs: dict[LogKind, FileEntry], by_relative: dict[str, FileEntry]
) -> RunRecord | None:
    """The run a manifest's run record describes (``kart_run_record_in_manifest``); None without one.

    Read as JSON without its signature checked: a view, as for the size check of ``_size_damaged``.
    """
    entry = logs[MANIFEST]
    manifest = read_unverified(storage_for(entry.path), entry.path)
    if manifest is None or manifest.run is None:
        return None
    run = manifest.run
    params = run.get(TASK_PARAMS.name)
    task_log = run.get(TASK_LOG.name)
    if not isinstance(params, dict) or not isinstance(task_log, dict):
        logger.warning("skipping the run record in %s: it is not what kart writes there", entry.path)
        return None
    outputs = [str(key) for key in manifest.outputs]
    sizes = [by_relative[key].size for key in outputs if key in by_relative]
    status = "complete" if len(sizes) == len(outputs) else "outputs missing"
    if status == "complete" and any(by_relative[key].size != manifest.outputs[key].size for key in outputs):
        status = "damaged output"
    processing_time = compact_value(task_log, PROCESSING_TIME, (int, float), None)
    paths = task_log.get("file_path")
    return RunRecord(
        class_name=cls,
        unique_id=uid,
        params={str(k): str(v) for k, v in params.items()},
        processing_time=float(processing_time) if processing_time is not None else None,
        finished_at=built_at(task_log),  # not entry.mtime: the manifest is written again after the run
        outputs=[str(path) for path in paths] if isinstance(paths, list) else outputs,
        output_size=sum(sizes) if outputs and status in ("complete", "damaged output") else None,
        status=status,
        logs=list(logs.values()),
    )


def _refused(
    record: RunRecord,
    logs: dict[LogKind, FileEntry],
    by_relative: dict[str, FileEntry],
    signer: Signer | None,
) -> RunRecord:
    """``record`` with status "refused" when signing is on and a load refuses its manifest or an output, or
    its task log (so it read as "damaged log"): unsigned (gokart's, or written before signing), or an older
    run's copied back; or its processing_time log is an older run's copied back."""
    if signer is None:
        return record
    if record.status == "damaged log":
        if TASK_LOG in logs and (is_unsigned(logs[TASK_LOG].path) or _rolled_back(logs[TASK_LOG], signer)):
            record.status = "refused"
        return record
    if record.status not in ("complete", "damaged output"):
        return record
    # A processing_time log only fills the TIME column: its rollback (refused by a load) leaves the status complete.
    if PROCESSING_TIME in logs and _rolled_back(logs[PROCESSING_TIME], signer):
        record.status = "refused"
        return record
    manifest = logs.get(MANIFEST)
    located = [_locate(path, by_relative) for path in record.outputs]
    outputs = [(entry.path, entry.relative) for entry in located if entry is not None]
    name = manifest.relative if manifest is not None else ""
    if refusals(manifest.path if manifest is not None else None, name, outputs, signer):
        record.status = "refused"
    return record


def _rolled_back(entry: FileEntry, signer: Signer) -> bool:
    """Whether the signed task log ``entry`` is not the run its manifest names (``kart_core.log_binding``: an
    older run's copied back), from its header alone: its MAC is ``kart verify``'s to check."""
    try:
        with storage_for(entry.path).open_read(entry.path) as file:
            seal = read_seal(file.read(HEADER_SIZE))
        return (
            seal is not None and log_binding.commit_fault(entry.path, entry.relative, seal.commit, signer) is not None
        )
    except OSError:
        return False


def _record(
    workspace: str,
    cls: str,
    uid: str,
    logs: dict[LogKind, FileEntry],
    by_relative: dict[str, FileEntry],
    plain: bool,
) -> RunRecord:
    task_log = _read(logs.get(TASK_LOG), None, dict, plain)
    outputs = _recorded_outputs(logs.get(TASK_LOG), task_log)
    located = [locate_size(workspace, path, by_relative) for path in outputs or []]
    sizes = [size for size in located if size is not None]
    if TASK_LOG not in logs:
        status = "unfinished"
    elif outputs is None:
        status = "damaged log"
    else:
        status = "complete" if len(sizes) == len(outputs) else "outputs missing"
        if status == "complete" and _size_damaged(logs.get(MANIFEST), by_relative):
            status = "damaged output"
    processing_time = _read(logs.get(PROCESSING_TIME), None, (int, float), plain)
    if processing_time is None:  # a kart_compact_run_logs class keeps it in the task log
        processing_time = compact_value(task_log, PROCESSING_TIME, (int, float), None)
    return RunRecord(
        class_name=cls,
        unique_id=uid,
        params={str(k): str(v) for k, v in _read(logs.get(TASK_PARAMS), {}, dict, plain).items()},
        processing_time=float(processing_time) if processing_time is not None else None,
        finished_at=_finished_at(logs, task_log),
        outputs=outputs or [],
        output_size=sum(sizes) if outputs and status in ("complete", "damaged output") else None,
        status=status,
        logs=list(logs.values()),
    )


def _finished_at(logs: dict[LogKind, FileEntry], task_log: dict[str, Any] | None) -> datetime | None:
    """When a run finished: its task log's record of it (compact run logs), else the task log file's time
    (written once, at the run's commit); None for a run without a task log (unfinished)."""
    if TASK_LOG not in logs:
        return None
    return built_at(task_log) or logs[TASK_LOG].mtime


def _size_damaged(manifest: FileEntry | None, by_relative: dict[str, FileEntry]) -> bool:
    """Whether an output the run's manifest lists is in the workspace listing with another size, or
    the manifest is listed but cannot be read (loading the outputs then fails as for damage)."""
    if manifest is None:
        return False
    found = read_unverified(storage_for(manifest.path), manifest.path)
    if found is None:
        return storage_for(manifest.path).exists(manifest.path)  # removed since the listing: not damage
    return any(key in by_relative and by_relative[key].size != entry.size for key, entry in found.outputs.items())


def _recorded_outputs(entry: FileEntry | None, task_log: dict[str, Any] | None) -> list[str] | None:
    """The output paths a task log (read from ``entry``) records ([] without one); None when it is unreadable or not kart's."""
    if entry is None:
        return []
    if task_log is None:
        return None
    paths = task_log.get("file_path", [])
    if isinstance(paths, list | tuple) and all(isinstance(path, str) for path in paths):
        return list(paths)
    logger.warning("skipping run log %s: its file_path is not a list of paths", entry.path)
    return None


def _read(entry: FileEntry | None, default: Any, expected: type | tuple[type, ...], plain: bool) -> Any:
    # One unreadable log must not hide the other runs: read_log_safely warns and gives the default.
    return default if entry is None else read_log_safely(entry.path, default, expected, plain)


def _locate(recorded: str, by_relative: dict[str, FileEntry]) -> FileEntry | None:
    """The workspace file of a recorded output path, by its longest matching suffix (as ``locate_size``)."""
    parts = relative_key(recorded.split("://", 1)[-1]).split("/")
    for start in range(len(parts)):
        found = by_relative.get("/".join(parts[start:]))
        if found is not None:
            return found
    return None


def locate_size(workspace: str, recorded: str, by_relative: dict[str, FileEntry]) -> int | None:
    """The size of an output path (None if missing), found in the workspace listing by its longest matching suffix.

    Recorded paths are as the writer saw them (e.g. ``./resources/pkg/A_….pkl`` relative to its
    current directory), so they are matched by their tail inside the workspace, not as given.
    """
    found = _locate(recorded, by_relative)
    if found is not None:
        return found.size
    return _size_outside(recorded) if not protocol_of(workspace) or protocol_of(recorded) else None


def _size_outside(path: str) -> int | None:
    """The size of an output written outside the workspace; None when it is missing or cannot be examined."""
    try:
        if not protocol_of(path):
            local = path[len("file://") :] if path.startswith("file://") else path
            return os.path.getsize(local) if os.path.isfile(local) else None
        storage = storage_for(path)
        if not storage.exists(path):
            return None
        with storage.open_read(path) as file:
            return int(file.seek(0, 2))
    except Exception as exc:  # a recorded path on storage kart cannot reach (unknown scheme, missing extra)
        logger.warning("cannot check the recorded output %s: %s", path, one_line(exc))
        return None
