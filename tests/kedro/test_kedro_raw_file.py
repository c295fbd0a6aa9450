"""kart_kedro.RawFile: a raw input file as a task; a path that is no file is a message naming RawFile."""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import luigi
import pytest
from kart_kedro import RawFile

import kart_core
from kart_core.errors import StaleTaskError


class SumOfFile(kart_core.TaskOnKart[int]):
    """The sum of the integers in its source RawFile."""

    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        with open(self.load("source")) as handle:
            self.dump(sum(int(word) for word in handle.read().split()))


def test_a_raw_file_is_versioned_by_its_bytes(tmp_path: Path) -> None:
    raw = tmp_path / "numbers.csv"
    raw.write_bytes(b"a\n1\n")
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"a\n1\n").hexdigest()


@pytest.mark.parametrize("folder", [".", "data"])
def test_a_folder_is_refused_naming_raw_file(tmp_path: Path, folder: str) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(IsADirectoryError) as refused:
        RawFile(path=folder)
    assert str(refused.value) == (
        f"RawFile: {folder!r} is a folder (looked up from {os.getcwd()!r}); RawFile takes one file. Name a file "
        "in it, or make one RawFile per file."
    )


def test_a_missing_file_names_where_it_was_looked_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"RawFile: no file 'nope\.csv' \(looked up from "):
        RawFile(path="nope.csv")


def _rewrite_keeping_size_and_mtime(raw: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` (the same size) into ``raw`` and set its modification time back, as ``cp -p``,
    ``rsync -t`` or ``touch -r`` leave a restored file; ``replace``: a new file renamed over it (a new inode)."""
    before = raw.stat()
    if replace:
        fresh = raw.with_name(raw.name + ".new")
        fresh.write_bytes(content)
        os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(fresh, raw)
    else:
        raw.write_bytes(content)
        os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = raw.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("replace", [False, True])
def test_a_rewrite_keeping_size_and_mtime_is_read_again_in_the_same_process(tmp_path: Path, replace: bool) -> None:
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1 2 3\n")
    time.sleep(2.1)  # past the racy window: this version's md5 is memoised
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"1 2 3\n").hexdigest()
    _rewrite_keeping_size_and_mtime(raw, b"4 5 6\n", replace=replace)
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"4 5 6\n").hexdigest()


def test_a_build_after_a_rewrite_keeping_size_and_mtime_gets_the_new_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook: two builds in one process, the raw file restored between them with its old mtime (within
    the racy window of the first read: read again whatever the times say)."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1 2 3\n")
    workspace = str(tmp_path / "resources")
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 6
    _rewrite_keeping_size_and_mtime(raw, b"4 5 6\n", replace=False)
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 15


def test_a_missing_file_started_in_src_says_to_start_in_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kedro run` in src/ (Kedro finds the project from a sub-folder): the message named only where it looked.
    project = tmp_path / "project"
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / "numbers.csv").write_text("a\n1\n")
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "pkg"\nsource_dir = "src"\n')
    monkeypatch.chdir(project / "src" / "pkg")
    with pytest.raises(FileNotFoundError) as missing:
        RawFile(path="data/01_raw/numbers.csv")
    assert str(missing.value) == (
        f"RawFile: no file 'data/01_raw/numbers.csv' (looked up from {str(project / 'src' / 'pkg')!r}); a relative "
        f"path is taken from the directory the run starts in. Start `kedro run` in the Kedro project's root "
        f"{str(project)!r} (the folder of its pyproject.toml): "
        f"{str(project / 'data' / '01_raw' / 'numbers.csv')!r} is there."
    )
    monkeypatch.chdir(project / "src")
    with pytest.raises(
        FileNotFoundError,
        match=r"/project/src'\); a relative path is taken from the directory the run "
        r"starts in\. Start `kedro run` in the Kedro project's root '[^']+/project' \(the folder of "
        r"its pyproject\.toml\)\.$",
    ):
        RawFile(path="data/nope.csv")
    monkeypatch.chdir(project)  # in the root: the file is simply missing
    with pytest.raises(FileNotFoundError, match=r"starts in\.$"):
        RawFile(path="data/nope.csv")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_edited_after_the_graph_was_made_fails_its_reader_when_raw_file_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """RawFile cached by an earlier run never runs, so its run()'s check cannot see a file edited between making
    the graph and running it; the load of its output checks instead. Before (attacker at15 F6) the reader cached
    the new content's sum under the old content's ids, and a fresh graph for the old content was served it."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1 2 3\n")
    workspace = str(tmp_path / "resources")
    kart_core.build(RawFile(path="nums.txt", workspace_directory=workspace), return_value=False)
    made_for_old = SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)
    raw.write_bytes(b"100 200 300\n")  # lands while the graph made for "1 2 3" is about to run

    with pytest.raises(kart_core.GokartBuildError) as failed:
        kart_core.build(made_for_old, workers=workers)
    raised = [error for errors in failed.value.raised_exceptions.values() for error in errors]
    stale = [error for error in raised if isinstance(error, StaleTaskError)]
    assert len(stale) == 1 and "'nums.txt' changed since this task was built" in str(stale[0]), failed.value
    assert not made_for_old.complete()

    raw.write_bytes(b"1 2 3\n")
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 6
    raw.write_bytes(b"100 200 300\n")
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 600


def test_loading_a_cached_raw_file_hands_out_its_path_only_while_the_content_is_the_same(tmp_path: Path) -> None:
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1\n")
    task = RawFile(path=str(raw), workspace_directory=str(tmp_path / "resources"))
    kart_core.build(task, return_value=False)
    assert task.output().load() == str(raw)
    raw.write_bytes(b"2\n")
    with pytest.raises(
        StaleTaskError, match=r"changed since this task was built \(md5 b026324c6904b2a9cb4b88d6d61c81d1 then"
    ):
        task.output().load()
    raw.unlink()
    with pytest.raises(StaleTaskError, match=r"nums.txt' is gone since this task was built .*RawFile: no file"):
        task.output().load()


def _download(upload: tuple[int, list[int]]) -> int:
    day, values = upload
    Path("nums.txt").write_text(" ".join(str(value) for value in values) + "\n")
    return day


def _report(total: int, downloaded: int) -> int:
    return total


@pytest.mark.parametrize("runner", ["KartRunner", "SequentialRunner"])
def test_a_dataset_over_a_raw_file_a_node_writes_reads_what_the_node_wrote_that_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    """A `download` node writes the raw file a TaskOnKartDataset over RawFile stands for. The catalog is made before
    the node runs: the dataset's task is made again when it is read, so each run reports that run's download
    (attacker at15 F6, Kedro form: day 1 reported day 0's total, from the cache)."""
    from kart_kedro import KartRunner, TaskOnKartDataset
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro.runner import SequentialRunner

    monkeypatch.chdir(tmp_path)
    Path("nums.txt").write_text("0\n")
    pipeline = Pipeline(
        [node(_download, "upload", "downloaded", name="download"), node(_report, ["total", "downloaded"], "out")]
    )

    def run_day(day: int, values: list[int]) -> int:
        catalog = DataCatalog(
            {
                "total": TaskOnKartDataset(
                    task=f"{__name__}.SumOfFile",
                    params={"source": {"task": "kart_kedro.RawFile", "params": {"path": "nums.txt"}}},
                    workspace_directory=str(tmp_path / "ws"),
                ),
                "upload": MemoryDataset((day, values)),
            }
        )
        chosen = KartRunner(workspace_directory=str(tmp_path / "ws")) if runner == "KartRunner" else SequentialRunner()
        out = chosen.run(pipeline, catalog)["out"]
        return int(out.load() if hasattr(out, "load") else out)

    assert run_day(0, [1, 2, 3]) == 6
    assert run_day(1, [100, 200, 300]) == 600
    assert run_day(2, [1, 2, 3]) == 6  # SumOfFile as of day 0, cached under that content's ids


class SumAfterUpload(kart_core.TaskOnKart[int]):
    """Loads its RawFile's path, then (an upload landing while it works) the file changes before it reads it."""

    source = kart_core.TaskInstanceParameter()
    upload = luigi.Parameter(significant=False, default="")

    def run(self) -> None:
        path = self.load("source")
        if self.upload:
            Path(path).write_text(self.upload)
        with open(path) as handle:
            self.dump(sum(int(word) for word in handle.read().split()))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_changed_while_its_reader_runs_fails_the_reader_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The load's check passes, the file changes before run() reads it: the reader's commit checks again and fails
    with StaleTaskError, committing nothing (attacker at15 F6, what was left: the new content's sum cached under
    the old content's ids)."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "nums.txt"
    raw.write_text("1 2 3\n")
    workspace = str(tmp_path / "resources")
    reader = SumAfterUpload(source=RawFile(path="nums.txt"), upload="100 200 300\n", workspace_directory=workspace)

    with pytest.raises(kart_core.GokartBuildError) as failed:
        kart_core.build(reader, workers=workers, executor="thread")
    raised = [error for errors in failed.value.raised_exceptions.values() for error in errors]
    assert any(isinstance(error, StaleTaskError) and "changed since" in str(error) for error in raised), raised
    assert not reader.complete()
    outputs = [path for path in (tmp_path / "resources").rglob("SumAfterUpload_*.pkl") if "log" not in path.parts]
    assert not outputs  # the run logs written before run() stay, as gokart's

    raw.write_text("1 2 3\n")
    quiet = SumAfterUpload(source=RawFile(path="nums.txt"), workspace_directory=workspace)
    assert kart_core.build(quiet) == 6


def _sum_after_upload(path: str, upload: str) -> int:
    """Read the RawFile's file at ``path`` after an upload of ``upload`` landed (when given)."""
    if upload:
        Path(path).write_text(upload)
    with open(path) as handle:
        return sum(int(word) for word in handle.read().split())


def _load_and_sum(task: SumInWorker) -> int:
    return _sum_after_upload(task.load("source"), task.upload)


def _load_target_and_sum(target: kart_core.TargetOnKart, upload: str) -> int:
    return _sum_after_upload(target.load(), upload)


def _in_fork_pool(task: SumInWorker) -> int:
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return int(pool.apply(_load_and_sum, (task,)))


def _in_executor(context: str, task: SumInWorker) -> int:
    executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(context))
    with executor as pool:
        return pool.submit(_load_target_and_sum, task.input()["source"], task.upload).result()


def _in_thread_pool(task: SumInWorker) -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_load_target_and_sum, task.input()["source"], task.upload).result()


_WORKERS = {
    "fork pool, self.load()": _in_fork_pool,
    "fork ProcessPoolExecutor, self.input()": functools.partial(_in_executor, "fork"),
    "spawn ProcessPoolExecutor, self.input()": functools.partial(_in_executor, "spawn"),
    "thread pool, self.input()": _in_thread_pool,
}


class SumInWorker(kart_core.TaskOnKart[int]):
    """Loads its RawFile and reads the file in a worker (a child process or a thread); an upload lands in between."""

    source = kart_core.TaskInstanceParameter()
    how = luigi.Parameter()
    upload = luigi.Parameter(significant=False, default="")

    def run(self) -> None:
        self.dump(_WORKERS[self.how](self))


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
@pytest.mark.parametrize("how", list(_WORKERS))
def test_a_file_changed_while_a_worker_of_its_reader_reads_it_fails_the_reader(
    tmp_path: Path, how: str, workers: int, executor: str
) -> None:
    """The same when the reader loads the RawFile and reads the file in a child process or a thread (attacker at16
    G7): the child sends the check to the run, which makes it at its commit. Before, the check was dropped in a child
    and the new content's sum was cached under the old content's ids (600 for "1 2 3", for good)."""
    raw = tmp_path / "nums.txt"
    raw.write_text("1 2 3\n")
    workspace = str(tmp_path / "resources")
    reader = SumInWorker(source=RawFile(path=str(raw)), how=how, upload="100 200 300\n", workspace_directory=workspace)

    with pytest.raises(kart_core.GokartBuildError) as failed:
        kart_core.build(reader, workers=workers, executor=executor, reset_register=False)
    raised = [error for errors in failed.value.raised_exceptions.values() for error in errors]
    assert any("changed since" in str(error) for error in raised), raised
    assert not reader.complete()

    raw.write_text("1 2 3\n")
    quiet = SumInWorker(source=RawFile(path=str(raw)), how=how, workspace_directory=workspace)
    assert kart_core.build(quiet, workers=workers, executor=executor, reset_register=False) == 6
