"""A damaged upstream under a task that must run is rebuilt, not a failed build (kart_core.repair, runner).

The upstream's output is truncated (or its manifest overwritten) after it was committed; the
downstream then runs and loads it. kart runs the upstream again (its commit replaces the damaged
file), logs a warning naming both tasks, the file and what differs, and retries the downstream.
Checked on local disk and on the real S3-compatible server, with one worker and two threads (two
downstreams finding the same damage rebuild it once), and under luigi.build. When rebuilding is
not wanted (repairs off) or not safe (signing refuses the file), the build fails naming the task,
the file and ``kart verify --delete``. A complete downstream does not look at its upstreams.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import DamagedOutputError, GokartBuildError, IntegrityError
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.inspect.verify import verify_workspace
from kart_core.runlog import RunLogPlugin
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class RpSource(kart_core.TaskOnKart[Any]):
    """Counts its runs in ``journal`` (a local file) and dumps 100 numbers; fails when ``refuse`` exists."""

    journal = luigi.Parameter(significant=False)
    refuse = luigi.Parameter(default="", significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("source\n")
        if self.refuse and Path(self.refuse).exists():
            raise RuntimeError("the source cannot be rebuilt now")
        self.dump(list(range(100)))


class RpMiddle(kart_core.TaskOnKart[Any]):
    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump([value * 2 for value in self.load("source")])


class RpSum(kart_core.TaskOnKart[Any]):
    upstream = kart_core.TaskInstanceParameter()
    offset = luigi.IntParameter(default=0)

    def run(self) -> None:
        self.dump(sum(self.load("upstream")) + self.offset)


class RpBoth(kart_core.TaskOnKart[Any]):
    """Two downstreams of one upstream: with two workers they run (and find its damage) side by side."""

    upstream = kart_core.TaskInstanceParameter()

    def requires(self) -> Any:
        return [RpSum(upstream=self.upstream, offset=1), RpSum(upstream=self.upstream, offset=2)]

    def run(self) -> None:
        self.dump([self.load(target) for target in self.input()])


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _rewrite(path: str, change: Any) -> tuple[int, int]:
    """Rewrite ``path`` with ``change(bytes)`` as a writer outside kart would; return (old, new) sizes."""
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    changed = change(data)
    with storage.atomic_write(path) as file:
        file.write(changed)
    return len(data), len(changed)


def _runs(journal: Path) -> int:
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def _built_source(workspace: str, tmp_path: Path, **extra: Any) -> RpSource:
    source = RpSource(journal=str(tmp_path / "journal.txt"), workspace_directory=workspace, **extra)
    assert kart_core.build(RpSum(upstream=source, workspace_directory=workspace), reset_register=False) == 4950
    return source


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_a_truncated_upstream_is_rebuilt_when_its_downstream_runs(
    any_workspace: str, tmp_path: Path, workers: int, executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = _built_source(any_workspace, tmp_path)
    path = source.output().path()
    committed, found = _rewrite(path, lambda data: data[:5])
    root = RpBoth(upstream=source, workspace_directory=any_workspace)
    with caplog.at_level(logging.WARNING, logger="kart_core.runner"):
        value = kart_core.build(root, workers=workers, executor=executor, reset_register=False)
    assert value == [4951, 4952]
    assert _runs(tmp_path / "journal.txt") == 2  # built once, rebuilt once (not once per downstream)
    assert source.output().load() == list(range(100))  # whole again, and its record agrees
    assert verify_workspace(any_workspace).ok
    if executor == "process":
        return  # the warning is logged in the worker process
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) >= 1
    assert f"needs the output of {source.kart_label()}, which is damaged" in warnings[0]
    assert f"{path}: {committed} bytes were committed, found {found} bytes" in warnings[0]
    assert "RpSum[" in warnings[0]


def test_a_same_size_change_is_rebuilt_when_verify_is_on(
    any_workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the content hash sees it; the rebuild writes the committed content back."""
    source = _built_source(any_workspace, tmp_path)
    before = _rewrite(source.output().path(), lambda data: data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    assert before[0] == before[1]
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    assert kart_core.build(RpSum(upstream=source, offset=4, workspace_directory=any_workspace)) == 4954
    assert _runs(tmp_path / "journal.txt") == 2
    assert verify_workspace(any_workspace).ok


def test_two_workers_rebuild_once_under_a_redis_lock(workspace: str, tmp_path: Path, redis_service: Any) -> None:
    """With redis configured the rebuild's lock is redis's (shared by machines), not a local file lock."""
    source = RpSource(
        journal=str(tmp_path / "journal.txt"),
        workspace_directory=workspace,
        redis_host=redis_service.host,
        redis_port=redis_service.port,
    )
    assert kart_core.build(RpSum(upstream=source, workspace_directory=workspace), reset_register=False) == 4950
    _rewrite(source.output().path(), lambda data: data[:7])
    root = RpBoth(upstream=source, workspace_directory=workspace)
    assert kart_core.build(root, workers=2, executor="thread", reset_register=False) == [4951, 4952]
    assert _runs(tmp_path / "journal.txt") == 2


def test_a_damaged_chain_is_rebuilt_from_the_first_damaged_task(workspace: str, tmp_path: Path) -> None:
    """Source and middle both truncated: the middle's rebuild finds the source damaged and rebuilds it first."""
    source = RpSource(journal=str(tmp_path / "journal.txt"), workspace_directory=workspace)
    middle = RpMiddle(source=source, workspace_directory=workspace)
    assert kart_core.build(RpSum(upstream=middle, workspace_directory=workspace), reset_register=False) == 9900
    _rewrite(source.output().path(), lambda data: data[:-3])
    _rewrite(middle.output().path(), lambda data: data[:-3])
    again = RpSum(upstream=middle, offset=7, workspace_directory=workspace)
    assert kart_core.build(again, reset_register=False) == 9907
    assert _runs(tmp_path / "journal.txt") == 2
    assert middle.output().load() == [value * 2 for value in range(100)]


def test_a_damaged_manifest_is_rebuilt_too(any_workspace: str, tmp_path: Path) -> None:
    source = _built_source(any_workspace, tmp_path)
    manifest = log_task_path(source, MANIFEST)
    _rewrite(manifest, lambda data: b"not a manifest")
    assert kart_core.build(RpSum(upstream=source, offset=3, workspace_directory=any_workspace)) == 4953
    assert _runs(tmp_path / "journal.txt") == 2
    with storage_for(manifest).open_read(manifest) as file:
        assert file.read().startswith(b"{")


def test_a_complete_downstream_does_not_look_at_its_upstream(any_workspace: str, tmp_path: Path) -> None:
    """gokart's semantics: the downstream is cached, its upstream's damage does not matter; kart verify sees it."""
    source = _built_source(any_workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    assert kart_core.build(RpSum(upstream=source, workspace_directory=any_workspace), reset_register=False) == 4950
    assert _runs(tmp_path / "journal.txt") == 1
    problems = verify_workspace(any_workspace).problems
    assert [(problem.kind, problem.path) for problem in problems] == [("size", source.output().path())]


def test_with_repairs_off_the_build_fails_naming_task_file_and_fix(
    any_workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _built_source(any_workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(GokartBuildError) as info:
        kart_core.build(RpSum(upstream=source, offset=1, workspace_directory=any_workspace), reset_register=False)
    (errors,) = info.value.raised_exceptions.values()
    assert isinstance(errors[0], DamagedOutputError)
    message = str(errors[0])
    assert source.kart_label() in message and source.output().path() in message
    assert "kart verify --delete" in message and "bytes were committed" in message
    assert _runs(tmp_path / "journal.txt") == 1


def test_repairs_off_in_the_luigi_config(workspace: str, tmp_path: Path) -> None:
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    luigi.configuration.get_config().set("TaskOnKart", "repair_damaged_outputs", "false")
    with pytest.raises(GokartBuildError, match="DamagedOutputError"):
        kart_core.build(RpSum(upstream=source, offset=1, workspace_directory=workspace), reset_register=False)


def test_a_signature_refusal_is_not_rebuilt(workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing says the file was changed: maybe tampering, which a person should look at first."""
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:-5])
    with pytest.raises(GokartBuildError) as info:
        kart_core.build(RpSum(upstream=source, offset=1, workspace_directory=workspace), reset_register=False)
    (errors,) = info.value.raised_exceptions.values()
    assert isinstance(errors[0], IntegrityError)
    message = str(errors[0])
    assert source.output().path() in message and "kart verify --delete" in message
    assert _runs(tmp_path / "journal.txt") == 1


def test_a_rebuild_that_fails_fails_the_downstream_and_keeps_the_file(workspace: str, tmp_path: Path) -> None:
    refuse = tmp_path / "refuse"
    source = _built_source(workspace, tmp_path, refuse=str(refuse))
    _rewrite(source.output().path(), lambda data: data[:5])
    refuse.touch()
    with pytest.raises(GokartBuildError, match="the source cannot be rebuilt now"):
        kart_core.build(RpSum(upstream=source, offset=1, workspace_directory=workspace), reset_register=False)
    assert _runs(tmp_path / "journal.txt") == 2
    assert Path(source.output().path()).stat().st_size == 5  # nothing committed over it
    refuse.unlink()
    assert kart_core.build(RpSum(upstream=source, offset=1, workspace_directory=workspace)) == 4951


def test_under_luigi_build_the_damaged_upstream_is_rebuilt(any_workspace: str, tmp_path: Path) -> None:
    """luigi's own scheduler checks complete() and calls run(); the route into run_one repairs the same way."""
    source = _built_source(any_workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    task = RpSum(upstream=source, offset=5, workspace_directory=any_workspace)
    assert luigi.build([task], local_scheduler=True, workers=1) is True
    assert task.output().load() == 4955
    assert _runs(tmp_path / "journal.txt") == 2


class Recorder:
    """A real pluggy plugin: records each task hook call as (hook, task label) and the build's result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.results: list[kart_core.BuildResult] = []

    @hookimpl
    def kart_before_task_run(self, task: Any, seed: int, seed_methods: list[str]) -> None:
        self.calls.append(("before", task.kart_label()))

    @hookimpl
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        self.calls.append(("after", task.kart_label()))

    @hookimpl
    def kart_on_task_error(self, task: Any, exception: BaseException) -> None:
        self.calls.append(("error", task.kart_label()))

    @hookimpl
    def kart_after_build(self, tasks: list[Any], result: kart_core.BuildResult) -> None:
        self.results.append(result)

    def unpaired(self) -> list[str]:
        """Labels whose before has no after/error yet, in a well-nested order (the calls must nest)."""
        open_runs: list[str] = []
        for hook, label in self.calls:
            if hook == "before":
                open_runs.append(label)
            else:
                assert open_runs and open_runs[-1] == label, self.calls
                open_runs.pop()
        return open_runs


def _manager(plugin: Recorder) -> Any:
    return create_hook_manager([RunLogPlugin(), builtin_formats, plugin], load_entry_points=False)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread")])
def test_hooks_pair_when_a_run_is_retried_after_a_repair(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    """One before, then one after (or error), per task run: the retried downstream is not announced twice."""
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    root = RpSum(upstream=source, offset=6, workspace_directory=workspace)
    recorder = Recorder()
    value = kart_core.build(
        root, workers=workers, executor=executor, hook_manager=_manager(recorder), reset_register=False
    )
    assert value == 4956
    assert recorder.calls == [
        ("before", root.kart_label()),
        ("before", source.kart_label()),
        ("after", source.kart_label()),
        ("after", root.kart_label()),
    ]
    assert recorder.unpaired() == []


def test_hooks_pair_when_the_rebuild_of_the_upstream_fails(workspace: str, tmp_path: Path) -> None:
    refuse = tmp_path / "refuse"
    source = _built_source(workspace, tmp_path, refuse=str(refuse))
    _rewrite(source.output().path(), lambda data: data[:5])
    refuse.touch()
    root = RpSum(upstream=source, offset=8, workspace_directory=workspace)
    recorder = Recorder()
    with pytest.raises(GokartBuildError, match="the source cannot be rebuilt now"):
        kart_core.build(root, hook_manager=_manager(recorder), reset_register=False)
    assert recorder.calls == [
        ("before", root.kart_label()),
        ("before", source.kart_label()),
        ("error", source.kart_label()),
        ("error", root.kart_label()),
    ]


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_the_build_result_counts_repaired_tasks(
    any_workspace: str, tmp_path: Path, workers: int, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The upstream rebuilt inside its downstream's run counts as repaired (not cached), in the summary too."""
    source = _built_source(any_workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    root = RpBoth(upstream=source, workspace_directory=any_workspace)
    recorder = Recorder()
    capsys.readouterr()
    kart_core.build(root, workers=workers, executor=executor, hook_manager=_manager(recorder), reset_register=False)
    (result,) = recorder.results
    assert [result.label(key) for key in result.repaired] == [source.kart_label()]
    assert len(result.ran) == 3 and result.cached == [] and result.ok
    assert "kart build: 3 ran, 1 repaired, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err


def test_a_damaged_chain_counts_both_repairs(workspace: str, tmp_path: Path) -> None:
    """The source lies above the cached middle (outside the walked graph): it is counted all the same."""
    source = RpSource(journal=str(tmp_path / "journal.txt"), workspace_directory=workspace)
    middle = RpMiddle(source=source, workspace_directory=workspace)
    assert kart_core.build(RpSum(upstream=middle, workspace_directory=workspace), reset_register=False) == 9900
    _rewrite(source.output().path(), lambda data: data[:-3])
    _rewrite(middle.output().path(), lambda data: data[:-3])
    recorder = Recorder()
    again = RpSum(upstream=middle, offset=7, workspace_directory=workspace)
    assert kart_core.build(again, hook_manager=_manager(recorder), reset_register=False) == 9907
    (result,) = recorder.results
    assert len(result.repaired) == 2 and result.cached == []
    assert result.label(result.repaired[1]) == middle.kart_label()
    assert result.repaired[0].endswith(source.make_unique_id())
    assert recorder.unpaired() == []


def test_a_damaged_root_is_rebuilt_when_build_loads_it(
    any_workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """build() returns the root's output; a damaged one is rebuilt first (the same rule as for an upstream)."""
    source = _built_source(any_workspace, tmp_path)
    path = source.output().path()
    committed, found = _rewrite(path, lambda data: data[:5])
    with caplog.at_level(logging.WARNING, logger="kart_core.runner"):
        assert kart_core.build(source, reset_register=False) == list(range(100))
    assert _runs(tmp_path / "journal.txt") == 2
    assert verify_workspace(any_workspace).ok
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert f"The output of {source.kart_label()} is damaged" in warning
    assert f"{path}: {committed} bytes were committed, found {found} bytes" in warning


def test_a_damaged_root_with_repairs_off_is_the_named_error(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(DamagedOutputError) as info:
        kart_core.build(source, reset_register=False)
    message = str(info.value)
    assert source.kart_label() in message and source.output().path() in message
    assert "kart verify --delete" in message
    assert _runs(tmp_path / "journal.txt") == 1


def test_a_root_refused_by_its_signature_is_not_rebuilt(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:-5])
    with pytest.raises(IntegrityError, match="kart verify --delete"):
        kart_core.build(source, reset_register=False)
    assert _runs(tmp_path / "journal.txt") == 1


def test_a_build_that_returns_nothing_does_not_look_at_the_root(workspace: str, tmp_path: Path) -> None:
    """gokart's semantics: return_value=False loads nothing, so the damage stays (kart verify finds it)."""
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    assert kart_core.build(source, return_value=False, reset_register=False) is None
    assert _runs(tmp_path / "journal.txt") == 1
    assert [problem.kind for problem in verify_workspace(workspace).problems] == ["size"]


# --- a damaged task whose upstreams were deleted: they are built first ---------------------------


def _remove(path: str) -> None:
    storage_for(path).remove(path)


def _chain(workspace: str, tmp_path: Path) -> tuple[RpSource, RpMiddle, RpSum]:
    source = RpSource(journal=str(tmp_path / "journal.txt"), workspace_directory=workspace)
    middle = RpMiddle(source=source, workspace_directory=workspace)
    root = RpSum(upstream=middle, workspace_directory=workspace)
    assert kart_core.build(root, reset_register=False) == 9900
    return source, middle, root


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_damaged_root_whose_upstreams_were_deleted_builds_them_first(
    any_workspace: str, tmp_path: Path, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The root's rebuild needs the middle and the source, both deleted since: they run before it, and the
    root's repair plus what it had to build count as repaired, in the result and the summary line."""
    source, middle, root = _chain(any_workspace, tmp_path)
    _rewrite(root.output().path(), lambda data: data[:5])
    _remove(middle.output().path())
    _remove(source.output().path())
    recorder = Recorder()
    capsys.readouterr()
    value = kart_core.build(root, workers=2, executor=executor, hook_manager=_manager(recorder), reset_register=False)
    assert value == 9900
    assert _runs(tmp_path / "journal.txt") == 2
    assert middle.output().load() == [value * 2 for value in range(100)]
    assert verify_workspace(any_workspace).ok
    (result,) = recorder.results
    # Upstreams first (the source, then the middle), then the root; in the order they committed.
    assert result.repaired == [kart_core.node_key(source), kart_core.node_key(middle), kart_core.node_key(root)]
    assert result.ran == [] and result.cached == [] and result.ok
    assert "kart build: 0 ran, 3 repaired, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err
    assert recorder.unpaired() == []


def test_a_damaged_upstream_whose_own_upstream_was_deleted_builds_it_first(any_workspace: str, tmp_path: Path) -> None:
    """The middle (damaged) is needed by a new downstream; its source is gone: built, then the middle, then it."""
    source, middle, _ = _chain(any_workspace, tmp_path)
    _rewrite(middle.output().path(), lambda data: data[:-3])
    _remove(source.output().path())
    recorder = Recorder()
    again = RpSum(upstream=middle, offset=7, workspace_directory=any_workspace)
    assert kart_core.build(again, hook_manager=_manager(recorder), reset_register=False) == 9907
    assert _runs(tmp_path / "journal.txt") == 2
    (result,) = recorder.results
    assert result.repaired == [kart_core.node_key(source), kart_core.node_key(middle)]
    assert [result.label(key) for key in result.ran] == [again.kart_label()]


def test_a_damaged_root_whose_upstream_cannot_be_built_names_it(workspace: str, tmp_path: Path) -> None:
    """The deleted source fails when built for the repair: its error, not a missing-file error of the root's run."""
    refuse = tmp_path / "refuse"
    source = RpSource(journal=str(tmp_path / "journal.txt"), refuse=str(refuse), workspace_directory=workspace)
    root = RpSum(upstream=source, workspace_directory=workspace)
    assert kart_core.build(root, reset_register=False) == 4950
    _rewrite(root.output().path(), lambda data: data[:5])
    _remove(source.output().path())
    refuse.touch()
    with pytest.raises(RuntimeError, match="the source cannot be rebuilt now"):
        kart_core.build(root, reset_register=False)
    assert Path(root.output().path()).stat().st_size == 5  # nothing committed over the damaged root


def test_under_luigi_build_a_damaged_upstream_whose_upstream_was_deleted_is_rebuilt(
    workspace: str, tmp_path: Path
) -> None:
    source, middle, _ = _chain(workspace, tmp_path)
    _rewrite(middle.output().path(), lambda data: data[:-3])
    _remove(source.output().path())
    task = RpSum(upstream=middle, offset=5, workspace_directory=workspace)
    assert luigi.build([task], local_scheduler=True, workers=1) is True
    assert task.output().load() == 9905
    assert _runs(tmp_path / "journal.txt") == 2


def test_a_repaired_root_counts_in_the_result_and_the_summary(
    workspace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _built_source(workspace, tmp_path)
    _rewrite(source.output().path(), lambda data: data[:5])
    recorder = Recorder()
    capsys.readouterr()
    assert kart_core.build(source, hook_manager=_manager(recorder), reset_register=False) == list(range(100))
    (result,) = recorder.results
    assert [result.label(key) for key in result.repaired] == [source.kart_label()]
    assert result.cached == [] and result.ok
    assert "kart build: 0 ran, 1 repaired, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err
    recorder.results.clear()  # a list of roots: each one's repair is counted once
    _rewrite(source.output().path(), lambda data: data[:5])
    other = RpSum(upstream=source, workspace_directory=workspace)
    assert kart_core.build([source, other], hook_manager=_manager(recorder), reset_register=False) == [
        list(range(100)),
        4950,
    ]
    (result,) = recorder.results
    assert [result.label(key) for key in result.repaired] == [source.kart_label()]
    assert [result.label(key) for key in result.cached] == [other.kart_label()]


# --- a writer without the task's lock commits between a repair's damage check and its run ------------------------

_WINDOW_TASKS = '''
import os, subprocess, sys
import kart_core


class WinUp(kart_core.TaskOnKart):
    """Deleted before the repair, so the repair builds it after its damage check; its run has another
    process (OTHER_WRITER: a rerun without the task's lock) commit WinDamaged meanwhile."""

    def run(self):
        if os.environ.get("OTHER_WRITER"):
            env = dict(os.environ, WHO="other", OTHER_WRITER="")
            subprocess.run([sys.executable, os.environ["OTHER_WRITER"], self.workspace_directory], check=True, env=env)
        self.dump("up")


class WinDamaged(kart_core.TaskOnKart):
    def requires(self):
        return WinUp(workspace_directory=self.workspace_directory)

    def run(self):
        self.dump("by " + os.environ.get("WHO", "repair"))


class WinDown(kart_core.TaskOnKart):
    damaged = kart_core.TaskInstanceParameter()

    def run(self):
        self.dump(self.load("damaged") + "!")
'''

_OTHER_WRITER = """
import sys
import kart_core
from window_tasks import WinDamaged

print(kart_core.run_one(WinDamaged(workspace_directory=sys.argv[1], rerun=True), lock=False).value)
"""


@pytest.mark.parametrize(
    ("any_workspace", "what", "workers", "executor"),
    [
        ("local", "root", 1, "thread"),
        ("s3", "root", 1, "thread"),
        ("s3", "down", 2, "thread"),
        ("local", "down", 2, "process"),
    ],
    indirect=["any_workspace"],
)
def test_a_commit_after_a_repairs_damage_check_is_kept(
    any_workspace: str, what: str, workers: int, executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WinDamaged's output is truncated and its upstream deleted. The repair (of the root, or of the upstream
    of a downstream that runs) checks the damage, builds the upstream, whose run has another process commit
    WinDamaged ("by other") without the task lock, then runs: its commit keeps the other's outputs.

    Before the fix the repair read its base after that commit and replaced it ("by repair").
    """
    (tmp_path / "window_tasks.py").write_text(_WINDOW_TASKS)
    (tmp_path / "other_writer.py").write_text(_OTHER_WRITER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "window_tasks", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    from window_tasks import WinDamaged, WinDown  # type: ignore[import-not-found]

    damaged = WinDamaged(workspace_directory=any_workspace)
    monkeypatch.setenv("WHO", "first")
    assert kart_core.build(damaged, reset_register=False) == "by first"
    monkeypatch.delenv("WHO")
    _rewrite(damaged.output().path(), lambda data: data[:5])
    _remove(damaged.requires().output().path())
    monkeypatch.setenv("OTHER_WRITER", str(tmp_path / "other_writer.py"))

    root = damaged if what == "root" else WinDown(damaged=damaged, workspace_directory=any_workspace)
    value = kart_core.build(root, workers=workers, executor=executor, reset_register=False)
    assert value == ("by other" if what == "root" else "by other!")
    assert damaged.output().load() == "by other"
    assert verify_workspace(any_workspace).ok
