"""``kart report``: one self-contained HTML page of a task graph (inline SVG, CSS and JS; no network).

The graph is drawn with each task's status (complete, pending, failed: started and not
finished); clicking a task shows its parameters, unique id, processing time and outputs.
"""

from __future__ import annotations

import dataclasses
import html
import json
from datetime import datetime
from typing import Any

from kart_core.contract import KartTask, LuigiTask, is_kart_task
from kart_core.display import task_params_text
from kart_core.graph import TaskGraph, walk
from kart_core.hashing import short_id
from kart_core.inspect.layout import NODE_HEIGHT, NODE_WIDTH, Layout, layered_layout
from kart_core.inspect.report_assets import CSS, JS
from kart_core.inspect.runlogs import locate_size
from kart_core.inspect.runs import format_size
from kart_core.runlog import read_task_log_safely
from kart_core.storage import storage_for
from kart_core.utils import flatten
from kart_core.workspace import PROCESSING_TIME, TASK_LOG, TASK_PARAMS, FileEntry, list_files, log_task_path

__all__ = ["TaskSummary", "describe_graph", "render_report", "write_report"]

_STATUS_ORDER = ("complete", "pending", "failed")


@dataclasses.dataclass
class TaskSummary:
    """What the page shows about one task."""

    key: str
    name: str
    module: str
    unique_id: str
    label: str
    status: str
    params: dict[str, str]
    processing_time: str
    outputs: list[dict[str, str]]
    requires: list[str]


def describe_graph(roots: list[LuigiTask]) -> tuple[TaskGraph, list[TaskSummary]]:
    """Walk the whole graph under ``roots`` and summarize each task (upstreams first)."""
    graph = walk(roots)
    listings: dict[str, dict[str, FileEntry]] = {}
    return graph, [_summary(key, graph, listings) for key in graph.order]


def _summary(key: str, graph: TaskGraph, listings: dict[str, dict[str, FileEntry]]) -> TaskSummary:
    task: LuigiTask = graph.nodes[key]
    unique_id = task.make_unique_id() if is_kart_task(task) else str(task.task_id).rsplit("_", 1)[-1]
    return TaskSummary(
        key=key,
        name=type(task).__name__,
        module=type(task).__module__,
        unique_id=unique_id,
        label=f"{type(task).__name__}[{short_id(unique_id)}]",
        status=_status(task),
        params=_params(task),
        processing_time=_processing_time(task) if is_kart_task(task) else "unknown",
        outputs=[_output(task, target.path(), listings) for target in flatten(task.output())],
        requires=list(graph.upstream[key]),
    )


def _params(task: LuigiTask) -> dict[str, str]:
    # kart_core.display: a task parameter as LoadData[4f26c715](n_rows=400, ...); values whole (the page clips).
    if is_kart_task(task):
        return task_params_text(task, max_value=None)
    return dict(task.to_str_params(only_significant=True))


def _status(task: LuigiTask) -> str:
    if task.complete():
        return "complete"
    if is_kart_task(task) and _exists(log_task_path(task, TASK_PARAMS)) and not _exists(log_task_path(task, TASK_LOG)):
        return "failed"  # parameters logged before run(), task log only after success
    return "pending"


def _exists(path: str) -> bool:
    return storage_for(path).exists(path)


def _processing_time(task: KartTask) -> str:
    value = read_task_log_safely(task, PROCESSING_TIME, None, (int, float))
    return f"{value:.3f}s" if value is not None else "unknown"


def _output(task: LuigiTask, path: str, listings: dict[str, dict[str, FileEntry]]) -> dict[str, str]:
    workspace = str(getattr(task, "workspace_directory", ""))
    if workspace and workspace not in listings:
        listings[workspace] = {f.relative: f for f in list_files(workspace)}
    size = locate_size(workspace, path, listings.get(workspace, {})) if workspace else None
    return {"path": path, "size": format_size(size) if size is not None else "missing"}


def render_report(roots: list[LuigiTask], title: str | None = None) -> str:
    """The HTML page for the graph under ``roots``."""
    graph, summaries = describe_graph(roots)
    layout = layered_layout(graph.order, graph.upstream)
    title = title or "kart report: " + ", ".join(s.label for s in summaries if s.key in graph.roots)
    data = {"tasks": [dataclasses.asdict(s) for s in summaries], "roots": graph.roots}
    return _PAGE.format(
        title=html.escape(title),
        css=CSS,
        summary=_summary_html(summaries),
        svg=_svg(graph, summaries, layout),
        data=_script_json(data),
        js=JS,
        generated=f"{datetime.now():%Y-%m-%d %H:%M:%S}",
    )


def write_report(roots: list[LuigiTask], path: str, title: str | None = None) -> str:
    """Write the report page to the local file ``path``; return the path."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(render_report(roots, title))
    return path


def _summary_html(summaries: list[TaskSummary]) -> str:
    counts = {status: sum(s.status == status for s in summaries) for status in _STATUS_ORDER}
    parts = [f"<span><b>{len(summaries)}</b> tasks</span>"]
    parts += [
        f'<span class="legend"><i style="background:var(--{s})"></i>{counts[s]} {s}</span>' for s in _STATUS_ORDER
    ]
    return "".join(parts)


def _svg(graph: TaskGraph, summaries: list[TaskSummary], layout: Layout) -> str:
    edges = [_edge(layout.positions[dep], layout.positions[key]) for key in graph.order for dep in graph.upstream[key]]
    nodes = [_node(s, layout.positions[s.key]) for s in summaries]
    return (
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
        f'viewBox="0 0 {layout.width} {layout.height}" role="img" aria-label="task graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8c959f"/></marker></defs>'
        f'<g class="edges">{"".join(edges)}</g><g class="nodes">{"".join(nodes)}</g></svg>'
    )


def _edge(source: tuple[int, int], target: tuple[int, int]) -> str:
    x1, y1 = source[0] + NODE_WIDTH, source[1] + NODE_HEIGHT // 2
    x2, y2 = target[0], target[1] + NODE_HEIGHT // 2
    bend = (x2 - x1) / 2
    return f'<path class="edge" d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" marker-end="url(#arrow)"/>'


def _node(summary: TaskSummary, position: tuple[int, int]) -> str:
    x, y = position
    name = summary.name if len(summary.name) <= 26 else summary.name[:25] + "…"
    return (
        f'<g class="node {summary.status}" data-key="{html.escape(summary.key)}" tabindex="0">'
        f"<title>{html.escape(summary.label)} ({summary.status})</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}"/>'
        f'<text x="{x + 10}" y="{y + 18}">{html.escape(name)}</text>'
        f'<text class="uid" x="{x + 10}" y="{y + 35}">{short_id(summary.unique_id)} · {summary.status}</text></g>'
    )


def _script_json(data: Any) -> str:
    # Inside <script>, "</" could close the element early: escape it (JSON allows "<\/").
    return json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<header><h1>{title}</h1><div class="summary">{summary}<span class="hint">generated {generated}</span></div></header>
<main><div id="canvas">{svg}</div>
<aside id="details"><p class="hint">Click a task to see its parameters, unique id, time and outputs.</p></aside></main>
<script type="application/json" id="kart-data">{data}</script>
<script>{js}</script>
</body></html>
"""
