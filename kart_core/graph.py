"""The task graph: walk ``requires()`` without recursion, give nodes stable keys, order them.

Pure graph logic shared by build() and every scheduler adapter; it knows tasks only through
``requires()`` / ``kart_requires()`` and ``make_unique_id()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from luigi.task import flatten

from kart_core.contract import LuigiTask, is_kart_task

__all__ = ["TaskGraph", "node_key", "requirements_of", "requires_structure", "walk"]


def node_key(task: LuigiTask) -> str:
    """A key unique per task: module, class and unique id (luigi's task_id for plain luigi tasks)."""
    if is_kart_task(task):
        return f"{type(task).__module__}.{type(task).__qualname__}_{task.make_unique_id()}"
    return str(task.task_id)


def requires_structure(task: LuigiTask) -> Any:
    """What ``requires()`` returned, unflattened; a kart task calls its ``requires()`` once (its memo)."""
    if is_kart_task(task):
        return task.kart_requires_structure()
    return task.requires()


def requirements_of(task: LuigiTask) -> list[LuigiTask]:
    """The task's dependencies as a flat list."""
    if is_kart_task(task):
        return list(task.kart_requires())
    return list(flatten(task.requires()))


@dataclasses.dataclass
class TaskGraph:
    """Nodes by key, each node's upstream keys, and a topological order (upstreams first)."""

    nodes: dict[str, LuigiTask]
    upstream: dict[str, list[str]]
    order: list[str]
    roots: list[str]
    expanded: set[str]

    def downstream(self) -> dict[str, list[str]]:
        """Each node's dependants."""
        result: dict[str, list[str]] = {key: [] for key in self.nodes}
        for key, deps in self.upstream.items():
            for dep in deps:
                result[dep].append(key)
        return result

    def __len__(self) -> int:
        return len(self.nodes)


def walk(roots: Iterable[LuigiTask], expand: Callable[[LuigiTask], bool] | None = None) -> TaskGraph:
    """Collect the graph under ``roots``; a node for which ``expand`` is False is a leaf (e.g. complete).

    Each node's key is computed once per edge that reaches it and the node keeps the first of those
    strings (for its ``nodes`` entry, its place in ``order`` and its dependants' ``upstream`` lists
    where they reach it first): in a 100,000-task graph, one key string per task instead of three.
    """
    nodes: dict[str, LuigiTask] = {}
    upstream: dict[str, list[str]] = {}
    expanded: set[str] = set()
    order: list[str] = []
    roots = list(roots)
    root_keys = [node_key(root) for root in roots]
    stack: list[tuple[LuigiTask, str, bool]] = [
        (root, key, False) for root, key in zip(reversed(roots), reversed(root_keys), strict=True)
    ]
    while stack:
        task, key, children_done = stack.pop()
        if children_done:
            order.append(key)
            continue
        if key in nodes:
            continue
        nodes[key] = task
        deps: list[LuigiTask] = []
        if expand is None or expand(task):
            deps = requirements_of(task)
            expanded.add(key)
        dep_keys = [node_key(dep) for dep in deps]
        upstream[key] = dep_keys
        stack.append((task, key, True))
        # Reversed, so upstreams are visited in requires() order.
        stack.extend(
            (dep, dep_key, False)
            for dep, dep_key in zip(reversed(deps), reversed(dep_keys), strict=True)
            if dep_key not in nodes
        )
    return TaskGraph(nodes=nodes, upstream=upstream, order=order, roots=root_keys, expanded=expanded)
