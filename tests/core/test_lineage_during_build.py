"""A task found complete at the start of a build whose upstream another task of the same build changes.

The walk judges every task once, before anything runs. When a task of the build then commits other
content for an upstream of a task already judged complete (a ``rerun=True`` of a shared upstream, a
damaged upstream repaired by another task's run or by the load of a root), that task was built from
content that is no longer there. The build must not hand it back: it checks its roots' lineage again
after the tasks ran and builds once more what became stale (content rule: a task built on a changed
upstream runs again only if what it loaded changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.inspect.verify import verify_workspace
from kart_core.orchestrate import orchestrate
from kart_core.storage import storage_for

POOLS = [(1, "thread"), (2, "thread"), (2, "process")]


class DbUp(kart_core.TaskOnKart[Any]):
    """Dumps ``10 * value``; ``value`` is not part of the id (an edit the id does not cover)."""

    value = luigi.IntParameter(default=2, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class DbMid(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") * 2)


class DbDown(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") + 1)


class DbCounted(kart_core.TaskOnKart[Any]):
    """Not deterministic: dumps 10 times the number of its runs so far (counted in ``journal``)."""

    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("run\n")
        with open(self.journal) as handle:
            self.dump(10 * len(handle.read().splitlines()))


class DbParity(kart_core.TaskOnKart[Any]):
    """Loads its upstream but dumps only whether it is even: equal content for most changes upstream."""

    up = kart_core.TaskInstanceParameter()
    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("parity\n")
        self.dump(self.load("up") % 2 == 0)


def _build(tasks: Any, **kwargs: Any) -> Any:
    return kart_core.build(tasks, reset_register=False, **kwargs)


def _truncate(path: str) -> None:
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    with storage.atomic_write(path) as file:
        file.write(data[:2])  # a small int's pickle is 5 bytes: cut below that, or nothing changes


@pytest.mark.parametrize(("workers", "executor"), POOLS)
@pytest.mark.parametrize("down_first", [True, False])
def test_two_roots_sharing_an_upstream_rerun_by_one(
    workspace: str, workers: int, executor: str, down_first: bool
) -> None:
    """Down(Up) cached; Mid(Up(rerun=True)) in the same build writes Up anew (30): Down is 31, not 21."""
    ws = workspace
    assert _build(DbDown(up=DbUp(workspace_directory=ws), workspace_directory=ws)) == 21
    down = DbDown(up=DbUp(workspace_directory=ws), workspace_directory=ws)
    mid = DbMid(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    roots = [down, mid] if down_first else [mid, down]
    result = orchestrate(roots, workers=workers, executor=executor, load_roots=True)
    values = dict(zip(result.roots, result.values or [], strict=True))
    assert [values[key] for key in result.roots] == ([31, 60] if down_first else [60, 31])
    assert not result.stale_roots and not result.failed
    assert len(result.ran) == 3 and len(set(result.ran)) == 3  # Up, Mid, Down: each once
    assert result.roots[roots.index(down)] in result.stale and "3 ran" in result.summary()
    assert verify_workspace(ws).ok


@pytest.mark.parametrize(("workers", "executor"), POOLS)
def test_a_task_under_a_root_that_ran_before_its_upstream_changed(workspace: str, workers: int, executor: str) -> None:
    """Mid(Up) cached; Down(Mid(Up)) runs, and Down(Up(rerun=True)) in the same build writes Up anew: Mid
    is stale, and Down(Mid), which may have run before Up's rerun, is built on it. The build runs Mid
    again, then Down(Mid): 61, not 41."""
    ws = workspace
    assert _build(DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws)) == 40
    chain = DbDown(up=DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws), workspace_directory=ws)
    side = DbDown(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    assert _build([chain, side], workers=workers, executor=executor) == [61, 31]
    assert verify_workspace(ws).ok
    assert _build([chain], workers=workers, executor=executor) == [61]


@pytest.mark.parametrize(("workers", "executor"), POOLS)
def test_a_repair_with_other_content_by_another_root(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    """Down(Up) cached, Up damaged; Mid(Up) runs and its repair of Up writes other content (20): Down,
    fresh when the walk checked it, is built again from the new Up (21, not 11)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    _truncate(DbCounted(journal=journal, workspace_directory=ws).output().path())
    down, mid = (
        cls(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws) for cls in (DbDown, DbMid)
    )
    result = orchestrate([down, mid], workers=workers, executor=executor, load_roots=True)
    assert result.values == [21, 40] and not result.stale_roots
    assert len(result.repaired) == 1 and result.roots[0] in result.stale
    assert Path(journal).read_text().count("run") == 2  # the repair only: Counted did not run a third time
    assert verify_workspace(ws).ok


def test_a_root_repaired_by_its_load_with_other_content(workspace: str, tmp_path: Path) -> None:
    """Two roots, Counted and Down(Counted), both cached; Counted's output is damaged. Loading it to hand
    it back repairs it with other content (20): Down, loaded after, must be 21, not 11."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def counted() -> DbCounted:
        return DbCounted(journal=journal, workspace_directory=ws)

    assert _build(DbDown(up=counted(), workspace_directory=ws)) == 11
    _truncate(counted().output().path())
    result = orchestrate([counted(), DbDown(up=counted(), workspace_directory=ws)], load_roots=True)
    assert result.values == [20, 21] and not result.stale_roots
    assert verify_workspace(ws).ok


def test_a_change_that_leaves_what_a_task_dumps_equal_stops_there(workspace: str, tmp_path: Path) -> None:
    """Down(Parity(Up)) cached; Mid(Up(rerun=True)) writes Up = 40 (was 20): Parity runs again (its input
    changed) and dumps True again, so Down, whose input is unchanged, stays as it was."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def down(up: DbUp) -> DbDown:
        return DbDown(up=DbParity(up=up, journal=journal, workspace_directory=ws), workspace_directory=ws)

    assert _build(down(DbUp(workspace_directory=ws))) == 2
    mid = DbMid(up=DbUp(value=4, rerun=True, workspace_directory=ws), workspace_directory=ws)
    result = orchestrate([down(DbUp(workspace_directory=ws)), mid], load_roots=True)
    assert result.values == [2, 80]
    assert Path(journal).read_text().count("parity") == 2
    assert result.roots[0] in result.cached and result.roots[0] not in result.ran
    assert verify_workspace(ws).ok


def test_a_rerun_task_runs_once_per_build(workspace: str, tmp_path: Path) -> None:
    """Counted(rerun=True) beside Down(Counted) cached: the build checks again after Counted reran with
    other content and runs Down, without re-arming Counted's rerun (it would never settle)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    rerun = DbCounted(journal=journal, rerun=True, workspace_directory=ws)
    down = DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    assert _build([down, rerun]) == [21, 20]
    assert Path(journal).read_text().count("run") == 2
