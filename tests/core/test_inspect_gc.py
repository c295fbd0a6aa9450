"""kart_core.inspect.plan_gc / delete_unreachable: clean a workspace, locally and on S3."""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect import delete_unreachable, plan_gc, runs
from kart_core.workspace import list_files


class GcLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(list(range(self.n)))


class GcSum(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def requires(self) -> GcLoad:
        return GcLoad(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


def _build(*tasks: gokart.TaskOnKart) -> None:
    for task in tasks:
        gokart.build(task, reset_register=False)


def test_plan_keeps_the_graph_outputs_and_logs_and_lists_the_rest(workspace: str) -> None:
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    Path(workspace, "notes.md").write_text("mine")  # not a kart file: never a candidate
    plan = plan_gc([keep])
    assert len(plan.kept) == 12 and len(plan.delete) == 12  # 2 tasks x (1 output + 5 logs) each
    doomed = {os.path.normpath(f.path) for f in plan.delete}
    assert os.path.normpath(drop.output().path()) in doomed
    assert os.path.normpath(drop.requires().output().path()) in doomed
    assert not any(os.path.normpath(keep.output().path()) == p for p in doomed)
    assert plan.delete_bytes == sum(os.path.getsize(f.path) for f in plan.delete)
    assert all(os.path.exists(f.path) for f in plan.delete)  # planning deletes nothing


def test_delete_removes_only_unreachable_files(workspace: str) -> None:
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    Path(workspace, "notes.md").write_text("mine")
    scratch = Path(workspace, "tmp", "scratch_" + "0" * 32 + ".bin")  # the kept task's scratch directory is skipped
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(b"x")
    keep_with_scratch = GcSum(n=2, workspace_directory=workspace, local_temporary_directory=str(scratch.parent))
    deleted = delete_unreachable(plan_gc([keep_with_scratch], workspace))
    assert len(deleted) == 12
    assert keep.complete() and not drop.complete() and not drop.requires().complete()
    assert Path(workspace, "notes.md").exists() and scratch.exists()
    assert list(runs(workspace)["unique_id"]) == [keep.requires().make_unique_id(), keep.make_unique_id()]
    assert plan_gc([keep_with_scratch]).delete == []


def test_a_shared_upstream_is_kept_for_any_kept_task(workspace: str) -> None:
    first, second = GcSum(n=2, workspace_directory=workspace), GcSum(n=4, workspace_directory=workspace)
    _build(first, second)
    plan = plan_gc([first, second])
    assert plan.delete == [] and len(plan.kept) == 24


def test_plan_needs_tasks_of_one_workspace(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one task"):
        plan_gc([])
    with pytest.raises(ValueError, match="different workspaces"):
        plan_gc(
            [GcLoad(n=1, workspace_directory=str(tmp_path / "a")), GcLoad(n=1, workspace_directory=str(tmp_path / "b"))]
        )


def test_gc_on_s3(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    plan = plan_gc([keep])
    assert len(plan.delete) == 12 and all(f.path.startswith(f"s3://{s3_bucket}/resources/") for f in plan.delete)
    assert all(f.size > 0 for f in plan.delete)
    delete_unreachable(plan)
    assert keep.complete() and not drop.complete()
    assert len(list_files(workspace)) == 12
