"""Where each task sits in a graph: a name built from the roots and the ``requires()`` keys, not from values.

A *place* is ``Class`` for a root and ``Class__Root.key.key`` for a task reached from a root through
``requires()``: each step is the dict key (a TaskInstanceParameter's name under the default
``requires()``) or the list position under which the parent requires the task. A task reachable
by several paths takes the shortest (breadth first; ties go to the earlier root and ``requires()``
order). Changing a parameter *value* keeps every place, so a scheduler that names its tasks by
place (kart_airflow) keeps its task history when a value changes, while the unique id changes.

A place longer than ``MAX_PLACE_LENGTH`` (40) characters is *compacted*: ``Class__Root.last--hash``,
the class, the root's label and the last step of the path (with the key before it when the last
is a list position under a named key), then ``--`` and 8 base32 characters of a BLAKE2b hash of the full place (cut from the
right when the class and root names are long). It stays the same while the path does, and is
short: Airflow writes each task id about five times in a serialized DAG. Places are unique in a
graph: on the rare clash of two compacted places (or of two root labels) the later one in
breadth-first order gets ``-2``, ``-3``, ...

Pure graph logic: it knows tasks only through ``requires()`` and ``make_unique_id()``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import luigi

from kart_core.errors import RequiresError
from kart_core.graph import node_key, requires_structure

__all__ = [
    "PlacedGraph",
    "MAX_PLACE_LENGTH",
    "labelled_requirements",
    "place_graph",
    "find_place",
    "find_path",
    "place_name",
    "requirement_places",
]

MAX_PLACE_LENGTH = 40  # longer places are compacted to this length, ending in a hash of the full place
_INVALID = re.compile(r"[^\w-]", re.ASCII)
_HASHED_MARK = "--"
_CLASH_SUFFIX = re.compile(r"--[a-z2-7]{8}-\d+$")  # a compacted place renamed on a clash (_unique)
_HASH_CHARS = 8  # base32 characters of the full place's hash: 40 bits, a clash among 2,000 tasks ~2e-6


@dataclasses.dataclass
class PlacedGraph:
    """Nodes by key (``graph.node_key``), each node's upstream keys, its place, in breadth-first order.

    ``paths`` holds each node's full path (``Root.key.key``), of which its place may be a compaction.
    """

    nodes: dict[str, Any]
    upstream: dict[str, list[str]]
    places: dict[str, str]
    order: list[str]
    paths: dict[str, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.nodes)


def labelled_requirements(task: Any) -> list[tuple[str, Any]]:
    """``requires()`` flattened to ``(label, task)`` pairs in luigi's ``flatten`` order.

    A dict contributes its keys, a list or tuple the positions, a bare task ``0``; nesting joins
    them with dots (``{"models": [a, b]}`` gives ``models.0`` and ``models.1``).

    Raises:
        RequiresError: (a TaskDefinitionError and ValueError) ``requires()`` returned something that is not a task.
    """
    pairs: list[tuple[str, Any]] = []
    _flatten(requires_structure(task), "", pairs, task)
    return pairs


def place_graph(roots: Sequence[Any]) -> PlacedGraph:
    """Walk the graph under ``roots`` breadth first and give every node its place.

    Roots are named by class; later roots of an already used class name get ``_2``, ``_3``, ...
    (so adding a root keeps the places of the earlier ones).
    """
    nodes: dict[str, Any] = {}
    upstream: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    order: list[str] = []
    queue: deque[str] = deque()
    for label, root in zip(root_labels(roots), roots, strict=True):
        key = node_key(root)
        if key not in nodes:
            nodes[key], paths[key] = root, label
            queue.append(key)
    while queue:
        key = queue.popleft()
        order.append(key)
        deps = []
        for label, dep in labelled_requirements(nodes[key]):
            dep_key = node_key(dep)
            deps.append(dep_key)
            if dep_key not in nodes:
                nodes[dep_key], paths[dep_key] = dep, f"{paths[key]}.{label}"
                queue.append(dep_key)
        upstream[key] = list(dict.fromkeys(deps))
    places = _unique({key: place_name(type(nodes[key]).__name__, paths[key]) for key in order})
    return PlacedGraph(nodes=nodes, upstream=upstream, places=places, order=order, paths=paths)


def _unique(places: dict[str, str]) -> dict[str, str]:
    """``places`` with a clash (two compacted places with the same text) resolved: ``-2``, ``-3`` on the later ones."""
    seen: set[str] = set()
    if len(set(places.values())) == len(places):
        return places
    unique = {}
    for key, place in places.items():
        candidate, n = place, 1
        while candidate in seen:
            n += 1
            candidate = f"{place}-{n}"
        seen.add(candidate)
        unique[key] = candidate
    return unique


def root_labels(roots: Sequence[Any]) -> list[str]:
    """``Class``, then ``Class_2``, ``Class_3`` for further roots whose class has the same name.

    A label already taken (a class named ``Class_2`` among them) moves on to the next number.
    """
    seen: dict[str, int] = {}
    taken: set[str] = set()
    labels = []
    for root in roots:
        name = _INVALID.sub("_", type(root).__name__)
        label = name
        while label in taken:
            seen[name] = seen.get(name, 1) + 1
            label = f"{name}_{seen[name]}"
        taken.add(label)
        labels.append(label)
    return labels


def place_name(class_name: str, path: str) -> str:
    """``Class`` for a root (path = its root label), ``Class__path`` below; at most MAX_PLACE_LENGTH.

    A longer place is compacted to ``Class__Root.last--hash`` (module docstring), e.g.
    ``Clean__Report.raw--k3v9q0ab`` for ``Clean__Report.models.0.data.features.raw``.
    """
    name = _INVALID.sub("_", class_name)
    place = path if "." not in path else f"{name}__{path}"
    if len(place) <= MAX_PLACE_LENGTH:
        return place
    digest = hashlib.blake2b(place.encode(), digest_size=5).digest()
    tail = _HASHED_MARK + base64.b32encode(digest).decode().lower()[:_HASH_CHARS]
    steps = path.split(".")
    # A list position alone says little: keep the key before it too (``models.0``), if it is a name.
    last = steps[-2:] if steps[-1].isdigit() and len(steps) > 2 and not steps[-2].isdigit() else steps[-1:]
    head = f"{name}__{steps[0]}.{'.'.join(last)}" if len(steps) > 1 else path
    return head[: MAX_PLACE_LENGTH - len(tail)] + tail


def find_place(roots: Sequence[Any], place: str) -> tuple[Any, list[Any]] | None:
    """The task at ``place`` and its direct requirements, without computing the graph's unique ids.

    Cost: one ``requires()`` call per step of the path, so a worker that runs one task of a large
    graph finds it in milliseconds; a compacted place (``find_path``) costs a walk by task objects
    as far as the place's depth. Returns None when the path leads nowhere, or for a place renamed
    on a clash (``-2``); the caller then walks the graph (``place_graph``), which decides.
    """
    found = find_path(roots, place)
    if found is None:
        return None
    return found[0], [dep for _, dep in labelled_requirements(found[0])]


def find_path(roots: Sequence[Any], place: str) -> tuple[Any, str] | None:
    """The task at ``place`` and its full path (``Root.key.key``; ``place_graph``'s ``paths``), or None.

    A place that is its path is followed, one ``requires()`` call per step. A compacted place
    (``--`` and a hash) names no path to follow: the graph is walked breadth first as
    ``place_graph`` walks it, by task *object* (luigi hands back one object per class and
    parameters) instead of by unique id, and stops at the first task with that place, so it
    creates the tasks down to the place's depth but computes no unique id. Where two task objects
    share a unique id (they differ in insignificant parameters only) the two walks can name the
    later one differently; the worker's check against the DAG's record catches a task found wrong.
    """
    by_label = dict(zip(root_labels(roots), roots, strict=True))
    if place in by_label:
        return by_label[place], place
    if _HASHED_MARK in place:
        return None if _CLASH_SUFFIX.search(place) else _search(roots, place)
    class_name, _, path = place.partition("__")
    steps = path.split(".")
    task = by_label.get(steps[0])
    if task is None or len(steps) < 2:
        return None
    rest = steps[1:]
    while rest:
        found = _step(labelled_requirements(task), rest)
        if found is None:
            return None
        used, task = found
        rest = rest[used:]
    if _INVALID.sub("_", type(task).__name__) != class_name:
        return None
    return task, path


def _search(roots: Sequence[Any], place: str) -> tuple[Any, str] | None:
    """``place_graph``'s breadth-first walk by object identity, up to the first task named ``place``."""
    seen: set[int] = set()
    queue: deque[tuple[Any, str]] = deque()
    for label, root in zip(root_labels(roots), roots, strict=True):
        if id(root) not in seen:
            if place_name(type(root).__name__, label) == place:
                return root, label
            seen.add(id(root))
            queue.append((root, label))
    while queue:
        task, path = queue.popleft()
        for label, dep in labelled_requirements(task):
            if id(dep) in seen:
                continue
            seen.add(id(dep))
            dep_path = f"{path}.{label}"
            if place_name(type(dep).__name__, dep_path) == place:
                return dep, dep_path
            queue.append((dep, dep_path))
    return None


def requirement_places(place: str, task: Any, path: str | None = None) -> dict[str, str]:
    """For each requirement of the task at ``place``: its node key and the place it has when reached through it.

    That is the requirement's place unless a shorter path (or an earlier one of the same length)
    reaches it first; a caller that needs certainty checks that the place exists, and walks the
    graph (``place_graph``) otherwise. A compacted place has no path to extend: pass its full
    ``path`` (``find_path``), or the result is empty.
    """
    if path is None:
        if _HASHED_MARK in place:
            return {}
        path = place.partition("__")[2] or place
    return {
        node_key(dep): place_name(type(dep).__name__, f"{path}.{label}") for label, dep in labelled_requirements(task)
    }


def _step(requirements: list[tuple[str, Any]], rest: list[str]) -> tuple[int, Any] | None:
    """The requirement whose (possibly dotted) label starts ``rest``, and how many steps it used."""
    for label, dep in requirements:
        parts = label.split(".")
        if rest[: len(parts)] == parts:
            return len(parts), dep
    return None


def _flatten(structure: Any, prefix: str, out: list[tuple[str, Any]], owner: Any) -> None:
    if isinstance(structure, luigi.Task):
        out.append((prefix or "0", structure))
        return
    if structure is None:
        return
    if isinstance(structure, dict):
        items: Iterator[tuple[Any, Any]] | Iterable[tuple[Any, Any]] = structure.items()
    elif isinstance(structure, str):
        raise _not_a_task(owner, structure)
    else:
        try:
            items = enumerate(structure)
        except TypeError:
            raise _not_a_task(owner, structure) from None
    for key, value in items:
        label = _INVALID.sub("_", str(key))
        _flatten(value, f"{prefix}.{label}" if prefix else label, out, owner)


def _not_a_task(owner: Any, value: Any) -> RequiresError:
    return RequiresError(
        f"{type(owner).__name__}.requires() returned {type(value).__name__} {value!r}; "
        "it must return tasks (or a list/dict of tasks)."
    )
