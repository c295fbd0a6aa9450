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
from pathlib import Path

import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner
from kart_kedro.output_state import current_state, file_stamp
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


def test_a_link_back_up_the_tree_does_not_loop(tmp_path: Path) -> None:
    """``data/ds/loop -> data``: each real folder is walked once; the stamp is taken and names each file once."""
    folder, _ = _dataset_folder(tmp_path)
    os.symlink(tmp_path / "data", folder / "part=a" / "loop")
    os.symlink(folder / "part=a", folder / "again")  # a second way into a folder already walked
    state = current_state(ParquetDataset(filepath=str(folder)))
    assert file_stamp(ParquetDataset(filepath=str(folder))) is not None
    sizes = [(folder / "part=a" / "0.parquet").stat().st_size, (tmp_path / "ext" / "b" / "0.parquet").stat().st_size]
    assert state.size == sum(sizes)
