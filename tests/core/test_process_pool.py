"""The process pool: the caller's plugins run in the worker processes (or are refused before anything
runs), and tasks whose class cannot be pickled run on threads with one warning naming the class."""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, PluginError, ProcessPoolFallbackWarning, TaskDefinitionError
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.hooks.manager import declared_entry_points
from kart_core.process_pool import PluginRecipe, plugin_recipe, ship, unpicklable_classes
from kart_core.runlog import RunLogPlugin
from kart_core.runner import default_hook_manager


class PpLeaf(kart_core.TaskOnKart[int]):
    value = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.value)


class PpSum(kart_core.TaskOnKart[int]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(sum(self.load("leaves")))


class FileRecorder:
    """A plugin that appends ``pid label`` to a file after each task runs (works across processes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {task.kart_label()}\n")


def _recorded(path: Path) -> list[tuple[int, str]]:
    return [(int(pid), label) for pid, label in (line.split(" ", 1) for line in path.read_text().splitlines())]


def _fan_in(workspace: str, width: int) -> PpSum:
    return PpSum(
        leaves=[PpLeaf(value=v, workspace_directory=workspace) for v in range(width)], workspace_directory=workspace
    )


def test_the_callers_plugin_runs_in_the_worker_processes(workspace: str, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    manager = create_hook_manager([FileRecorder(str(record)), builtin_formats], load_entry_points=False)
    root = _fan_in(workspace, 6)
    assert kart_core.build(root, workers=2, executor="process", hook_manager=manager) == sum(range(6))
    recorded = _recorded(record)
    assert sorted(label for _, label in recorded) == sorted(
        [root.kart_label()] + [PpLeaf(value=v, workspace_directory=workspace).kart_label() for v in range(6)]
    )
    assert os.getpid() not in {pid for pid, _ in recorded}  # each ran in a worker process
    # The caller's manager has no RunLogPlugin, so the workers write no run logs either.
    assert not (Path(workspace) / "log" / "task_log").exists()


def test_the_default_plugins_are_recreated_in_the_workers(workspace: str, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    manager = create_hook_manager([RunLogPlugin(), builtin_formats, FileRecorder(str(record))])
    kart_core.build(_fan_in(workspace, 3), workers=2, executor="process", hook_manager=manager)
    assert len(_recorded(record)) == 4
    assert len(list((Path(workspace) / "log" / "task_log").iterdir())) == 4  # RunLogPlugin ran too


def test_a_plugin_that_cannot_be_pickled_is_refused_before_anything_runs(workspace: str) -> None:
    class LocalPlugin:
        @hookimpl
        def kart_after_task_run(self, task: Any, processing_time: float) -> None:
            pass

    manager = create_hook_manager([LocalPlugin()], load_entry_points=False)
    root = _fan_in(workspace, 3)
    with pytest.raises(PluginError, match=r"LocalPlugin cannot be sent to worker processes.*executor=\"thread\""):
        kart_core.build(root, workers=2, executor="process", hook_manager=manager)
    assert not root.complete() and not any(PpLeaf(value=v, workspace_directory=workspace).complete() for v in range(3))
    # The same plugin is fine on threads.
    assert kart_core.build(root, workers=2, executor="thread", hook_manager=manager) == 3


def test_the_recipe_names_modules_and_marks_the_built_in_and_entry_point_plugins() -> None:
    recipe = plugin_recipe(default_hook_manager())
    assert recipe.run_log and recipe.objects == ()
    assert recipe.entry_points == declared_entry_points()  # the worker imports these, it does not scan again
    assert recipe.modules == (builtin_formats.__name__,)
    recorder = FileRecorder("/nowhere")
    custom = plugin_recipe(create_hook_manager([recorder], load_entry_points=False))
    assert custom == PluginRecipe(objects=(pickle.dumps(recorder),))


def _local_task_class() -> type[kart_core.TaskOnKart[int]]:
    class PpLocalDouble(kart_core.TaskOnKart[int]):
        value = luigi.IntParameter()

        def run(self) -> None:
            self.dump(2 * self.value)

    return PpLocalDouble


def test_a_task_class_defined_in_a_function_runs_on_threads_with_one_warning(workspace: str) -> None:
    local = _local_task_class()
    root = PpSum(
        leaves=[local(value=v, workspace_directory=workspace) for v in range(5)], workspace_directory=workspace
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kart_core.build(root, workers=2, executor="process") == 2 * sum(range(5))
    fallbacks = [w for w in caught if issubclass(w.category, ProcessPoolFallbackWarning)]
    assert len(fallbacks) == 1
    assert "_local_task_class.<locals>.PpLocalDouble" in str(fallbacks[0].message)
    assert "runs on threads" in str(fallbacks[0].message)


def test_only_classes_pickle_cannot_find_are_named() -> None:
    local = _local_task_class()
    tasks = [PpLeaf(value=1), PpLeaf(value=2), local(value=1), local(value=2)]
    assert unpicklable_classes(tasks) == [f"{__name__}._local_task_class.<locals>.PpLocalDouble"]


class PpStep(kart_core.TaskOnKart[int]):
    """Step n of a chain: needs step n - 1 and dumps n + (step n - 1)."""

    n = luigi.IntParameter()

    def requires(self) -> Any:
        return PpStep(n=self.n - 1, workspace_directory=self.workspace_directory) if self.n else []

    def run(self) -> None:
        self.dump(self.n + (self.load() if self.n else 0))


def test_a_shipped_task_leaves_its_cached_upstreams_behind(workspace: str) -> None:
    from kart_core.graph import walk

    sizes = []
    for depth in (5, 400):
        root = PpStep(n=depth, workspace_directory=workspace)
        walk([root], expand=lambda task: True)  # fills each task's requires() memo, as a build does
        assert root.kart_requires() == [PpStep(n=depth - 1, workspace_directory=workspace)]
        shipped = pickle.loads(ship(root))
        assert shipped.n == depth and shipped.make_unique_id() == root.make_unique_id()
        assert shipped.kart_requires()[0].n == depth - 1  # computed again in the worker
        sizes.append(len(ship(root)))
    assert sizes[1] < 1.1 * sizes[0]  # one task (its id strings are longer), not the whole chain


def test_a_deep_chain_builds_on_worker_processes(workspace: str) -> None:
    # Pickling each task with its memo carried the whole chain: RecursionError past a few hundred links.
    assert kart_core.build(PpStep(n=350, workspace_directory=workspace), workers=2, executor="process") == sum(
        range(351)
    )


# --- a worker process that dies, an exception that cannot travel back -------------------------------


class PpDies(kart_core.TaskOnKart[int]):
    """Dies when ``how`` says so: ``kill`` SIGKILL, ``term`` SIGTERM, ``exit`` os._exit(3).

    Appends ``start n`` to ``journal`` first, so a test sees how often each ran. The dying task waits
    until task 0 (its sibling in the pool) has started, and writes ``dies n`` just before it dies; the
    sibling, started before any death, waits for that line and stays running, so the broken pool
    always takes it down (no sleeps that a loaded machine could outlast).
    """

    n = luigi.IntParameter()
    how = luigi.Parameter(default="")
    journal = luigi.Parameter()

    def output(self) -> Any:
        return {"a": self.make_target(f"dies/a_{self.n}.pkl"), "b": self.make_target(f"dies/b_{self.n}.pkl")}

    def run(self) -> None:
        import signal
        import time

        journal = Path(self.journal)
        died_before = journal.exists() and "dies " in journal.read_text()
        with open(journal, "a", encoding="utf-8") as file:
            file.write(f"start {self.n}\n")
        if self.how:
            self.dump(self.n, "a")  # staged, never committed
            _wait_for_line(journal, "start 0")  # the sibling is running
            _write_dies(journal, self.n)
            if self.how == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL if self.how == "kill" else signal.SIGTERM)
            time.sleep(30)
        elif not died_before:
            _wait_for_line(journal, "dies ")
            time.sleep(30)  # the broken pool terminates this worker at once; if it does not, the test fails
        self.dump(self.n, "a")
        self.dump(self.n, "b")


def _wait_for_line(journal: Path, start: str, timeout: float = 60) -> None:
    """Wait until a line of ``journal`` starts with ``start`` (another worker process writes it)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and any(line.startswith(start) for line in journal.read_text().splitlines()):
            return
        time.sleep(0.01)


def _write_dies(journal: Path, n: int) -> None:
    with open(journal, "a", encoding="utf-8") as file:
        file.write(f"dies {n}\n")


class PpDiesRoot(kart_core.TaskOnKart[int]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(len(self.load("leaves")))


def _dying_graph(workspace: str, journal: Path, how: str, width: int = 4) -> tuple[PpDiesRoot, list[PpDies]]:
    leaves = [
        PpDies(n=n, how=how if n == 1 else "", journal=str(journal), workspace_directory=workspace)
        for n in range(width)
    ]
    return PpDiesRoot(leaves=leaves, workspace_directory=workspace), leaves


def _starts(journal: Path) -> list[int]:
    """The tasks that started (``start n`` lines), sorted, once per start."""
    return sorted(int(line.split()[1]) for line in journal.read_text().splitlines() if line.startswith("start "))


@pytest.mark.parametrize(
    ("how", "said", "exitcode"),
    [
        ("kill", "worker process died (signal 9, SIGKILL)", -9),
        ("exit", "worker process died (exit code 3)", 3),
    ],
)
def test_a_dead_worker_fails_its_task_only_and_the_running_sibling_runs_again(
    workspace: str, tmp_path: Path, how: str, said: str, exitcode: int
) -> None:
    journal = tmp_path / "journal.txt"
    root, leaves = _dying_graph(workspace, journal, how)
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(root, workers=2, executor="process", keep_going=True)
    failures = caught.value.raised_exceptions
    assert list(failures) == [leaves[1].make_unique_id()]
    (error,) = failures[leaves[1].make_unique_id()]
    assert isinstance(error, kart_core.errors.WorkerDiedError)
    assert error.exitcode == exitcode
    assert said in str(error) and leaves[1].kart_label() in str(error)
    assert "1 task(s) failed; 1 not run" in str(caught.value)
    # keep_going: the other leaves were built; leaf 0 shared the pool with the dead one and ran twice
    assert [leaf.complete() for leaf in leaves] == [True, False, True, True]
    assert [leaf.output()["a"].load() for leaf in (leaves[0], leaves[2], leaves[3])] == [0, 2, 3]
    assert _starts(journal) == [0, 0, 1, 2, 3]
    # what the dead worker staged is at no final path and counts for nothing
    assert not Path(leaves[1].output()["a"].path()).exists()
    assert not root.complete()


def test_a_callers_sigterm_handler_does_not_keep_a_taken_down_sibling_running(workspace: str, tmp_path: Path) -> None:
    """Inside an Airflow task the caller has its own SIGTERM handler; forked workers inherit it. Here it
    ignores the signal: the broken pool's SIGTERM must still end the sibling (it runs again, once)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # tests/conftest restores the handler after the test
    journal = tmp_path / "journal.txt"
    root, leaves = _dying_graph(workspace, journal, "exit")
    with pytest.raises(kart_core.GokartBuildError):
        kart_core.build(root, workers=2, executor="process", keep_going=True)
    assert [leaf.complete() for leaf in leaves] == [True, False, True, True]
    assert _starts(journal) == [0, 0, 1, 2, 3]


def test_a_dead_worker_without_keep_going_still_finishes_the_sibling_it_took_down(
    workspace: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.txt"
    root, leaves = _dying_graph(workspace, journal, "kill")
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(root, workers=2, executor="process")
    assert leaves[1].kart_label() in str(caught.value) and "WorkerDiedError: " in str(caught.value)
    assert [leaf.complete() for leaf in leaves] == [True, False, False, False]
    assert _starts(journal) == [0, 0, 1]


@pytest.mark.slow
def test_a_worker_killed_by_sigterm_is_found_by_running_the_suspects_alone(workspace: str, tmp_path: Path) -> None:
    # SIGTERM is also what concurrent.futures sends the other workers: the exit codes cannot tell them apart
    journal = tmp_path / "journal.txt"
    root, leaves = _dying_graph(workspace, journal, "term", width=3)
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(root, workers=2, executor="process", keep_going=True)
    (error,) = caught.value.raised_exceptions[leaves[1].make_unique_id()]
    assert isinstance(error, kart_core.errors.WorkerDiedError) and error.exitcode == -15
    assert "signal 15, SIGTERM" in str(error)
    assert [leaf.complete() for leaf in leaves] == [True, False, True]
    assert _starts(journal).count(1) == 2  # once beside leaf 0, once alone


class PpArgsError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code={code}: {detail}")
        self.code = code


class PpRaises(kart_core.TaskOnKart[int]):
    kind = luigi.Parameter()

    def run(self) -> None:
        if self.kind == "args":
            raise PpArgsError(3, "quota exceeded")
        if self.kind == "lock":
            error = RuntimeError("holds a lock")
            error.lock = threading.Lock()  # type: ignore[attr-defined]
            raise error
        raise ValueError("plain")


class PpRaisesRoot(kart_core.TaskOnKart[int]):
    def requires(self) -> Any:
        ws = self.workspace_directory
        return [PpRaises(kind=kind, workspace_directory=ws) for kind in ("args", "lock", "plain")] + [
            PpLeaf(value=v, workspace_directory=ws) for v in range(2)
        ]

    def run(self) -> None:
        self.dump(1)


def test_an_exception_that_cannot_travel_back_comes_back_as_a_kart_error(workspace: str) -> None:
    root = PpRaisesRoot(workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(root, workers=2, executor="process", keep_going=True)
    errors = {
        task.kind: caught.value.raised_exceptions[task.make_unique_id()][0]
        for task in root.requires()
        if isinstance(task, PpRaises)
    }
    leaves_done = [task.complete() for task in root.requires() if isinstance(task, PpLeaf)]
    args, lock, plain = errors["args"], errors["lock"], errors["plain"]
    assert isinstance(args, kart_core.errors.UnsendableTaskError)
    assert args.type_name == f"{__name__}.PpArgsError" and args.original_message == "code=3: quota exceeded"
    assert "missing 1 required positional argument" in str(args) and "PpRaises[" in str(args)
    assert 'raise PpArgsError(3, "quota exceeded")' in args.remote_traceback
    assert isinstance(lock, kart_core.errors.UnsendableTaskError)
    assert lock.type_name == "RuntimeError" and lock.original_message == "holds a lock"
    assert "cannot pickle '_thread.lock'" in str(lock) and "raise error" in lock.remote_traceback
    assert type(plain) is ValueError and str(plain) == "plain"  # a picklable one comes back as itself
    assert leaves_done == [True, True]
    assert "3 task(s) failed; 1 not run" in str(caught.value)


class PpGhost(kart_core.TaskOnKart[int]):
    """Raises an exception whose class exists in the worker process only: it pickles there, and the
    caller cannot unpickle it (the pool's result thread breaks the pool, no worker died)."""

    journal = luigi.Parameter()

    def run(self) -> None:
        import sys

        # Fail only once the sibling is running, so the broken pool takes it down (else it may not have started).
        journal = Path(self.journal)
        _wait_for_line(journal, "start 0")
        _write_dies(journal, 1)
        module = sys.modules[__name__]
        ghost = type("GhostError", (Exception,), {"__module__": __name__})
        module.GhostError = ghost  # type: ignore[attr-defined]
        raise ghost("seen only in the worker")


class PpGhostRoot(kart_core.TaskOnKart[int]):
    journal = luigi.Parameter()

    def requires(self) -> Any:
        ws = self.workspace_directory
        return [
            PpGhost(journal=self.journal, workspace_directory=ws),
            PpDies(n=0, journal=self.journal, workspace_directory=ws),
        ]

    def run(self) -> None:
        self.dump(1)


@pytest.mark.slow
def test_a_result_the_caller_cannot_unpickle_fails_its_task_after_the_suspects_ran_alone(
    workspace: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.txt"
    root = PpGhostRoot(journal=str(journal), workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(root, workers=2, executor="process", keep_going=True)
    ghost, sibling = root.requires()
    (error,) = caught.value.raised_exceptions[ghost.make_unique_id()]
    assert isinstance(error, kart_core.errors.WorkerDiedError)
    assert "its result could not be received from the worker process" in str(error)
    assert "GhostError" in str(error) and ghost.kart_label() in str(error)
    assert list(caught.value.raised_exceptions) == [ghost.make_unique_id()]
    assert sibling.complete() and _starts(journal) == [0, 0]  # taken down once, then run alone


class HoldsALock(kart_core.TaskOnKart[int]):
    """Keeps a lock made in __init__ (a client or connection is the same case): it does not pickle."""

    i = luigi.IntParameter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = threading.Lock()

    def run(self) -> None:
        with self._guard:
            self.dump(self.i)


class AllLocked(kart_core.TaskOnKart[list[int]]):
    def requires(self) -> Any:
        return [HoldsALock(i=i, workspace_directory=self.workspace_directory) for i in range(3)]

    def run(self) -> None:
        self.dump(self.load())


def test_a_task_holding_an_attribute_that_does_not_pickle_names_it_and_the_ways_out(workspace: str) -> None:
    # luigi's workers fork, so gokart never pickles a task; kart's process workers receive each task pickled.
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(AllLocked(workspace_directory=workspace), workers=2)
    failures = [error for errors in raised.value.raised_exceptions.values() for error in errors]
    assert failures and all(isinstance(error, TaskDefinitionError) for error in failures)
    assert "its attribute '_guard' (a _thread.lock)" in str(failures[0])
    assert 'executor="thread"' in str(failures[0]) and "HoldsALock[" in str(failures[0])
    assert kart_core.build(AllLocked(workspace_directory=workspace), workers=2, executor="thread") == [0, 1, 2]


_SLOW_BUILD = """
import sys, time
import luigi
import kart_core


class OrphanSlow(kart_core.TaskOnKart):
    i = luigi.IntParameter()

    def run(self):
        time.sleep(60)
        self.dump(self.i)


class OrphanTop(kart_core.TaskOnKart):
    def requires(self):
        return [OrphanSlow(i=i) for i in range(4)]

    def run(self):
        self.dump(sum(self.load()))


kart_core.build(OrphanTop(workspace_directory=sys.argv[1]), workers=2, executor="process")
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited: only its exit status is left for whoever reaps it


def test_the_pools_workers_exit_when_the_building_process_is_killed(tmp_path: Path) -> None:
    """A SIGKILL of the building process (the OOM killer's way) left both pool workers alive for good, each holding
    its task's memory (attacker at15 F12): they exit within seconds now, and nothing of their tasks is committed."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "orphan_build.py"
    script.write_text(_SLOW_BUILD)
    workspace = tmp_path / "ws"
    build = subprocess.Popen([sys.executable, str(script), str(workspace)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = [pid for pid in _children(build.pid) if _alive(pid)]
            assert build.poll() is None, "the build ended before its workers started"
        assert len(workers) >= 2, workers
        time.sleep(1.0)  # the workers are in their tasks' run()
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "pool workers outlived the killed build"
    finally:
        for pid in [build.pid, *_children(build.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not list(workspace.rglob("OrphanSlow_*.pkl"))


class PpSiblings(kart_core.TaskOnKart[int]):
    """Dumps how many worker processes of the pool are alive: the building process's children that run its command
    (forked workers share it; multiprocessing's resource tracker does not)."""

    value = luigi.IntParameter()

    def run(self) -> None:
        parent = os.getppid()
        with open(f"/proc/{parent}/cmdline", "rb") as file:
            command = file.read()
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        workers = 0
        for child in children:
            with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as file:
                workers += file.read() == command
        self.dump(workers)


class PpSiblingsRoot(kart_core.TaskOnKart[list[int]]):
    count = luigi.IntParameter()

    def requires(self) -> Any:
        return [PpSiblings(value=index) for index in range(self.count)]

    def run(self) -> None:
        self.dump(self.load())


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts worker processes through Linux's /proc")
@pytest.mark.parametrize("count", [1, 2])
def test_the_pool_has_no_more_workers_than_tasks_to_run(workspace: str, count: int) -> None:
    """workers=8 for one or two tasks forks one or two worker processes (attacker at25 F1: it forked eight, and
    workers=10**6 kept forking until the machine ran out of processes)."""
    if count == 1:
        values = [kart_core.build(PpSiblings(value=0), workers=8, executor="process", reset_register=False)]
    else:
        # The root runs after its two leaves (three tasks, at most two at once): the pool has three workers at most.
        values = kart_core.build(PpSiblingsRoot(count=2), workers=8, executor="process", reset_register=False)
    tasks = count if count == 1 else count + 1
    assert values and all(1 <= value <= tasks for value in values), values
