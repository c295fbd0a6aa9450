"""Where each task sits in a graph: a name built from the roots and the ``requires()`` keys, not from values.

A *place* is ``Class`` for a root and ``Class__Root.key.key`` for a task reached from a root through
``requires()``: each step is the dict key (a TaskInstanceParameter's name under the default
``requires()``) or the list position under which the parent requires the task. A task reachable
by several paths takes the shortest (breadth first; ties go to the earlier root and ``requires()``
order). Changing a parameter *value* keeps every place, so a scheduler that names its tasks by
place (kart_airflow) keeps its task history when a value changes, while the unique id changes.

A place longer than ``MAX_PLACE_LENGTH`` (40) characters is *compacted* to
``Class__Root.last--<steps>``: the class, the root's label and the last step of the path (with
the key before it when the last is a list position under a named key), then ``--`` and the path's
steps encoded (``Trail.code``), so that a worker follows it from the root with one ``requires()``
call per step (``find_path``) instead of walking the graph. Each step is the position of the
requirement taken in each dict or list of ``requires()`` (a nested ``{"models": [a, b]}`` has
two), packed in fixed-width bit fields of ``ceil(log2(size))`` bits (none for a single
requirement), first step lowest; the code is the number of steps after the last non-zero field (a
varint, 4 bits per base32 character) and then the packed fields in base32, low characters first
(``a`` is 0, RFC 4648 lower case). A layered graph two requirements wide takes a bit per step,
a chain none, so a 40-deep path of the benchmark graph fits in 9 characters. The head is cut from
the right to fit, but never into the root's label; when it would be, the place is compacted to
``Class__Root.last---<hash>`` instead: ``---`` and 8 base32 characters of a BLAKE2b hash of the
full place, found by walking the graph breadth first. Until 2026-11-30 every compacted place
was ``Class__Root.last--<hash>`` (a walk to find each): Airflow task ids of compacted places
changed once with the followable form, so their Airflow task history starts anew once.

Both forms stay the same while the path does and while each dict or list on the path keeps its
keys in their order and its size within the same power of two (a list that grows from 3 to 4
requirements keeps the ids below it, one from 4 to 5 renames the compacted places below it;
places up to 40 characters never change with values). They are short: Airflow writes each task
id about five times in a serialized DAG. Places are unique in a graph: on the rare clash of two
compacted places (or of two root labels) the later one in breadth-first order gets ``-2``,
``-3``, ...

Pure graph logic: it knows tasks only through ``requires()`` and ``make_unique_id()``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import luigi

from kart_core.errors import RequiresError
from kart_core.graph import node_key, requires_structure, rerun_copy

__all__ = [
    "PlacedGraph",
    "MAX_PLACE_LENGTH",
    "Trail",
    "labelled_requirements",
    "place_graph",
    "find_place",
    "find_path",
    "place_name",
    "requirement_places",
]

MAX_PLACE_LENGTH = 40  # longer places are compacted to this length
_INVALID = re.compile(r"[^\w-]", re.ASCII)
_CODE_MARK = "--"  # Class__Root.last--<steps>: followed from the root (Trail.code)
_HASHED_MARK = "---"  # Class__Root.last---<hash>: found by a walk (its steps did not fit)
# A compacted place renamed on a clash (_unique): place_graph decides.
_CLASH_SUFFIX = re.compile(r"--[a-z2-7]+-\d+$")
_HASH_CHARS = 8  # base32 characters of the full place's hash: 40 bits, a clash among 2,000 tasks ~2e-6
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648's alphabet in lower case, as the hash uses


class Trail(NamedTuple):
    """How a task is reached from its root: the full path and the position taken at each step.

    ``path`` is ``Root.key.key``; ``positions`` packs, first step lowest, the position of the
    requirement taken in each dict or list of ``requires()``, each in ``ceil(log2(size))`` bits;
    ``width`` is the bits packed so far; ``trailing`` the steps since the last non-zero one.
    """

    path: str
    positions: int = 0
    width: int = 0
    trailing: int = 0

    def step(self, label: str, position: int, width: int) -> Trail:
        """The trail one step further, to the requirement ``label`` at packed ``position`` of ``width`` bits."""
        return Trail(
            f"{self.path}.{label}",
            self.positions | (position << self.width),
            self.width + width,
            0 if position else self.trailing + 1,
        )

    def code(self) -> str:
        """The steps as base32 text: ``trailing`` as a varint (4 bits a character), then ``positions``, low first."""
        chars, trailing = [], self.trailing
        while trailing >= 16:
            chars.append(_BASE32[16 + (trailing & 15)])
            trailing >>= 4
        chars.append(_BASE32[trailing])
        positions = self.positions
        while positions:
            chars.append(_BASE32[positions & 31])
            positions >>= 5
        return "".join(chars)


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
    return [(label, dep) for label, dep, _, _ in _requirements(task)]


def _requirements(task: Any) -> list[tuple[str, Any, int, int]]:
    """``labelled_requirements`` with each requirement's packed positions and their width in bits (``Trail``)."""
    out: list[tuple[str, Any, int, int]] = []
    _flatten(requires_structure(task), "", 0, 0, out, task)
    return out


def place_graph(roots: Sequence[Any]) -> PlacedGraph:
    """Walk the graph under ``roots`` breadth first and give every node its place.

    Roots are named by class; later roots of an already used class name get ``_2``, ``_3``, ...
    (so adding a root keeps the places of the earlier ones). A task reached twice is one node at the
    place of the first path; its object is the first copy, or a later one with ``rerun=True`` when the
    first has not (``kart_core.graph.rerun_copy``), so an adapter built on it keeps that rerun.
    """
    nodes: dict[str, Any] = {}
    upstream: dict[str, list[str]] = {}
    trails: dict[str, Trail] = {}
    order: list[str] = []
    queue: deque[str] = deque()
    for label, root in zip(root_labels(roots), roots, strict=True):
        key = node_key(root)
        if key not in nodes:
            nodes[key], trails[key] = root, Trail(label)
            queue.append(key)
        elif rerun_copy(root, nodes[key]):
            nodes[key] = root  # the place stays the first copy's
    while queue:
        key = queue.popleft()
        order.append(key)
        trail = trails[key]
        deps = []
        for label, dep, position, width in _requirements(nodes[key]):
            dep_key = node_key(dep)
            deps.append(dep_key)
            if dep_key not in nodes:
                nodes[dep_key], trails[dep_key] = dep, trail.step(label, position, width)
                queue.append(dep_key)
            elif rerun_copy(dep, nodes[dep_key]):
                nodes[dep_key] = dep  # rerun=True on a later path is kept; the place stays the first path's
        upstream[key] = list(dict.fromkeys(deps))
    places = _unique({key: place_name(type(nodes[key]).__name__, trails[key]) for key in order})
    paths = {key: trails[key].path for key in order}
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


def place_name(class_name: str, trail: Trail | str) -> str:
    """``Class`` for a root (path = its root label), ``Class__path`` below; at most MAX_PLACE_LENGTH.

    A longer place is compacted (module docstring) to ``Class__Root.last--<steps>``, e.g.
    ``Clean__Report.raw--ac`` for ``Clean__Report.models.0.data.features.clean.raw`` (no trailing
    zero steps; ``models`` is position 0 and ``raw`` position 1 of two dict keys), or, when the
    steps do not fit beside the class and root, or ``trail`` is a bare path (no positions known),
    to ``Class__Root.last---<hash>``.
    """
    path = trail if isinstance(trail, str) else trail.path
    name = _INVALID.sub("_", class_name)
    place = path if "." not in path else f"{name}__{path}"
    if len(place) <= MAX_PLACE_LENGTH:
        return place
    steps = path.split(".")
    # A list position alone says little: keep the key before it too (``models.0``), if it is a name.
    last = steps[-2:] if steps[-1].isdigit() and len(steps) > 2 and not steps[-2].isdigit() else steps[-1:]
    head = f"{name}__{steps[0]}.{'.'.join(last)}" if len(steps) > 1 else path
    if not isinstance(trail, str) and len(steps) > 1:
        tail = _CODE_MARK + trail.code()
        room = MAX_PLACE_LENGTH - len(tail)
        if room >= len(name) + 2 + len(steps[0]):  # the worker reads the root's label from the head
            return head[:room].rstrip(".") + tail
    digest = hashlib.blake2b(place.encode(), digest_size=5).digest()
    tail = _HASHED_MARK + base64.b32encode(digest).decode().lower()[:_HASH_CHARS]
    return head[: MAX_PLACE_LENGTH - len(tail)] + tail


def find_place(roots: Sequence[Any], place: str) -> tuple[Any, list[Any]] | None:
    """The task at ``place`` and its direct requirements, without computing the graph's unique ids.

    Cost: one ``requires()`` call per step of the path (a compacted place's steps are decoded
    from it), so a worker that runs one task of a large graph finds it in milliseconds; a place
    compacted with a hash (``---``) costs a walk by task objects as far as its depth. Returns
    None when the path leads nowhere, or for a place renamed on a clash (``-2``); the caller then
    walks the graph (``place_graph``), which decides.
    """
    found = find_path(roots, place)
    if found is None:
        return None
    return found[0], [dep for _, dep in labelled_requirements(found[0])]


def find_path(roots: Sequence[Any], place: str) -> tuple[Any, Trail] | None:
    """The task at ``place`` and its ``Trail`` (full path ``Root.key.key`` and positions), or None.

    A place that is its path is followed, one ``requires()`` call per step; so is a compacted
    place ``--<steps>``: its root's label is read from the head, its steps decoded (``Trail.code``),
    and the task reached is taken only if its own compacted place is ``place`` (else, as for a
    place compacted with a hash, the walk below decides). A place compacted with a hash
    (``---``) names no path to follow: the graph is walked breadth first as ``place_graph`` walks
    it, by task *object* (luigi hands back one object per class and parameters) instead of by
    unique id, and stops at the first task with that place, so it creates the tasks down to the
    place's depth but computes no unique id. Where two task objects share a unique id (they
    differ in insignificant parameters only) the two walks can name the later one differently;
    the worker's check against the DAG's record catches a task found wrong.
    """
    by_label = dict(zip(root_labels(roots), roots, strict=True))
    if place in by_label:
        return by_label[place], Trail(place)
    if _CODE_MARK in place:
        if _CLASH_SUFFIX.search(place):
            return None
        head, _, code = place.rpartition(_CODE_MARK)
        if not head.endswith("-"):
            for label in _root_labels_in(head):
                if label in by_label:
                    found = _follow(by_label[label], label, code)
                    if found is not None and place_name(type(found[0]).__name__, found[1]) == place:
                        return found
        return _search(roots, place)
    class_name, _, path = place.partition("__")
    steps = path.split(".")
    task = by_label.get(steps[0])
    if task is None or len(steps) < 2:
        return None
    trail, rest = Trail(steps[0]), steps[1:]
    while rest:
        matched = _step(_requirements(task), rest)
        if matched is None:
            return None
        used, (label, task, position, width) = matched
        trail, rest = trail.step(label, position, width), rest[used:]
    if _INVALID.sub("_", type(task).__name__) != class_name:
        return None
    return task, trail


def _root_labels_in(head: str) -> Iterator[str]:
    """The root label a compacted head may name, after each ``__`` (a class name may hold ``__`` too)."""
    start = head.find("__")
    while start >= 0:
        yield head[start + 2 :].partition(".")[0]
        start = head.find("__", start + 1)


def _follow(root: Any, label: str, code: str) -> tuple[Any, Trail] | None:
    """The task reached from ``root`` by the steps ``code`` encodes (``Trail.code``), or None if they lead nowhere."""
    decoded = _decode(code)
    if decoded is None:
        return None
    trailing, positions = decoded
    task, trail = root, Trail(label)
    seen = {id(root)}
    while positions or trailing:
        if not positions:
            trailing -= 1
        taken = _take(_requirements(task), positions)
        if taken is None:
            return None
        step_label, task, position, width = taken
        if id(task) in seen:  # a cycle: no path of a DAG
            return None
        seen.add(id(task))
        positions >>= width
        trail = trail.step(step_label, position, width)
    return task, trail


def _decode(code: str) -> tuple[int, int] | None:
    """``(trailing, positions)`` from ``Trail.code``'s text, or None if it is not such text."""
    values = [_BASE32.find(char) for char in code]
    if not values or min(values) < 0:
        return None
    trailing, shift, i = 0, 0, 0
    while True:
        if i == len(values):
            return None
        value, i = values[i], i + 1
        trailing |= (value & 15) << shift
        shift += 4
        if value < 16:
            break
    positions = sum(value << (5 * j) for j, value in enumerate(values[i:]))
    return trailing, positions


def _take(requirements: list[tuple[str, Any, int, int]], positions: int) -> tuple[str, Any, int, int] | None:
    """The requirement whose packed position is the low bits of ``positions`` (the codes of one task's
    requirements are prefix-free: each dict or list level has fixed-width fields), or None."""
    for requirement in requirements:
        _, _, position, width = requirement
        if positions & ((1 << width) - 1) == position:
            return requirement
    return None


def _search(roots: Sequence[Any], place: str) -> tuple[Any, Trail] | None:
    """``place_graph``'s breadth-first walk by object identity, up to the first task named ``place``."""
    seen: set[int] = set()
    queue: deque[tuple[Any, Trail]] = deque()
    for label, root in zip(root_labels(roots), roots, strict=True):
        if id(root) not in seen:
            if place_name(type(root).__name__, label) == place:
                return root, Trail(label)
            seen.add(id(root))
            queue.append((root, Trail(label)))
    while queue:
        task, trail = queue.popleft()
        for label, dep, position, width in _requirements(task):
            if id(dep) in seen:
                continue
            seen.add(id(dep))
            dep_trail = trail.step(label, position, width)
            if place_name(type(dep).__name__, dep_trail) == place:
                return dep, dep_trail
            queue.append((dep, dep_trail))
    return None


def requirement_places(task: Any, trail: Trail) -> dict[str, str]:
    """For each requirement of ``task`` (reached by ``trail``, from ``find_path``): its node key and the place it has through it.

    That is the requirement's place unless a shorter path (or an earlier one of the same length)
    reaches it first; a caller that needs certainty checks that the place exists, and walks the
    graph (``place_graph``) otherwise.
    """
    return {
        node_key(dep): place_name(type(dep).__name__, trail.step(label, position, width))
        for label, dep, position, width in _requirements(task)
    }


def _step(
    requirements: list[tuple[str, Any, int, int]], rest: list[str]
) -> tuple[int, tuple[str, Any, int, int]] | None:
    """The requirement whose (possibly dotted) label starts ``rest``, and how many steps it used."""
    for requirement in requirements:
        parts = requirement[0].split(".")
        if rest[: len(parts)] == parts:
            return len(parts), requirement
    return None


def _flatten(
    structure: Any, prefix: str, position: int, width: int, out: list[tuple[str, Any, int, int]], owner: Any
) -> None:
    if isinstance(structure, luigi.Task):
        out.append((prefix or "0", structure, position, width))
        return
    if structure is None:
        return
    if isinstance(structure, dict):
        items: list[tuple[Any, Any]] = list(structure.items())
    elif isinstance(structure, str):
        raise _not_a_task(owner, structure)
    else:
        try:
            items = list(enumerate(structure))
        except TypeError:
            raise _not_a_task(owner, structure) from None
    bits = (len(items) - 1).bit_length()
    for index, (key, value) in enumerate(items):
        label = _INVALID.sub("_", str(key))
        _flatten(value, f"{prefix}.{label}" if prefix else label, position | (index << width), width + bits, out, owner)


def _not_a_task(owner: Any, value: Any) -> RequiresError:
    return RequiresError(
        f"{type(owner).__name__}.requires() returned {type(value).__name__} {value!r}; "
        "it must return tasks (or a list/dict of tasks)."
    )
