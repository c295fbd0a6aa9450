"""The kart runners on kedro-datasets' PartitionedDataset and IncrementalDataset, with real partition files.

Each test runs the same pipeline with Kedro's SequentialRunner for comparison: a kart runner hands back
what a plain ``kedro run`` would, or runs the node.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.node_records import NodeRecords
from kart_kedro.output_state import dataset_config
from kedro.io import DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.partitions import IncrementalDataset, PartitionedDataset
from node_journal import ingest, ran, record, report
from runner_choice import make_runner


def sum_partitions(parts: dict[str, Any]) -> dict[str, int]:
    """Each partition's sum of ``v``, by partition id (a PartitionedDataset input: loaders)."""
    record("sum_partitions")
    return {key: int(parts[key]()["v"].sum()) for key in sorted(parts)}


def sum_loaded(parts: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The same for an IncrementalDataset input (loaded frames)."""
    record("sum_loaded")
    return {key: int(parts[key]["v"].sum()) for key in sorted(parts)}


def _run(runner: Any, pipeline: Pipeline, entries: dict[str, Any]) -> list[str]:
    catalog_class = SharedMemoryDataCatalog if isinstance(runner, KartParallelRunner) else DataCatalog
    runner.run(pipeline, catalog_class(entries))
    return ran()


def _write(path: Path, values: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"v": values}).to_csv(path, index=False)


@pytest.fixture
def trusted_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw input digests recorded by one run are used by the next at once (no two-second "racy" wait)."""
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)


# --- dataset_config: the options PartitionedDataset._describe() leaves out ---------------------------------


def test_a_partitioned_definition_names_its_suffix_overwrite_and_find_args_not_its_folder(tmp_path: Path) -> None:
    def config(root: Path, reading: bool = True, **options: Any) -> str:
        return dataset_config(
            PartitionedDataset(path=str(root / "parts"), dataset="pandas.CSVDataset", **options), reading=reading
        )

    here, there = tmp_path / "a", tmp_path / "elsewhere" / "b"
    # the project's place does not count
    assert config(here, filename_suffix=".csv") == config(there, filename_suffix=".csv")
    assert config(here, filename_suffix=".csv") != config(here, filename_suffix="")
    assert config(here, reading=False, overwrite=True) != config(here, reading=False, overwrite=False)
    # find() arguments decide what a load lists, not what a save writes
    assert config(here, load_args={"maxdepth": 1}) != config(here)
    assert config(here, reading=False, load_args={"maxdepth": 1}) == config(here, reading=False)


def test_an_incremental_definition_names_its_checkpoint_but_not_the_folder(tmp_path: Path) -> None:
    def config(root: Path, checkpoint: Any = None) -> str:
        return dataset_config(
            IncrementalDataset(path=str(root / "inc"), dataset="pandas.CSVDataset", checkpoint=checkpoint), reading=True
        )

    here, there = tmp_path / "a", tmp_path / "b"
    assert config(here) == config(there)
    done_here, done_there = {"filepath": str(here / "inc" / "done.txt")}, {"filepath": str(there / "inc" / "done.txt")}
    assert config(here, done_here) == config(there, done_there)
    assert config(here, done_here) != config(here)  # another checkpoint file
    assert config(here, {"force_checkpoint": "p1"}) != config(here)
    assert config(here, {"comparison_func": "operator.ge"}) != config(here)


# --- raw partitioned inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
def test_a_changed_filename_suffix_reruns_the_reader_of_raw_partitions(
    tmp_path: Path, journal: str, trusted_digests: None, runner_class: type
) -> None:
    _write(tmp_path / "parts" / "a.csv", [1, 2])
    _write(tmp_path / "parts" / "b.csv", [3])
    _write(tmp_path / "parts" / "notes.txt", [100])  # not a partition while the suffix is .csv
    pipeline = Pipeline([node(sum_partitions, "parts", "sums", name="sums")])

    def entries(suffix: str) -> dict[str, Any]:
        return {
            "parts": PartitionedDataset(
                path=str(tmp_path / "parts"), dataset="pandas.CSVDataset", filename_suffix=suffix
            ),
            "sums": JSONDataset(filepath=str(tmp_path / "sums.json")),
        }

    workspace = str(tmp_path / "ws")
    assert _run(make_runner(runner_class, workspace), pipeline, entries(".csv")) == ["sum_partitions"]
    assert json.loads((tmp_path / "sums.json").read_text()) == {"a": 3, "b": 3}
    assert _run(make_runner(runner_class, workspace), pipeline, entries(".csv")) == []  # digest from the record

    runner = make_runner(runner_class, workspace)
    assert _run(runner, pipeline, entries("")) == ["sum_partitions"]  # kart before: cached, {a: 3, b: 3}
    assert runner.last_reasons == {"sums": "input changed: parts"}
    expected = {"a.csv": 3, "b.csv": 3, "notes.txt": 100}
    assert json.loads((tmp_path / "sums.json").read_text()) == expected
    _run(SequentialRunner(), pipeline, entries(""))
    assert json.loads((tmp_path / "sums.json").read_text()) == expected


def test_a_forced_checkpoint_reruns_the_reader_of_an_incremental_dataset(
    tmp_path: Path, journal: str, trusted_digests: None
) -> None:
    for name, value in (("p1", 1), ("p2", 2), ("p3", 3)):
        _write(tmp_path / "inc" / f"{name}.csv", [value])
    pipeline = Pipeline([node(sum_loaded, "inc", "sums", name="sums")])  # reads, never confirms

    def entries(checkpoint: Any) -> dict[str, Any]:
        return {
            "inc": IncrementalDataset(
                path=str(tmp_path / "inc"), dataset="pandas.CSVDataset", filename_suffix=".csv", checkpoint=checkpoint
            ),
            "sums": JSONDataset(filepath=str(tmp_path / "sums.json")),
        }

    workspace = str(tmp_path / "ws")
    assert _run(make_runner(KartRunner, workspace), pipeline, entries(None)) == ["sum_loaded"]
    assert _run(make_runner(KartRunner, workspace), pipeline, entries(None)) == []
    assert _run(make_runner(KartRunner, workspace), pipeline, entries({"force_checkpoint": "p1"})) == ["sum_loaded"]
    assert json.loads((tmp_path / "sums.json").read_text()) == {"p2": 2, "p3": 3}  # kart before: cached, p1 too


# --- partitioned outputs ---------------------------------------------------------------------------------


def split(frame: pd.DataFrame, groups: list[str]) -> dict[str, pd.DataFrame]:
    """One partition per group named in ``groups``."""
    record("split")
    return {group: frame[frame.g == group][["v"]] for group in groups}


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda cls: cls.__name__)
def test_a_changed_overwrite_option_rewrites_the_cached_partitions(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    from kedro.io import MemoryDataset

    frame = pd.DataFrame({"g": ["g1", "g2", "g3"], "v": [1, 2, 3]})
    pipeline = Pipeline([node(split, ["frame", "params:groups"], "parts", name="split")])

    def entries(groups: list[str], overwrite: bool) -> dict[str, Any]:
        return {
            "frame": MemoryDataset(frame),
            "params:groups": MemoryDataset(groups),
            "parts": PartitionedDataset(
                path=str(tmp_path / "parts"),
                dataset={"type": "pandas.CSVDataset", "save_args": {"index": False}},
                filename_suffix=".csv",
                overwrite=overwrite,
            ),
        }

    workspace = str(tmp_path / "ws")
    assert _run(make_runner(runner_class, workspace), pipeline, entries(["g1", "g2"], False)) == ["split"]
    assert _run(make_runner(runner_class, workspace), pipeline, entries(["g3"], False)) == ["split"]
    assert sorted(os.listdir(tmp_path / "parts")) == ["g1.csv", "g2.csv", "g3.csv"]  # overwrite=False keeps g1, g2

    # overwrite=True: a plain kedro run leaves only g3.csv; kart before served the node and left all three
    assert _run(make_runner(runner_class, workspace), pipeline, entries(["g3"], True)) == []  # written back, not run
    assert sorted(os.listdir(tmp_path / "parts")) == ["g3.csv"]


# --- partitioned outputs read by a cached node -------------------------------------------------------------


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda cls: cls.__name__)
def test_a_reader_of_a_partition_folder_sees_the_partitions_other_runs_left_in_it(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    from kedro.io import MemoryDataset

    frame = pd.DataFrame({"g": ["g1", "g2", "g3"], "v": [1, 2, 3]})
    pipeline = Pipeline(
        [
            node(split, ["frame", "params:groups"], "parts", name="split"),
            node(sum_partitions, "parts", "sums", name="sums"),
        ]
    )

    def run(runner: Any, groups: list[str]) -> tuple[list[str], dict[str, int]]:
        folder = tmp_path / type(runner).__name__
        entries = {
            "frame": MemoryDataset(frame),
            "params:groups": MemoryDataset(groups),
            "parts": PartitionedDataset(  # overwrite=False: a save leaves the partitions it does not write
                path=str(folder / "parts"),
                dataset={"type": "pandas.CSVDataset", "save_args": {"index": False}},
                filename_suffix=".csv",
            ),
            "sums": JSONDataset(filepath=str(folder / "sums.json")),
        }
        ran = _run(runner, pipeline, entries)
        return ran, json.loads((folder / "sums.json").read_text())

    workspace = str(tmp_path / "ws")
    for groups in (["g1", "g2"], ["g3"], ["g1", "g2"]):
        expected = run(SequentialRunner(), groups)[1]
        runner = make_runner(runner_class, workspace)
        ran, sums = run(runner, groups)
        assert sums == expected
    assert expected == {"g1": 1, "g2": 2, "g3": 3}  # the folder keeps g3 from the second run
    # split is served (its partitions written back), sums runs: kart before served the first run's {g1, g2}
    assert ran == ["sum_partitions"]
    assert runner.last_reasons == {"sums": "upstream changed: parts"}


def tolerant_sums(parts: dict[str, Any]) -> dict[str, Any]:
    """Each partition's sum of ``v``; a partition that fails to load is reported, not fatal."""
    record("tolerant_sums")
    sums: dict[str, Any] = {}
    for key in sorted(parts):
        try:
            sums[key] = int(parts[key]()["v"].sum())
        except Exception as exc:  # a node that skips unreadable partitions, as many do
            sums[key] = f"skipped: {type(exc).__name__}"
    return sums


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda cls: cls.__name__)
def test_a_partition_that_fails_to_load_runs_its_reader_uncached_as_sequential_runs_it(
    tmp_path: Path, journal: str, runner_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.parquet").write_bytes(b"not parquet")  # a corrupt partition
    pd.DataFrame({"v": [1, 2]}).to_parquet(tmp_path / "parts" / "b.parquet")
    pipeline = Pipeline([node(tolerant_sums, "parts", "sums", name="sums")])

    def run(runner: Any) -> Any:
        entries = {
            "parts": PartitionedDataset(path=str(tmp_path / "parts"), dataset="pandas.ParquetDataset"),
            "sums": JSONDataset(filepath=str(tmp_path / "sums.json")),
        }
        _run(runner, pipeline, entries)
        return json.loads((tmp_path / "sums.json").read_text())

    expected = run(SequentialRunner())
    assert expected == {"a.parquet": "skipped: DatasetError", "b.parquet": 3}
    for _ in range(2):
        runner = make_runner(runner_class, str(tmp_path / "ws"))
        assert run(runner) == expected  # kart before: the loader's DatasetError stopped the run
        assert runner.last_run == {"sums": "ran uncached"}
    warnings = [message for message in caplog.messages if "runs without the cache" in message]
    assert re.fullmatch(
        r"kart: node 'sums' runs without the cache: its input 'parts' holds a partition that fails to load "
        r"\(DatasetError: Could not open Parquet input source '.*/parts/a\.parquet': Parquet magic bytes not found.*\) "
        r"\(\['a\.parquet'\]\(\)\), whose content kart cannot digest; tag the node 'kart_no_cache' to run it "
        r"uncached without this warning",
        warnings[0],
    )


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda cls: cls.__name__)
def test_a_deleted_empty_partition_reruns_the_reader_as_sequential_runner_sees_it(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    pipeline = Pipeline([node(ingest, ["day", "events"], "daily", name="ingest"), node(report, "daily", "report")])

    def entries(day: str, events: str) -> dict[str, Any]:
        return {
            "daily": PartitionedDataset(
                path=str(tmp_path / "daily"), dataset="text.TextDataset", filename_suffix=".txt"
            ),
            "report": JSONDataset(filepath=str(tmp_path / "report.json")),
            "day": MemoryDataset(day),
            "events": MemoryDataset(events),
        }

    workspace = str(tmp_path / "ws")
    assert _run(make_runner(runner_class, workspace), pipeline, entries("2026-11-01", "")) == ["ingest", "report"]
    assert _run(make_runner(runner_class, workspace), pipeline, entries("2026-11-02", "a,b")) == ["ingest", "report"]
    assert json.loads((tmp_path / "report.json").read_text()) == ["2026-11-01", "2026-11-02"]
    # The empty partition is not the newest file: the folder's total size and newest times stay the same.
    (tmp_path / "daily" / "2026-11-01.txt").unlink()
    ran = _run(make_runner(runner_class, workspace), pipeline, entries("2026-11-02", "a,b"))
    assert "report" in ran  # kart before: both cached, the report still covering 2026-11-01
    assert json.loads((tmp_path / "report.json").read_text()) == ["2026-11-02"]
    _run(SequentialRunner(), pipeline, entries("2026-11-02", "a,b"))
    assert json.loads((tmp_path / "report.json").read_text()) == ["2026-11-02"]
    assert sorted(os.listdir(tmp_path / "daily")) == ["2026-11-02.txt"]
