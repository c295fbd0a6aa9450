"""Cached runs read back from a workspace's run logs (``{ws}/log/{kind}/{Class}_{unique_id}.pkl``).

A run appears when it has a ``task_params`` or a ``task_log`` record. ``task_log`` is written
only after a successful run, so a run with parameters and no task log started and did not finish.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kart_core.inspect.files import FileInfo, list_files, relative_key
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.target import make_target

__all__ = ["LOG_KINDS", "RunRecord", "locate_size", "read_runs", "split_log_name"]

logger = logging.getLogger(__name__)

LOG_KINDS = ("task_params", "random_seed", "processing_time", "task_log")
_LOG_NAME = re.compile(r"^(?P<cls>.+)_(?P<uid>[0-9a-f]{32})\.(pkl|txt)$")


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
    status: str  # "complete", "outputs missing" or "unfinished"
    logs: list[FileInfo]


def split_log_name(name: str) -> tuple[str, str] | None:
    """``(Class, unique_id)`` from a log file name such as ``Load_0123…ef.pkl``; None for other files."""
    match = _LOG_NAME.match(name)
    return (match["cls"], match["uid"]) if match else None


def read_runs(workspace: str, files: list[FileInfo] | None = None, class_name: str | None = None) -> list[RunRecord]:
    """Every run recorded under ``workspace`` (optionally of one class), oldest first."""
    files = files if files is not None else list_files(workspace)
    by_relative = {f.relative: f for f in files}
    logs = _logs_by_run(files)
    records = []
    for (cls, uid), run_logs in logs.items():
        if class_name is None or cls == class_name:
            records.append(_record(workspace, cls, uid, run_logs, by_relative))
    return sorted(records, key=lambda r: (r.finished_at or datetime.max, r.class_name, r.unique_id))


def _logs_by_run(files: Iterable[FileInfo]) -> dict[tuple[str, str], dict[str, FileInfo]]:
    runs: dict[tuple[str, str], dict[str, FileInfo]] = {}
    for info in files:
        parts = info.relative.split("/")
        if len(parts) != 3 or parts[0] != "log":
            continue
        key = split_log_name(parts[2])
        if key is not None:
            runs.setdefault(key, {})[parts[1]] = info
    # Only kinds that mark a run; a lone random_seed or module_versions file does not.
    return {key: logs for key, logs in runs.items() if "task_params" in logs or "task_log" in logs}


def _record(
    workspace: str, cls: str, uid: str, logs: dict[str, FileInfo], by_relative: dict[str, FileInfo]
) -> RunRecord:
    task_log = _load(logs.get("task_log"))
    outputs = list(task_log.get("file_path", [])) if isinstance(task_log, dict) else []
    located = [locate_size(workspace, path, by_relative) for path in outputs]
    sizes = [size for size in located if size is not None]
    if "task_log" not in logs:
        status = "unfinished"
    else:
        status = "complete" if len(sizes) == len(outputs) else "outputs missing"
    processing_time = _load(logs.get("processing_time"))
    return RunRecord(
        class_name=cls,
        unique_id=uid,
        params=dict(_load(logs.get("task_params")) or {}),
        processing_time=float(processing_time) if isinstance(processing_time, int | float) else None,
        finished_at=logs["task_log"].modified if "task_log" in logs else None,
        outputs=outputs,
        output_size=sum(sizes) if outputs and status == "complete" else None,
        status=status,
        logs=list(logs.values()),
    )


def _load(info: FileInfo | None) -> Any:
    if info is None:
        return None
    try:
        return make_target(info.path).load()
    except Exception as exc:  # one unreadable log must not hide the other runs
        logger.warning("Skipping unreadable run log %s: %s", info.path, exc)
        return None


def locate_size(workspace: str, recorded: str, by_relative: dict[str, FileInfo]) -> int | None:
    """The size of an output path (None if missing), found in the workspace listing by its longest matching suffix.

    Recorded paths are as the writer saw them (e.g. ``./resources/pkg/A_….pkl`` relative to its
    current directory), so they are matched by their tail inside the workspace, not as given.
    """
    parts = relative_key(recorded.split("://", 1)[-1]).split("/")
    for start in range(len(parts)):
        found = by_relative.get("/".join(parts[start:]))
        if found is not None:
            return found.size
    return _size_outside(recorded) if not protocol_of(workspace) or protocol_of(recorded) else None


def _size_outside(path: str) -> int | None:
    # An output written outside the workspace: ask its storage whether it exists, and how large it is.
    storage = storage_for(path)
    if not storage.exists(path):
        return None
    with storage.open_read(path) as file:
        return int(file.seek(0, 2))
