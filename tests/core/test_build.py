"""build(): dependency order, cached rebuilds, parallel workers, gathered errors, no global side effects."""

from __future__ import annotations

import logging
import os

import luigi
import pytest

import kart_core


class BdLeaf(kart_core.TaskOnKart[int]):
    value = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.value)


class BdSum(kart_core.TaskOnKart[int]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(sum(self.load("leaves")))


class BdBroken(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        raise RuntimeError("broken on purpose")


class BdAfterBroken(kart_core.TaskOnKart[int]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(1)


class BdTwoOutputs(kart_core.TaskOnKart[dict]):
    def output(self):
        return {"a": self.make_target("two/a.pkl"), "b": [self.make_target("two/b.txt")]}

    def run(self) -> None:
        self.dump(1, "a")
        self.output()["b"][0].dump("x")


def _sum(workspace: str, n: int = 4) -> BdSum:
    leaves = [BdLeaf(value=v, workspace_directory=workspace) for v in range(n)]
    return BdSum(leaves=leaves, workspace_directory=workspace)


def test_returns_the_output_and_builds_upstreams_first(workspace: str) -> None:
    assert kart_core.build(_sum(workspace)) == 6


def test_second_build_runs_nothing(workspace: str) -> None:
    kart_core.build(_sum(workspace))
    stamp = {p: os.path.getmtime(p) for p in _all_files(workspace)}
    assert kart_core.build(_sum(workspace)) == 6
    assert {p: os.path.getmtime(p) for p in _all_files(workspace)} == stamp


def test_list_of_tasks_returns_a_list(workspace: str) -> None:
    tasks = [BdLeaf(value=1, workspace_directory=workspace), BdLeaf(value=2, workspace_directory=workspace)]
    assert kart_core.build(tasks) == [1, 2]


def test_nested_outputs_keep_their_shape(workspace: str) -> None:
    assert kart_core.build(BdTwoOutputs(workspace_directory=workspace)) == {"a": 1, "b": [["x"]]}


def test_return_value_false_returns_none(workspace: str) -> None:
    assert kart_core.build(BdLeaf(value=1, workspace_directory=workspace), return_value=False) is None


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_parallel_workers_give_the_same_result(workspace: str, executor: str) -> None:
    assert kart_core.build(_sum(workspace, n=12), workers=2, executor=executor) == 66
    assert len([p for p in _all_files(workspace) if "/log/task_log/" in p]) == 13


def test_failure_names_each_task_with_its_id(workspace: str) -> None:
    broken = BdBroken(workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError) as info:
        kart_core.build(BdAfterBroken(upstream=broken, workspace_directory=workspace))
    uid = broken.make_unique_id()
    assert f"BdBroken[{uid[:8]}] (unique id {uid}): RuntimeError: broken on purpose" in str(info.value)
    assert "1 not run" in str(info.value)
    assert list(info.value.raised_exceptions) == [uid]
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("workers", [1, 2])
def test_keep_going_builds_what_does_not_depend_on_the_failure(workspace: str, workers: int) -> None:
    ok = BdLeaf(value=5, workspace_directory=workspace)
    bad = BdAfterBroken(upstream=BdBroken(workspace_directory=workspace), workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError):
        kart_core.build([bad, ok], keep_going=True, workers=workers, executor="thread")
    assert ok.complete() and not bad.complete()


def test_no_process_wide_logging_changes(workspace: str) -> None:
    before = (logging.root.manager.disable, logging.root.level, list(logging.root.handlers))
    kart_core.build(BdLeaf(value=1, workspace_directory=workspace), log_level=logging.CRITICAL)
    assert (logging.root.manager.disable, logging.root.level, list(logging.root.handlers)) == before


def test_luigi_build_keyword_arguments_are_accepted(workspace: str) -> None:
    assert (
        kart_core.build(BdLeaf(value=3, workspace_directory=workspace), local_scheduler=True, detailed_summary=True)
        == 3
    )


def _all_files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)


def test_garbage_collector_state_is_restored(workspace: str) -> None:
    import gc

    assert gc.isenabled()
    kart_core.build(BdLeaf(value=9, workspace_directory=workspace))
    assert gc.isenabled()
    gc.disable()
    try:
        kart_core.build(BdLeaf(value=9, workspace_directory=workspace))
        assert not gc.isenabled()
    finally:
        gc.enable()
