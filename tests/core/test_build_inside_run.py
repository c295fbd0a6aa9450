"""A build inside a task's run(): the value build() returns is what the run was built from, as a self.load() would be
(kart_core.transaction.loads_noted_by): after the inner task is rerun with other content, the outer one is stale."""

from __future__ import annotations

import luigi
import pytest

import kart_core

SOURCE = {"value": 5}  # what BirInner dumps; a forked worker process sees the value set before the build


class BirInner(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(SOURCE["value"])


class BirOuter(kart_core.TaskOnKart[int]):
    """Decides in run() what to compute: builds BirInner there and doubles what build() returns."""

    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        inner = BirInner(workspace_directory=self.workspace_directory)
        self.dump(kart_core.build(inner, reset_register=False) * 2)


class BirLoader(kart_core.TaskOnKart[int]):
    """The same through self.load() of an upstream: the behaviour the nested build must match."""

    def requires(self) -> BirInner:
        return BirInner(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * 2)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_outer_task_is_stale_once_the_task_its_run_built_is_rerun_with_other_content(
    any_workspace: str, workers: int, executor: str
) -> None:
    SOURCE["value"] = 5
    roots = [BirOuter(workspace_directory=any_workspace), BirLoader(workspace_directory=any_workspace)]
    assert kart_core.build(roots, workers=workers, executor=executor) == [10, 10]

    SOURCE["value"] = 10
    kart_core.build(BirInner(workspace_directory=any_workspace, rerun=True), reset_register=False)
    assert not roots[0].complete() and not roots[1].complete()
    assert kart_core.build(roots, workers=workers, executor=executor) == [20, 20]
    assert kart_core.build(roots, workers=workers, executor=executor) == [20, 20]  # and cached from then on


def test_a_build_outside_any_run_notes_nothing() -> None:
    """The roots a top-level build loads belong to no run: nothing to note them in (and nothing raised)."""
    assert kart_core.transaction.reader() is None
