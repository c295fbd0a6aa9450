"""run_one: the one code path that runs a task — cache check, seed, hooks, run logs, output check."""

from __future__ import annotations

import os
import pickle
import random
import threading

import luigi
import numpy as np
import pytest

import kart_core
from kart_core.errors import TaskDefinitionError
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.runlog import RunLogPlugin
from kart_core.runner import RunStatus, random_seed_of, run_one

LOG_KINDS = ("task_params", "random_seed", "processing_time", "task_log")


class RnDraw(kart_core.TaskOnKart[list]):
    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        self.dump([random.random(), float(np.random.rand())])


class RnNoDump(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        pass


class RnFails(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        raise ValueError("boom in RnFails")


class RnCounting(kart_core.TaskOnKart[int]):
    calls = 0
    lock = threading.Lock()

    def run(self) -> None:
        with RnCounting.lock:
            RnCounting.calls += 1
        self.dump(1)


class Recorder:
    """A plugin that remembers what the hooks saw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @hookimpl
    def kart_before_task_run(self, task, seed, seed_methods):
        self.events.append(("before", type(task).__name__))

    @hookimpl
    def kart_after_task_run(self, task, processing_time):
        self.events.append(("after", type(task).__name__))

    @hookimpl
    def kart_on_task_error(self, task, exception):
        self.events.append(("error", str(exception)))


def test_runs_once_then_reports_cached(workspace: str) -> None:
    task = RnDraw(workspace_directory=workspace)
    assert run_one(task) is RunStatus.RAN
    assert run_one(task) is RunStatus.CACHED


def test_writes_the_five_run_logs(workspace: str) -> None:
    task = RnDraw(workspace_directory=workspace)
    run_one(task)
    uid = task.make_unique_id()
    for kind in LOG_KINDS:
        assert os.path.exists(os.path.join(workspace, "log", kind, f"RnDraw_{uid}.pkl"))
    versions = open(os.path.join(workspace, "log", "module_versions", f"RnDraw_{uid}.txt")).read().splitlines()
    assert any(line.startswith("numpy==") for line in versions)
    assert any(line.startswith("luigi==") for line in versions)


def test_seed_comes_from_the_unique_id(workspace: str) -> None:
    task = RnDraw(workspace_directory=workspace)
    run_one(task)
    seed = int(task.make_unique_id(), 16) % (2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    assert task.output().load() == [random.random(), float(np.random.rand())]
    with open(os.path.join(workspace, "log", "random_seed", f"RnDraw_{task.make_unique_id()}.pkl"), "rb") as f:
        assert pickle.load(f) == {"seed": seed, "seed_methods": ["random.seed", "numpy.random.seed"]}


def test_fix_random_seed_value_zero_is_honoured(workspace: str) -> None:
    task = RnDraw(workspace_directory=workspace, fix_random_seed_value=0)
    assert random_seed_of(task) == 0
    run_one(task)
    random.seed(0)
    assert task.output().load()[0] == random.random()


def test_no_logs_when_supplementary_logs_are_off(workspace: str) -> None:
    run_one(RnDraw(workspace_directory=workspace, should_dump_supplementary_log_files=False))
    assert not os.path.exists(os.path.join(workspace, "log"))


def test_hooks_see_before_after_and_error(workspace: str) -> None:
    recorder = Recorder()
    manager = create_hook_manager([RunLogPlugin(), recorder], load_entry_points=False)
    run_one(RnDraw(workspace_directory=workspace), hook_manager=manager)
    with pytest.raises(ValueError, match="boom"):
        run_one(RnFails(workspace_directory=workspace), hook_manager=manager)
    assert recorder.events == [
        ("before", "RnDraw"),
        ("after", "RnDraw"),
        ("before", "RnFails"),
        ("error", "boom in RnFails"),
    ]


def test_a_run_that_writes_nothing_is_an_error(workspace: str) -> None:
    with pytest.raises(TaskDefinitionError, match=r"RnNoDump\[.{8}\]\.run\(\) finished without writing"):
        run_one(RnNoDump(workspace_directory=workspace))


def test_calling_run_directly_goes_through_run_one(workspace: str) -> None:
    task = RnDraw(workspace_directory=workspace, tag="direct")
    task.run()
    assert os.path.exists(task.kart_log_target("task_params").path())


def test_file_lock_makes_concurrent_runs_happen_once(workspace: str) -> None:
    RnCounting.calls = 0
    task = RnCounting(workspace_directory=workspace, should_lock_run=True)
    threads = [threading.Thread(target=run_one, args=(task,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert RnCounting.calls == 1


def test_lock_argument_locks_a_task_that_does_not_ask_for_it(workspace: str) -> None:
    RnCounting.calls = 0
    task = RnCounting(workspace_directory=workspace)
    threads = [threading.Thread(target=run_one, args=(task,), kwargs={"lock": True}) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert RnCounting.calls == 1


def test_workspace_that_is_a_file_says_so(tmp_path) -> None:
    # The OS error names only a path under the workspace (log/manifest/...); the note says what to fix.
    a_file = tmp_path / "resources"
    a_file.write_text("not a folder")
    with pytest.raises(NotADirectoryError) as raised:
        run_one(RnCounting(workspace_directory=str(a_file)))
    assert any(
        f"RnCounting: workspace_directory {str(a_file)!r} is a file, not a folder" in note
        for note in raised.value.__notes__
    )
    with pytest.raises(kart_core.GokartBuildError) as built:
        kart_core.build(RnCounting(workspace_directory=str(a_file)), reset_register=False)
    assert any("is a file, not a folder" in note for note in built.value.__cause__.__notes__)
    # The build's own message carries the note too: str(error) is what a caller logs, and it dropped it.
    assert f"\n    RnCounting: workspace_directory {str(a_file)!r} is a file, not a folder" in str(built.value)


class RnOwner(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("owner's value")


class RnWritesOwners(kart_core.TaskOnKart[str]):
    """output() hands back another task's target and run() dumps into it."""

    def output(self):  # type: ignore[override]
        return RnOwner(workspace_directory=self.workspace_directory).output()

    def run(self) -> None:
        self.dump("impostor's value")


class RnAliasOfOwner(kart_core.TaskOnKart[str]):
    """output() hands on another task's target, with no run of its own: complete whenever that task is."""

    def output(self):  # type: ignore[override]
        return RnOwner(workspace_directory=self.workspace_directory).output()


def test_a_task_writing_into_another_tasks_target_is_refused(tmp_path) -> None:
    # attacker at24 F15: B's commit rewrote A's manifest as A's own, and A's readers were served B's value.
    workspace = str(tmp_path)
    assert kart_core.build(RnOwner(workspace_directory=workspace), reset_register=False) == "owner's value"
    impostor = RnWritesOwners(workspace_directory=workspace, rerun=True)
    with pytest.raises(
        kart_core.errors.OutputTypeError, match=r"RnWritesOwners\[\w+\]: output\(\) returned RnOwner\[\w+\]'s target"
    ):
        run_one(impostor)
    with pytest.raises(kart_core.GokartBuildError):
        kart_core.build(impostor, reset_register=False)
    assert kart_core.build(RnOwner(workspace_directory=workspace), reset_register=False) == "owner's value"
    # Handing the output on stays possible: complete when the owner is, loads the owner's value.
    assert kart_core.build(RnAliasOfOwner(workspace_directory=workspace), reset_register=False) == "owner's value"
