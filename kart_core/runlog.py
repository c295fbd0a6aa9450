"""The run logs under ``{workspace}/log/``, written by a hook plugin (gokart's layout).

task_params, random_seed and module_versions are written before ``run()``; processing_time
and task_log after it succeeds, staged in its transaction and committed with its outputs: when two
processes run one task at once, the run whose outputs are kept is the one whose processing_time and
task_log stay (the other's are discarded with its outputs).

A task class that sets ``kart_compact_run_logs = True`` (kart's own classes that gokart never
reads, such as kart_kedro's node runs) gets two files instead of five: task_params before the run,
and task_log after it, carrying the random seed, the module versions and the processing time under
those kinds' names (``task_log["random_seed"]`` ...), and when the run finished (``kart_built_at``, epoch
seconds: ``kart_core.runlog_reader.BUILT_AT``). Nothing is lost, and a trivial task's run
writes three files fewer (``compact_value`` reads either form back).

A class that also sets ``kart_run_record_in_manifest = True`` (kart_kedro's node runs) writes no run
log file at all: ``run_one`` puts the run record (its ``task_params`` and its compact ``task_log``,
JSON data) into the task's integrity manifest, written in one atomic write when the outputs are
committed (``kart_core.manifest``). A run that failed leaves no record (nor outputs). A task log
JSON cannot hold (written after that commit), or a run without a manifest (integrity record off,
staged with the outputs), falls back to the two compact files. A run superseded by another
process's commit keeps that run's record and writes no files. ``read_log``, ``stored_params``, ``read_task_log_safely``, ``kart runs`` and
``kart why`` read the record from either place.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import Any, TypeVar

from kart_core import transaction
from kart_core.contract import KartTask
from kart_core.hooks.markers import hookimpl
from kart_core.manifest import read_manifest
from kart_core.runlog_reader import BUILT_AT, compact_value, load_log_value, one_line, read_log_safely
from kart_core.storage import storage_for
from kart_core.structure import flatten
from kart_core.target import make_target
from kart_core.workspace import (
    MANIFEST,
    MODULE_VERSIONS,
    PROCESSING_TIME,
    RANDOM_SEED,
    TASK_LOG,
    TASK_PARAMS,
    LogKind,
    log_path,
    log_relative_path,
    log_task_path,
)

__all__ = [
    "RunLogPlugin",
    "compact_run_logs",
    "record_in_manifest",
    "recorded_run",
    "run_record",
    "compact_value",
    "load_log_value",
    "module_versions",
    "one_line",
    "read_log",
    "read_log_safely",
    "read_task_log_safely",
    "stored_params",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class RunLogPlugin:
    """Writes the five gokart run logs of each task that runs."""

    @hookimpl
    def kart_before_task_run(self, task: KartTask, seed: int, seed_methods: list[str]) -> None:
        """Record parameters, seed and package versions (the last two in the task log when compact)."""
        if not task.should_dump_supplementary_log_files:
            return
        seeded = {"seed": seed, "seed_methods": seed_methods}
        if compact_run_logs(task):
            task.task_log[RANDOM_SEED.name] = seeded
            task.task_log[MODULE_VERSIONS.name] = module_versions()
            if not record_in_manifest(task):  # else the parameters go into the manifest at commit
                _dump(task, TASK_PARAMS, task.to_str_params(only_significant=True))
            return
        _dump(task, RANDOM_SEED, seeded)
        _dump(task, TASK_PARAMS, task.to_str_params(only_significant=True))
        _dump(task, MODULE_VERSIONS, module_versions())

    @hookimpl
    def kart_commit_task_run(self, task: KartTask, processing_time: float) -> None:
        """Record the run time and the task log with the output paths (the run time in the task log when compact).

        Staged in the task's transaction: committed with the outputs by the run whose outputs are kept.
        """
        if record_in_manifest(task) and getattr(task, _RECORDED, None) is not None:
            # run_one's commit writes the record into the manifest; run_record put the output paths in its task log.
            return
        task.task_log["file_path"] = [target.path() for target in flatten(task.kart_outputs())]
        if not task.should_dump_supplementary_log_files:
            return
        if record_in_manifest(task):
            _dump(task, TASK_PARAMS, task.to_str_params(only_significant=True))  # skipped before the run
        if compact_run_logs(task):
            task.task_log[PROCESSING_TIME.name] = processing_time
            task.task_log[BUILT_AT] = time.time()
        else:
            _dump(task, PROCESSING_TIME, processing_time)
        _dump(task, TASK_LOG, task.task_log)

    @hookimpl
    def kart_after_task_run(self, task: KartTask, processing_time: float) -> None:
        """Write the run logs of a ``kart_run_record_in_manifest`` run whose record its commit left out.

        That happens when JSON cannot hold its task log (``kart_core.transaction``); the commit was this
        run's own (a run superseded by another process's commit keeps the other's record, and no files).
        The task log already holds the processing time (``run_record``).
        """
        if record_in_manifest(task) and getattr(task, _RECORDED, None) is False:
            _dump(task, TASK_PARAMS, task.to_str_params(only_significant=True))
            _dump(task, TASK_LOG, task.task_log)


# Instance attribute: None (or absent): this run's record goes to run log files staged with its outputs;
# True: run_one's commit writes it into the manifest; False: that commit could not (JSON could not hold it).
_RECORDED = "_kart_run_recorded"


def compact_run_logs(task: object) -> bool:
    """Whether ``task``'s class keeps random seed, module versions and processing time in its task log."""
    return bool(getattr(type(task), "kart_compact_run_logs", False)) or record_in_manifest(task)


def record_in_manifest(task: object) -> bool:
    """Whether ``task``'s class keeps its run record (task params and compact task log) in its manifest."""
    return bool(getattr(type(task), "kart_run_record_in_manifest", False))


def run_record(task: KartTask, processing_time: float) -> dict[str, Any] | None:
    """The run record ``run_one`` commits into the manifest of a ``kart_run_record_in_manifest`` task.

    Completes the task log as the after-run hook does (output paths, processing time). None when the
    task writes no run logs (``should_dump_supplementary_log_files`` off). A task log JSON cannot hold
    is left out of the manifest at the commit; then the run logs are written as files after the run.
    """
    task.task_log["file_path"] = [target.path() for target in flatten(task.kart_outputs())]
    task.task_log[PROCESSING_TIME.name] = processing_time
    task.task_log[BUILT_AT] = time.time()  # the manifest's file time changes when it is written again
    if not task.should_dump_supplementary_log_files:
        return None
    # JSON-encoded once, with the manifest; a task log JSON cannot hold is dropped there (kart_core.transaction).
    return {"task_params": task.to_str_params(only_significant=True), "task_log": task.task_log}


def mark_recorded(task: KartTask, recorded: bool | None) -> None:
    """Note whether the commit writes (True), wrote (True) or left out (False) ``task``'s run record from
    its manifest; None: the record is not for the manifest. The run-log hooks read it."""
    setattr(task, _RECORDED, recorded)


def recorded_run(workspace: str, class_name: str, unique_id: str, signer: Any = None) -> dict[str, Any] | None:
    """The run record in the manifest of ``class_name``'s run ``unique_id``, or None when it has none.

    ``signer``: check the manifest's signature (None: read it unverified, for views and for logs
    read as plain data, as ``load_log_value`` does without signing). A damaged or refused manifest
    gives None.
    """
    from kart_core.errors import DamagedOutputError, IntegrityError
    from kart_core.storage import storage_for

    name = log_relative_path(MANIFEST, class_name, unique_id)
    path = log_path(workspace, MANIFEST, class_name, unique_id)
    try:
        manifest = read_manifest(storage_for(path), path, name, signer)
    except (DamagedOutputError, IntegrityError):
        return None
    return manifest.run if manifest is not None else None


def _recorded_value(task: KartTask, kind: LogKind, default: object) -> object:
    """The ``task_params`` or ``task_log`` a manifest run record holds for ``task``; ``default`` otherwise."""
    if not record_in_manifest(task) or kind not in (TASK_PARAMS, TASK_LOG):
        return default
    from kart_core import target_config

    run = recorded_run(
        str(task.workspace_directory), type(task).__name__, task.make_unique_id(), target_config.current().signer
    )
    value = run.get(kind.name) if run is not None else None
    return value if isinstance(value, dict) else default


def _dump(task: KartTask, kind: LogKind, value: object) -> None:
    task.kart_log_target(kind.name, kind.extension).dump(value)


def read_log(task: KartTask, kind: LogKind, default: object, plain_data: bool = False) -> object:
    """The value the task's last run stored as its ``kind`` run log, or ``default`` when there is none.

    ``plain_data``: a ``.pkl`` log file is read as plain data only (``kart_core.runlog_reader.load_log_value``:
    dicts, lists, strings, numbers, dates; with signing on, its signature checked first), never unpickled in
    full: for tools and adapters that read the logs of runs they did not start (listings, their own records),
    where a file planted in a shared workspace must not run code. Off (the default), the log loads as gokart's
    ``load`` of it does, whatever it pickles.

    Raises:
        pickle.UnpicklingError: ``plain_data`` and the log's pickle names more than plain data.
        LoadError: the log file cannot be read (damaged, or refused by signing).
    """
    if transaction.current() is None:
        # Nothing can be staged: a missing log file (every log of a kart_run_record_in_manifest class,
        # whose record is in the manifest) costs one existence check, without making its target.
        path = log_task_path(task, kind)
        if not storage_for(path).exists(path):
            return _recorded_value(task, kind, default)
        if plain_data and kind.extension == ".pkl":
            return load_log_value(path)
    target = task.kart_log_target(kind.name, kind.extension)
    if plain_data and kind.extension == ".pkl" and target.exists():
        return load_log_value(target.path())
    return target.load() if target.exists() else _recorded_value(task, kind, default)


def stored_params(workspace: str, class_name: str, unique_id: str) -> dict[str, str]:
    """The significant parameters a run of ``class_name`` stored under ``unique_id`` in ``workspace``.

    Read as plain data unless signing is on (``load_log_value``).

    Raises:
        LoadError: no run of that class and id stored its parameters there.
        pickle.UnpicklingError: the file holds more than plain data.
    """
    path = log_path(workspace, TASK_PARAMS, class_name, unique_id)
    target = make_target(path, name=log_relative_path(TASK_PARAMS, class_name, unique_id))
    target.what = "task_params run log"
    if not target.exists():
        from kart_core import target_config

        run = recorded_run(workspace, class_name, unique_id, target_config.current().signer)
        if run is not None and isinstance(run.get(TASK_PARAMS.name), dict):  # kart_run_record_in_manifest
            return {str(key): str(value) for key, value in run[TASK_PARAMS.name].items()}
        target.load()  # kart's error for a missing output, naming the path
    return dict(load_log_value(path))


def module_versions() -> str:
    """``name==version`` lines for the installed distributions whose modules are imported now."""
    return _module_versions_for(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _module_versions_for(module_count: int) -> str:
    # The answer holds until more modules are imported.
    installed = _installed_distributions()
    imported = {name.partition(".")[0] for name in list(sys.modules)}
    lines = {installed[module] for module in imported if module in installed}
    return "\n".join(sorted(lines, key=str.lower))


@functools.cache
def _installed_distributions() -> dict[str, str]:
    """Top-level module name -> ``name==version``, read from the ``*.dist-info`` folders on sys.path.

    Reads folder names and top_level.txt only: importlib.metadata.packages_distributions() parses every
    RECORD file (about half a second), which luigi's one-process-per-task workers would pay per task.
    """
    index: dict[str, str] = {}
    for entry in sys.path:
        for folder in _dist_info_folders(entry or "."):
            name, _, version = folder[: -len(".dist-info")].partition("-")
            top_level = os.path.join(entry or ".", folder, "top_level.txt")
            modules = _read_lines(top_level) or [name.lower()]
            for module in modules:
                index.setdefault(module, f"{name.replace('_', '-')}=={version}")
    return index


def _dist_info_folders(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".dist-info"))
    except OSError:
        return []


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as file:
            return [line.strip().replace("/", ".") for line in file if line.strip()]
    except OSError:
        return []


def read_task_log_safely(task: KartTask, kind: LogKind, default: _T, expected: type | tuple[type, ...] = object) -> Any:
    """``read_log_safely`` of ``task``'s own run log of ``kind`` (or of the run record in its manifest)."""
    found = read_log_safely(log_task_path(task, kind), _MISSING, expected)
    if found is not _MISSING:
        return found
    value = _recorded_value(task, kind, default)
    return value if isinstance(value, expected) else default


_MISSING = object()
