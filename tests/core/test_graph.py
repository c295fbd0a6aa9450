"""graph.walk: every task once, upstreams before dependants, no recursion, pruned at complete tasks."""

from __future__ import annotations

import luigi

import kart_core
from kart_core.graph import node_key, walk

DIAMOND = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}


class GrNode(kart_core.TaskOnKart[int]):
    name = luigi.Parameter()

    def requires(self):
        return [GrNode(name=d) for d in DIAMOND[self.name]]


def _diamond() -> GrNode:
    return GrNode(name="top")


def test_shared_upstreams_appear_once() -> None:
    base, left, right, top = (GrNode(name=n) for n in ("base", "left", "right", "top"))
    graph = walk([top])
    assert len(graph) == 4
    assert graph.order.index(node_key(base)) < graph.order.index(node_key(left)) < graph.order.index(node_key(top))
    assert graph.order.index(node_key(right)) < graph.order.index(node_key(top))
    assert graph.upstream[node_key(top)] == [node_key(left), node_key(right)]


def test_expand_false_prunes_the_subtree() -> None:
    graph = walk([_diamond()], expand=lambda task: task.name != "top")
    assert list(graph.nodes) == [node_key(_diamond())]
    assert graph.expanded == set()


def test_downstream_inverts_upstream() -> None:
    graph = walk([_diamond()])
    down = graph.downstream()
    assert down[node_key(GrNode(name="left"))] == [node_key(_diamond())]


def test_a_chain_of_ten_thousand_walks_without_recursion() -> None:
    class GrLink(kart_core.TaskOnKart[int]):
        n = luigi.IntParameter()

        def requires(self):
            return GrLink(n=self.n - 1) if self.n else []

    graph = walk([GrLink(n=10_000)])
    assert len(graph) == 10_001
    assert graph.order[0] == node_key(GrLink(n=0))


def test_each_node_keeps_one_key_string() -> None:
    """The key in ``nodes``, in ``order`` and in a dependant's ``upstream`` list is one string object per node."""
    graph = walk([_diamond()])
    strings = {id(key) for key in graph.nodes}
    assert len(strings) == 4
    assert {id(key) for key in graph.order} == strings
    top = node_key(_diamond())
    left, right = graph.upstream[top]
    assert {id(left), id(right)} <= strings
