"""Targets: atomic dumps (even under SIGKILL), model and large-DataFrame targets, dump-time checks, safety."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pandas as pd
import pytest
from luigi.task import flatten

import kart_core
from kart_core.errors import (
    DamagedOutputError,
    DumpError,
    EmptyDumpError,
    LoadError,
    LoadValueError,
    PandasTypeError,
    UnknownFormatError,
    WorkspacePathError,
)
from kart_core.integrity import digest_bytes
from kart_core.lineage import stale_outputs
from kart_core.storage.local import LocalStorage
from kart_core.target import LargeDataFrameProcessor, make_model_target, make_target

# --- a writer killed mid-dump -------------------------------------------------------------------

_KILLABLE = """
import luigi
import numpy as np
import pandas as pd
import kart_core


class DumpBig(kart_core.TaskOnKart):
    # Not significant: the killed writer's 3,000,000 rows (a CSV written for seconds, so the kill lands
    # mid-write) and the rerun's few rows are one task with one output.
    rows = luigi.IntParameter(default=3_000_000, significant=False)

    def output(self):
        return self.make_target("big/frame.csv")

    def run(self):
        rows = self.rows
        self.dump(pd.DataFrame({"a": np.arange(rows), "b": np.random.rand(rows), "c": ["text"] * rows}))


if __name__ == "__main__":
    kart_core.build(DumpBig(workspace_directory="ws"))
"""


def _wait_for_partial_write(directory: Path, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partial = (
            [p for p in directory.glob(".*.kart-tmp") if p.stat().st_size > 1_000_000] if directory.exists() else []
        )
        if partial:
            return partial[0]
        time.sleep(0.005)
    raise AssertionError("the writer never started writing")


@pytest.mark.slow
def test_writer_killed_mid_dump_leaves_no_output_and_the_task_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "killable.py").write_text(textwrap.dedent(_KILLABLE))
    writer = subprocess.Popen([sys.executable, "killable.py"], cwd=tmp_path)
    try:
        _wait_for_partial_write(tmp_path / "ws" / "big")
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    monkeypatch.syspath_prepend(str(tmp_path))
    from killable import DumpBig  # type: ignore[import-not-found]

    # The same task (rows is not significant); the rerun writes 1,000 rows, not 3,000,000 again (~half the
    # test's time under load): what is checked is that it runs and commits a whole output.
    task = DumpBig(workspace_directory="ws", rows=1_000)
    assert task.output().path() == DumpBig(workspace_directory="ws").output().path()
    assert not task.output().exists()
    assert not task.complete()
    assert kart_core.run_one(task) == kart_core.RunStatus.RAN
    frame = task.output().load()
    assert len(frame) == 1_000 and list(frame.columns) == ["a", "b", "c"]


# --- large DataFrames and models ------------------------------------------------------------------


def test_large_data_frame_chunks_load_back_in_the_original_order(tmp_path: Path) -> None:
    frame = pd.DataFrame({"v": np.arange(50_000), "w": np.random.default_rng(0).random(50_000)})
    frame.index = frame.index[::-1]
    processor = LargeDataFrameProcessor(max_byte=40_000)
    target = make_model_target(str(tmp_path / "large.zip"), str(tmp_path / "tmp"), processor.save, processor.load)
    target.dump(frame)
    # More than 10 chunks, so "data_10.pkl" sorts before "data_2.pkl" as text.
    import zipfile

    assert len(zipfile.ZipFile(target.path()).namelist()) > 12
    pd.testing.assert_frame_equal(target.load(), frame)


class Frames(kart_core.TaskOnKart[pd.DataFrame]):
    """Writes a chunked DataFrame target."""

    def output(self) -> Any:
        return self.make_large_data_frame_target("frames/big.zip", max_byte=8_000)

    def run(self) -> None:
        self.dump(pd.DataFrame({"x": np.arange(20_000)}))


def test_task_large_data_frame_target(workspace: str) -> None:
    loaded = kart_core.build(Frames(workspace_directory=workspace), reset_register=False)
    pd.testing.assert_frame_equal(loaded, pd.DataFrame({"x": np.arange(20_000)}))


def _save_model(model: dict[str, Any], path: str) -> None:
    with open(path, "w") as file:
        file.write(repr(model))


def _load_model(path: str) -> dict[str, Any]:
    import ast

    with open(path) as file:
        return dict(ast.literal_eval(file.read()))


class TrainModel(kart_core.TaskOnKart[Any]):
    """Writes a model zip."""

    def output(self) -> Any:
        return self.make_model_target("models/model.zip", save_function=_save_model, load_function=_load_model)

    def run(self) -> None:
        self.dump({"coef": 1.5})


def test_model_target_zip_holds_model_and_load_function(workspace: str) -> None:
    import zipfile

    task = TrainModel(workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == {"coef": 1.5}
    assert sorted(zipfile.ZipFile(task.output().path()).namelist()) == ["load_function.pkl", "model.pkl"]
    reader = make_model_target(task.output().path(), str(Path(workspace) / "tmp"), _save_model, None)
    assert reader.load() == {"coef": 1.5}  # the pickled load function from the zip


GOKART_MODEL_ZIP = """
import ast, sys
from gokart.conflict_prevention_lock.task_lock import make_task_lock_params
from gokart.target import make_model_target

def save(obj, path):
    with open(path, "w") as f:
        f.write(repr(obj))

def load(path):
    with open(path) as f:
        return ast.literal_eval(f.read())

path, scratch = sys.argv[1:3]
make_model_target(path, scratch, save, load, task_lock_params=make_task_lock_params(path, "x")).dump({"a": 2})
"""


def test_gokart_model_zip_loads(tmp_path: Path) -> None:
    # gokart runs in its own process: importing it here (even pytest.importorskip) registers its task
    # classes beside kart's, and luigi then drops the ambiguous `test_run` family (--test-run-pandas).
    if importlib.util.find_spec("gokart") is None:
        pytest.skip("gokart 1.12.2 (test-only) is not installed")
    path = str(tmp_path / "gk_model.zip")
    subprocess.run([sys.executable, "-c", GOKART_MODEL_ZIP, path, str(tmp_path / "gtmp")], check=True, timeout=120)
    assert make_model_target(path, str(tmp_path / "ktmp"), _save_model, _load_model).load() == {"a": 2}


# --- dump-time checks ---------------------------------------------------------------------------------


class Typed(kart_core.PandasTypeConfig):
    """Column types for tasks in the namespace 'typed_ns'."""

    task_namespace = "typed_ns"

    @classmethod
    def type_dict(cls) -> dict[str, Any]:
        return {"price": int, "name": str}


class TypedTask(kart_core.TaskOnKart[pd.DataFrame]):
    """Dumps whatever frame it is given; checked by Typed."""

    task_namespace = "typed_ns"

    def run(self) -> None:
        self.dump(self.payload)  # type: ignore[attr-defined]


def _typed(workspace: str, payload: pd.DataFrame, **kwargs: Any) -> TypedTask:
    task = TypedTask(workspace_directory=workspace, **kwargs)
    task.payload = payload  # type: ignore[attr-defined]
    return task


def test_pandas_type_config_accepts_matching_columns(workspace: str) -> None:
    task = _typed(workspace, pd.DataFrame({"price": [1, 2], "name": ["a", "b"], "other": [0.1, 0.2]}))
    task.dump(task.payload)  # type: ignore[attr-defined]
    assert task.output().exists()


def test_pandas_type_config_rejects_a_wrong_column_type_and_writes_nothing(workspace: str) -> None:
    task = _typed(workspace, pd.DataFrame({"price": [1, "2"], "name": ["a", "b"]}))
    with pytest.raises(PandasTypeError, match='column "price"'):
        task.dump(task.payload)  # type: ignore[attr-defined]
    assert not task.output().exists()


def test_fail_on_empty_dump(workspace: str) -> None:
    strict = _typed(workspace, pd.DataFrame(), fail_on_empty_dump=True)
    with pytest.raises(EmptyDumpError, match=r"TypedTask\[[0-9a-f]{8}\]"):
        strict.dump(pd.DataFrame())
    assert not strict.output().exists()
    lenient = _typed(workspace, pd.DataFrame())
    lenient.dump(pd.DataFrame())
    assert lenient.output().load().empty


# --- safety and errors at the task level ------------------------------------------------------------


class Escaping(kart_core.TaskOnKart[Any]):
    """Asks for an output outside the workspace."""

    relative = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target(self.relative)


@pytest.mark.parametrize("relative", ["../../etc/x.pkl", "../outside.csv", "/etc/passwd.txt", "a/../../b.pkl"])
def test_paths_that_leave_the_workspace_are_refused(workspace: str, relative: str) -> None:
    with pytest.raises(WorkspacePathError, match="leaves the workspace"):
        Escaping(workspace_directory=workspace, relative=relative).output()


def test_paths_inside_the_workspace_are_fine(workspace: str) -> None:
    target = Escaping(workspace_directory=workspace, relative="a/../b/c.pkl").output()
    assert os.path.realpath(target.path()).startswith(os.path.realpath(workspace))


def test_unknown_extension_names_the_task(workspace: str) -> None:
    task = Escaping(workspace_directory=workspace, relative="report.xlsx")
    with pytest.raises(UnknownFormatError, match=r"Escaping\[[0-9a-f]{8}\]"):
        task.output()


def test_dump_of_the_wrong_type_names_task_path_and_processor(workspace: str) -> None:
    task = Escaping(workspace_directory=workspace, relative="frame.parquet")
    with pytest.raises(DumpError) as info:
        task.dump({"not": "a frame"})
    message = str(info.value)
    assert task.kart_label() in message and task.output().path() in message and "ParquetFileProcessor" in message


def test_truncated_output_names_task_path_sizes_and_the_fix(workspace: str) -> None:
    task = Escaping(workspace_directory=workspace, relative="frame.feather")
    task.dump(pd.DataFrame({"a": range(1000)}))
    path = task.output().path()
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    with pytest.raises(DamagedOutputError) as info:
        task.output().load()
    message = str(info.value)
    assert task.kart_label() in message and task.make_unique_id() in message and path in message
    assert f"{size} bytes were committed, found {size // 2} bytes" in message and "rerun=True" in message


def test_truncated_file_without_record_names_path_and_processor(tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "frame.feather"), owner="Loose[12345678]")
    target.dump(pd.DataFrame({"a": range(1000)}))
    with open(target.path(), "r+b") as file:
        file.truncate(os.path.getsize(target.path()) // 2)
    with pytest.raises(LoadError) as info:
        target.load()
    message = str(info.value)
    assert "Loose[12345678]" in message and target.path() in message and "FeatherFileProcessor" in message


# --- an output that fails to parse: damage against its record, or the next step -------------------


class ParseUp(kart_core.TaskOnKart[Any]):
    fmt = luigi.Parameter()
    journal = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target(f"up/data.{self.fmt}")

    def run(self) -> None:
        with open(self.journal, "a", encoding="utf-8") as file:
            file.write("ran\n")
        frame = pd.DataFrame({"x": np.arange(50), "y": np.arange(50) * 2.0})
        if self.fmt == "npz":
            self.dump(frame.to_numpy())
        elif self.fmt in ("txt", "gz"):
            self.dump([str(v) for v in frame.x])
        else:
            self.dump(frame)


class ParseDown(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()
    k = luigi.IntParameter(default=0)

    def run(self) -> None:
        self.dump(len(self.load("up")) + self.k)


def _flip_middle(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    for index in range(middle, middle + 8):
        data[index] ^= 0xFF  # same size: only a hash tells
    Path(path).write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["csv", "json", "feather", "npz", "gz"])
def test_an_output_damaged_at_the_same_size_that_fails_to_parse_is_rebuilt(
    workspace: str, tmp_path: Path, fmt: str
) -> None:
    journal = tmp_path / "journal.txt"
    up = ParseUp(fmt=fmt, journal=str(journal), workspace_directory=workspace)
    assert kart_core.build(ParseDown(up=up, workspace_directory=workspace)) == 50
    _flip_middle(up.output().path())
    with pytest.raises(DamagedOutputError) as caught:  # loading it alone names the damage now
        up.output().load()
    assert caught.value.kind == "hash" and caught.value.path == up.output().path()
    assert up.kart_label() in str(caught.value) and "kart verify --delete" in str(caught.value)
    assert kart_core.build(ParseDown(up=up, k=1, workspace_directory=workspace)) == 51  # the repair ran up again
    assert journal.read_text().splitlines() == ["ran", "ran"]
    assert len(up.output().load()) == 50


def test_with_repairs_off_a_same_size_parse_failure_is_a_damaged_output_error(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = ParseUp(fmt="csv", journal=str(tmp_path / "journal.txt"), workspace_directory=workspace)
    kart_core.build(ParseDown(up=up, workspace_directory=workspace))
    _flip_middle(up.output().path())
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(ParseDown(up=up, k=1, workspace_directory=workspace))
    assert isinstance(caught.value.__cause__, DamagedOutputError)
    assert "content hash xxh3_128:" in str(caught.value) and up.kart_label() in str(caught.value)


class Unparsable(kart_core.file_processor.PickleFileProcessor):  # type: ignore[misc]
    """Writes like pickle, but its reader always fails: a file kart committed that this format cannot read."""

    def load(self, file: Any) -> Any:
        raise ValueError("this reader reads nothing")


class UnparsableTask(kart_core.TaskOnKart[Any]):
    def output(self) -> Any:
        return self.make_target("odd.pkl", processor=Unparsable())

    def run(self) -> None:
        self.dump({"a": 1})


def test_an_intact_output_that_fails_to_parse_names_kart_verify_as_the_next_step(workspace: str) -> None:
    task = UnparsableTask(workspace_directory=workspace)
    kart_core.build(task, return_value=False)
    with pytest.raises(LoadError) as caught:
        task.output().load()
    assert type(caught.value) is LoadValueError  # the hash matches its record: not damage; the reader's ValueError
    message = str(caught.value)
    assert "ValueError: this reader reads nothing" in message
    assert "Next step: `kart verify`" in message and f"runs {task.kart_label()} (unique id" in message


def test_an_output_without_an_integrity_record_that_fails_to_parse_names_rerun_and_the_file(workspace: str) -> None:
    task = UnparsableTask(workspace_directory=workspace)
    kart_core.build(task, return_value=False)
    os.remove(task.output().record.manifest)  # as gokart wrote it, or its record removed: `kart verify` sees nothing
    with pytest.raises(LoadError) as caught:
        task.output().load()
    message = str(caught.value)
    assert "There is no integrity record for this file" in message and "kart verify --delete" not in message
    assert "rerun=True" in message and f"delete {task.output().path()!r}" in message


class Unvouched(kart_core.TaskOnKart[Any]):
    name = luigi.Parameter(default="a")


def _unvouched_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "loads unchecked" in record.getMessage()]


def test_an_unvouched_output_warns_once_per_path_and_build_scope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kart_core import target_config

    tasks = [Unvouched(workspace_directory=str(tmp_path), name=name) for name in ("a", "b")]
    for task in tasks:  # put there by hand: no run of the task recorded it
        Path(task.output().path()).parent.mkdir(parents=True, exist_ok=True)
        Path(task.output().path()).write_bytes(__import__("pickle").dumps(task.name))
    caplog.set_level("WARNING")
    with target_config.frozen():  # one build's scope
        assert [task.output().load() for task in [*tasks, *tasks]] == ["a", "b", "a", "b"]
    first_scope = _unvouched_warnings(caplog)
    assert len(first_scope) == 2 and tasks[0].output().path() in first_scope[0]
    assert tasks[1].output().path() in first_scope[1]
    with target_config.frozen():  # the next build says it again, in its own log
        tasks[0].output().load()
        with target_config.verifying():  # a copy of the scope's settings, the same warned paths
            tasks[0].output().load()
    assert len(_unvouched_warnings(caplog)) == 3
    tasks[0].output().load()
    tasks[0].output().load()  # outside any build: each load says it
    assert len(_unvouched_warnings(caplog)) == 5


# --- a reader without write access to the workspace ------------------------------------------------------
# Tests run as root here, where chmod does not stop writes: the workspace is made read-only by a storage
# whose writes raise PermissionError (as a read-only mount or credential does: checked by hand on a
# read-only tmpfs, EROFS), given to the load for its manifest (``kart_core.target.storage_for``).


class ReadOnlyStorage(LocalStorage):
    """Local storage that reads, and refuses every write as a read-only workspace does."""

    def _refuse(self, path: str, *_args: object) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    atomic_write = spool = claim_new = remove = _refuse  # type: ignore[assignment]

    def commit(self, staged: str, path: str) -> None:
        self._refuse(path)


class RoUp(kart_core.TaskOnKart[str]):
    content = luigi.Parameter(default="value-v1", significant=False)  # what a rerun writes

    def run(self) -> None:
        self.dump(self.content)


class RoDown(kart_core.TaskOnKart[str]):
    up_workspace = luigi.Parameter(significant=False)

    def requires(self) -> RoUp:
        return RoUp(workspace_directory=self.up_workspace)

    def run(self) -> None:
        self.dump(self.load() + "+B")


def _rewritten_outside_kart(workspace: Path) -> RoUp:
    """RoUp built in ``workspace``, then its output rewritten with other bytes of the same size, later."""
    up = RoUp(workspace_directory=str(workspace))
    kart_core.build(up, reset_register=False)
    path = Path(up.output().path())
    manifest = workspace / "log" / "manifest" / f"RoUp_{up.make_unique_id()}.json"
    path.write_bytes(path.read_bytes().replace(b"value-v1", b"value-v2"))
    later = manifest.stat().st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(later, later))
    return up


def test_a_rewrite_in_a_read_only_workspace_loads_unchecked_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = _rewritten_outside_kart(tmp_path / "shared")
    manifest = (tmp_path / "shared" / "log" / "manifest" / f"RoUp_{up.make_unique_id()}.json").read_bytes()
    monkeypatch.setattr("kart_core.target.storage_for", lambda _path: ReadOnlyStorage())
    caplog.set_level("WARNING")
    assert up.output().load() == "value-v2"  # raised PermissionError after its read
    (warning,) = [r.getMessage() for r in caplog.records if "cannot record it as a new version" in r.getMessage()]
    assert up.output().path() in warning and "PermissionError" in warning and "loads unchecked" in warning
    assert (tmp_path / "shared" / "log" / "manifest" / f"RoUp_{up.make_unique_id()}.json").read_bytes() == manifest
    with kart_core.target_config.frozen():  # once per path and build
        up.output().load()
        up.output().load()
    assert len([r for r in caplog.records if "cannot record it" in r.getMessage()]) == 2


def _down_built_without_write_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RoUp, RoDown]:
    """RoDown built in its own writable workspace from RoUp's same-size rewrite in a workspace it cannot
    write (the seam undone after it, so later steps write as the upstream's owner does)."""
    up = _rewritten_outside_kart(tmp_path / "shared")
    down = RoDown(workspace_directory=str(tmp_path / "own"), up_workspace=str(tmp_path / "shared"))
    real = kart_core.target.storage_for

    def read_only_shared(path: str) -> Any:  # the downstream's own workspace stays writable
        return ReadOnlyStorage() if str(tmp_path / "shared") in path else real(path)

    with monkeypatch.context() as patch:
        patch.setattr("kart_core.target.storage_for", read_only_shared)
        assert kart_core.build(down, reset_register=False) == "value-v2+B"  # no DamagedOutputError, no repair
    return up, down


def _recorded_inputs(workspace: Path, task: kart_core.TaskOnKart[Any]) -> list[dict[str, Any]]:
    manifest = workspace / "log" / "manifest" / f"{type(task).__name__}_{task.make_unique_id()}.json"
    return list(json.loads(manifest.read_text()).get("inputs", []))


def test_a_downstream_built_on_an_unrecordable_rewrite_records_what_it_loaded_and_stays_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, down = _down_built_without_write_access(tmp_path, monkeypatch)
    entry = json.loads((tmp_path / "shared" / "log" / "manifest" / f"RoUp_{up.make_unique_id()}.json").read_text())
    (committed,) = entry["outputs"].values()
    (loaded,) = _recorded_inputs(tmp_path / "own", down)
    # The commit it compared against, with the content hash of the bytes it read (not the committed ones).
    assert loaded["commit"] == committed["commit"] and loaded["digest"] != committed["digest"]
    algorithm, _, found = loaded["digest"].partition(":")
    assert found == digest_bytes(Path(up.output().path()).read_bytes(), algorithm)
    built = Path(down.output().path()).stat().st_mtime_ns
    # Not stale in the next build (an unrecorded commit id claimed as its input made it rerun at each build).
    assert kart_core.build(down, reset_register=False) == "value-v2+B"
    assert Path(down.output().path()).stat().st_mtime_ns == built


def test_verify_and_tree_on_a_read_only_workspace_with_a_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from kart_core.cli import cli

    _rewritten_outside_kart(tmp_path / "shared")
    monkeypatch.setattr("kart_core.target.storage_for", lambda _path: ReadOnlyStorage())
    verify = CliRunner().invoke(cli, ["verify", "-w", str(tmp_path / "shared")])
    assert verify.exit_code == 3 and "content hash" in verify.output, verify.output
    tree = CliRunner().invoke(cli, ["tree", f"{__name__}.RoUp", "-w", str(tmp_path / "shared")])
    assert tree.exit_code == 0 and "(COMPLETE) RoUp[" in tree.output, tree.output


def test_a_downstream_built_on_an_unrecordable_rewrite_reruns_when_the_upstream_is_committed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AT5: it recorded nothing about the input, and was served as built from the rewrite forever.
    from click.testing import CliRunner

    from kart_core.cli import cli

    up, down = _down_built_without_write_access(tmp_path, monkeypatch)
    kart_core.build(RoUp(workspace_directory=up.workspace_directory, rerun=True), reset_register=False)
    verify = CliRunner().invoke(cli, ["verify", "-w", str(tmp_path / "own")])
    assert verify.exit_code != 0 and "stale" in verify.output, verify.output
    assert kart_core.build(down, reset_register=False) == "value-v1+B"


def test_a_downstream_built_on_an_unrecordable_rewrite_stays_built_when_the_same_content_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, down = _down_built_without_write_access(tmp_path, monkeypatch)
    built = Path(down.output().path()).stat().st_mtime_ns
    # A rerun that writes what was loaded: another commit, the same content.
    rerun = RoUp(workspace_directory=up.workspace_directory, content="value-v2", rerun=True)
    assert kart_core.build(rerun, reset_register=False) == "value-v2"
    assert kart_core.build(down, reset_register=False) == "value-v2+B"
    assert Path(down.output().path()).stat().st_mtime_ns == built


def test_a_downstream_built_on_an_unrecordable_rewrite_follows_the_file_until_a_version_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, down = _down_built_without_write_access(tmp_path, monkeypatch)
    built = Path(down.output().path()).stat().st_mtime_ns
    assert up.output().load() == "value-v2"  # with write access: recorded as a new version of that content
    assert kart_core.build(down, reset_register=False) == "value-v2+B"
    assert Path(down.output().path()).stat().st_mtime_ns == built
    up, down = _down_built_without_write_access(tmp_path / "again", monkeypatch)
    path = Path(up.output().path())  # rewritten outside kart once more, the manifest still unwritable
    later = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes().replace(b"value-v2", b"value-v3"))
    os.utime(path, ns=(later, later))
    assert stale_outputs(flatten(down.output()))
    path.write_bytes(path.read_bytes().replace(b"value-v3", b"value-v1"))  # the committed content back
    os.utime(path, ns=(later, later))
    assert stale_outputs(flatten(down.output()))
