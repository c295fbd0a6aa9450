"""delete_local_unnecessary_outputs: orphans go; the graph's outputs, run logs and scratch files stay."""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.workspace_management import delete_local_unnecessary_outputs


class WmSource(gokart.TaskOnKart[list]):
    x = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump([self.x])


class WmReport(gokart.TaskOnKart[dict]):
    source = gokart.TaskInstanceParameter()

    def output(self) -> dict:
        return {"table": self.make_target("report/table.csv"), "summary": self.make_target("report/summary.txt")}

    def run(self) -> None:
        import pandas as pd

        self.dump(pd.DataFrame({"x": self.load(self.source)}), "table")
        self.dump("ok", "summary")


def _files(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names}


def _report(workspace: str, x: int) -> WmReport:
    return WmReport(source=WmSource(x=x, workspace_directory=workspace), workspace_directory=workspace)


def test_deletes_orphans_and_keeps_needed_outputs_and_logs(workspace: str) -> None:
    old, new = _report(workspace, 1), _report(workspace, 2)
    gokart.build(old)
    gokart.build(new)
    stray = Path(workspace) / "notes" / "scratch.bin"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    before = _files(workspace)
    deleted = delete_local_unnecessary_outputs(new)
    needed = {new.output()["table"].path(), new.output()["summary"].path(), new.source.output().path()}
    orphans = {old.output()["table"].path(), old.output()["summary"].path(), old.source.output().path(), str(stray)}
    assert {os.path.abspath(p) for p in deleted} == {os.path.abspath(p) for p in orphans}
    after = _files(workspace)
    assert all(os.path.exists(p) for p in needed) and not any(os.path.exists(p) for p in orphans)
    logs_before = {p for p in before if p.startswith("log" + os.sep)}
    assert logs_before and logs_before <= after  # the old task's run logs are kept too
    assert gokart.build(new, return_value=False) is None  # nothing needed was lost: a rebuild is all cached


def test_keeps_names_without_a_dot_as_gokart(workspace: str) -> None:
    """gokart deletes only rglob('*.*') matches: a Makefile or raw/README kept in the workspace stays (at14 N6)."""
    task = WmSource(x=4, workspace_directory=workspace)
    gokart.build(task)
    kept = [Path(workspace) / "Makefile", Path(workspace) / "raw" / "README", Path(workspace) / "a.b" / "LICENSE"]
    orphans = [Path(workspace) / "raw" / "old.csv", Path(workspace) / ".gitignore"]
    for path in kept + orphans:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    deleted = delete_local_unnecessary_outputs(task)
    assert sorted(os.path.abspath(p) for p in deleted) == sorted(str(p.absolute()) for p in orphans)
    assert all(p.exists() for p in kept) and os.path.exists(task.output().path())


def test_works_with_the_default_relative_workspace(tmp_path: Path) -> None:
    # "./resources/x.pkl" from the task and "resources/x.pkl" on disk must count as the same file.
    task = WmSource(x=5)
    assert task.workspace_directory == "./resources/"
    gokart.build(task)
    gokart.build(WmSource(x=6))
    deleted = delete_local_unnecessary_outputs(task)
    assert [os.path.abspath(p) for p in deleted] == [os.path.abspath(WmSource(x=6).output().path())]
    assert os.path.exists(task.output().path())


def test_keeps_the_scratch_directory(workspace: str) -> None:
    task = WmSource(x=3, workspace_directory=workspace, local_temporary_directory=os.path.join(workspace, "tmp"))
    gokart.build(task)
    lock = Path(workspace) / "tmp" / "locks" / "some.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    assert delete_local_unnecessary_outputs(task) == []
    assert lock.exists()


def test_refuses_a_remote_workspace() -> None:
    task = WmSource(workspace_directory="s3://bucket/ws")
    with pytest.raises(ValueError, match=r"WmSource\[[0-9a-f]{8}\].*'s3://bucket/ws' is not local"):
        delete_local_unnecessary_outputs(task)
