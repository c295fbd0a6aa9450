"""The task-info model behind ``make_task_info_as_tree_str`` and the table: one TaskInfo per unique task.

Every walk here is iterative and visits a shared upstream once, so a 10,000-deep chain works at
Python's default recursion limit.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import luigi

from kart_core import lineage, target_config
from kart_core.contract import KartTask, LuigiTask, is_kart_task, target_path
from kart_core.damage import size_mismatches
from kart_core.errors import RequiresError
from kart_core.graph import TaskGraph, walk
from kart_core.refusal import output_refusals
from kart_core.runlog import compact_value, read_task_log_safely
from kart_core.utils import flatten
from kart_core.workspace import PROCESSING_TIME, TASK_LOG

__all__ = ["RequiredTask", "TaskInfo", "make_task_info_tree", "make_tree_info", "make_tree_info_table_list"]

_LAST_BRANCH, _LAST_INDENT = "└─-", "   "
_MIDDLE_BRANCH, _MIDDLE_INDENT = "|--", "|  "


class RequiredTask(NamedTuple):
    """A dependency as the table shows it: class name and unique id."""

    name: str
    unique_id: str


@dataclasses.dataclass
class TaskInfo:
    """What the tree and the table show about one task, with its children (upstream tasks)."""

    name: str
    unique_id: str
    output_paths: list[str]
    params: dict[str, Any]
    processing_time: str
    is_complete: str
    task_log: dict[str, Any]
    requires: Any
    children_task_infos: list[TaskInfo]

    def get_task_id(self) -> str:
        """``Name_uniqueid``: the key that abbreviation and the table deduplicate on."""
        return f"{self.name}_{self.unique_id}"

    def get_task_title(self) -> str:
        """``(STATUS) Name[uniqueid]``."""
        return f"({self.is_complete}) {self.name}[{self.unique_id}]"

    def get_task_detail(self) -> str:
        """Parameters, outputs, processing time and task log, in parentheses."""
        return (
            f"(parameter={self.params}, output={self.output_paths}, "
            f"time={self.processing_time}, task_log={self.task_log})"
        )

    def task_info_dict(self) -> dict[str, Any]:
        """One table row: every field but the children."""
        row = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        row.pop("children_task_infos")
        return row


def make_task_info_tree(task: LuigiTask, ignore_task_names: list[str] | None = None) -> TaskInfo:
    """The TaskInfo tree under ``task``, leaving out (with their subtrees) tasks whose class name is ignored.

    requires() may return a task, a list, tuple, set, generator, map or other iterable of tasks, or a
    dict of any of those (as gokart 1.12.2 accepts); plain luigi tasks are described too.

    Raises:
        RequiresError: (a TypeError, as gokart raises) requires() holds something that is not a task.
    """
    ignored = set(ignore_task_names or ())

    def expand(node: LuigiTask) -> bool:
        return node is task or type(node).__name__ not in ignored

    # One lineage for the whole tree: each task's STALE check follows its records up, and without a
    # shared one a chain of 1,000 read its manifests 500,000 times (each manifest once now).
    with lineage.walk_scope():
        graph = walk([task], expand=expand)
        infos: dict[str, TaskInfo] = {}
        for key in graph.order:
            if key == graph.roots[0] or type(graph.nodes[key]).__name__ not in ignored:
                infos[key] = _describe(graph.nodes[key], [infos[dep] for dep in _kept_upstream(graph, key, infos)])
    return infos[graph.roots[0]]


def _kept_upstream(graph: TaskGraph, key: str, infos: dict[str, TaskInfo]) -> Iterable[str]:
    # Ignored tasks have no TaskInfo; everything else upstream was described before (topological order).
    return (dep for dep in graph.upstream[key] if dep in infos)


def _describe(task: LuigiTask, children: list[TaskInfo]) -> TaskInfo:
    """One task's TaskInfo; plain luigi tasks (no run logs) get their luigi parameters and 'unknown' time.

    The status is the task's own ``complete()`` (COMPLETE / PENDING), whatever targets it has, except
    DAMAGED for a complete kart task whose output's size differs from its integrity record,
    STALE for a kart task built on content replaced since (``kart_core.lineage``), and, with signing
    on, REFUSED for a complete one whose manifest or output a load refuses.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Task .* without outputs has no custom complete")
        complete = task.complete()
    # Other runs' logs are read without raising: a damaged or foreign file must not stop the tree.
    processing_time: Any = "unknown"
    task_log: dict[str, Any] = {}
    if is_kart_task(task):
        processing_time = read_task_log_safely(task, PROCESSING_TIME, None, (int, float))
        task_log = _task_log(task)
        if processing_time is None:  # a kart_compact_run_logs class keeps it in the task log
            processing_time = compact_value(task_log, PROCESSING_TIME, (int, float), "unknown")
    if isinstance(processing_time, float):
        processing_time = f"{processing_time}s"
    return TaskInfo(
        name=type(task).__name__,
        unique_id=_unique_id(task),
        output_paths=[target_path(target) for target in flatten(task.output())],
        params=_params(task),
        processing_time=processing_time,
        is_complete=_status(task, complete),
        task_log=task_log,
        requires=_requires_info(task, task.requires()),
        children_task_infos=children,
    )


def _status(task: LuigiTask, complete: bool) -> str:
    """COMPLETE / PENDING as ``complete()`` says, or DAMAGED: complete, but an output's size differs
    from its integrity record (``kart_core.damage``), so a build keeps it and loading it fails; or
    STALE: built on content replaced since (``kart_core.lineage``; incomplete when its own input was
    replaced, so a build reruns it; complete when an upstream is stale itself, and a build reruns that
    upstream first, then this task if what it loaded or requires changed); or REFUSED: complete,
    but signing is on and a load refuses its manifest or an output (``kart_core.refusal``), so a build
    keeps it and loading it fails (checked first: a refused record cannot vouch for sizes or inputs)."""
    if not is_kart_task(task):
        return "COMPLETE" if complete else "PENDING"
    if not complete:
        return "STALE" if task.kart_stale else "PENDING"
    targets = flatten(task.output())
    settings = target_config.current()
    if settings.signer is not None and output_refusals(targets, settings.signer, settings.record):
        return "REFUSED"
    if size_mismatches(targets):
        return "DAMAGED"
    return "STALE" if lineage.stale_verdict(targets, None, task.kart_requires) is not None else "COMPLETE"


def _task_log(task: KartTask) -> dict[str, Any]:
    """The task_log of this run, else the stored one (gokart's get_task_log), never raising."""
    if task.task_log:
        return dict(task.task_log)
    return dict(read_task_log_safely(task, TASK_LOG, {}, dict))


def _params(task: LuigiTask) -> dict[str, Any]:
    if is_kart_task(task):
        return task.get_info(only_significant=True)
    return task.to_str_params(only_significant=True)


def _unique_id(task: LuigiTask) -> str:
    # A plain luigi task has no kart id: use the hash at the end of its luigi task_id.
    return task.make_unique_id() if is_kart_task(task) else str(task.task_id).rsplit("_", 1)[-1]


def _requires_info(owner: LuigiTask, requires: Any) -> Any:
    """The table's ``requires`` cell: RequiredTask per task, dicts kept, every other iterable a list
    (gokart 1.12.2's shape; a generator, set, map or itertools.chain becomes a list)."""
    if isinstance(requires, luigi.Task):
        return RequiredTask(name=type(requires).__name__, unique_id=_unique_id(requires))
    if isinstance(requires, dict):
        return {key: _requires_info(owner, value) for key, value in requires.items()}
    if isinstance(requires, Iterable) and not isinstance(requires, str | bytes):
        return [_requires_info(owner, value) for value in requires]
    raise RequiresError(
        f"{type(owner).__name__}.requires() holds {type(requires).__name__} {requires!r}; "
        "return tasks, iterables of tasks or a dict of them."
    )


def make_tree_info(
    task_info: TaskInfo, indent: str, last: bool, details: bool, abbr: bool, visited_tasks: set[str]
) -> str:
    """The tree text: one line per task, ``└─-`` / ``|--`` branches; with ``abbr`` a repeated subtree is ``...``."""
    lines: list[str] = []
    stack: list[tuple[TaskInfo, str, bool]] = [(task_info, indent, last)]
    while stack:
        info, prefix, is_last = stack.pop()
        branch, child_prefix = (
            (_LAST_BRANCH, prefix + _LAST_INDENT) if is_last else (_MIDDLE_BRANCH, prefix + _MIDDLE_INDENT)
        )
        line = prefix + branch + info.get_task_title()
        if abbr and info.get_task_id() in visited_tasks:
            lines += [line, child_prefix + _LAST_BRANCH + " ..."]
            continue
        if abbr:
            visited_tasks.add(info.get_task_id())
        lines.append(line + info.get_task_detail() if details else line)
        children = info.children_task_infos
        # Pushed in reverse so the first child is printed first; the last child gets the └─- branch.
        stack.extend(
            (child, child_prefix, index == len(children) - 1) for index, child in reversed(list(enumerate(children)))
        )
    return "".join("\n" + line for line in lines)


def make_tree_info_table_list(task_info: TaskInfo, visited_tasks: set[str]) -> list[dict[str, Any]]:
    """Table rows in tree order (depth first, parents before children), one per task id."""
    rows: list[dict[str, Any]] = []
    stack = [task_info]
    while stack:
        info = stack.pop()
        if info.get_task_id() in visited_tasks:
            continue
        visited_tasks.add(info.get_task_id())
        rows.append(info.task_info_dict())
        stack.extend(reversed(info.children_task_infos))
    return rows
