"""``kart report``: one self-contained HTML page of a task graph and its runs (no network, works offline).

Three views, rendered from one JSON block by inline JavaScript (``report_assets``):

- Graph: every task under the roots, drawn left to right, coloured by status (complete, pending,
  failed: started and never finished); a node shows its run time, output size and finish time, or
  why it will run; clicking it shows its parameters, outputs, requirements and ``kart why``'s reason.
- Tasks: the same tasks as one table.
- Runs: per task class, its cached runs side by side, the parameters that differ between them
  highlighted, with each run's output size, run time and finish time.

A Content-Security-Policy in the page forbids every fetch, so nothing leaves the page.
"""

from __future__ import annotations

import html
import json
import os
import re
import stat
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kart_core.contract import LuigiTask
from kart_core.graph import TaskGraph
from kart_core.hashing import short_id
from kart_core.inspect.layout import NODE_HEIGHT, NODE_WIDTH, Layout, layered_layout
from kart_core.inspect.report_assets import CSS, JS
from kart_core.inspect.report_data import ReportData, TaskSummary, collect
from kart_core.inspect.runs import format_size
from kart_core.storage.local import LocalStorage

__all__ = ["render_report", "write_report"]

_STATUS_ORDER = ("complete", "damaged", "pending", "failed")
_NAME_CHARS = 30  # characters of a class name on a node before it is cut
_NOTE_CHARS = 36
_PARAMETER_LINE = re.compile(
    r"\s*parameter '([^']+)'"
)  # characters of the third line of a node (times, or why it will run)
# Inline styles and scripts only; no fetch of any kind (images only as data: URLs).
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def render_report(roots: Sequence[LuigiTask], title: str | None = None) -> str:
    """The HTML page (a str) for the graph under ``roots`` (one or several tasks) and the runs of its classes.

    Raises whatever a task's own ``requires()``, ``complete()`` or ``output()`` raises while the graph is walked.
    """
    graph, data = collect(roots)
    layout = layered_layout(graph.order, graph.upstream)
    title = title or "kart report: " + ", ".join(t.label for t in data.tasks if t.root)
    return _PAGE.format(
        policy=_POLICY,
        title=html.escape(title),
        css=CSS,
        summary=_summary_html(data),
        svg=_svg(graph, data.tasks, layout),
        data=_script_json(data.as_json()),
        js=JS,
        generated=f"{datetime.now():%Y-%m-%d %H:%M:%S}",
    )


def write_report(roots: Sequence[LuigiTask], path: str, title: str | None = None) -> str:
    """Write the report page to the local file ``path`` (UTF-8); return the path.

    A regular file (or a new one) is replaced only once the page is written whole: the page goes
    to a temporary file beside it, so a failed report leaves the previous one (a published page) as
    it was. A symlink is followed (its target gets the page; the link stays), and a path that is not
    a regular file (``/dev/stdout``, a named pipe) is written straight through. Text that is not
    valid Unicode (a parameter from a non-UTF-8 command line, held as lone surrogates such as
    ``'caf\\udce9'``) is written as its backslash escape, as ``kart runs --format csv`` shows it.

    Raises:
        FileNotFoundError: the folder to write into does not exist (it is not created).
        OSError: the file cannot be written.
    """
    page = render_report(roots, title).encode("utf-8", errors="backslashreplace")
    try:
        is_regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        is_regular = True  # a new file (or a dangling link's target)
    if not is_regular:
        with open(path, "wb") as stream:
            stream.write(page)
        return path
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"no folder {folder!r} to write the report {path!r} into: create it or pass another path"
        )
    with LocalStorage().atomic_write(target) as file:
        file.write(page)
    return path


def _summary_html(data: ReportData) -> str:
    counts = {status: sum(t.status == status for t in data.tasks) for status in _STATUS_ORDER}
    run_time = sum(t.processing_time or 0.0 for t in data.tasks if t.status == "complete")
    size = sum(t.output_size or 0 for t in data.tasks)
    parts = [f"<span><b>{len(data.tasks)}</b> tasks</span>"]
    parts += [
        f'<span class="legend"><i style="background:var(--{s})"></i>{counts[s]} {s}</span>' for s in _STATUS_ORDER
    ]
    parts.append(f"<span>run time {run_time:.2f}s</span><span>outputs {format_size(size)}</span>")
    return "".join(parts)


def _svg(graph: TaskGraph, tasks: list[TaskSummary], layout: Layout) -> str:
    edges = [_edge(layout.positions[dep], layout.positions[key]) for key in graph.order for dep in graph.upstream[key]]
    nodes = [_node(t, layout.positions[t.key]) for t in tasks]
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


def _node(task: TaskSummary, position: tuple[int, int]) -> str:
    x, y = position
    note = node_note(task)
    root = " root" if task.root else ""
    return (
        f'<g class="node {task.status}{root}" data-key="{html.escape(task.key)}" tabindex="0">'
        f"<title>{html.escape(task.label)} ({task.status}){html.escape(_tooltip(task))}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}"/>'
        f'<text x="{x + 10}" y="{y + 18}">{html.escape(_cut(task.name, _NAME_CHARS))}</text>'
        f'<text class="uid" x="{x + 10}" y="{y + 35}">{short_id(task.unique_id)} · {task.status}</text>'
        f'<text class="note" x="{x + 10}" y="{y + 52}">{html.escape(_cut(note, _NOTE_CHARS))}</text></g>'
    )


def node_note(task: TaskSummary) -> str:
    """The third line of a node: run time, output size and finish time when complete, else why it will run."""
    if task.status == "complete":
        time = f"{task.processing_time:.2f}s" if task.processing_time is not None else "time ?"
        when = task.finished_at[5:16] if task.finished_at else "not run by kart"
        return f"{time} · {format_size(task.output_size)} · {when}"
    if task.status == "damaged":
        return "damaged: kart verify --delete"
    if not task.reason:
        return "will run"
    changed = [found.group(1) for line in task.reason[1:] if (found := _PARAMETER_LINE.match(line))]
    if changed:  # why's lines under "it differs from the nearest cached run ... in:"
        return f"will run: {', '.join(changed)} changed"
    first = task.reason[0]
    return first[len(task.label) :].strip() if first.startswith(task.label) else first


def _tooltip(task: TaskSummary) -> str:
    return "".join("\n" + line.strip() for line in task.reason)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _script_json(data: Any) -> str:
    # Inside <script>, "</" could close the element early: escape it (JSON allows "<\/").
    return json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<header><h1>{title}</h1><div class="summary">{summary}<span class="hint">generated {generated}</span></div>
<nav class="tabs"><button type="button" data-view="graph" class="active">Graph</button><button type="button"
 data-view="tasks">Tasks</button><button type="button" data-view="runs">Runs by class</button></nav></header>
<main>
<section id="view-graph" class="view active"><div id="canvas">{svg}</div>
<aside id="details"><p class="hint">Click a task to see its parameters, status, run time, outputs and why it will run.</p></aside></section>
<section id="view-tasks" class="view"><table id="tasks-table" class="grid"></table></section>
<section id="view-runs" class="view"><div id="runs"></div></section>
</main>
<script type="application/json" id="kart-data">{data}</script>
<script>{js}</script>
</body></html>
"""
