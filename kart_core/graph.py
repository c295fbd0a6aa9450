"""The task graph: walk ``requires()`` without recursion, give nodes stable keys, order them.

Pure graph logic shared by build() and every scheduler adapter; it knows tasks only through
``requires()`` / ``kart_requires()`` and ``make_unique_id()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from kart_core.contract import LuigiTask, is_kart_task
from kart_core.dotted import module_name
from kart_core.structure import flatten

__all__ = ["TaskGraph", "node_key", "requirements_of", "requires_structure", "rerun_copy", "walk"]


def node_key(task: LuigiTask) -> str:
    """A key unique per task: module, class and unique id (luigi's task_id for plain luigi tasks).

    The module is named as the parent process names it (``kart_core.dotted.module_name``): a script's class
    has one key in the script and in a child that multiprocessing's "spawn" started (``__mp_main__`` there).
    """
    if is_kart_task(task):
        return f"{module_name(type(task))}.{type(task).__qualname__}_{task.make_unique_id()}"
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


def walk(
    roots: Iterable[LuigiTask],
    expand: Callable[[LuigiTask], bool] | None = None,
    discovered: Callable[[LuigiTask, list[LuigiTask]], None] | None = None,
) -> TaskGraph:
    """Collect the graph under ``roots``; a node for which ``expand`` is False is a leaf (e.g. complete).

    ``discovered(task, upstreams)`` is called for each expanded node once its ``requires()`` was asked,
    before the upstreams are visited (luigi's ``DEPENDENCY_DISCOVERED``, ``kart_core.luigi_events``).

    Each node's key is computed once per edge that reaches it and the node keeps the first of those
    strings (for its ``nodes`` entry, its place in ``order`` and its dependants' ``upstream`` lists
    where they reach it first): in a 100,000-task graph, one key string per task instead of three.

    A task reached twice (two paths, two objects with one unique id: they differ in insignificant
    parameters only) is one node, the first object met, unless a later copy has ``rerun=True`` and the
    first has not (``rerun_copy``): that copy takes the node's place and is judged (``expand``) again, so a
    ``rerun=True`` given on one path is never dropped for a copy met earlier (luigi keeps the first).
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
    replaced = False  # a node's object was replaced by a rerun copy: the order is made again at the end
    while stack:
        task, key, children_done = stack.pop()
        if children_done:
            order.append(key)
            continue
        if key in nodes:
            if not rerun_copy(task, nodes[key]):
                continue
            nodes[key], replaced = task, True
            if not (expand is None or expand(task)) or key in expanded:
                continue  # complete anyway, or already expanded (the same upstreams: one unique id)
        else:
            nodes[key] = task
            stack.append((task, key, True))
            if expand is not None and not expand(task):
                upstream[key] = []
                continue
        deps = requirements_of(task)
        if discovered is not None:
            discovered(task, deps)
        expanded.add(key)
        dep_keys = [node_key(dep) for dep in deps]
        upstream[key] = dep_keys
        # Reversed, so upstreams are visited in requires() order.
        stack.extend(
            (dep, dep_key, False)
            for dep, dep_key in zip(reversed(deps), reversed(dep_keys), strict=True)
            if dep_key not in nodes or rerun_copy(dep, nodes[dep_key])
        )
    if replaced:
        order = _post_order(root_keys, upstream)
    return TaskGraph(nodes=nodes, upstream=upstream, order=order, roots=root_keys, expanded=expanded)


def rerun_copy(task: LuigiTask, kept: LuigiTask) -> bool:
    """Whether ``task``, another object with ``kept``'s key, replaces it in a graph: it has ``rerun=True``
    and ``kept`` has not (shared by ``walk`` and ``kart_core.places.place_graph``)."""
    return task is not kept and bool(getattr(task, "rerun", False)) and not bool(getattr(kept, "rerun", False))


def _post_order(root_keys: list[str], upstream: dict[str, list[str]]) -> list[str]:
    """Upstreams first, in ``requires()`` order from the roots, as ``walk`` orders (without recursion)."""
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, bool]] = [(key, False) for key in reversed(root_keys)]
    while stack:
        key, children_done = stack.pop()
        if children_done:
            order.append(key)
            continue
        if key in seen:
            continue
        seen.add(key)
        stack.append((key, True))
        stack.extend((dep, False) for dep in reversed(upstream.get(key, ())) if dep not in seen)
    return order
