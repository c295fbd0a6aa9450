"""Threads of one process building the same task take turns (kart_core.runner._task_turn, kart_core.lock.hold_turn).

A notebook, a web service or a user's thread pool may call ``build()`` from several threads at once. luigi's
instance cache hands them one task object, and a dump from a thread joins the run of that object in progress,
so two runs of one task at once in one process mixed their outputs (attacker at3 A6): a build returned a dict
no run produced, or failed loading the other run's temporary file. The second thread now waits for the first
and finds the task complete; the task runs once and every build returns its one commit.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import TaskLockException
from kart_core.lock import canonical_lock_key, hold_turn

_RUNS: list[str] = []


class TurnPair(kart_core.TaskOnKart[Any]):
    """Dumps the name of the thread running it as output 'a', waits, then as output 'b'."""

    def output(self) -> Any:
        return {"a": self.make_target("turn/a.pkl"), "b": self.make_target("turn/b.pkl")}

    def run(self) -> None:
        me = threading.current_thread().name
        _RUNS.append(me)
        self.dump(me, "a")
        time.sleep(0.3)  # the other thread's build is meanwhile at this task
        self.dump(me, "b")


class TurnRoot(kart_core.TaskOnKart[Any]):
    """Loads TurnPair (missing) and dumps what it saw, tagged with its own name."""

    tag = luigi.Parameter()

    def requires(self) -> Any:
        return TurnPair(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        loaded = self.load()
        self.dump(f"{self.tag}:{loaded['a']}+{loaded['b']}")


def _builds_at_once(calls: dict[str, Any]) -> dict[str, Any]:
    """Call each of ``calls`` (name -> no-argument function) in its own thread, named so, all at once."""
    results: dict[str, Any] = {}
    start = threading.Barrier(len(calls))

    def call(name: str) -> None:
        start.wait(10)
        try:
            results[name] = calls[name]()
        except Exception as exc:  # noqa: BLE001 - reported in the result
            results[name] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=call, args=(name,), name=name) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    _RUNS.clear()


def test_two_threads_building_one_missing_task_run_it_once(workspace: str) -> None:
    results = _builds_at_once({name: lambda: kart_core.build(TurnPair(workspace_directory=workspace)) for name in "XY"})
    assert len(_RUNS) == 1  # was: both threads in run() at once
    (ran,) = _RUNS
    assert results == {"X": {"a": ran, "b": ran}, "Y": {"a": ran, "b": ran}}  # was e.g. Y: {'a': 'X', 'b': 'Y'}
    luigi.task_register.Register.clear_instance_cache()
    assert kart_core.build(TurnPair(workspace_directory=workspace)) == {"a": ran, "b": ran}
    names = sorted(os.listdir(os.path.join(workspace, "turn")))
    assert [name for name in names if name.endswith(".kart-tmp")] == []


def test_a_thread_pool_building_two_roots_of_one_missing_task(workspace: str) -> None:
    """Two workers of a user's thread pool each build a root; both roots need the same missing task."""
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="pool") as pool:
        futures = [
            pool.submit(kart_core.build, TurnRoot(tag=tag, workspace_directory=workspace), workers=1) for tag in "pq"
        ]
        values = [future.result(60) for future in futures]
    assert len(_RUNS) == 1  # was: TurnPair ran in both workers, each root saw a mix
    (ran,) = _RUNS
    assert values == [f"p:{ran}+{ran}", f"q:{ran}+{ran}"]
    assert TurnPair(workspace_directory=workspace).complete()


def test_a_rerun_in_two_threads_runs_and_returns_one_commit_each(workspace: str) -> None:
    kart_core.build(TurnPair(workspace_directory=workspace))
    _RUNS.clear()
    results = _builds_at_once(
        {name: lambda: kart_core.build(TurnPair(rerun=True, workspace_directory=workspace)) for name in "XY"}
    )
    # The second thread waited for the first one's rerun, which it then found complete.
    assert len(_RUNS) == 1
    (ran,) = _RUNS
    assert results == {"X": {"a": ran, "b": ran}, "Y": {"a": ran, "b": ran}}


def test_hold_turn_excludes_threads_and_forgets_its_keys(tmp_path: Any) -> None:
    from kart_core import lock

    key = canonical_lock_key(str(tmp_path / "out.pkl"))
    waited: list[bool] = []
    with hold_turn(key) as first:
        assert first is False
        with pytest.raises(TaskLockException, match="Another thread of this process holds the turn of"):
            _in_other_thread(lambda: hold_turn(key, wait_seconds=0.05).__enter__())

        def later() -> None:
            with hold_turn(key) as second:
                waited.append(second)

        thread = threading.Thread(target=later)
        thread.start()
        time.sleep(0.1)
        assert waited == []  # still waiting for this thread's turn
    thread.join(10)
    assert waited == [True]
    assert key not in lock._turns.entries  # no table that grows with every key a process has seen


def _in_other_thread(function: Any) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function).result(10)


def test_two_task_objects_of_one_output_spelled_two_ways_run_once(workspace: str) -> None:
    """Why the turn table is the process's (kart_core.lock's docstring): threads holding different task objects
    of one output (the workspace relative in one, absolute in the other; no shared instance) still take turns."""
    relative = os.path.relpath(workspace)  # the tests run in their temporary folder
    first = TurnPair(workspace_directory=relative)
    luigi.task_register.Register.clear_instance_cache()
    second = TurnPair(workspace_directory=workspace)
    assert first is not second and first.make_unique_id() == second.make_unique_id()
    results = _builds_at_once({"X": lambda: kart_core.build(first), "Y": lambda: kart_core.build(second)})
    assert len(_RUNS) == 1
    (ran,) = _RUNS
    assert results == {"X": {"a": ran, "b": ran}, "Y": {"a": ran, "b": ran}}
