"""kart_core.inspect.plan_gc / delete_unreachable: clean a workspace, locally and on S3."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core import workspace as ws
from kart_core.errors import CleanupError
from kart_core.inspect import delete_unreachable, plan_gc, runs
from kart_core.workspace import list_files


class GcLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(list(range(self.n)))


class GcSum(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def requires(self) -> GcLoad:
        return GcLoad(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


def _build(*tasks: gokart.TaskOnKart) -> None:
    for task in tasks:
        gokart.build(task, reset_register=False)


def test_plan_keeps_the_graph_outputs_and_logs_and_lists_the_rest(workspace: str) -> None:
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    Path(workspace, "notes.md").write_text("mine")  # not a kart file: never a candidate
    plan = plan_gc([keep])
    assert len(plan.kept) == 14 and len(plan.delete) == 14  # 2 tasks x (1 output + 5 logs + manifest) each
    doomed = {os.path.normpath(f.path) for f in plan.delete}
    assert os.path.normpath(drop.output().path()) in doomed
    assert os.path.normpath(drop.requires().output().path()) in doomed
    assert not any(os.path.normpath(keep.output().path()) == p for p in doomed)
    assert plan.delete_bytes == sum(os.path.getsize(f.path) for f in plan.delete)
    assert all(os.path.exists(f.path) for f in plan.delete)  # planning deletes nothing


def test_delete_removes_only_unreachable_files(workspace: str) -> None:
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    Path(workspace, "notes.md").write_text("mine")
    scratch = Path(workspace, "tmp", "scratch_" + "0" * 32 + ".bin")  # the kept task's scratch directory is skipped
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(b"x")
    keep_with_scratch = GcSum(n=2, workspace_directory=workspace, local_temporary_directory=str(scratch.parent))
    deleted = delete_unreachable(plan_gc([keep_with_scratch], workspace))
    assert len(deleted) == 14
    assert keep.complete() and not drop.complete() and not drop.requires().complete()
    assert Path(workspace, "notes.md").exists() and scratch.exists()
    assert list(runs(workspace)["unique_id"]) == [keep.requires().make_unique_id(), keep.make_unique_id()]
    assert plan_gc([keep_with_scratch]).delete == []


class GcTrain(gokart.TaskOnKart[int]):
    """Dumps a vocabulary beside its model: a side file named with its own unique id (not returned by output())."""

    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(list(range(self.n)), self.make_target("work/vocab.pkl"))
        self.dump(self.n)


class GcPredict(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def requires(self) -> GcTrain:
        return GcTrain(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.requires().make_target("work/vocab.pkl").load()))


@pytest.mark.parametrize("scope", ["classes", "all"])
def test_a_kept_tasks_side_file_is_kept(workspace: str, scope: str) -> None:
    """Attacker at16 G13: `kart gc --all --delete` deleted a kept task's side file (its run committed it, its task
    stayed complete), so the next rerun of its reader failed for good."""
    keep, drop = GcPredict(n=2, workspace_directory=workspace), GcPredict(n=3, workspace_directory=workspace)
    _build(keep, drop)
    kept_vocab = keep.requires().make_target("work/vocab.pkl").path()
    dropped_vocab = drop.requires().make_target("work/vocab.pkl").path()

    delete_unreachable(plan_gc([keep], scope=scope))

    assert os.path.exists(kept_vocab)
    # Only --all deletes a file no kept class provably owns ("vocab" names no class): the dropped run's side file.
    assert os.path.exists(dropped_vocab) is (scope == "classes")
    assert gokart.build(GcPredict(n=2, workspace_directory=workspace, rerun=True), reset_register=False) == 1


def test_a_shared_upstream_is_kept_for_any_kept_task(workspace: str) -> None:
    first, second = GcSum(n=2, workspace_directory=workspace), GcSum(n=4, workspace_directory=workspace)
    _build(first, second)
    plan = plan_gc([first, second])
    assert plan.delete == [] and len(plan.kept) == 28


def test_plan_needs_tasks_of_one_workspace(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one task"):
        plan_gc([])
    with pytest.raises(ValueError, match="different workspaces"):
        plan_gc(
            [GcLoad(n=1, workspace_directory=str(tmp_path / "a")), GcLoad(n=1, workspace_directory=str(tmp_path / "b"))]
        )


def test_gc_on_s3(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    _build(keep, drop)
    plan = plan_gc([keep])
    assert len(plan.delete) == 14 and all(f.path.startswith(f"s3://{s3_bucket}/resources/") for f in plan.delete)
    assert all(f.size > 0 for f in plan.delete)
    delete_unreachable(plan)
    assert keep.complete() and not drop.complete()
    assert len(list_files(workspace)) == 14


# --- temporaries: killed writes, model scratch, upload spools (issue 12 #7) -------------------

HEX = "0123456789abcdef" * 2
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Upload spools go to (and are swept from) a temp folder of this test, never the machine's."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _aged(path: Path, seconds: float) -> Path:
    """Set ``path``'s (and, for a folder, everything inside's) mtime to ``seconds`` ago."""
    when = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when))
    return path


def _write(path: Path, data: bytes = b"partial") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_old_temporaries_are_swept_and_fresh_ones_left_alone(workspace: str, _private_tmpdir: Path) -> None:
    scratch_root = Path(workspace, "tmp")
    keep = GcSum(n=2, workspace_directory=workspace, local_temporary_directory=str(scratch_root))
    _build(keep)
    output_dir = Path(keep.output().path()).parent
    old = {
        "killed write": _aged(_write(output_dir / f".GcSum_{HEX}.pkl.x1y2{ws.TEMPORARY_SUFFIX}"), 2 * DAY),
        "staged output": _aged(_write(Path(workspace, "report", f"table_{HEX}.csv{ws.TEMPORARY_SUFFIX}")), 2 * DAY),
        "model scratch": _aged(_write(scratch_root / HEX / "tmpabc" / "model.bin", b"m" * 1000).parent, 2 * DAY),
        "empty scratch folder": _aged(_mkdir(scratch_root / ("f" * 32)), 2 * DAY),
        "upload spool": _aged(_write(_private_tmpdir / "kart-upload-abc123"), 2 * DAY),
    }
    fresh = {
        "write in progress": _write(output_dir / f".GcSum_{HEX}.pkl.zzzz{ws.TEMPORARY_SUFFIX}"),
        "model save in progress": _write(scratch_root / ("e" * 32) / "tmpdef" / "model.bin").parent,
        "upload in progress": _write(_private_tmpdir / "kart-upload-def456"),
    }
    untouchable = [
        _aged(_write(scratch_root / "locks" / "some.lock"), 2 * DAY),  # a lock file: never swept
        _aged(_write(scratch_root / "notes" / "mine.txt"), 2 * DAY),  # not kart's scratch layout
        _aged(_write(_private_tmpdir / "someone-elses.tmp"), 2 * DAY),
    ]
    _aged(scratch_root / HEX, 2 * DAY)  # its {md5} folder is idle too, so it goes once empty
    plan = plan_gc([keep], temp_age=DAY)
    assert plan.delete == []
    assert sorted(Path(f.path) for f in plan.temporaries) == sorted(old.values())
    assert sorted(Path(f.path) for f in plan.fresh_temporaries) == sorted(fresh.values())
    scratch_entry = next(f for f in plan.temporaries if Path(f.path) == old["model scratch"])
    assert scratch_entry.size == 1000
    assert all(p.exists() for p in old.values())  # planning deletes nothing
    deleted = delete_unreachable(plan)
    assert sorted(Path(p) for p in deleted) == sorted(old.values())
    assert not any(p.exists() for p in old.values()) and not (scratch_root / HEX).exists()
    assert all(p.exists() for p in [*fresh.values(), *untouchable])
    assert keep.complete() and gokart.build(keep, reset_register=False) == 1


def test_an_upload_spool_of_a_running_process_is_never_swept_whatever_its_age(
    workspace: str, _private_tmpdir: Path
) -> None:
    # The system temp folder is the machine's: another job's slow upload must survive a `kart gc --temp-age 0`.
    keep = GcLoad(n=1, workspace_directory=workspace)
    _build(keep)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    running = _aged(_write(_private_tmpdir / f"kart-upload-{os.getpid()}-abc"), 2 * DAY)
    killed = _aged(_write(_private_tmpdir / f"kart-upload-{dead_pid}-def"), 2 * DAY)
    unnamed = _aged(_write(_private_tmpdir / "kart-upload-ghi"), 2 * DAY)  # before the pid was in the name
    plan = plan_gc([keep], temp_age=0)
    assert sorted(Path(f.path) for f in plan.temporaries) == sorted([killed, unnamed])
    assert running not in [Path(f.path) for f in plan.fresh_temporaries]
    assert sorted(Path(p) for p in delete_unreachable(plan)) == sorted([killed, unnamed])
    assert running.exists() and not killed.exists()


def test_an_upload_spool_is_named_after_its_process(s3_bucket: str, _private_tmpdir: Path) -> None:
    from kart_core.storage import storage_for

    spool = storage_for(f"s3://{s3_bucket}/x.pkl").spool(f"s3://{s3_bucket}/x.pkl")
    try:
        assert Path(spool.location).parent == _private_tmpdir
        assert Path(spool.location).name.startswith(f"kart-upload-{os.getpid()}-")
        assert plan_gc([GcLoad(n=1, workspace_directory=f"s3://{s3_bucket}/ws")], temp_age=0).temporaries == []
    finally:
        spool.discard()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_a_temporary_written_to_after_planning_is_left_alone(workspace: str) -> None:
    keep = GcLoad(n=1, workspace_directory=workspace)
    _build(keep)
    temp = _aged(_write(Path(workspace, f".x_{HEX}.pkl.1{ws.TEMPORARY_SUFFIX}")), 2 * DAY)
    plan = plan_gc([keep], temp_age=DAY)
    assert [Path(f.path) for f in plan.temporaries] == [temp]
    temp.write_bytes(b"the writer is back")  # e.g. a slow writer flushing again
    assert delete_unreachable(plan) == [] and temp.exists()


def test_temporaries_on_s3_are_swept_by_age(s3_bucket: str) -> None:
    import fsspec

    from kart_core.storage.remote import s3_options

    workspace = f"s3://{s3_bucket}/resources"
    keep = GcLoad(n=2, workspace_directory=workspace)
    _build(keep)
    fs = fsspec.filesystem("s3", **s3_options())
    staged = f"{s3_bucket}/resources/pkg/.GcLoad_{HEX}.pkl.ab12{ws.TEMPORARY_SUFFIX}"
    fs.pipe(staged, b"staged by a killed writer")
    young = plan_gc([keep], temp_age=3600)  # just written: maybe a write in progress
    assert young.temporaries == [] and [f.path for f in young.fresh_temporaries] == [f"s3://{staged}"]
    old = plan_gc([keep], temp_age=0)
    assert [f.path for f in old.temporaries] == [f"s3://{staged}"] and old.delete == []
    assert delete_unreachable(old) == [f"s3://{staged}"]
    assert not fs.exists(staged) and keep.complete()


# --- scope: a shared workspace keeps other projects' files -----------------------------------


class GcOther(gokart.TaskOnKart[str]):
    """Another project's task in the same workspace."""

    def output(self) -> gokart.target.TargetOnKart:
        return self.make_target("other/notes.txt")

    def run(self) -> None:
        self.dump("theirs")


class GcCustom(gokart.TaskOnKart[str]):
    """A task of the kept graph whose output name does not carry its class."""

    n = luigi.IntParameter()

    def output(self) -> gokart.target.TargetOnKart:
        return self.make_target("custom/table.txt")

    def run(self) -> None:
        self.dump(str(self.n))


def test_default_scope_leaves_other_classes_alone_and_all_widens_it(workspace: str) -> None:
    keep, drop = GcSum(n=2, workspace_directory=workspace), GcSum(n=3, workspace_directory=workspace)
    custom_keep, custom_drop = (GcCustom(n=i, workspace_directory=workspace) for i in (1, 2))
    other = GcOther(workspace_directory=workspace)
    _build(keep, drop, custom_keep, custom_drop, other)
    foreign = _write(Path(workspace, "elsewhere", f"Stranger_{HEX}.pkl"))  # kart-named, no log of ours
    plan = plan_gc([keep, custom_keep])
    assert plan.scope == "classes" and plan.classes == ["GcCustom", "GcLoad", "GcSum"]
    doomed = {os.path.normpath(f.path) for f in plan.delete}
    assert os.path.normpath(drop.output().path()) in doomed
    assert len(plan.delete) == 2 * 7  # GcSum, GcLoad: 1 output + 5 logs + the manifest each
    left = {os.path.normpath(f.path) for f in plan.other_classes}
    assert os.path.normpath(other.output().path()) in left and os.path.normpath(str(foreign)) in left
    # custom/table_{id}.txt does not name a module: another project's GcCustom could have written it
    assert os.path.normpath(custom_drop.output().path()) in left
    assert len(left) == 1 + 6 + 1 + 7  # GcOther's output, logs and manifest, the stranger, GcCustom's old run
    delete_unreachable(plan)
    assert other.complete() and foreign.exists() and custom_drop.complete()
    wide = plan_gc([keep, custom_keep], scope="all")
    assert wide.scope == "all" and wide.other_classes == []
    assert {os.path.normpath(f.path) for f in wide.delete} == left
    delete_unreachable(wide)
    assert not other.complete() and not foreign.exists() and keep.complete() and custom_keep.complete()


# --- two projects in one workspace, each with a class named Load ------------------------------

_PROJECT_A = """
import luigi
import kart_core as gokart

class Load(gokart.TaskOnKart):
    n = luigi.IntParameter(default=1)
{output}
    def run(self):
        self.dump(self.n)

class Report(gokart.TaskOnKart):
    def requires(self):
        return Load(workspace_directory=self.workspace_directory)

    def run(self):
        self.dump(self.load())
"""
_PROJECT_B = """
import kart_core as gokart

class Load(gokart.TaskOnKart):
{output}
    def run(self):
        self.dump("project B's precious data")
"""
_CUSTOM_OUTPUT = """
    def output(self):
        return self.make_target("data/load.pkl")
"""


def _two_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, custom: bool = False) -> tuple[Any, Any]:
    """Packages ``{a,b}_{test}.tasks`` under tmp_path, each with a class ``Load`` (A also has ``Report``)."""
    import importlib

    suffix = hashlib.md5(str(tmp_path).encode()).hexdigest()[:8]
    modules = []
    for letter, source in (("a", _PROJECT_A), ("b", _PROJECT_B)):
        package = tmp_path / "code" / f"proj{letter}_{suffix}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "tasks.py").write_text(source.format(output=_CUSTOM_OUTPUT if custom else ""))
        modules.append(f"proj{letter}_{suffix}")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    return tuple(importlib.import_module(f"{name}.tasks") for name in modules)  # type: ignore[return-value]


def _files_of(task: gokart.TaskOnKart, workspace: str) -> set[str]:
    """The output, the five run logs and the manifest of ``task``, workspace-relative."""
    logs = {ws.log_relative_path(kind, type(task).__name__, task.make_unique_id()) for kind in ws.KART_LOG_KINDS}
    output = task.output().path()
    return logs | {ws.relative_key(output[len(workspace) :]) if output.startswith(workspace) else output}


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_another_projects_same_named_class_keeps_its_outputs_logs_and_manifest(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    workspace = f"s3://{request.getfixturevalue('s3_bucket')}/ws" if storage == "s3" else str(tmp_path / "ws")
    a, b = _two_projects(tmp_path, monkeypatch)
    old_a, theirs, report = (
        a.Load(n=2, workspace_directory=workspace),
        b.Load(workspace_directory=workspace),
        a.Report(workspace_directory=workspace),
    )
    _build(old_a, theirs, report)
    plan = plan_gc([report])
    assert {f.relative for f in plan.delete} == _files_of(old_a, workspace)
    assert {f.relative for f in plan.other_classes} == _files_of(theirs, workspace)
    delete_unreachable(plan)
    assert theirs.complete() and not old_a.complete() and report.complete() and report.requires().complete()
    assert {f.relative for f in list_files(workspace)} >= _files_of(theirs, workspace)
    # kart runs --class module.Class: the same rule leaves out the other project's Load
    assert list(runs(workspace, task_class=f"{type(theirs).__module__}.Load")["unique_id"]) == [theirs.make_unique_id()]
    assert list(runs(workspace, task_class=f"{type(old_a).__module__}.Load")["unique_id"]) == [
        report.requires().make_unique_id()
    ]
    assert len(runs(workspace, task_class="Load")) == 2


def test_custom_paths_do_not_name_a_module_so_gc_leaves_them_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: str
) -> None:
    a, b = _two_projects(tmp_path, monkeypatch, custom=True)
    old_a, theirs, report = (
        a.Load(n=2, workspace_directory=workspace),
        b.Load(workspace_directory=workspace),
        a.Report(workspace_directory=workspace),
    )
    _build(old_a, theirs, report)
    assert theirs.output().path().endswith(f"data/load_{theirs.make_unique_id()}.pkl")  # the same template as A's
    plan = plan_gc([report])
    assert plan.delete == []  # data/load_{id}.pkl could be either project's
    assert {f.relative for f in plan.other_classes} == _files_of(old_a, workspace) | _files_of(theirs, workspace)
    delete_unreachable(plan)
    assert theirs.complete() and old_a.complete()
    wide = plan_gc([report], scope="all")  # --all: every unreachable kart-named file
    assert {f.relative for f in wide.delete} == _files_of(old_a, workspace) | _files_of(theirs, workspace)


def test_an_unknown_scope_is_a_cleanup_error(workspace: str) -> None:
    with pytest.raises(CleanupError, match="scope must be 'classes' or 'all'"):
        plan_gc([GcLoad(n=1, workspace_directory=workspace)], scope="everything")  # type: ignore[arg-type]


# --- killed writers across formats and storage: 0 partial outputs, and 0 temporaries after gc -

_KILLED_WRITER = """
import sys
import time

import numpy as np
import pandas as pd

import kart_core


def slow_save(model, path):
    with open(path, "wb") as file:
        for _ in range(2000):
            file.write(b"x" * 100_000)
            file.flush()
            time.sleep(0.01)


def read_model(path):
    return open(path, "rb").read()


class KilledCsv(kart_core.TaskOnKart):
    def output(self):
        return self.make_target("big/frame.csv")

    def run(self):
        rows = 3_000_000
        self.dump(pd.DataFrame({"a": np.arange(rows), "b": np.random.rand(rows), "c": ["text"] * rows}))


class KilledModel(kart_core.TaskOnKart):
    def output(self):
        return self.make_model_target("model/m.zip", save_function=slow_save, load_function=read_model)

    def run(self):
        self.dump({"weights": 1})


if __name__ == "__main__":
    task = {"csv": KilledCsv, "model": KilledModel}[sys.argv[1]]
    kart_core.build(task(workspace_directory=sys.argv[2], local_temporary_directory=sys.argv[3]))
"""


def _partial(folder: Path, pattern: str) -> bool:
    return (
        any(p.is_file() and p.stat().st_size > 1_000_000 for p in folder.rglob(pattern)) if folder.exists() else False
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "storage", "pattern"),
    [("csv", "local", f"*{ws.TEMPORARY_SUFFIX}"), ("model", "local", "*"), ("csv", "s3", "kart-upload-*")],
)
def test_killed_writers_leave_no_output_and_gc_leaves_no_temporary(
    kind: str, storage: str, pattern: str, tmp_path: Path, _private_tmpdir: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "killed_writer.py").write_text(_KILLED_WRITER)
    workspace = f"s3://{request.getfixturevalue('s3_bucket')}/ws" if storage == "s3" else str(tmp_path / "ws")
    scratch = tmp_path / "ws" / "tmp"
    watched = {"csv": tmp_path / "ws" / "big", "model": scratch}[kind] if storage == "local" else _private_tmpdir
    env = {**os.environ, "TMPDIR": str(_private_tmpdir)}
    writer = subprocess.Popen(
        [sys.executable, "killed_writer.py", kind, workspace, str(scratch)], cwd=tmp_path, env=env
    )
    try:
        deadline = time.monotonic() + 90
        while not _partial(watched, pattern) and time.monotonic() < deadline and writer.poll() is None:
            time.sleep(0.005)
        assert _partial(watched, pattern), "the writer never started writing"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    sys.path.insert(0, str(tmp_path))
    try:
        from killed_writer import KilledCsv, KilledModel  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    task = {"csv": KilledCsv, "model": KilledModel}[kind](
        workspace_directory=workspace, local_temporary_directory=str(scratch)
    )
    assert not task.output().exists() and not task.complete()  # 0 partial outputs
    plan = plan_gc([task], temp_age=0)
    assert plan.temporaries, "the killed writer left no temporary to sweep"
    delete_unreachable(plan)
    after = plan_gc([task], temp_age=0)
    assert after.temporaries == [] and after.fresh_temporaries == []
    assert not any(p.name.startswith("kart-upload-") for p in _private_tmpdir.iterdir())
    assert not list(Path(tmp_path / "ws").rglob(f"*{ws.TEMPORARY_SUFFIX}"))
    sys.modules.pop("killed_writer", None)


class GcSweptMidRun(gokart.TaskOnKart[list]):
    """Dumps, then a `kart gc` with a --temp-age shorter than the run sweeps its staged output before the commit."""

    def run(self) -> None:
        self.dump([1, 2, 3])
        delete_unreachable(plan_gc([self], temp_age=0))


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_staged_output_swept_before_the_commit_fails_naming_it_and_commits_nothing(
    storage: str, tmp_path: Path, _private_tmpdir: Path, request: pytest.FixtureRequest
) -> None:
    from kart_core.errors import DamagedOutputError, StagedOutputLostError

    workspace = f"s3://{request.getfixturevalue('s3_bucket')}/ws" if storage == "s3" else str(tmp_path / "ws")
    task = GcSweptMidRun(workspace_directory=workspace)
    with pytest.raises(gokart.GokartBuildError) as raised:
        gokart.build(task, reset_register=False)
    cause = raised.value.__cause__
    assert isinstance(cause, StagedOutputLostError) and isinstance(cause, FileNotFoundError)
    output = task.output().path()
    assert str(cause).startswith(f"{task.kart_label()}: its staged output ")
    assert f"(to become {output!r}) disappeared before the commit" in str(cause)
    assert "give `kart gc --temp-age` more than your longest run" in str(cause)
    assert not task.complete()
    # Local: nothing at the output; S3: the pending manifest of the commit that never finished refuses the load.
    with pytest.raises((FileNotFoundError, DamagedOutputError)):
        task.output().load()


class GcPlainLuigi(luigi.Task):
    """A plain luigi task in a kart graph: its LocalTarget keeps ``path`` as an attribute, not a method."""

    where = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.where)

    def run(self) -> None:
        with self.output().open("w") as file:
            file.write("hi")


class GcUsesPlain(gokart.TaskOnKart[str]):
    def requires(self) -> dict[str, Any]:
        plain = GcPlainLuigi(where=os.path.join(self.workspace_directory, "plain_out.txt"))
        return {"plain": plain, "load": GcLoad(n=2, workspace_directory=self.workspace_directory)}

    def run(self) -> None:
        with self.input()["plain"].open() as file:
            self.dump(file.read() + str(self.load("load")))


def test_a_graph_holding_a_plain_luigi_task_is_planned_reported_and_cleaned(workspace: str) -> None:
    # attacker at24 F10: gc --keep, kart report and delete_local_unnecessary_outputs called target.path() on the
    # LocalTarget (a str attribute): TypeError "'str' object is not callable".
    from kart_core.inspect.report_data import collect

    keep, other = GcUsesPlain(workspace_directory=workspace), GcLoad(n=3, workspace_directory=workspace)
    _build(keep, other)
    plan = plan_gc([keep])
    doomed = {os.path.normpath(f.path) for f in plan.delete}
    assert os.path.normpath(other.output().path()) in doomed
    assert os.path.normpath(keep.output().path()) not in doomed
    assert os.path.join(workspace, "plain_out.txt") not in doomed
    _, report = collect([keep])
    assert os.path.join(workspace, "plain_out.txt") in str(report)
    gokart.delete_local_unnecessary_outputs(keep)
    assert os.path.exists(keep.output().path()) and os.path.exists(os.path.join(workspace, "plain_out.txt"))
