"""The runs table: every cached run of a workspace as a pandas DataFrame (what thunderbolt gave gokart users)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from kart_core.inspect.runlogs import RunRecord, read_runs
from kart_core.workspace import default_workspace

__all__ = ["COLUMNS", "runs", "format_size", "format_table"]

COLUMNS = ["class", "unique_id", "params", "processing_time", "finished_at", "output_size", "status", "outputs"]


def runs(
    workspace: str | None = None,
    task_class: str | None = None,
    params: Mapping[str, Any] | None = None,
    expand_params: bool = False,
) -> pd.DataFrame:
    """Every cached run in ``workspace``, oldest first: one row per (class, unique id).

    Args:
        workspace: a local path or fsspec URL; default ``kart_core.workspace.default_workspace()``
            (``[TaskOnKart] workspace_directory``, then ``KART_WORKSPACE``, then ./resources/).
        task_class: keep runs of this class (bare name, or ``module.Class``).
        params: keep runs whose stored parameter values equal these (compared as strings).
        expand_params: add one ``param.<name>`` column per parameter.

    Columns: class, unique_id, params (dict of str), processing_time (s), finished_at,
    output_size (bytes), status ("complete", "outputs missing", "unfinished"), outputs.
    """
    class_name = task_class.rpartition(".")[2] if task_class else None
    records = read_runs(default_workspace(workspace), class_name=class_name)
    records = [r for r in records if _matches(r, params or {})]
    frame = pd.DataFrame([_row(r) for r in records], columns=COLUMNS)
    frame["output_size"] = frame["output_size"].astype("Int64")  # bytes; missing outputs stay <NA>
    frame["processing_time"] = frame["processing_time"].astype("float64")
    if expand_params:
        expanded = pd.DataFrame([r.params for r in records], index=frame.index).add_prefix("param.")
        frame = pd.concat([frame, expanded], axis=1)
    return frame


def _matches(record: RunRecord, params: Mapping[str, Any]) -> bool:
    return all(name in record.params and record.params[name] == str(value) for name, value in params.items())


def _row(record: RunRecord) -> dict[str, Any]:
    return {
        "class": record.class_name,
        "unique_id": record.unique_id,
        "params": record.params,
        "processing_time": record.processing_time,
        "finished_at": record.finished_at,
        "output_size": record.output_size,
        "status": record.status,
        "outputs": record.outputs,
    }


def format_size(size: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``3.2 MB``; ``-`` when unknown."""
    if size is None or pd.isna(size):
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def format_table(frame: pd.DataFrame, params_width: int = 60) -> str:
    """The runs table as aligned text for a terminal."""
    if frame.empty:
        return "No runs found."
    header = ["CLASS", "UNIQUE ID", "PARAMETERS", "TIME", "FINISHED AT", "SIZE", "STATUS"]
    rows = [header] + [_text_row(row, params_width) for row in frame.to_dict("records")]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _text_row(values: dict[str, Any], params_width: int) -> list[str]:
    params = ", ".join(f"{name}={value}" for name, value in values["params"].items())
    if len(params) > params_width:
        params = params[: params_width - 3] + "..."
    time = values["processing_time"]
    finished = values["finished_at"]
    return [
        values["class"],
        values["unique_id"],
        params or "-",
        "-" if time is None or pd.isna(time) else f"{time:.2f}s",
        "-" if finished is None or pd.isna(finished) else finished.strftime("%Y-%m-%d %H:%M:%S"),
        format_size(values["output_size"]),
        values["status"],
    ]
