"""The kart runners on kedro-datasets file datasets whose ``fs_args`` open the file: ``open_args_load`` and
``open_args_save`` (an ``encoding``) shape the data, though their ``_describe()`` leaves them out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.node_records import NodeRecords
from kart_kedro.output_state import appending_save, dataset_config
from kedro.io import DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.text import TextDataset
from node_journal import ran, record
from runner_choice import make_runner


def shout(text: str) -> str:
    record("shout")
    return text.upper()


def _open_args(load: str | None = None, save: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if load:
        args["open_args_load"] = {"encoding": load}
    if save:
        args["open_args_save"] = {"encoding": save}
    return {"fs_args": args}


def test_open_args_count_for_readers_and_writers_not_the_place(tmp_path: Path) -> None:
    def config(root: Path, reading: bool, **fs: Any) -> str:
        return dataset_config(JSONDataset(filepath=str(root / "x.json"), **_open_args(**fs)), reading=reading)

    assert config(tmp_path / "a", True) == config(tmp_path / "b", True)
    assert config(tmp_path, True, load="latin-1") != config(tmp_path, True)
    assert config(tmp_path, False, load="latin-1") == config(tmp_path, False)  # a load's encoding writes nothing
    assert config(tmp_path, False, save="utf-16") != config(tmp_path, False)


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
def test_a_changed_load_encoding_of_a_raw_text_reruns_its_reader(
    tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, runner_class: type
) -> None:
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)  # the digest recorded by one run is used by the next
    (tmp_path / "raw.txt").write_bytes("café".encode())
    pipeline = Pipeline([node(shout, "raw", "loud", name="shout")])

    def run(runner: Any, encoding: str) -> str:
        catalog = DataCatalog(
            {
                "raw": TextDataset(filepath=str(tmp_path / "raw.txt"), **_open_args(load=encoding)),
                "loud": TextDataset(filepath=str(tmp_path / "loud.txt")),
            }
        )
        runner.run(pipeline, catalog)
        return (tmp_path / "loud.txt").read_text()

    workspace = str(tmp_path / "ws")
    assert run(make_runner(runner_class, workspace), "utf-8") == "CAFÉ"
    assert run(make_runner(runner_class, workspace), "utf-8") == "CAFÉ"
    assert ran() == ["shout"]
    runner = make_runner(runner_class, workspace)
    assert run(runner, "latin-1") == run(SequentialRunner(), "latin-1") == "CAFÃ©"  # kart before: CAFÉ, cached
    assert runner.last_reasons == {"shout": "input changed: raw"}


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda cls: cls.__name__)
def test_a_changed_save_encoding_rewrites_a_cached_output_as_a_plain_run_would(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    pipeline = Pipeline([node(shout, "text", "loud", name="shout")])

    def run(runner: Any, folder: str, encoding: str) -> bytes:
        catalog_class = SharedMemoryDataCatalog if isinstance(runner, KartParallelRunner) else DataCatalog
        target = tmp_path / folder / "loud.txt"
        target.parent.mkdir(exist_ok=True)
        output = TextDataset(filepath=str(target), **_open_args(save=encoding))
        runner.run(pipeline, catalog_class({"text": MemoryDataset("café"), "loud": output}))
        return target.read_bytes()

    workspace = str(tmp_path / "ws")
    assert run(make_runner(runner_class, workspace), "kart", "utf-8") == "CAFÉ".encode()
    expected = run(SequentialRunner(), "sequential", "utf-16")
    assert expected == "CAFÉ".encode("utf-16")
    ran()
    assert run(make_runner(runner_class, workspace), "kart", "utf-16") == expected  # kart before: left the utf-8 file
    assert ran() == []  # written back from the cache, not run


def line(text: str) -> str:
    record("line")
    return f"{text}\n"


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner, KartParallelRunner], ids=lambda c: c.__name__)
def test_a_node_whose_output_appends_runs_every_time_with_a_warning(
    tmp_path: Path, journal: str, runner_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline([node(line, "text", "log", name="append_line")])

    def run(runner: Any, folder: str) -> str:
        catalog_class = SharedMemoryDataCatalog if isinstance(runner, KartParallelRunner) else DataCatalog
        target = tmp_path / folder / "log.txt"
        target.parent.mkdir(exist_ok=True)
        output = TextDataset(filepath=str(target), fs_args={"open_args_save": {"mode": "a"}})
        runner.run(pipeline, catalog_class({"text": MemoryDataset("hello"), "log": output}))
        return target.read_text()

    for _ in range(3):
        expected = run(SequentialRunner(), "sequential")
        runner = make_runner(runner_class, str(tmp_path / "ws"))
        assert run(runner, "kart") == expected  # kart before: served from the cache, one line only
        assert runner.last_run == {"append_line": "ran uncached"}
    assert expected == "hello\n" * 3
    assert ran() == ["line"] * 6
    assert (
        "kart: node 'append_line' runs without the cache: its output 'log' appends to its file on every save "
        "(fs_args open_args_save mode 'a'), which a node served from the cache would not do; tag the node "
        "'kart_no_cache' to run it uncached without this warning"
    ) in caplog.messages


def day_line(day: str, text: str) -> dict[str, str]:
    """One line for the day's partition."""
    record("day_line")
    return {day: f"{text}\n"}


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda c: c.__name__)
def test_a_node_whose_partition_dataset_appends_runs_every_time_with_a_warning(
    tmp_path: Path, journal: str, runner_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline([node(day_line, ["day", "text"], "log", name="log_line")])
    appending = {"type": "text.TextDataset", "fs_args": {"open_args_save": {"mode": "a"}}}

    def run(runner: Any, folder: str) -> str:
        catalog_class = SharedMemoryDataCatalog if isinstance(runner, KartParallelRunner) else DataCatalog
        output = PartitionedDataset(path=str(tmp_path / folder), dataset=appending, filename_suffix=".txt")
        entries = {"day": MemoryDataset("2026-11-01"), "text": MemoryDataset("job started"), "log": output}
        runner.run(pipeline, catalog_class(entries))
        return (tmp_path / folder / "2026-11-01.txt").read_text()

    for _ in range(2):
        expected = run(SequentialRunner(), "sequential")
        runner = make_runner(runner_class, str(tmp_path / "ws"))
        assert run(runner, "kart") == expected  # kart before: served from the cache, one line only
        assert runner.last_run == {"log_line": "ran uncached"}
    assert expected == "job started\n" * 2
    assert ran() == ["day_line"] * 4
    assert (
        "kart: node 'log_line' runs without the cache: its output 'log' saves partitions with a dataset that "
        "appends to its file on every save (fs_args open_args_save mode 'a'), which a node served from the cache "
        "would not do; tag the node 'kart_no_cache' to run it uncached without this warning"
    ) in caplog.messages


def test_a_partitioned_output_of_a_plain_partition_dataset_does_not_append() -> None:
    assert appending_save(PartitionedDataset(path="/nonexistent/parts", dataset="text.TextDataset")) is None
    assert appending_save(PartitionedDataset(path="/nonexistent/parts", dataset="pandas.CSVDataset")) is None
