"""Node inputs read lazily: partition loaders are digested through the data they load; LazyFrames,
generators and other callables make the node run uncached with one warning line, never stale. Node
code reaching what cannot be digested runs uncached; reaching a client or an object too large to
fingerprint, it stays cached."""

from __future__ import annotations

import logging
import sqlite3
import types
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import polars as pl
import pytest
from kart_kedro import NO_CACHE_TAG, KartRunner
from kart_kedro.input_digest import data_digest
from kart_kedro.output_state import MISSING, current_state
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

import kart_core


class CsvFile(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """One CSV file read with pandas (a partition's underlying dataset)."""

    def __init__(self, filepath: str) -> None:
        self.filepath = filepath

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self.filepath)

    def save(self, data: pd.DataFrame) -> None:
        data.to_csv(self.filepath, index=False)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self.filepath}


class CsvFolder(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """The shape kedro_datasets' PartitionedDataset loads: {partition id: the bound ``load`` of its dataset}."""

    def __init__(self, path: str) -> None:
        self._path = path

    def load(self) -> dict[str, Any]:
        files = sorted(Path(self._path).glob("*.csv"))
        return {file.stem: CsvFile(str(file)).load for file in files}

    def save(self, data: dict[str, Any]) -> None:
        # Writes where it reads: a read-only dataset's path is not trusted to be its data (path_holds_data).
        for key, frame in data.items():
            frame.to_csv(Path(self._path) / f"{key}.csv", index=False)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}


class ScannedCsv(AbstractDataset[pl.LazyFrame, pl.LazyFrame]):
    """A CSV file loaded as a polars LazyFrame (``pl.scan_csv``): its pickle is the plan, not the rows."""

    def __init__(self, filepath: str) -> None:
        self._source = filepath  # not a path attribute kart reads: the LazyFrame is what it sees

    def load(self) -> pl.LazyFrame:
        return pl.scan_csv(self._source)

    def save(self, data: pl.LazyFrame) -> None:
        data.collect().write_csv(self._source)

    def _exists(self) -> bool:
        return Path(self._source).exists()

    def _describe(self) -> dict[str, Any]:
        return {}


def total_of_partitions(partitions: dict[str, Any]) -> float:
    return float(sum(load()["x"].sum() for load in partitions.values()))


def total_of_lazy(frame: pl.LazyFrame) -> float:
    return float(frame.select(pl.col("x").sum()).collect().item())


def _write(folder: Path, name: str, values: list[int]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.csv").write_text("x\n" + "".join(f"{value}\n" for value in values))


def _run(pipeline: Pipeline, catalog: dict[str, Any], workspace: str) -> tuple[KartRunner, Any]:
    runner = KartRunner(workspace_directory=workspace)
    outputs = runner.run(pipeline, DataCatalog(catalog))
    return runner, outputs


def _loaded(outputs: Any, name: str) -> Any:
    value = outputs[name]
    return value.load() if hasattr(value, "load") else value


def test_partition_loaders_are_digested_through_the_data_they_load(tmp_path: Path, workspace: str) -> None:
    parts = tmp_path / "parts"
    _write(parts, "a", [1000])
    _write(parts, "b", [2])
    pipeline = Pipeline([node(total_of_partitions, "parts", "total", name="total")])
    catalog = {"parts": CsvFolder(str(parts)), "total": MemoryDataset()}
    runner, outputs = _run(pipeline, catalog, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran"}, 1002.0)
    runner, outputs = _run(pipeline, catalog, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "cached"}, 1002.0)
    _write(parts, "a", [100])  # an edited partition: the loaders' pickles are the same, the data is not
    runner, outputs = _run(pipeline, catalog, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran"}, 102.0)
    assert runner.last_reasons == {"total": "input changed: parts"}
    _write(parts, "c", [5])  # a new partition
    runner, outputs = _run(pipeline, catalog, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran"}, 107.0)


def test_partitions_digest_in_a_stable_order_and_by_content(tmp_path: Path) -> None:
    _write(tmp_path, "a", [1])
    _write(tmp_path, "b", [2])
    a, b = CsvFile(str(tmp_path / "a.csv")), CsvFile(str(tmp_path / "b.csv"))
    assert data_digest({"a": a.load, "b": b.load}) == data_digest({"b": b.load, "a": a.load})
    assert data_digest({"a": a.load, "b": b.load}) != data_digest({"a": b.load, "b": a.load})
    assert data_digest({"a": a.load}) != data_digest({"a": a.load()})  # loaders and loaded data are not confused
    with pytest.raises(kart_core.errors.UndigestableError, match=r"a callable \(scale\)"):
        data_digest({"a": scale})  # needs an argument: not a loader kart may call


def scale(value: int) -> int:
    return value * 2


@pytest.mark.parametrize("shape", ["lazyframe", "partition_lazyframe", "generator"])
def test_an_input_whose_content_cannot_be_digested_runs_the_node_uncached_with_one_warning(
    tmp_path: Path, workspace: str, caplog: pytest.LogCaptureFixture, shape: str
) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("x\n1\n2\n")
    if shape == "lazyframe":
        data: Any = ScannedCsv(str(csv))
        func, kind = total_of_lazy, "a polars LazyFrame, whose"
    elif shape == "partition_lazyframe":
        data = MemoryDataset({"p": lambda: pl.scan_csv(csv)}, copy_mode="assign")
        func, kind = total_of_lazy_partitions, "a polars LazyFrame (['p']()), whose"
    else:
        data = MemoryDataset((value for value in [1, 2]), copy_mode="assign")
        func, kind = sum_values, "a generator, whose"
    pipeline = Pipeline([node(func, "data", "total", name="total")])
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        runner, outputs = _run(pipeline, {"data": data, "total": MemoryDataset()}, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran uncached"}, 3.0)
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warning == (
        f"kart: node 'total' runs without the cache: its input 'data' holds {kind} content kart cannot digest; "
        f"tag the node '{NO_CACHE_TAG}' to run it uncached without this warning"
    )
    if shape != "generator":  # an edit shows at once: nothing was cached under a key blind to the data
        csv.write_text("x\n10\n")
        runner, outputs = _run(pipeline, {"data": data, "total": MemoryDataset()}, workspace)
        assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran uncached"}, 10.0)


def total_of_lazy_partitions(partitions: dict[str, Any]) -> float:
    return sum(total_of_lazy(load()) for load in partitions.values())


def sum_values(values: Any) -> float:
    return float(sum(values))


def test_a_node_tagged_no_cache_reads_a_lazy_input_without_a_warning(
    tmp_path: Path, workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("x\n4\n")
    pipeline = Pipeline([node(total_of_lazy, "data", "total", name="total", tags=[NO_CACHE_TAG])])
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        runner, outputs = _run(pipeline, {"data": ScannedCsv(str(csv)), "total": MemoryDataset()}, workspace)
    assert (runner.last_run, _loaded(outputs, "total")) == ({"total": "ran uncached"}, 4.0)
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


def feature_order(columns: dict[str, str]) -> list[str]:
    return list(columns)


def test_a_parameter_dict_in_another_key_order_reruns_the_node(workspace: str) -> None:
    pipeline = Pipeline([node(feature_order, "params:columns", "order", name="order")])
    runs = []
    for columns in ({"age": "int", "income": "float"}, {"income": "float", "age": "int"}):
        runner, outputs = _run(
            pipeline, {"params:columns": MemoryDataset(columns), "order": MemoryDataset()}, workspace
        )
        runs.append((runner.last_run["order"], _loaded(outputs, "order")))
    assert runs == [("ran", ["age", "income"]), ("ran", ["income", "age"])]


def test_a_pathless_output_holding_a_lazyframe_counts_as_missing(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("x\n1\n")
    assert current_state(ScannedCsv(str(csv))) == MISSING  # so a cached result is written back, never trusted
    partitions = MemoryDataset({"p": CsvFile(str(csv)).load}, copy_mode="assign")
    before = current_state(partitions).md5
    csv.write_text("x\n2\n")
    assert before != current_state(partitions).md5 != ""  # digested through the loader


_CONNECTION = sqlite3.connect(":memory:")  # module-level state no digest can read (it cannot be pickled)


def count_from_database(values: list[int]) -> int:
    return len(values) + _CONNECTION.execute("select 40").fetchone()[0]


def test_node_code_reaching_an_undigestable_value_runs_uncached_with_one_warning(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline([node(count_from_database, "values", "count", name="count")])
    for _ in range(2):  # never served from the cache: an edit to what the connection reads would not show
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kart_kedro"):
            runner, outputs = _run(pipeline, {"values": MemoryDataset([1, 2]), "count": MemoryDataset()}, workspace)
        assert (runner.last_run, _loaded(outputs, "count")) == ({"count": "ran uncached"}, 42)
        (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert warning.startswith(
            f"kart: node 'count' runs without the cache: its code reaches {__name__}._CONNECTION: a "
            "sqlite3.Connection that cannot be pickled (TypeError: "
        )
        assert warning.endswith(
            f"whose content kart cannot digest; tag the node '{NO_CACHE_TAG}' to run it uncached without this "
            "warning, or 'kart_code_version.1' to cache it by a version you bump when that value changes"
        )


class LoadCount:
    """The loads of a ``CountedCsv``, held by the test. Not a list: a constructor argument counts in the catalog
    definition (``dataset_config``), and a list's items would make each run's definition another one; an object
    without its own repr counts by its type."""

    def __init__(self) -> None:
        self.count = 0

    def append(self, _path: str) -> None:
        self.count += 1


class CountedCsv(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A CSV file that counts its loads (in a ``LoadCount`` the test holds); ``load_args`` go to pandas."""

    def __init__(self, filepath: str, loads: LoadCount, load_args: dict[str, Any] | None = None) -> None:
        self._filepath = filepath
        self._loads = loads
        self._load_args = load_args or {}

    def load(self) -> pd.DataFrame:
        self._loads.append(self._filepath)
        return pd.read_csv(self._filepath, **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        # Writes where it reads: a read-only dataset's path is not trusted to be its data (path_holds_data).
        data.to_csv(self._filepath, index=False)

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "load_args": self._load_args}


def total_of(frame: pd.DataFrame, partitions: dict[str, Any]) -> float:
    return float(frame["x"].sum()) + total_of_partitions(partitions)


def test_unchanged_raw_files_are_not_loaded_to_compute_the_keys(tmp_path: Path, workspace: str) -> None:
    import os
    import time

    csv, parts = tmp_path / "raw.csv", tmp_path / "parts"
    csv.write_text("x\n1\n2\n")
    _write(parts, "a", [10])
    loads = LoadCount()
    pipeline = Pipeline([node(total_of, ["raw", "parts"], "total", name="total")])

    def run(load_args: dict[str, Any] | None = None) -> tuple[str, float, int]:
        before = loads.count
        catalog = {
            "raw": CountedCsv(str(csv), loads, load_args),
            "parts": CsvFolder(str(parts)),
            "total": MemoryDataset(),
        }
        runner, outputs = _run(pipeline, catalog, workspace)
        return runner.last_run["total"], _loaded(outputs, "total"), loads.count - before

    assert run() == ("ran", 13.0, 2)  # read for the key, then by the node
    # Files changed less than NodeRecords.RACY_NS before their digest was recorded are read again
    # (a write in the same timestamp tick would leave the stamp unchanged).
    time.sleep(2.1)
    assert run() == ("cached", 13.0, 1)  # read for the key once more; the digest is recorded now
    assert run() == ("cached", 13.0, 0)  # nothing read: the files' stamps are the recorded ones
    stat = os.stat(csv)
    csv.write_text("x\n1\n5\n")  # same size; the modification time is set back below
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run() == ("ran", 16.0, 2)
    assert run({"skiprows": [1]}) == ("ran", 15.0, 2)  # another catalog definition: read again
    time.sleep(2.1)
    assert run({"skiprows": [1]}) == ("cached", 15.0, 1)
    (parts / "a.csv").rename(parts / "b.csv")  # the same bytes under another partition name
    assert run({"skiprows": [1]})[0::2] == ("ran", 1)  # only the renamed folder's loaders are called again


_S3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
_LARGE = types.SimpleNamespace(rows=list(range(30_000)))  # a third-party object past its fingerprint budget


def count_with_resources(values: list[int]) -> int:
    return len(values) + len(_LARGE.rows) + (_S3.meta.region_name == "us-east-1")


def test_node_code_reaching_a_client_or_a_too_large_object_stays_cached_with_one_warning(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A client counts by its type (a resource); the large object by its type too, with one warning per run.
    pipeline = Pipeline([node(count_with_resources, "values", "count", name="count")])
    statuses = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            runner, outputs = _run(pipeline, {"values": MemoryDataset([1, 2]), "count": MemoryDataset()}, workspace)
        statuses.append((runner.last_run["count"], _loaded(outputs, "count")))
        assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == [
            f"{__name__}._LARGE: a types.SimpleNamespace is too large to fingerprint by content (more than 20,000 "
            "objects); it counts by its type"
        ]
    assert statuses == [("ran", 30_003), ("cached", 30_003)]
