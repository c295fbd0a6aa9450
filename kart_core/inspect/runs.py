"""The runs table: every cached run of a workspace (what thunderbolt gave gokart users).

``run_rows`` reads the rows as plain dicts (what ``kart runs`` prints, without importing pandas);
``runs`` returns them as a pandas DataFrame. Parameters come twice: ``params`` readable
(``data=LoadData[4f26c715](n_rows=400, seed=0)``, by ``kart_core.display``) and ``raw_params`` as
gokart stored them (a task-valued parameter is JSON with the hex of a bz2 blob).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kart_core.display import readable_params
from kart_core.inspect.ownership import FOREIGN, Ownership
from kart_core.inspect.runlogs import RunRecord, id_lookup, read_runs
from kart_core.workspace import FileEntry, default_workspace, list_files

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "format_size", "format_table", "run_rows", "runs"]

COLUMNS = [
    "class",
    "unique_id",
    "params",
    "raw_params",
    "processing_time",
    "finished_at",
    "output_size",
    "status",
    "outputs",
]
_PARAMS_WIDTH = 120  # characters of the table's PARAMETERS column before it is cut


def run_rows(
    workspace: str | None = None, task_class: str | None = None, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every cached run in ``workspace``, oldest first, as one dict per (class, unique id) with ``COLUMNS``.

    Args and filters as ``runs``. ``params`` of a row maps each name to its readable text (plain values
    longer than ``kart_core.display.MAX_VALUE`` cut with ``…``),
    ``raw_params`` to gokart's stored string; ``finished_at`` is a ``datetime`` or None,
    ``processing_time`` seconds or None, ``output_size`` bytes or None.
    """
    workspace = default_workspace(workspace)
    files = list_files(workspace)
    everything = read_runs(workspace, files)
    lookup = id_lookup(everything)  # nested tasks are found among the runs of every class
    of_class = _class_filter(task_class, workspace, files)
    records = [r for r in everything if of_class(r)]
    rows = []
    for record in records:
        readable = readable_params(record.params, lookup)
        if _matches(record.params, readable, params or {}):
            rows.append(_row(record, readable))
    return rows


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
        task_class: keep runs of this class: a bare name, or ``module.Class``, which leaves out runs
            whose outputs show they belong to another module's class of the same name
            (``kart_core.inspect.ownership``; runs whose module cannot be told are kept).
        params: keep runs whose parameter values equal these (compared as strings, with the stored
            value or its readable text, e.g. ``{"data": "LoadData[4f26c715](n_rows=400, seed=0)"}``).
        expand_params: add one ``param.<name>`` column per parameter (readable text).

    Columns: class, unique_id, params (dict of readable str: ``kart_core.display.value_text``, long plain
    values cut), raw_params (dict of gokart's str, exact),
    processing_time (s), finished_at, output_size (bytes), status ("complete", "damaged output" (an
    output's size differs from its integrity record), "outputs missing", "unfinished", "damaged log"), outputs.
    """
    import pandas as pd  # here, not at import: `kart runs` prints the rows without pandas

    rows = run_rows(workspace, task_class, params)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["output_size"] = frame["output_size"].astype("Int64")  # bytes; missing outputs stay <NA>
    frame["processing_time"] = frame["processing_time"].astype("float64")
    frame["finished_at"] = pd.to_datetime(frame["finished_at"])
    if expand_params:
        expanded = pd.DataFrame([row["params"] for row in rows], index=frame.index).add_prefix("param.")
        frame = pd.concat([frame, expanded], axis=1)
    return frame


def _class_filter(task_class: str | None, workspace: str, files: list[FileEntry]) -> Callable[[RunRecord], bool]:
    """Which records are runs of ``task_class`` (None: any class; ``Class``; or ``module.Class``, which
    leaves out the runs that provably belong to another module's class of the same name:
    ``kart_core.inspect.ownership``; runs whose module cannot be told stay listed)."""
    if task_class is None:
        return lambda record: True
    class_name = task_class.rpartition(".")[2]
    if "." not in task_class:
        return lambda record: record.class_name == class_name
    ownership = Ownership(workspace, files, [task_class])
    return lambda record: (
        record.class_name == class_name and ownership.run(record.class_name, record.unique_id) != FOREIGN
    )


def _matches(raw: Mapping[str, str], readable: Mapping[str, str], wanted: Mapping[str, Any]) -> bool:
    return all(name in raw and str(value) in (raw[name], readable[name]) for name, value in wanted.items())


def _row(record: RunRecord, readable: dict[str, str]) -> dict[str, Any]:
    return {
        "class": record.class_name,
        "unique_id": record.unique_id,
        "params": readable,
        "raw_params": record.params,
        "processing_time": record.processing_time,
        "finished_at": record.finished_at,
        "output_size": record.output_size,
        "status": record.status,
        "outputs": record.outputs,
    }


def _missing(value: Any) -> bool:
    # None, NaN and pandas' NaT are not equal to themselves; pandas' NA cannot even say so.
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:
        return True


def format_size(size: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``3.2 MB``; ``-`` when unknown."""
    if _missing(size):
        return "-"
    value = float(size)  # type: ignore[arg-type]  # not None: checked above
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def format_table(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, params_width: int = _PARAMS_WIDTH) -> str:
    """The runs table as aligned text for a terminal (rows of ``run_rows``, or the ``runs`` DataFrame).

    One line per run: class, unique id, parameters (readable; the column cut with ``…`` beyond
    ``params_width`` characters), time, finish time, size, status.
    """
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    if not records:
        return "No runs found."
    header = ["CLASS", "UNIQUE ID", "PARAMETERS", "TIME", "FINISHED AT", "SIZE", "STATUS"]
    lines = [header] + [_text_row(row, params_width) for row in records]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _text_row(values: Mapping[str, Any], params_width: int) -> list[str]:
    params = _clip(", ".join(f"{name}={text}" for name, text in values["params"].items()), params_width)
    time = values["processing_time"]
    finished = values["finished_at"]
    return [
        values["class"],
        values["unique_id"],
        params or "-",
        "-" if _missing(time) else f"{time:.2f}s",
        "-" if _missing(finished) else finished.strftime("%Y-%m-%d %H:%M:%S"),
        format_size(values["output_size"]),
        values["status"],
    ]
