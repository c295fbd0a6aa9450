"""execute(): dependency order on pools of threads and processes, linear bookkeeping, failures gathered."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.executor import dependants_of, dependency_state, execute, settle_one
from kart_core.graph import TaskGraph, walk
from kart_core.outcome import BuildResult
from kart_core.task_memo import UNSET, memo_of


class ExLeaf(kart_core.TaskOnKart[int]):
    value = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.value)


class ExSum(kart_core.TaskOnKart[int]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(sum(self.load("leaves")))


class ExStep(kart_core.TaskOnKart[int]):
    """Step n of a chain: needs step n - 1 and dumps 0 + 1 + ... + n."""

    n = luigi.IntParameter()

    def requires(self) -> Any:
        return ExStep(n=self.n - 1, workspace_directory=self.workspace_directory) if self.n else []

    def run(self) -> None:
        self.dump(self.n + (self.load() if self.n else 0))


class ExExits(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        sys.exit("leaving run() early")


class CountingKeys(list[str]):
    """A list of keys that counts how often it is iterated."""

    iterations = 0

    def __iter__(self) -> Iterator[str]:
        self.iterations += 1
        return super().__iter__()


def _keys_graph(shape: str, size: int) -> TaskGraph:
    """A graph of bare keys: ``size`` leaves feeding "root" (fan-in), or a chain ending in "root"."""
    keys = [f"k{i}" for i in range(size)] + ["root"]
    if shape == "fan_in":
        upstream = {key: [] for key in keys[:-1]} | {"root": keys[:-1]}
    else:
        upstream = {keys[0]: []} | {keys[i]: [keys[i - 1]] for i in range(1, len(keys))}
    return TaskGraph(nodes=dict.fromkeys(keys), upstream=upstream, order=keys, roots=["root"], expanded=set(keys))


@pytest.mark.parametrize("shape", ["fan_in", "chain"])
def test_pool_bookkeeping_reads_the_pending_keys_a_fixed_number_of_times(shape: str) -> None:
    # The quadratic version rebuilt set(pending) for every edge: 5,000 leaves took 20 s with two threads.
    iterations = []
    for size in (10, 3000):
        graph = _keys_graph(shape, size)
        pending = CountingKeys(graph.order)
        ready, waiting, dependants = dependency_state(graph, pending)
        iterations.append(pending.iterations)
        if shape == "fan_in":
            assert ready == graph.order[:-1] and waiting == {"root": size}
            assert dependants_of(dependants, "k0") == ("root",) and dependants_of(dependants, "root") == ()
        else:
            assert ready == ["k0"] and waiting == {}  # each waits on one: no count kept per task
            assert dependants_of(dependants, "k0") == ("k1",)
    assert iterations[0] == iterations[1] <= 3


def test_pool_bookkeeping_ignores_upstreams_found_complete() -> None:
    graph = _keys_graph("fan_in", 4)
    ready, waiting, dependants = dependency_state(graph, ["k1", "root"])
    assert ready == ["k1"] and waiting == {}  # root waits on k1 only
    assert dependants_of(dependants, "k1") == ("root",) and dependants_of(dependants, "root") == ()


def test_pool_bookkeeping_lists_several_dependants_and_repeated_upstreams() -> None:
    upstream = {"a": [], "b": ["a"], "c": ["a", "a"]}
    graph = TaskGraph(
        nodes=dict.fromkeys(upstream), upstream=upstream, order=list(upstream), roots=["c"], expanded=set()
    )
    ready, waiting, dependants = dependency_state(graph, ["a", "b", "c"])
    assert ready == ["a"] and waiting == {"c": 2}  # c waits for two settlements of a: both are delivered
    assert dependants_of(dependants, "a") == ["b", "c", "c"]
    assert not settle_one(waiting, "c") and waiting == {}  # one left: no entry
    assert settle_one(waiting, "c") and settle_one(waiting, "b") and waiting == {}


def _task_logs(workspace: str) -> list[Path]:
    return list((Path(workspace) / "log" / "task_log").iterdir())


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_wide_fan_in_builds_every_task_once_with_two_workers(workspace: str, executor: str) -> None:
    leaves = [ExLeaf(value=v, workspace_directory=workspace) for v in range(150)]
    root = ExSum(leaves=leaves, workspace_directory=workspace)
    assert kart_core.build(root, workers=2, executor=executor) == sum(range(150))
    assert len(_task_logs(workspace)) == 151


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_chain_builds_in_order_with_two_workers(workspace: str, executor: str) -> None:
    graph = walk([ExStep(n=40, workspace_directory=workspace)], expand=lambda task: not task.complete())
    result = execute(graph, workers=2, executor=executor)
    assert result.ran == graph.order  # a chain leaves no choice of order
    assert ExStep(n=40, workspace_directory=workspace).output().load() == sum(range(41))


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_system_exit_is_gathered_and_keep_going_builds_the_rest(workspace: str, workers: int, executor: str) -> None:
    exits = ExExits(workspace_directory=workspace)
    leaf = ExLeaf(value=1, workspace_directory=workspace)
    graph = walk([exits, leaf], expand=lambda task: not task.complete())
    result = execute(graph, workers=workers, executor=executor, keep_going=True)
    assert isinstance(result, BuildResult)
    (error,) = result.failed.values()
    assert isinstance(error, SystemExit) and error.code == "leaving run() early"
    assert result.ran == [kart_core.node_key(leaf)] and result.interrupted is None


SEEN: dict[str, bool] = {}


class ExDiamond(kart_core.TaskOnKart[str]):
    """base <- left, right <- top; each run notes whether its upstreams still hold their targets."""

    name = luigi.Parameter()

    def requires(self) -> Any:
        below = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}[self.name]
        return [ExDiamond(name=n, workspace_directory=self.workspace_directory) for n in below]

    def run(self) -> None:
        for dep in self.requires():
            SEEN[f"{self.name} saw {dep.name}"] = memo_of(dep).outputs is not UNSET
        self.dump(self.name)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread")])
def test_a_task_forgets_its_targets_once_all_its_dependants_settled(
    workspace: str, workers: int, executor: str
) -> None:
    SEEN.clear()
    top = ExDiamond(name="top", workspace_directory=workspace)
    assert kart_core.build(top, workers=workers, executor=executor) == "top"
    # base is kept until both left and right ran; left and right until top ran.
    assert SEEN == {"left saw base": True, "right saw base": True, "top saw left": True, "top saw right": True}
    nodes = {task.name: task for task in (top, *top.requires(), *top.requires()[0].requires())}
    assert {name: memo_of(task).outputs is not UNSET for name, task in nodes.items()} == {
        "top": True,  # a root keeps its targets: build() loads them
        "left": False,
        "right": False,
        "base": False,
    }


def test_the_upstream_of_a_failed_task_keeps_its_targets(workspace: str) -> None:
    source = ExLeaf(value=5, workspace_directory=workspace)
    failing = ExExitsAfter(source=source, workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError):
        kart_core.build(failing)
    assert memo_of(source).outputs is not UNSET


class ExExitsAfter(kart_core.TaskOnKart[int]):
    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        raise ValueError("fails after its upstream ran")
