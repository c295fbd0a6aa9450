"""build(): dependency order, cached rebuilds, parallel workers, the error contract, rerun and config per build."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.runlog import RunLogPlugin


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


# --- rerun: once per build, not once per task object ---------------------------------------------

WORKER_SETUPS = [(1, "thread"), (2, "thread"), (2, "process")]


class BdJournal(kart_core.TaskOnKart[int]):
    """Appends a line to ``journal`` each time it runs and dumps how many runs the journal holds."""

    journal = luigi.Parameter(significant=False)
    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write(f"{self.tag}\n")
        with open(self.journal) as handle:
            self.dump(len(handle.read().splitlines()))


class BdAfterJournal(kart_core.TaskOnKart[int]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(10 * self.load("upstream"))


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
def test_rerun_runs_again_in_every_build_of_one_process(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    journal = str(tmp_path / "journal.txt")
    first = BdJournal(journal=journal, rerun=True, workspace_directory=workspace)
    assert kart_core.build(first, workers=workers, executor=executor) == 1
    again = BdJournal(journal=journal, rerun=True, workspace_directory=workspace)
    assert again is first  # luigi's instance cache: the same object, whose rerun the first build spent
    assert kart_core.build(again, workers=workers, executor=executor) == 2
    assert kart_core.build(again, workers=workers, executor=executor) == 3
    assert Path(journal).read_text() == "a\na\na\n"


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
def test_rerun_of_an_upstream_reruns_it_and_the_incomplete_root_sees_the_new_output(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    journal = str(tmp_path / "journal.txt")
    upstream = BdJournal(journal=journal, tag="up", rerun=True, workspace_directory=workspace)
    assert kart_core.build(upstream, workers=workers, executor=executor) == 1
    root = BdAfterJournal(upstream=upstream, rerun=True, workspace_directory=workspace)
    assert kart_core.build(root, workers=workers, executor=executor) == 20
    assert kart_core.build(root, workers=workers, executor=executor) == 30
    assert Path(journal).read_text() == "up\nup\nup\n"


def test_without_rerun_a_second_build_keeps_the_output(workspace: str, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.txt")
    assert kart_core.build(BdJournal(journal=journal, workspace_directory=workspace)) == 1
    assert kart_core.build(BdJournal(journal=journal, workspace_directory=workspace)) == 1


# --- the error contract: every failure is a GokartBuildError naming the task ----------------------


class BdCompleteRaises(kart_core.TaskOnKart[int]):
    def complete(self) -> bool:
        raise ValueError("complete() broke")


class BdOutputRaises(kart_core.TaskOnKart[int]):
    def output(self) -> Any:
        raise OSError("output() broke")


class BdRequiresRaises(kart_core.TaskOnKart[int]):
    def requires(self) -> Any:
        raise LookupError("requires() broke")


class BdExits(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        sys.exit(3)


class BdInterrupted(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        raise KeyboardInterrupt("stopped in run()")


class BdAbove(kart_core.TaskOnKart[int]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(1)


class AfterBuild:
    """A plugin that keeps the results kart_after_build saw."""

    def __init__(self) -> None:
        self.results: list[kart_core.BuildResult] = []

    @hookimpl
    def kart_after_build(self, tasks: list[Any], result: kart_core.BuildResult) -> None:
        self.results.append(result)


def _manager(plugin: AfterBuild) -> Any:
    return create_hook_manager([RunLogPlugin(), builtin_formats, plugin], load_entry_points=False)


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
@pytest.mark.parametrize(
    ("failing_class", "cause", "text"),
    [(BdCompleteRaises, ValueError, "complete() broke"), (BdOutputRaises, OSError, "output() broke")],
)
def test_complete_or_output_raising_names_the_task_and_its_id(
    workspace: str, workers: int, executor: str, failing_class: type, cause: type, text: str
) -> None:
    failing = failing_class(workspace_directory=workspace)
    root = BdAbove(upstream=failing, workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError) as info:
        kart_core.build(root, workers=workers, executor=executor)
    uid = failing.make_unique_id()
    assert f"- {failing.kart_label()} (unique id {uid}) while the graph was walked" in str(info.value)
    assert f"{cause.__name__}: {text}" in str(info.value)
    assert type(info.value.__cause__) is cause
    assert list(info.value.raised_exceptions) == [uid]
    assert not root.output().exists()


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
def test_requires_raising_names_the_deepest_task_by_class(workspace: str, workers: int, executor: str) -> None:
    root = BdAbove(upstream=BdAbove(upstream=BdRequiresRaises(workspace_directory=workspace)))
    with pytest.raises(kart_core.GokartBuildError) as info:
        kart_core.build(root, workers=workers, executor=executor)
    message = str(info.value)
    assert "- BdRequiresRaises while the graph was walked" in message  # no id: computing it needs requires()
    assert "LookupError: requires() broke" in message and "BdAbove" not in message.split("\n")[1]
    assert isinstance(info.value.__cause__, LookupError)


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
def test_system_exit_in_run_is_that_tasks_failure(workspace: str, workers: int, executor: str) -> None:
    exits = BdExits(workspace_directory=workspace)
    plugin = AfterBuild()
    with pytest.raises(kart_core.GokartBuildError) as info:
        kart_core.build(
            BdAbove(upstream=exits, workspace_directory=workspace),
            workers=workers,
            executor=executor,
            hook_manager=_manager(plugin),
        )
    uid = exits.make_unique_id()
    assert f"- {exits.kart_label()} (unique id {uid}): SystemExit: 3" in str(info.value)
    assert "1 not run" in str(info.value)
    assert isinstance(info.value.__cause__, SystemExit) and info.value.__cause__.code == 3
    assert [list(result.failed) for result in plugin.results] == [[kart_core.node_key(exits)]]


@pytest.mark.parametrize(("workers", "executor"), WORKER_SETUPS)
def test_keyboard_interrupt_in_run_is_reported_then_stops_the_build(
    workspace: str, workers: int, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupted = BdInterrupted(workspace_directory=workspace)
    after = BdAbove(upstream=interrupted, workspace_directory=workspace)
    plugin = AfterBuild()
    with pytest.raises(KeyboardInterrupt) as info:
        kart_core.build(
            [after, BdLeaf(value=77, workspace_directory=workspace)],
            workers=workers,
            executor=executor,
            keep_going=True,
            hook_manager=_manager(plugin),
        )
    uid = interrupted.make_unique_id()
    assert f"kart build interrupted in {interrupted.kart_label()} (unique id {uid})" in str(info.value)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert "stopped in run()" in str(info.value.__cause__)
    (result,) = plugin.results  # reported to the hooks before it was re-raised
    assert isinstance(result.interrupted, KeyboardInterrupt) and kart_core.node_key(interrupted) in result.failed
    assert kart_core.node_key(after) in result.not_run
    assert "1 failed" in capsys.readouterr().err
    if workers == 1:  # serially, nothing starts after the interrupt, keep_going or not
        assert not BdLeaf(value=77, workspace_directory=workspace).complete()


# --- configuration: read afresh by every build --------------------------------------------------


class BdConfigured(kart_core.TaskOnKart[str]):
    value = luigi.Parameter(default="built-in")

    def run(self) -> None:
        self.dump(self.value)


class BdConfiguredAbove(kart_core.TaskOnKart[str]):
    """Has no parameter from the config: only the upstream it creates in requires() has."""

    def requires(self) -> BdConfigured:
        return BdConfigured(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump("above " + self.load())


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kart-test.cfg"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("root_class", [BdConfigured, BdConfiguredAbove])
def test_an_interpolated_environment_variable_is_read_by_every_build(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_class: type
) -> None:
    monkeypatch.setenv("KART_TEST_VALUE", "first")
    kart_core.add_config(_config(tmp_path, "[BdConfigured]\nvalue = ${KART_TEST_VALUE}\n"))
    before = root_class(workspace_directory=workspace)
    expected = "first" if root_class is BdConfigured else "above first"
    assert kart_core.build(before) == expected
    monkeypatch.setenv("KART_TEST_VALUE", "second")
    after = root_class(workspace_directory=workspace)
    assert kart_core.build(after) == expected.replace("first", "second")  # not the stale output
    assert after.make_unique_id() != before.make_unique_id()
    assert BdConfigured(workspace_directory=workspace).value == "second"


@pytest.mark.parametrize("root_class", [BdConfigured, BdConfiguredAbove])
def test_a_config_file_rewritten_between_builds_is_read_again(workspace: str, tmp_path: Path, root_class: type) -> None:
    path = _config(tmp_path, "[BdConfigured]\nvalue = old\n")
    kart_core.add_config(path)
    before = root_class(workspace_directory=workspace)
    assert kart_core.build(before) in ("old", "above old")
    Path(path).write_text("[BdConfigured]\nvalue = newer\n")
    after = root_class(workspace_directory=workspace)
    assert kart_core.build(after) in ("newer", "above newer")  # not the stale output
    assert after.make_unique_id() != before.make_unique_id()
    Path(path).write_text("[BdConfigured]\n")  # the key deleted: the default applies again
    assert kart_core.build(root_class(workspace_directory=workspace)) in ("built-in", "above built-in")


def test_an_edit_that_keeps_size_and_mtime_is_still_seen_at_the_start_of_a_build(
    workspace: str, tmp_path: Path
) -> None:
    path = _config(tmp_path, "[BdConfigured]\nvalue = aaa\n")
    kart_core.add_config(path)
    root = BdConfiguredAbove(workspace_directory=workspace)
    assert kart_core.build(root) == "above aaa"
    stamp = os.stat(path)
    Path(path).write_text("[BdConfigured]\nvalue = bbb\n")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert kart_core.build(BdConfiguredAbove(workspace_directory=workspace)) == "above bbb"
