"""The kart runners key a reader of a persistent dataset by what the dataset holds, not by what its producer
returned (attacker at5 C3).

A load need not give back the last save: kedro_datasets' ``PartitionedDataset`` (``overwrite=False``, its
default) adds the saved partitions to those already in its folder, a ``pandas.SQLTableDataset`` with
``if_exists: append`` adds rows, a custom dataset may append lines. In the "one partition per run, a report
over all of them" pipeline, re-running an earlier day served the report of that day's first run (only the
days that existed then) while the folder held more. A table saved with ``if_exists: append`` now makes its
node run uncached (every run appends, as Kedro's does). Each test runs the same days through a kart runner and
through Kedro's own SequentialRunner on a second copy of the data, and asserts the same report.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset
from node_journal import record


class JsonFile(AbstractDataset[Any, Any]):
    """The report: a JSON file (a persistent output, so KartParallelRunner's workers write it themselves)."""

    def __init__(self, filepath: str) -> None:
        self.filepath = Path(filepath)

    def load(self) -> Any:
        return json.loads(self.filepath.read_text())

    def save(self, data: Any) -> None:
        self.filepath.write_text(json.dumps(data))

    def _exists(self) -> bool:
        return self.filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self.filepath)}


class AppendLines(AbstractDataset[str, list[str]]):
    """A log file: ``save`` appends one line, ``load`` returns every line (what a run log or an event sink does)."""

    def __init__(self, filepath: str) -> None:
        self._filepath = PurePosixPath(filepath)

    def load(self) -> list[str]:
        return Path(self._filepath).read_text().splitlines()

    def save(self, data: str) -> None:
        with open(self._filepath, "a") as handle:
            handle.write(f"{data}\n")

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


# --- node functions (module level: KartParallelRunner's workers import them) ---------------------------------


def ingest_partition(day: str) -> dict[str, pd.DataFrame]:
    record("ingest")
    return {day: pd.DataFrame({"day": [day], "sales": [int(day[-2:]) * 10]})}


def report_partitions(parts: dict[str, Any]) -> list[str]:
    record("report")
    return sorted(str(load()["day"].iloc[0]) for load in parts.values())


def ingest_frame(day: str) -> pd.DataFrame:
    record("ingest")
    return pd.DataFrame({"day": [day], "sales": [int(day[-2:]) * 10]})


def report_table(table: pd.DataFrame) -> list[str]:
    record("report")
    return sorted(table["day"])


def ingest_line(day: str) -> str:
    record("ingest")
    return day


def report_lines(lines: list[str]) -> list[str]:
    record("report")
    return lines


# --- running one day through kart and through plain Kedro ----------------------------------------------------


def _partitions(folder: Path) -> PartitionedDataset:
    return PartitionedDataset(path=str(folder / "daily"), dataset="pandas.CSVDataset", filename_suffix=".csv")


def _sql_table(folder: Path) -> Any:
    sql = pytest.importorskip("kedro_datasets.pandas.sql_dataset")  # needs sqlalchemy
    return sql.SQLTableDataset(
        table_name="daily",
        credentials={"con": f"sqlite:///{folder}/sales.db"},
        save_args={"if_exists": "append", "index": False},
    )


def _append_lines(folder: Path) -> AppendLines:
    return AppendLines(str(folder / "daily.log"))


RUNNERS = [KartRunner, KartThreadRunner, KartParallelRunner]  # KartParallelRunner: states recorded in a worker

PIPELINES = {
    "partitions": (ingest_partition, report_partitions, _partitions),
    "sql append": (ingest_frame, report_table, _sql_table),
    "appended lines": (ingest_line, report_lines, _append_lines),
}


class Days:
    """One pipeline ``ingest(params:day) -> daily -> report(daily) -> report.json`` run day after day, by a kart
    runner (data under ``kart/``) and by SequentialRunner (the same data kind under ``plain/``)."""

    def __init__(self, tmp_path: Path, runner_class: type, kind: str) -> None:
        ingest, report, self.daily = PIPELINES[kind]
        self.tmp_path, self.runner_class = tmp_path, runner_class
        self.pipeline = Pipeline(
            [node(ingest, "params:day", "daily", name="ingest"), node(report, "daily", "report", name="report")]
        )
        for side in ("kart", "plain"):
            (tmp_path / side).mkdir()

    def catalog(self, side: str, day: str, catalog_class: type = DataCatalog) -> Any:
        folder = self.tmp_path / side
        entries = {
            "params:day": MemoryDataset(day),
            "daily": self.daily(folder),
            "report": JsonFile(str(folder / "report.json")),
        }
        return catalog_class(entries)

    def run(self, day: str) -> tuple[list[str], dict[str, str], list[str]]:
        """Run ``day`` through both; return the kart report, kart's statuses and the nodes kart ran."""
        journal = Path(os.environ["KART_KEDRO_TEST_JOURNAL"])
        journal.write_text("")
        if self.runner_class is KartRunner:
            runner = KartRunner(workspace_directory=str(self.tmp_path / "ws"))
        else:
            runner = self.runner_class(max_workers=2, workspace_directory=str(self.tmp_path / "ws"))
        parallel = self.runner_class is KartParallelRunner
        runner.run(self.pipeline, self.catalog("kart", day, SharedMemoryDataCatalog if parallel else DataCatalog))
        ran = sorted(journal.read_text().split())
        SequentialRunner().run(self.pipeline, self.catalog("plain", day))
        kart, plain = (json.loads((self.tmp_path / side / "report.json").read_text()) for side in ("kart", "plain"))
        assert kart == plain, f"day {day}: KartRunner reported {kart}, plain Kedro {plain}"
        return kart, dict(runner.last_run), ran

    def delete_cache(self, node_name: str) -> None:
        """Delete the kart cache files of ``node_name``'s output, of every run so far."""
        paths = list((self.tmp_path / "ws" / "kedro" / "_").glob(f"{node_name}__*.pkl"))
        assert paths
        for path in paths:
            path.unlink()


@pytest.mark.parametrize("runner_class", RUNNERS, ids=lambda c: c.__name__)
def test_a_report_over_partitions_covers_the_days_other_runs_added(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    days = Days(tmp_path, runner_class, "partitions")
    assert days.run("2026-11-01")[0] == ["2026-11-01"]
    assert days.run("2026-11-02")[0] == ["2026-11-01", "2026-11-02"]
    # A backfill of day 1: ingest is cached (its partition is written back, the same bytes) and the folder
    # holds both days: the report runs over both (the old code served day 1's first report: one day).
    report, statuses, ran = days.run("2026-11-01")
    assert report == ["2026-11-01", "2026-11-02"]
    assert (statuses, ran) == ({"ingest": "cached", "report": "ran"}, ["report"])
    report, statuses, ran = days.run("2026-11-01")  # nothing changed since: both cached
    assert (report, statuses, ran) == (["2026-11-01", "2026-11-02"], {"ingest": "cached", "report": "cached"}, [])
    report, statuses, ran = days.run("2026-11-03")
    assert (report, ran) == (["2026-11-01", "2026-11-02", "2026-11-03"], ["ingest", "report"])
    # What a partition holds, not who wrote it: ingest runs again (its cache deleted) and writes the same
    # bytes, so the report it feeds stays cached.
    days.delete_cache("ingest")
    report, statuses, ran = days.run("2026-11-03")
    assert (report, statuses, ran) == (
        ["2026-11-01", "2026-11-02", "2026-11-03"],
        {"ingest": "ran", "report": "cached"},
        ["ingest"],
    )


@pytest.mark.parametrize("runner_class", RUNNERS, ids=lambda c: c.__name__)
def test_a_report_over_an_appending_dataset_sees_every_row(tmp_path: Path, journal: str, runner_class: type) -> None:
    """A custom dataset kart cannot tell appends: its producer is cached, its reader keyed by what it holds."""
    days = Days(tmp_path, runner_class, "appended lines")
    assert days.run("2026-11-01")[0] == ["2026-11-01"]
    assert days.run("2026-11-02")[0] == ["2026-11-01", "2026-11-02"]
    # Day 1 again: ingest is cached, and serving it appends its row once more (as plain Kedro's run does);
    # the report reads three rows and runs (the old code served day 1's first report: one row).
    report, statuses, ran = days.run("2026-11-01")
    assert sorted(report) == ["2026-11-01", "2026-11-01", "2026-11-02"]
    assert (statuses, ran) == ({"ingest": "cached", "report": "ran"}, ["report"])


@pytest.mark.parametrize("runner_class", RUNNERS, ids=lambda c: c.__name__)
def test_a_table_saved_with_if_exists_append_gets_the_rows_of_every_run(
    tmp_path: Path, journal: str, runner_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    """pandas.SQLTableDataset with ``if_exists: append`` (sqlite): every run appends, as a plain ``kedro run``
    does, so its node runs uncached with one warning line (the old code served it: the same day twice left one
    row and a report of one day, against Kedro's two rows)."""
    days = Days(tmp_path, runner_class, "sql append")
    for day, report in [
        ("2026-11-01", ["2026-11-01"]),
        ("2026-11-01", ["2026-11-01", "2026-11-01"]),
        ("2026-11-02", ["2026-11-01", "2026-11-01", "2026-11-02"]),
    ]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kart_kedro"):
            assert days.run(day) == (report, {"ingest": "ran uncached", "report": "ran"}, ["ingest", "report"])
        assert (
            "kart: node 'ingest' runs without the cache: its output 'daily' appends rows to its table on every save "
            "(save_args if_exists 'append'), which a node served from the cache would not do; tag the node "
            "'kart_no_cache' to run it uncached without this warning"
        ) in caplog.messages
