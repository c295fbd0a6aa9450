"""A layered drawing of a task graph: upstream tasks on the left, the roots on the right.

Pure geometry (no I/O, no tasks): a node's column is its longest distance from a source, and
within a column nodes are ordered by the mean row of their upstreams, which keeps most edges short.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

__all__ = ["Layout", "layered_layout", "NODE_WIDTH", "NODE_HEIGHT"]

NODE_WIDTH, NODE_HEIGHT = 230, 62
_GAP_X, _GAP_Y, _MARGIN = 70, 18, 20


@dataclasses.dataclass
class Layout:
    """Top-left corner of each node, and the size of the whole drawing."""

    positions: dict[str, tuple[int, int]]
    width: int
    height: int


def layered_layout(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> Layout:
    """Place the nodes of a DAG given in topological order (upstreams first)."""
    column: dict[str, int] = {}
    for key in order:
        column[key] = 1 + max((column[dep] for dep in upstream.get(key, ()) if dep in column), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    row: dict[str, float] = {}
    for key in order:
        columns[column[key]].append(key)
    for members in columns:
        members.sort(key=lambda key: _mean_upstream_row(key, upstream, row))
        row.update((key, float(index)) for index, key in enumerate(members))
    positions = {
        key: (_MARGIN + column[key] * (NODE_WIDTH + _GAP_X), _MARGIN + int(row[key]) * (NODE_HEIGHT + _GAP_Y))
        for key in order
    }
    tallest = max((len(members) for members in columns), default=0)
    width = 2 * _MARGIN + len(columns) * (NODE_WIDTH + _GAP_X) - _GAP_X
    height = 2 * _MARGIN + tallest * (NODE_HEIGHT + _GAP_Y) - _GAP_Y
    return Layout(positions=positions, width=max(width, NODE_WIDTH), height=max(height, NODE_HEIGHT))


def _mean_upstream_row(key: str, upstream: Mapping[str, Sequence[str]], row: Mapping[str, float]) -> float:
    rows = [row[dep] for dep in upstream.get(key, ()) if dep in row]
    return sum(rows) / len(rows) if rows else float("inf")
