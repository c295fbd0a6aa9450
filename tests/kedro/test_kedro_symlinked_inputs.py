"""A raw input folder with a symlinked sub-folder is stamped with the linked files (attacker at10 K4).

A Parquet dataset folder (``pandas.ParquetDataset(filepath=<folder>)``, pyarrow's dataset discovery)
reads the files of a symlinked sub-folder (``part=b -> /elsewhere/b``); kart's stamp walked the folder
without following the link, so an edit there kept the stamp, the recorded digest was reused and the node
served the old result. Now the walk follows symlinked folders (each real folder once: a link back up the
tree does not loop). Real files, real Kedro datasets, KartRunner and KartParallelRunner.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner
from kart_kedro.output_state import _local_files, current_state, file_stamp
from kedro.io import DataCatalog, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset


def esum(events: pd.DataFrame) -> dict[str, int]:
    """What the node computes from every row pyarrow reads."""
    return {"sum": int(events["x"].sum()), "n": len(events)}


def _dataset_folder(tmp_path: Path) -> tuple[Path, Path]:
    """``data/ds/part=a/0.parquet`` (x = 1, 2) and ``data/ds/part=b`` -> ``ext/b`` holding x = 500, 600."""
    folder, linked = tmp_path / "data" / "ds", tmp_path / "ext" / "b"
    (folder / "part=a").mkdir(parents=True)
    linked.mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(folder / "part=a" / "0.parquet")
    pd.DataFrame({"x": [500, 600]}).to_parquet(linked / "0.parquet")
    os.symlink(linked, folder / "part=b")
    return folder, linked


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner])
def test_an_edit_in_a_symlinked_sub_folder_reruns_the_reader(tmp_path: Path, runner_class: type) -> None:
    folder, linked = _dataset_folder(tmp_path)
    pipeline = Pipeline([node(esum, "events", "esum", name="esum")])
    result = tmp_path / "esum.json"

    def run() -> tuple[str, dict[str, int]]:
        entries = {"events": ParquetDataset(filepath=str(folder)), "esum": JSONDataset(filepath=str(result))}
        if runner_class is KartParallelRunner:
            runner = KartParallelRunner(max_workers=2, workspace_directory=str(tmp_path / "ws"))
            runner.run(pipeline, SharedMemoryDataCatalog(entries))
        else:
            runner = KartRunner(workspace_directory=str(tmp_path / "ws"))
            runner.run(pipeline, DataCatalog(entries))
        return runner.last_run["esum"], json.loads(result.read_text())

    assert run() == ("ran", {"sum": 1103, "n": 4})
    assert run() == ("cached", {"sum": 1103, "n": 4})
    pd.DataFrame({"x": [10, 20]}).to_parquet(linked / "0.parquet")  # pd.read_parquet(folder) now sums to 33
    assert run() == ("ran", {"sum": 33, "n": 4})  # kart before: cached, 1103
    assert run() == ("cached", {"sum": 33, "n": 4})


def test_the_stamp_and_state_follow_a_symlinked_folder(tmp_path: Path) -> None:
    """Both the raw-input stamp and an output's state see an edit of a linked file (same size, same mtime)."""
    folder, linked = _dataset_folder(tmp_path)
    dataset = ParquetDataset(filepath=str(folder))
    stamp, state = file_stamp(dataset), current_state(dataset)
    files = [folder / "part=a" / "0.parquet", linked / "0.parquet"]
    assert stamp is not None and state.size == sum(path.stat().st_size for path in files)
    target = linked / "0.parquet"
    before = target.stat()
    pd.DataFrame({"x": [700, 800]}).to_parquet(target)  # same size: only the values differ
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert file_stamp(dataset) != stamp  # kart before: the same stamp
    assert current_state(dataset).md5 != state.md5


def _names(folder: Path) -> list[str]:
    """The names the stamp walk gives the files of ``folder`` (relative, sorted)."""
    return sorted(relative for relative, _, _ in _local_files(str(folder)))


def test_a_link_back_up_the_tree_does_not_loop(tmp_path: Path) -> None:
    """``ds/part=a/loop -> data`` and ``ds/part=a/self -> ds/part=a`` lead back to folders on the current path
    (loops: skipped); ``ds/again -> ds/part=a`` leads into a folder walked elsewhere: walked again under its own
    name, as pyarrow reads ``again/0.parquet`` too (attacker at12 A2)."""
    folder, _ = _dataset_folder(tmp_path)
    os.symlink(tmp_path / "data", folder / "part=a" / "loop")
    os.symlink(folder / "part=a", folder / "part=a" / "self")
    os.symlink(folder / "part=a", folder / "again")
    assert _names(folder) == ["again/0.parquet", "part=a/0.parquet", "part=b/0.parquet"]  # kart before: no again/
    state = current_state(ParquetDataset(filepath=str(folder)))
    assert file_stamp(ParquetDataset(filepath=str(folder))) is not None
    sizes = [(folder / "part=a" / "0.parquet").stat().st_size, (tmp_path / "ext" / "b" / "0.parquet").stat().st_size]
    assert state.size == 2 * sizes[0] + sizes[1]


def _nested_links(tmp_path: Path, deep: str, shallow: str, deep_first: bool) -> Path:
    """``data/ds/{deep} -> ext/x/y`` (x = 500) and ``data/ds/{shallow} -> ext/x``, which holds ``1.parquet``
    (x = 1, 2) beside ``y``; the link created first per ``deep_first`` (tmpfs lists the newest entry first, ext4
    by a hash of the name: the two parametrisations cover both listing orders on either)."""
    folder, target = tmp_path / "data" / "ds", tmp_path / "ext" / "x"
    folder.mkdir(parents=True)
    (target / "y").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(target / "1.parquet")
    pd.DataFrame({"x": [500]}).to_parquet(target / "y" / "0.parquet")
    links = [(target / "y", folder / deep), (target, folder / shallow)]
    for source, link in links if deep_first else reversed(links):
        os.symlink(source, link)
    return folder


NESTED = [("b", "a", True), ("b", "a", False), ("a", "b", True), ("a", "b", False)]


@pytest.mark.parametrize(("deep", "shallow", "deep_first"), NESTED)
def test_a_link_to_a_folder_holding_one_walked_before_is_walked(
    tmp_path: Path, deep: str, shallow: str, deep_first: bool
) -> None:
    """Attacker at12 A2: kart before skipped a link whose target held a folder walked before (ext/x after
    ext/x/y, per the listing order), so ext/x/1.parquet was never stamped."""
    folder = _nested_links(tmp_path, deep, shallow, deep_first)
    assert _names(folder) == sorted([f"{deep}/0.parquet", f"{shallow}/1.parquet", f"{shallow}/y/0.parquet"])


@pytest.mark.parametrize(("deep", "shallow", "deep_first"), NESTED)
def test_an_edit_under_a_link_holding_another_link_s_target_reruns_the_reader(
    tmp_path: Path, deep: str, shallow: str, deep_first: bool
) -> None:
    folder = _nested_links(tmp_path, deep, shallow, deep_first)
    pipeline = Pipeline([node(esum, "events", "esum", name="esum")])
    result = tmp_path / "esum.json"

    def run() -> tuple[str, dict[str, int]]:
        entries = {"events": ParquetDataset(filepath=str(folder)), "esum": JSONDataset(filepath=str(result))}
        runner = KartRunner(workspace_directory=str(tmp_path / "ws"))
        runner.run(pipeline, DataCatalog(entries))
        return runner.last_run["esum"], json.loads(result.read_text())

    assert run() == ("ran", {"sum": 1003, "n": 4})  # 500 twice: under {deep}/ and {shallow}/y/
    assert run() == ("cached", {"sum": 1003, "n": 4})
    pd.DataFrame({"x": [1000, 2000]}).to_parquet(tmp_path / "ext" / "x" / "1.parquet")
    assert run() == ("ran", {"sum": 4000, "n": 4})  # kart before, in one listing order: cached, 1003
    assert run() == ("cached", {"sum": 4000, "n": 4})


def _partitions(root: Path, count: int) -> Path:
    """``ds/part={i}`` -> ``ext/p{i}`` holding one file, for i < ``count``."""
    folder = root / "ds"
    folder.mkdir(parents=True)
    for index in range(count):
        target = root / "ext" / f"p{index}"
        target.mkdir(parents=True)
        (target / "f").write_text(str(index))
        os.symlink(target, folder / f"part={index}")
    return folder


def _walk_cpu(folder: Path) -> float:
    """The least CPU time (seconds) of three walks of ``folder``."""
    times = []
    for _ in range(3):
        start = time.process_time()
        _names(folder)
        times.append(time.process_time() - start)
    return min(times)


def test_the_walk_of_linked_partitions_is_linear(tmp_path: Path) -> None:
    """Attacker at12 A8: kart before compared each link with every earlier one (8,000 linked partitions: 28.7 s
    of CPU per stamp). 2,000 partitions cost about 10x 200 now; kart before about 100x here. A generous bound
    (30x), measured in the same test, so no absolute timing."""
    small, large = _partitions(tmp_path / "small", 200), _partitions(tmp_path / "large", 2000)
    assert len(_names(large)) == 2000
    ratio = _walk_cpu(large) / max(_walk_cpu(small), 1e-4)
    assert ratio < 30, ratio
