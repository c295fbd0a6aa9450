"""What ``kart report`` shows, gathered once: each task of the graph and the runs of each class.

Each task of the graph under the roots gets its parameters (readable), status, run time, output
size and finish time (from its run logs), and, when it is not complete or its output is damaged
(a size other than its integrity record's: status "damaged"), the reason ``kart why``
gives (``kart_core.inspect.why.explain_each``). Each task class of the graph gets its cached runs
side by side, with the names of the parameters whose values differ between them (the experiment
view thunderbolt gives gokart users). Plain data (dicts of strings and numbers): the page renders
it with JavaScript from one JSON block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kart_core import target_config
from kart_core.contract import LuigiTask, is_kart_task, target_path
from kart_core.damage import describe_damage, size_mismatches
from kart_core.display import readable_params, task_params_text
from kart_core.graph import TaskGraph, walk
from kart_core.hashing import short_id
from kart_core.inspect.runlogs import RunRecord, id_lookup, locate_size, read_runs
from kart_core.inspect.runs import format_size
from kart_core.inspect.why import explain_each
from kart_core.refusal import describe_refusal, output_refusals
from kart_core.utils import flatten
from kart_core.workspace import FileEntry, list_files

__all__ = ["MAX_RUNS_PER_CLASS", "ClassRuns", "ReportData", "RunSummary", "TaskSummary", "collect", "differing"]

MAX_RUNS_PER_CLASS = 12  # the newest runs of a class shown side by side; older ones are counted only


@dataclasses.dataclass
class TaskSummary:
    """One task of the graph as the page shows it.

    ``processing_time`` is seconds, ``output_size`` bytes (None: unknown or missing),
    ``finished_at`` ``YYYY-MM-DD HH:MM:SS`` local time of its last successful run (None: never).
    ``reason`` holds ``kart why``'s lines for a task that is not complete or is damaged (empty otherwise).
    """

    key: str
    name: str
    module: str
    unique_id: str
    label: str
    status: str  # "complete", "damaged" (complete, an output differs from its record), "pending" or "failed"
    root: bool
    params: dict[str, str]
    processing_time: float | None
    output_size: int | None
    finished_at: str | None
    outputs: list[dict[str, str]]
    requires: list[str]
    reason: list[str]


@dataclasses.dataclass
class RunSummary:
    """One cached run of a class: what its run logs say (units as ``TaskSummary``)."""

    unique_id: str
    status: str  # runlogs' "complete", "outputs missing", "unfinished" or "damaged log"
    params: dict[str, str]
    processing_time: float | None
    output_size: int | None
    finished_at: str | None
    in_graph: bool  # this run is a task of the drawn graph


@dataclasses.dataclass
class ClassRuns:
    """The runs of one class in one workspace, oldest first, and the parameters that differ between them."""

    name: str
    workspace: str
    runs: list[RunSummary]
    differs: list[str]
    hidden: int  # older runs left out (more than MAX_RUNS_PER_CLASS)


@dataclasses.dataclass
class ReportData:
    """Everything on the page: tasks in topological order (upstreams first) and runs per class."""

    tasks: list[TaskSummary]
    classes: list[ClassRuns]
    roots: list[str]

    def as_json(self) -> dict[str, Any]:
        """The data as JSON-ready dicts."""
        return dataclasses.asdict(self)


def collect(roots: Sequence[LuigiTask]) -> tuple[TaskGraph, ReportData]:
    """Walk the whole graph under ``roots`` and gather what the page shows.

    Reads each workspace's listing and run logs once. Raises whatever a task's own
    ``requires()``, ``complete()`` or ``output()`` raises (the CLI reports it with exit 50).
    """
    graph = walk(list(roots))
    workspaces = _Workspaces()
    complete = {key: bool(graph.nodes[key].complete()) for key in graph.order}
    not_complete = [key for key in graph.order if not complete[key]]
    reasons = dict(zip(not_complete, explain_each([graph.nodes[key] for key in not_complete]), strict=True))
    damaged = _damaged([key for key in graph.order if complete[key]], graph)
    reasons.update(damaged)
    tasks = [_task(key, graph, complete[key], key in damaged, reasons.get(key, []), workspaces) for key in graph.order]
    in_graph = {task.unique_id for task in tasks}
    readers = {ws: _stored_params(workspaces.runs(ws)) for _, ws in _classes(graph)}  # one id lookup per workspace
    classes = [_class_runs(name, ws, workspaces, in_graph, readers[ws]) for name, ws in _classes(graph)]
    return graph, ReportData(tasks=tasks, classes=[c for c in classes if c.runs], roots=list(graph.roots))


class _Workspaces:
    """Listings and run records, read once per workspace."""

    def __init__(self) -> None:
        self.files: dict[str, list[FileEntry]] = {}
        self.by_relative: dict[str, dict[str, FileEntry]] = {}
        self.records: dict[str, list[RunRecord]] = {}
        self.by_run: dict[str, dict[tuple[str, str], RunRecord]] = {}

    def listing(self, workspace: str) -> dict[str, FileEntry]:
        if workspace not in self.files:
            self.files[workspace] = list_files(workspace)
            self.by_relative[workspace] = {f.relative: f for f in self.files[workspace]}
        return self.by_relative[workspace]

    def runs(self, workspace: str) -> list[RunRecord]:
        if workspace not in self.records:
            self.listing(workspace)
            self.records[workspace] = read_runs(workspace, self.files[workspace])
            self.by_run[workspace] = {(r.class_name, r.unique_id): r for r in self.records[workspace]}
        return self.records[workspace]

    def record(self, workspace: str, class_name: str, unique_id: str) -> RunRecord | None:
        self.runs(workspace)
        return self.by_run[workspace].get((class_name, unique_id))


def _damaged(keys: list[str], graph: TaskGraph) -> dict[str, list[str]]:
    """The complete kart tasks among ``keys`` whose outputs differ in size from their integrity record,
    or, with signing on, whose manifest or output a load refuses (``kart_core.refusal``; drawn as damaged,
    its line says signing refuses it), each with the line ``kart why`` says about it (one manifest read
    and one stat per output)."""
    found = {}
    settings = target_config.current()
    for key in keys:
        task = graph.nodes[key]
        if is_kart_task(task):
            targets = flatten(task.output())
            refused = output_refusals(targets, settings.signer, settings.record) if settings.signer else []
            if refused:
                found[key] = [describe_refusal(task.kart_label(), refused)]
                continue
            mismatches = size_mismatches(targets)
            if mismatches:
                found[key] = [describe_damage(task.kart_label(), mismatches)]
    return found


def _task(
    key: str, graph: TaskGraph, complete: bool, damaged: bool, reason: list[str], workspaces: _Workspaces
) -> TaskSummary:
    task = graph.nodes[key]
    name = type(task).__name__
    workspace = str(getattr(task, "workspace_directory", "")) if is_kart_task(task) else ""
    unique_id = task.make_unique_id() if is_kart_task(task) else str(task.task_id).rsplit("_", 1)[-1]
    record = workspaces.record(workspace, name, unique_id) if workspace else None
    outputs = [_output(target_path(target), workspace, workspaces) for target in flatten(task.output())]
    status = (
        ("damaged" if damaged else "complete")
        if complete
        else "failed"
        if record is not None and record.status == "unfinished"
        else "pending"
    )
    return TaskSummary(
        key=key,
        name=name,
        module=type(task).__module__,
        unique_id=unique_id,
        label=f"{name}[{short_id(unique_id)}]",
        status=status,
        root=key in graph.roots,
        params=_task_params(task),
        processing_time=record.processing_time if record is not None else None,
        output_size=_total(outputs) if complete else None,
        finished_at=_when(record.finished_at) if record is not None else None,
        outputs=[
            {"path": o["path"], "size": format_size(o["bytes"]) if o["bytes"] is not None else "missing"}
            for o in outputs
        ],
        requires=list(graph.upstream[key]),
        reason=reason,
    )


def _output(path: str, workspace: str, workspaces: _Workspaces) -> dict[str, Any]:
    size = locate_size(workspace, path, workspaces.listing(workspace)) if workspace else None
    return {"path": path, "bytes": size}


def _total(outputs: list[dict[str, Any]]) -> int | None:
    sizes = [o["bytes"] for o in outputs]
    return sum(sizes) if sizes and all(size is not None for size in sizes) else None


def _when(moment: datetime | None) -> str | None:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else None


def _classes(graph: TaskGraph) -> list[tuple[str, str]]:
    """(class name, workspace) of the graph's kart tasks, in graph order, each once."""
    seen: dict[tuple[str, str], None] = {}
    for key in graph.order:
        task = graph.nodes[key]
        if is_kart_task(task):
            seen.setdefault((type(task).__name__, str(task.workspace_directory)), None)
    return list(seen)


def _class_runs(
    name: str,
    workspace: str,
    workspaces: _Workspaces,
    in_graph: set[str],
    readable: Callable[[Mapping[str, str]], dict[str, str]],
) -> ClassRuns:
    records = [r for r in workspaces.runs(workspace) if r.class_name == name]
    shown = records[-MAX_RUNS_PER_CLASS:]
    runs = [
        RunSummary(
            unique_id=r.unique_id,
            status=r.status,
            params=readable(r.params),
            processing_time=r.processing_time,
            output_size=r.output_size,
            finished_at=_when(r.finished_at),
            in_graph=r.unique_id in in_graph,
        )
        for r in shown
    ]
    return ClassRuns(
        name=name,
        workspace=workspace,
        runs=runs,
        differs=differing(r.params for r in runs),
        hidden=len(records) - len(shown),
    )


def differing(params: Any) -> list[str]:
    """The parameter names whose value is not the same in every one of ``params`` (dicts; a missing name differs)."""
    dicts: list[Mapping[str, str]] = list(params)
    names = list(dict.fromkeys(name for p in dicts for name in p))
    return [name for name in names if len({p.get(name) for p in dicts}) > 1]


# --- parameter text: kart_core.display, the one formatter of every place a person reads parameters ----


def _task_params(task: LuigiTask) -> dict[str, str]:
    """A live task's significant parameters as people read them: ``data=LoadData[4f26c715](n_rows=400, ...)``.

    Values are whole (the page wraps them); a plain luigi task shows luigi's strings.
    """
    if is_kart_task(task):
        return task_params_text(task, max_value=None)
    return dict(task.to_str_params(only_significant=True))  # type: ignore[attr-defined]


def _stored_params(records: list[RunRecord]) -> Callable[[Mapping[str, str]], dict[str, str]]:
    """Stored (gokart-serialized) parameters made readable; a nested task's id is found among ``records``."""
    lookup = id_lookup(records)
    return lambda params: readable_params(params, lookup, max_value=None)
