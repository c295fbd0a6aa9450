"""Dumps and path writes from threads and child processes that a task's run() starts (kart_core.transaction.join).

ML code often hands work to a ThreadPoolExecutor (or joblib threads) inside run(). Such a thread does not
inherit the run's context, yet its dump of the task's output is the run's: staged with the others and
committed by the run (gokart's dumps are plain writes, so gokart keeps it too), and undone when the run
fails. A write from a child process of the run cannot join it and fails with a clear RunWriteError.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any, Literal

import luigi
import pytest
from gokart_twin import run_both

import kart_core
from kart_core.errors import GokartBuildError, RunWriteError
from kart_core.manifest import read_unverified
from kart_core.orchestrate import orchestrate
from kart_core.storage import storage_for


def _in_thread(how: str, function: Any, *args: Any) -> None:
    """Call ``function(*args)`` in a new thread (a pool's or a bare one) and wait; re-raise its error here."""
    if how == "pool":
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(function, *args).result()
        return
    errors: list[BaseException] = []

    def call() -> None:
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the run's thread
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


class ThrTwo(kart_core.TaskOnKart[Any]):
    """Dumps output 'a' from a thread it starts and 'b' from its own thread; ``fail`` raises after both."""

    how = luigi.ChoiceParameter(choices=["pool", "thread"], default="pool")
    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return {"a": self.make_target("thr/a.pkl"), "b": self.make_target("thr/b.pkl")}

    def run(self) -> None:
        _in_thread(self.how, self.dump, f"from-{self.how}", "a")
        self.dump("main", "b")
        assert self.load_own("a") == f"from-{self.how}"  # the run sees the thread's staged dump
        if self.fail:
            raise RuntimeError("fails after the thread dumped")

    def load_own(self, key: str) -> Any:
        return self.output()[key].load()


class ThrSum(kart_core.TaskOnKart[Any]):
    """Loads ThrTwo's outputs in a thread it starts and dumps their joined text from that thread."""

    upstream = kart_core.TaskInstanceParameter()

    def requires(self) -> Any:
        return self.upstream

    def run(self) -> None:
        def work() -> None:
            loaded = self.load()
            self.dump(f"{loaded['a']}+{loaded['b']}")

        _in_thread("pool", work)


class ThrPath(kart_core.TaskOnKart[Any]):
    """Writes its csv by path from a thread it starts; ``fail`` raises after the write."""

    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("thr/w.csv")

    def run(self) -> None:
        def write() -> None:
            path = self.output().path()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write("a\n1\n")

        _in_thread("pool", write)
        if self.fail:
            raise RuntimeError("failed after writing")


class ThrChild(kart_core.TaskOnKart[Any]):
    """Dumps its output from a child process (``start``: fork or spawn) and re-raises the child's error."""

    start = luigi.ChoiceParameter(choices=["fork", "spawn"], default="fork")

    def run(self) -> None:
        context = multiprocessing.get_context(self.start)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            pool.submit(self.dump, 7).result()


class ThrForked(kart_core.TaskOnKart[Any]):
    """Dumps its output from a bare forked child (multiprocessing.Process): the child's error stays there."""

    def run(self) -> None:
        child = multiprocessing.get_context("fork").Process(target=self.dump, args=(7,))
        child.start()
        child.join()


def _outputs_of(workspace: str) -> set[str]:
    """Every file under the workspace but its run logs, relative (temporary files included)."""
    found = set()
    for folder, _, files in os.walk(workspace):
        for name in files:
            relative = os.path.relpath(os.path.join(folder, name), workspace)
            if not relative.startswith("log" + os.sep):
                found.add(relative)
    return found


def _manifest_keys(task: kart_core.TaskOnKart[Any], key: str = "a") -> set[str]:
    record = task.output()[key].record if isinstance(task.output(), dict) else task.output().record
    manifest = read_unverified(storage_for(record.manifest), record.manifest)
    assert manifest is not None
    return set(manifest.outputs)


@pytest.mark.parametrize("how", ["pool", "thread"])
def test_a_dump_from_a_thread_of_run_is_committed_with_the_run(workspace: str, how: str) -> None:
    task = ThrTwo(how=how, workspace_directory=workspace)
    assert kart_core.build(task) == {"a": f"from-{how}", "b": "main"}
    assert task.complete()
    assert _manifest_keys(task) == {t.record.key for t in task.output().values()}
    again = orchestrate([task])
    assert again.ran == [] and len(again.cached) == 1  # was: "1 ran" on every build, b never written


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_thread_dumps_and_loads_under_each_executor(
    workspace: str, workers: int, executor: Literal["thread", "process"]
) -> None:
    roots = [
        ThrSum(upstream=ThrTwo(how=how, workspace_directory=workspace), workspace_directory=workspace)
        for how in ("pool", "thread")
    ]
    result = orchestrate(roots, workers=workers, executor=executor)
    assert (len(result.ran), len(result.failed)) == (4, 0)
    assert [root.output().load() for root in roots] == ["from-pool+main", "from-thread+main"]
    # ThrSum's loads, made in its thread, are recorded as its inputs (lineage sees its upstream).
    record = roots[0].output().record
    manifest = read_unverified(storage_for(record.manifest), record.manifest)
    assert manifest is not None and {item.key for item in manifest.inputs} == {
        t.record.key for t in roots[0].upstream.output().values()
    }
    luigi.task_register.Register.clear_instance_cache()
    assert len(orchestrate(roots, workers=workers, executor=executor).cached) == 2  # roots complete: not expanded
    assert all(root.upstream.complete() for root in roots)


@pytest.mark.parametrize("workers", [1, 2])
def test_under_luigi_build(workspace: str, workers: int) -> None:
    task = ThrTwo(how="thread", workspace_directory=workspace)
    assert luigi.build([task], local_scheduler=True, log_level="ERROR", workers=workers)
    assert task.complete()
    assert {key: target.load() for key, target in task.output().items()} == {"a": "from-thread", "b": "main"}


@pytest.mark.parametrize("how", ["pool", "thread"])
def test_a_failed_run_leaves_nothing_its_threads_dumped(workspace: str, how: str) -> None:
    task = ThrTwo(how=how, fail=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="fails after the thread dumped"):
        kart_core.build(task)
    assert _outputs_of(workspace) == set()  # was: the thread's a.pkl, committed with a manifest
    assert not task.complete()
    luigi.task_register.Register.clear_instance_cache()
    assert kart_core.build(ThrTwo(how=how, workspace_directory=workspace)) == {"a": f"from-{how}", "b": "main"}


def test_a_path_written_from_a_thread_is_undone_when_the_run_fails(workspace: str) -> None:
    task = ThrPath(fail=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="failed after writing"):
        kart_core.build(task)
    assert not os.path.exists(task.output().path())  # was: kept, and the next build served it as cached
    assert not task.complete()
    luigi.task_register.Register.clear_instance_cache()
    good = ThrPath(workspace_directory=workspace)
    assert list(kart_core.build(good)["a"]) == [1]
    # Written by path from the thread, it got its integrity record at the commit.
    assert _manifest_keys(good) == {good.output().record.key}


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_dump_from_a_child_process_is_refused_clearly(workspace: str, start: str) -> None:
    task = ThrChild(start=start, workspace_directory=workspace)
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(task)
    (error,) = [e for errors in raised.value.raised_exceptions.values() for e in errors]
    assert isinstance(error, RunWriteError)
    message = str(error)
    assert message.startswith(task.kart_label()) and "child of process" in message
    assert "Return the values to the parent process" in message
    assert _outputs_of(workspace) == set()  # was (fork): a staged temporary file left behind
    assert not task.complete()


def test_the_parent_says_a_child_dump_does_not_count(workspace: str, capfd: pytest.CaptureFixture[str]) -> None:
    task = ThrForked(workspace_directory=workspace)
    with pytest.raises(
        GokartBuildError, match=r"A dump from a child process of run\(\) \(multiprocessing\) does not count"
    ):
        kart_core.build(task)
    assert (
        f"RunWriteError: {task.kart_label()}: its output (self.dump) was written from process" in capfd.readouterr().err
    )
    assert _outputs_of(workspace) == set()  # was: a staged .kart-tmp file left by the child


def test_join_refuses_a_write_after_run_returned(workspace: str) -> None:
    from kart_core import transaction
    from kart_core.task_memo import memo_of

    task = ThrPath(workspace_directory=workspace)
    slot = memo_of(task).run_slot()
    with transaction.begin(task, task.kart_label(), slot=slot) as running:
        seen: list[Any] = []
        with running.opened():
            _in_thread("thread", lambda: seen.append(transaction.join(slot, writing=True, what="x")))
        assert seen == [running]
        with pytest.raises(RunWriteError, match="after the task's run\\(\\) returned"):
            _in_thread("thread", transaction.join, slot, True, "x")
        running.committed = True
    _in_thread("thread", lambda: seen.append(transaction.join(slot, writing=True, what="x")))
    assert seen[-1] is None  # the run is over: a dump is one outside any run again


def test_thread_dumps_as_gokart(tmp_path: Path) -> None:
    script = """
    import json, os
    from concurrent.futures import ThreadPoolExecutor
    import gokart

    class D(gokart.TaskOnKart):
        def output(self):
            return {'a': self.make_target('a.pkl'), 'b': self.make_target('b.pkl')}
        def run(self):
            with ThreadPoolExecutor(1) as pool:
                pool.submit(self.dump, 'from-thread', 'a').result()
            self.dump('main', 'b')

    value = gokart.build(D(workspace_directory='ws'), reset_register=False)
    files = sorted(n for n in os.listdir('ws') if n != 'log')
    print(json.dumps({'value': value, 'files': files}))
    """
    results = run_both(script, tmp_path)
    assert results["kart"] == results["gokart"]
    assert results["kart"]["value"] == {"a": "from-thread", "b": "main"}
    assert json.dumps(results["kart"]["files"]).count(".pkl") == 2


# --- threads kart did not start, and that run() did not start, see only committed outputs -------------------

_PAUSED = threading.Event()
_GO = threading.Event()


class ThrPaused(kart_core.TaskOnKart[Any]):
    """Dumps its output, then waits (up to 60 s) until the test lets it return."""

    def run(self) -> None:
        self.dump("done")
        _PAUSED.set()
        _GO.wait(60)


@pytest.mark.parametrize("executor", ["inline", "thread"])
@pytest.mark.parametrize("same_object", [True, False])
def test_a_thread_started_outside_kart_sees_the_committed_state_during_a_run(
    workspace: str, executor: str, same_object: bool
) -> None:
    """A monitoring thread started before the build polls complete() and exists() of the task while its run()
    has dumped but not returned: the output is only staged, so both are False; after the commit, True."""
    _PAUSED.clear()
    _GO.clear()
    task = ThrPaused(workspace_directory=workspace)
    seen: list[tuple[bool, bool]] = []

    def poll() -> None:
        assert _PAUSED.wait(60)
        polled = task if same_object else ThrPaused(workspace_directory=workspace)
        seen.append((polled.complete(), polled.output().exists()))
        _GO.set()

    monitor = threading.Thread(target=poll)
    monitor.start()
    workers = 2 if executor == "thread" else 1
    assert kart_core.build(task, workers=workers, executor="thread") == "done"
    monitor.join(60)
    assert seen == [(False, False)]
    assert ThrPaused(workspace_directory=workspace).complete()
