"""A task's run() that waits for a thread which builds the same task fails fast instead of waiting forever.

The run holds the task's in-process turn (kart_core.lock.hold_turn); a thread it starts and joins, asking for that
turn, would wait for the run while the run waits for it. gokart 1.12.2 cannot build from such a thread at all
(its worker installs a signal handler: ``ValueError: signal only works in main thread``); kart raises
``TurnDeadlockError`` naming the task in that thread, and the run goes on. A thread that waits for the turn while
the run waits for something else (another request of a web service) still waits and finds the task built.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
import pickle
import re
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, TurnDeadlockError
from kart_core.lock import canonical_lock_key, hold_turn


def _outcome(build: Callable[[], Any]) -> str:
    """What a build gave: its value, or the type and message of each error it gathered."""
    try:
        return f"value: {build()}"
    except GokartBuildError as exc:
        errors = [error for found in exc.raised_exceptions.values() for error in found]
        return "; ".join(f"{type(error).__name__}: {error}" for error in errors)


def _in_thread(call: Callable[[], str]) -> str:
    found = ["still waiting after 20 s"]
    thread = threading.Thread(target=lambda: found.__setitem__(0, call()), name="inner")
    thread.start()
    thread.join(20)
    return found[0]


def _in_pool(call: Callable[[], str]) -> str:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inner") as pool:
        return pool.submit(call).result(20)


def _in_thread_pool(call: Callable[[], str]) -> str:
    """multiprocessing's ThreadPool (joblib's threading backend is built on it)."""
    with multiprocessing.pool.ThreadPool(1) as pool:
        pool._pool[0].name = "inner"  # type: ignore[attr-defined]  # its one worker thread, named for the message
        return cast(str, pool.apply_async(call).get(20))


class SelfBuilder(kart_core.TaskOnKart[str]):
    """run() hands a build of this very task (``target='self'``) or of a task needing it to a thread and waits."""

    helper = luigi.Parameter()
    target = luigi.Parameter(default="self")

    def run(self) -> None:
        same = SelfBuilder(helper=self.helper, target=self.target, workspace_directory=self.workspace_directory)
        if self.target == "self":
            build: Callable[[], Any] = lambda: kart_core.build(same)  # noqa: E731
        else:  # a task needing this one, built on two threads of its own: the wait goes through them
            build = lambda: kart_core.build(NeedsSelf(upstream=same), workers=2, executor="thread")  # noqa: E731
        wait = {"thread": _in_thread, "pool": _in_pool, "threadpool": _in_thread_pool}[self.helper]
        self.dump(wait(lambda: _outcome(build)))


class NeedsSelf(kart_core.TaskOnKart[str]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(f"needs: {self.load(self.upstream)}")


def _finishes(build: Callable[[], Any], seconds: float = 60) -> Any:
    """Run ``build`` in a daemon thread; its value, or a failed test when it is still waiting (a deadlock)."""
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(build()), daemon=True, name="outer")
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the build still waits: a deadlock"
    return found[0]


@pytest.mark.parametrize(
    ("helper", "how"), [("thread", "Thread.join"), ("pool", "Future.result"), ("threadpool", "ApplyResult.wait")]
)
def test_a_thread_that_run_joins_building_the_same_task_is_refused(workspace: str, helper: str, how: str) -> None:
    task = SelfBuilder(helper=helper, workspace_directory=workspace)
    got = _finishes(lambda: kart_core.build(task))  # was: waited forever (the run joins the thread)
    assert got.startswith(f"TurnDeadlockError: {task.kart_label()}: thread 'inner")
    assert "while thread 'outer', which runs it in this process" in got
    assert f"({how}): each would wait for the other forever, so nothing was run" in got
    assert "A task cannot be built inside its own run()" in got
    luigi.task_register.Register.clear_instance_cache()
    assert kart_core.build(SelfBuilder(helper=helper, workspace_directory=workspace)) == got  # the run committed


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_the_same_through_a_build_on_two_workers(workspace: str, executor: str) -> None:
    task = SelfBuilder(helper="thread", workspace_directory=workspace)
    got = _finishes(lambda: kart_core.build(NeedsSelf(upstream=task), workers=2, executor=executor))
    assert got.startswith(f"needs: TurnDeadlockError: {task.kart_label()}: thread 'inner'")
    assert re.search(r"while thread '(ThreadPoolExecutor-\d+_\d+|outer|MainThread)', which runs it", got)
    assert "(Thread.join)" in got


def test_a_wait_through_a_nested_build_on_its_own_threads_is_refused(workspace: str) -> None:
    """run() waits for a pool thread, which waits for the thread of its own build that needs this task."""
    task = SelfBuilder(helper="pool", target="needs", workspace_directory=workspace)
    got = _finishes(lambda: kart_core.build(task))
    assert got.startswith(f"TurnDeadlockError: {task.kart_label()}: thread 'ThreadPoolExecutor-")
    assert "which runs it in this process" in got
    assert "(wait)" in got  # the nested build's executor waits for its worker (concurrent.futures.wait)


_RUNS: list[str] = []


class SlowRun(kart_core.TaskOnKart[str]):
    """run() joins a helper thread of its own for a while."""

    def run(self) -> None:
        _RUNS.append(threading.current_thread().name)
        helper = threading.Thread(target=time.sleep, args=(0.6,))
        helper.start()
        helper.join()
        self.dump("slow")


def test_a_thread_started_during_the_run_that_the_run_does_not_wait_for_still_waits(workspace: str) -> None:
    """Like a web service's second request: its thread starts while the run is in progress and must wait."""
    _RUNS.clear()
    first: list[Any] = []
    runner = threading.Thread(target=lambda: first.append(kart_core.build(SlowRun(workspace_directory=workspace))))
    runner.start()
    while not _RUNS:
        time.sleep(0.01)
    second = _finishes(lambda: kart_core.build(SlowRun(workspace_directory=workspace)))
    runner.join(30)
    assert (first, second, len(_RUNS)) == (["slow"], "slow", 1)


_DEPTH: list[int] = []


class Recursive(kart_core.TaskOnKart[str]):
    """run() builds this very task in its own thread, once."""

    def run(self) -> None:
        _DEPTH.append(1)
        depth = len(_DEPTH)
        if depth == 1:
            kart_core.build(Recursive(workspace_directory=self.workspace_directory))
        self.dump(f"depth {depth}")


def test_a_run_that_builds_its_own_task_in_its_own_thread_runs_it_nested(workspace: str) -> None:
    """The thread holds the turn already (kart_core.runner._task_turn is re-entrant per context): the inner build
    runs the task again inside the run, as gokart does; its commit comes first, so the outer run's is superseded
    and both builds return the inner run's output (gokart's outer run overwrites it instead)."""
    _DEPTH.clear()
    assert _finishes(lambda: kart_core.build(Recursive(workspace_directory=workspace))) == "depth 2"
    assert len(_DEPTH) == 2


def test_hold_turn_refuses_a_thread_its_holder_joins(tmp_path: Any) -> None:
    key = canonical_lock_key(str(tmp_path / "out.pkl"))
    seen: list[str] = []

    def waiter() -> None:
        try:
            with hold_turn(key):
                seen.append("got the turn")
        except TurnDeadlockError as exc:
            seen.append(str(exc))

    with hold_turn(key):
        thread = threading.Thread(target=waiter, name="waiter")
        thread.start()
        thread.join(10)
        assert not thread.is_alive()  # was: waited for this thread's turn, which waited for it
    (message,) = seen
    assert message.startswith(f"{key}: thread 'waiter' was asked to build or run it while thread 'MainThread'")
    assert f"(holding its turn, {key}), waits for 'waiter' to finish (Thread.join)" in message


class Failing(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        raise ValueError("fails on purpose")


def test_a_build_error_from_a_worker_process_reaches_the_waiting_run(workspace: str) -> None:
    """A run may hand builds to a process pool and wait: a GokartBuildError raised there must come back. It did not
    unpickle (its two arguments were pickled as one), so the pool's result thread died and .get() never answered."""
    task = Failing(workspace_directory=workspace)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pending = pool.apply_async(kart_core.build, (task,))
        with pytest.raises(GokartBuildError) as info:
            pending.get(20)  # was: multiprocessing.TimeoutError (and without a timeout, a wait forever)
    ((unique_id, (error,)),) = info.value.raised_exceptions.items()
    assert (unique_id, type(error), str(error)) == (task.make_unique_id(), ValueError, "fails on purpose")
    assert str(info.value).startswith("1 task(s) failed")


def test_errors_with_their_own_arguments_pickle() -> None:
    from kart_core.errors import UnknownSchemeError

    error = pickle.loads(pickle.dumps(UnknownSchemeError("foo://x", "foo", "the workspace of T[01234567]")))
    assert (error.url, error.scheme, error.whose) == ("foo://x", "foo", "the workspace of T[01234567]")
    assert str(error).startswith("No storage for the workspace of T[01234567] 'foo://x': the scheme 'foo://'")
