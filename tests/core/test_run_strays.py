"""A thread that run() started and that outlives it joins no run (kart_core.transaction.join, RunSlot.strays).

run() may hand work to a thread and give up on it: ``future.result(timeout=...)`` raises, an executor is shut
down with ``wait=False``, a ``threading.Thread`` is never joined. When that thread later writes the task's
output, the run it belonged to is over. Before, such a write was published as a dump outside any run (a
failed task became complete with its output, attacker at3 A4), or, when the caller retried in the same
process, staged into the retry's run, which committed and returned the failed attempt's value (A8). Now it
raises RunWriteError naming the task and nothing is written; a dump outside any kart run (a gokart-style
script, a thread the run did not start) still writes directly.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, RunWriteError, TaskDefinitionError

_WAIT = 30  # seconds: generous, events end every wait at once in a passing run


class _State:
    """What the tasks below share with a test: the attempts made, the late thread's error, and two events."""

    def __init__(self) -> None:
        self.attempts = 0
        self.late_errors: list[BaseException] = []
        self.go = threading.Event()  # the late thread writes when this is set
        self.done = threading.Event()  # the late thread has written (or failed to)
        self.late: threading.Thread | None = None


_STATE = _State()


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    global _STATE
    _STATE = _State()


def _late(write: Any) -> None:
    """Body of the thread run() leaves behind: wait for ``go``, then ``write()``; its error is kept."""
    try:
        assert _STATE.go.wait(_WAIT)
        write()
    except BaseException as exc:  # noqa: BLE001 - the test reads it
        _STATE.late_errors.append(exc)
    finally:
        _STATE.done.set()


def _write_by_path(target: Any, text: str) -> None:
    path = target.path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write(text)


class _DumpOrPath(kart_core.TaskOnKart[Any]):
    """Writes its output by ``dump`` or by path (``how``), at ``folder/out.pkl`` or ``folder/out.txt``."""

    folder = "stray"
    how = luigi.ChoiceParameter(choices=["dump", "path"], default="dump")

    def output(self) -> Any:
        return self.make_target(f"{self.folder}/out.{'txt' if self.how == 'path' else 'pkl'}")

    def write(self, text: str) -> None:
        if self.how == "path":
            _write_by_path(self.output(), text)
        else:
            self.dump(text)


class StrayRetry(_DumpOrPath):
    """Attempt 1 leaves a thread behind that writes (dump, or by path) and fails; attempt 2 succeeds, and lets
    that thread write while it runs. ``pool``: attempt 1's thread is a ThreadPoolExecutor's, given up on."""

    folder = "stray"
    pool = luigi.BoolParameter(default=False)

    def run(self) -> None:
        _STATE.attempts += 1
        if _STATE.attempts == 1:
            self._leave_behind(lambda: _late(lambda: self.write("from FAILED attempt 1")))
            raise RuntimeError("attempt 1 fails")
        self.write(f"from attempt {_STATE.attempts}")
        _STATE.go.set()  # attempt 1's thread writes now, while this run is in progress
        assert _STATE.done.wait(_WAIT)

    def _leave_behind(self, body: Any) -> None:
        if not self.pool:
            _STATE.late = threading.Thread(target=body)
            _STATE.late.start()
            return
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(body)
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(timeout=0.05)  # run() gives up on it
        pool.shutdown(wait=False)


def _build_with_retry(task: Any) -> Any:
    """build() ``task``; when it fails, build it once more in this process (a retry decorator, a notebook)."""
    try:
        return kart_core.build(task)
    except GokartBuildError:
        luigi.task_register.Register.clear_instance_cache()
        return kart_core.build(task)


def _load_committed(task: Any) -> Any:
    luigi.task_register.Register.clear_instance_cache()
    return type(task)(**task.param_kwargs).output().load()


@pytest.mark.parametrize(("how", "pool"), [("dump", False), ("dump", True), ("path", False)])
def test_a_retry_does_not_take_the_failed_attempts_late_write(workspace: str, how: str, pool: bool) -> None:
    task = StrayRetry(how=how, pool=pool, workspace_directory=workspace)
    value = _build_with_retry(task)
    expected = "from attempt 2"
    assert value == ([expected] if how == "path" else expected)  # was: 'from FAILED attempt 1'
    assert _load_committed(task) == value
    (error,) = _STATE.late_errors
    assert isinstance(error, RunWriteError)
    message = str(error)
    assert message.startswith(task.kart_label())
    assert "Wait for the threads that run() starts before it returns" in message


class StrayEnded(kart_core.TaskOnKart[Any]):
    """run() starts a thread that dumps after run() has ended; ``mode`` fail: run() raises, none: it dumps
    nothing, good: it dumps 'GOOD' and returns."""

    mode = luigi.ChoiceParameter(choices=["fail", "none", "good"])

    def run(self) -> None:
        _STATE.late = threading.Thread(target=_late, args=(lambda: self.dump("LATE"),))
        _STATE.late.start()
        if self.mode == "fail":
            raise RuntimeError("boom")
        if self.mode == "good":
            self.dump("GOOD")


class StrayDownstream(kart_core.TaskOnKart[Any]):
    """Loads StrayEnded and dumps what it saw."""

    upstream = kart_core.TaskInstanceParameter()

    def requires(self) -> Any:
        return self.upstream

    def run(self) -> None:
        self.dump(f"saw {self.load()}")


def _let_the_late_thread_write() -> BaseException:
    """Let the thread the ended run left behind dump, wait for it; the error its dump raised."""
    _STATE.go.set()
    assert _STATE.late is not None
    _STATE.late.join(_WAIT)
    (error,) = _STATE.late_errors
    return error


@pytest.mark.parametrize(("mode", "raised"), [("fail", RuntimeError), ("none", TaskDefinitionError)])
def test_a_thread_of_a_failed_run_does_not_complete_the_task(workspace: str, mode: str, raised: type) -> None:
    task = StrayEnded(mode=mode, workspace_directory=workspace)
    with pytest.raises(GokartBuildError) as failed:
        kart_core.build(StrayDownstream(upstream=task, workspace_directory=workspace))
    assert any(isinstance(e, raised) for errors in failed.value.raised_exceptions.values() for e in errors)
    error = _let_the_late_thread_write()
    assert isinstance(error, RunWriteError) and str(error).startswith(task.kart_label())
    assert not os.path.exists(task.output().path())  # was: 'LATE' published, the failed task complete
    assert not task.complete()


def test_a_thread_of_a_committed_run_does_not_replace_its_output(workspace: str) -> None:
    task = StrayEnded(mode="good", workspace_directory=workspace)
    assert kart_core.build(StrayDownstream(upstream=task, workspace_directory=workspace)) == "saw GOOD"
    error = _let_the_late_thread_write()
    assert isinstance(error, RunWriteError)
    assert _load_committed(task) == "GOOD"  # was: 'LATE', and the downstream stale


def test_a_dump_outside_any_run_still_writes_directly(workspace: str) -> None:
    """gokart-style: a script's own dump, from its thread or one it starts after the run, is written at once."""
    task = StrayEnded(mode="fail", workspace_directory=workspace)
    with pytest.raises(GokartBuildError):
        kart_core.build(task)
    assert isinstance(_let_the_late_thread_write(), RunWriteError)
    task.dump("by the script")
    assert task.output().load() == "by the script" and task.complete()
    writer = threading.Thread(target=task.dump, args=("by a thread the script started",))
    writer.start()
    writer.join(_WAIT)
    assert task.output().load() == "by a thread the script started"


_KEPT_POOL: list[concurrent.futures.ThreadPoolExecutor] = []


class StrayKeptPool(kart_core.TaskOnKart[Any]):
    """Dumps from a worker of a pool kept for the process (made before any run; it starts its thread on the
    first submit, i.e. during this task's first attempt, which then fails)."""

    def run(self) -> None:
        _STATE.attempts += 1
        _KEPT_POOL[0].submit(self.dump, f"attempt {_STATE.attempts}").result(_WAIT)
        if _STATE.attempts == 1:
            raise RuntimeError("attempt 1 fails after its dump")


def test_a_kept_pool_started_by_an_earlier_run_is_refused_with_advice(workspace: str) -> None:
    """The known price: a retry of the task (same object) dumping from that pool's thread is refused, loudly,
    with the fix; nothing is committed."""
    _KEPT_POOL.append(concurrent.futures.ThreadPoolExecutor(1))
    task = StrayKeptPool(workspace_directory=workspace)
    try:
        for _ in range(2):
            with pytest.raises(GokartBuildError) as failed:
                kart_core.build(task)
        (error,) = [e for errors in failed.value.raised_exceptions.values() for e in errors]
        assert isinstance(error, RunWriteError)
        assert "create the pool inside run(), or return the values to run()'s own thread" in str(error)
        assert not task.complete()
    finally:
        _KEPT_POOL.pop().shutdown()


# A pool made before any run, its worker already running (the usual module-level pool of a service that calls
# build()): run() hands it work and gives up on it. Attacker at4 B5: that worker was an outsider of the run, so
# its late write was published after a failed run (the task complete with the failed run's value), or staged
# into a retry's run (the retry returned the failed attempt's value).
_PREMADE_POOL = concurrent.futures.ThreadPoolExecutor(1)
_PREMADE_POOL.submit(lambda: None).result(_WAIT)


class StrayPremade(_DumpOrPath):
    """Attempt 1 submits a late write (dump, or by path) to ``_PREMADE_POOL`` and fails; attempt 2 (a retry in this
    process) writes its own value and lets the late write happen while it runs."""

    folder = "premade"

    def run(self) -> None:
        _STATE.attempts += 1
        if _STATE.attempts == 1:
            _PREMADE_POOL.submit(_late, lambda: self.write("FROM-FAILED-RUN"))
            raise RuntimeError("attempt 1 fails")
        self.write(f"from attempt {_STATE.attempts}")
        _STATE.go.set()
        assert _STATE.done.wait(_WAIT)


def _premade_error(task: Any) -> RunWriteError:
    (error,) = _STATE.late_errors
    assert isinstance(error, RunWriteError), error
    message = str(error)
    assert message.startswith(task.kart_label())
    assert "already running when the task's run() began" in message
    assert "Create the pool inside run() (`with ThreadPoolExecutor() as pool:`)" in message
    return error


@pytest.mark.parametrize("how", ["dump", "path"])
def test_a_premade_pools_late_write_after_a_failed_run_is_refused(workspace: str, how: str) -> None:
    task = StrayPremade(how=how, workspace_directory=workspace)
    with pytest.raises(GokartBuildError):
        kart_core.build(task)
    _STATE.go.set()
    assert _STATE.done.wait(_WAIT)
    _premade_error(task)
    assert not os.path.exists(task.output().path())  # was: 'FROM-FAILED-RUN' there, the failed task complete
    assert not task.complete()


@pytest.mark.parametrize("how", ["dump", "path"])
def test_a_retry_does_not_take_a_premade_pools_late_write(workspace: str, how: str) -> None:
    task = StrayPremade(how=how, workspace_directory=workspace)
    value = _build_with_retry(task)
    assert value == (["from attempt 2"] if how == "path" else "from attempt 2")  # was: 'FROM-FAILED-RUN'
    assert _load_committed(task) == value
    _premade_error(task)


class StrayThreadedFail(kart_core.TaskOnKart[Any]):
    """Fails; built by a thread worker, so the main thread that called build() was alive throughout its run."""

    def run(self) -> None:
        raise RuntimeError("fails")


def test_the_thread_that_waited_in_build_still_dumps_directly(workspace: str) -> None:
    """The main thread (the one that called build() while the run was in a worker thread) is not a stray: a
    script's dump after a failed threaded build writes at once, as in gokart."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the test must run in the main thread")
    task = StrayThreadedFail(workspace_directory=workspace)
    with pytest.raises(GokartBuildError):
        kart_core.build(task, workers=2, executor="thread")
    task.dump("by the script")
    assert task.output().load() == "by the script" and task.complete()
    assert task.output().path().startswith(workspace)
