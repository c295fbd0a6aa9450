"""A walk's direct check of a task and its lineage check share one judgement per recorded input.

``complete()`` inside a walk (``lineage.stale_outputs`` in a ``walk_scope``) judges the task's recorded inputs
against their upstream manifests; the walk's ``Lineage.check`` of the same task takes that judgement instead of
judging each input again, and an upstream manifest that records no input is not kept once judged (its verdict,
fresh, is): a task with 100,000 cached requirements held each one's parsed manifest until its walk ended. What a
change upstream makes stale must stay so, directly and further down.
"""

from __future__ import annotations

import os
import time
from typing import Any

import luigi
import pytest

import kart_core
from kart_core import lineage
from kart_core.structure import flatten


class FiLeaf(kart_core.TaskOnKart[int]):
    """Dumps ``i * value``; ``value`` is not part of the id (an edit the id does not cover)."""

    i = luigi.IntParameter()
    value = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        self.dump(self.i * self.value)


class FiTop(kart_core.TaskOnKart[int]):
    """Requires ``width`` leaves and loads them all."""

    width = luigi.IntParameter()

    def requires(self) -> Any:
        return [FiLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(self.width)]

    def run(self) -> None:
        self.dump(sum(self.load()))


class FiBelow(kart_core.TaskOnKart[int]):
    """Loads FiTop: stale through it when a leaf changes."""

    def requires(self) -> FiTop:
        return FiTop(width=3, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1000)


def _build(task: Any) -> Any:
    return kart_core.build(task, reset_register=False)


def _leaf_manifests(top: FiTop) -> set[str]:
    leaves = [FiLeaf(i=i, workspace_directory=top.workspace_directory) for i in range(top.width)]
    return {target.record.manifest for leaf in leaves for target in flatten(leaf.kart_outputs())}


def test_the_walk_judges_each_input_once_and_keeps_no_leaf_manifest(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Top's complete() in the walk judges its three inputs; the lineage check takes that judgement (no second
    judgement: each input's entry and file looked at once) and holds none of the leaves' manifests."""
    assert _build(FiTop(width=3, workspace_directory=workspace)) == 3
    judged: list[str] = []
    judge = lineage.Lineage._judge

    def counted(self: lineage.Lineage, *args: Any) -> Any:
        direct, found, upstreams = judge(self, *args)
        judged.extend(upstream for _, upstream, _, _ in found)  # each input judged: its entry and file looked at
        return direct, found, upstreams

    monkeypatch.setattr(lineage.Lineage, "_judge", counted)
    top = FiTop(width=3, workspace_directory=workspace)
    leaves = _leaf_manifests(top)
    with lineage.walk_scope() as scope:
        assert top.complete()
        assert sorted(judged) == sorted(leaves)
        assert lineage.stale_verdict(flatten(top.kart_outputs()), scope, top.kart_requires) is None
        assert sorted(judged) == sorted(leaves)  # not judged again
        assert leaves.isdisjoint(scope.manifests)
        assert scope.records_any(leaves)  # still known as recorded (a commit of one is looked for after a round)


def test_a_leaf_committed_again_with_other_content_is_found_directly_and_further_down(workspace: str) -> None:
    """A leaf rerun with other content: Top is stale by its own inputs (the shared judgement), Below through Top
    (the lineage check, whose leaves were judged without their manifests kept); builds bring both up to date."""
    assert _build(FiBelow(workspace_directory=workspace)) == 1003
    _build(FiLeaf(i=2, value=5, rerun=True, workspace_directory=workspace))
    below, top = FiBelow(workspace_directory=workspace), FiTop(width=3, workspace_directory=workspace)
    with lineage.walk_scope() as scope:
        verdict = lineage.stale_verdict(flatten(below.kart_outputs()), scope, below.kart_requires)
        assert verdict is not None and verdict.behind == [top.kart_label()]
    with lineage.walk_scope() as scope:
        stale = lineage.stale_outputs(flatten(top.kart_outputs()), top.kart_requires)
        assert [item.input.task for item in stale] == [FiLeaf(i=2, workspace_directory=workspace).kart_label()]
        verdict = lineage.stale_verdict(flatten(top.kart_outputs()), scope, top.kart_requires)
        assert verdict is not None and verdict.direct == stale
    assert _build(FiBelow(workspace_directory=workspace)) == 1011
    assert _build(FiTop(width=3, workspace_directory=workspace)) == 11


def test_a_lineage_memo_keeps_no_manifest_above_its_size_limit(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest over ``_MEMO_MAX_BYTES`` (one of many inputs) is read each time, not kept for the process; a small one
    is kept (both read with a clock ahead of their writes, as a settled file)."""
    top = FiTop(width=3, workspace_directory=workspace)
    assert _build(top) == 3
    path = next(target.record.manifest for target in flatten(top.kart_outputs()))
    leaf = next(iter(_leaf_manifests(top)))
    size = os.path.getsize(path)
    assert size > os.path.getsize(leaf)
    monkeypatch.setattr(lineage, "_MEMO_MAX_BYTES", size - 1)
    memo = lineage.LineageMemo(clock=lambda: time.time_ns() + 10**10)
    assert memo.read(path) is not None and len(memo) == 0
    assert memo.read(leaf) is not None and len(memo) == 1
    assert memo.read(path) == memo.read(path) and len(memo) == 1
