"""kart_core.lineage past an upstream whose manifest is missing (attacker at22 M3): removed to keep a hand correction
(faq.md), or a lost object. Nothing says what such a task was built from, so a change further up was hidden behind
it for good; now a requirement's committed output written after the task's output makes the task stale, as make
judges by file times, and its readers are built on stale content. Real builds, on local disk and moto's S3.
"""

from __future__ import annotations

import os
import pickle
import time
from typing import Any

import pytest
from test_lineage_interrupted import _build
from test_lineage_interrupted import _OnLoads as UvTop  # Up <- FlLoads (Mid) <- Top: dumps Mid * 100
from test_lineage_requirements import FlLoads, FlUp

import kart_core
from kart_core import lineage
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


def _remove_manifest(task: Any) -> None:
    path = log_task_path(task, MANIFEST)
    storage_for(path).remove(path)
    assert not storage_for(path).exists(path)


@pytest.fixture(params=["local", "s3"])
def ws(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _later() -> None:
    time.sleep(1.1)  # the store's times may be whole seconds (S3's Last-Modified)


def test_an_upstream_rerun_behind_a_task_without_its_manifest_reruns_it_and_its_readers(ws: str) -> None:
    """Up <- Mid <- Top built (1200); Mid's manifest removed; Up rerun with other content: Mid is stale (Up's
    output is newer than its own), Top is built on it; a build of Top gives 2200, not 1200."""
    assert _build(UvTop(workspace_directory=ws)) == 1200
    mid, top = FlLoads(workspace_directory=ws), UvTop(workspace_directory=ws)
    _remove_manifest(mid)
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None  # nothing changed above it
    _later()
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    own = lineage.stale_outputs([mid.output()], mid.kart_requires)  # run_one's check of Mid itself
    assert [(item.unvouched, item.input.task) for item in own] == [(True, FlUp(workspace_directory=ws).kart_label())]
    assert "no integrity record" in own[0].describe(mid.kart_label())
    verdict = lineage.stale_verdict([top.output()], None, top.kart_requires)
    assert verdict is not None and verdict.behind == [mid.kart_label()]
    assert _build(UvTop(workspace_directory=ws)) == 2200
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None  # Mid has its manifest again


def test_a_hand_correction_kept_by_removing_the_manifest_stays_until_an_input_changes(ws: str) -> None:
    """faq.md: to keep a file written over an output, delete the task's manifest. Its readers rerun on it (their
    records name the old content); it is kept while nothing above it changes, and rebuilt once something does."""
    assert _build(UvTop(workspace_directory=ws)) == 1200
    mid = FlLoads(workspace_directory=ws)
    _remove_manifest(mid)
    _later()
    with storage_for(mid.output().path()).atomic_write(mid.output().path()) as file:
        file.write(pickle.dumps(50))
    assert _build(UvTop(workspace_directory=ws)) == 5000
    assert _build(UvTop(workspace_directory=ws)) == 5000  # cached: the correction is kept
    _later()
    _build(FlUp(value=3, rerun=True, workspace_directory=ws))
    assert _build(UvTop(workspace_directory=ws)) == 3200


def test_a_requirement_kart_never_committed_is_not_judged_by_time(tmp_path: Any) -> None:
    """A workspace gokart wrote (no manifests at all): an upstream file newer than its reader says nothing kart
    knows of (gokart never reruns on it either), so nothing is stale."""
    ws = str(tmp_path / "ws")
    assert _build(UvTop(workspace_directory=ws)) == 1200
    up, mid = FlUp(workspace_directory=ws), FlLoads(workspace_directory=ws)
    _remove_manifest(up)
    _remove_manifest(mid)
    later = time.time() + 5
    os.utime(up.output().path(), (later, later))
    assert lineage.stale_outputs([mid.output()], mid.kart_requires) == []
    top = UvTop(workspace_directory=ws)
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None


class UvRoot(kart_core.TaskOnKart[int]):
    def requires(self) -> UvTop:
        return UvTop(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 5)


@pytest.mark.parametrize("missing", ["middle", "root"])
def test_a_requirement_stale_further_up_makes_a_task_without_its_manifest_stale(ws: str, missing: str) -> None:
    """Attacker at23 (M3 residue): Up <- Mid <- Top <- Root built (1205); Top's (or the root's) manifest removed, then
    Up rerun. The task without its manifest has a requirement older than its output but stale itself (Mid, or Top
    behind Mid): it is stale too, and a build of Root gives 2205, not 1205."""
    assert _build(UvRoot(workspace_directory=ws)) == 1205
    top, root = UvTop(workspace_directory=ws), UvRoot(workspace_directory=ws)
    _remove_manifest(top if missing == "middle" else root)
    _later()
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    judged = top if missing == "middle" else root
    own = lineage.stale_outputs([judged.output()], judged.kart_requires)
    assert own and own[0].unvouched and "is stale itself" in own[0].describe(judged.kart_label())
    assert _build(UvRoot(workspace_directory=ws)) == 2205
    assert _build(UvRoot(workspace_directory=ws)) == 2205
