"""The kart runners on kedro-datasets' SQLQueryDataset, with a real SQLite database (sqlalchemy).

A query dataset's ``filepath`` names the file holding the SQL text, not the rows: kart must read it
through the catalog on every run (``output_state.path_holds_data``), as it reads datasets without a path,
and hand the reader what Kedro's SequentialRunner hands it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kart_kedro import KartRunner, KartThreadRunner
from kart_kedro.node_records import NodeRecords
from kart_kedro.output_state import file_stamp, path_holds_data
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset, SQLQueryDataset
from node_journal import ran, record


def names(orders: pd.DataFrame) -> list[str]:
    """The ordered names (a reader of the query's rows)."""
    record("names")
    return list(orders["name"])


class CountedCsv(CSVDataset):
    """pandas.CSVDataset that notes each load in the journal."""

    def load(self) -> pd.DataFrame:
        record("load")
        return super().load()


def _database(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "shop.db"
    query = tmp_path / "queries" / "orders.sql"
    query.parent.mkdir()
    query.write_text("SELECT name FROM orders ORDER BY name")
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE orders (name TEXT)")
        connection.execute("INSERT INTO orders VALUES ('apple')")
    return db, query


def _add(db: Path, name: str) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO orders VALUES (?)", (name,))


def _runner(runner_class: type, workspace: str) -> Any:
    if runner_class is KartRunner:
        return KartRunner(workspace_directory=workspace)
    return runner_class(max_workers=2, workspace_directory=workspace)


def _names(runner: Any, orders: Any) -> list[str]:
    pipeline = Pipeline([node(names, "orders", "names", name="names")])
    result = runner.run(pipeline, DataCatalog({"orders": orders, "names": MemoryDataset()}))["names"]
    return list(result.load() if hasattr(result, "load") else result)


def test_a_query_dataset_path_is_not_its_data_and_a_file_dataset_path_is(tmp_path: Path) -> None:
    db, query = _database(tmp_path)
    assert not path_holds_data(SQLQueryDataset)
    assert path_holds_data(CSVDataset)
    orders = SQLQueryDataset(filepath=str(query), credentials={"con": f"sqlite:///{db}"})
    assert file_stamp(orders) is None  # kart before: the query file's stamp, kept while the file was untouched


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("form", ["filepath", "sql"])
def test_new_rows_behind_a_query_rerun_its_reader_as_sequential_runner_sees_them(
    tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, runner_class: type, form: str
) -> None:
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)  # a digest recorded with a file stamp is used at once
    db, query = _database(tmp_path)

    def orders() -> SQLQueryDataset:
        credentials = {"con": f"sqlite:///{db}"}
        if form == "filepath":
            return SQLQueryDataset(filepath=str(query), credentials=credentials)
        return SQLQueryDataset(sql=query.read_text(), credentials=credentials)

    workspace = str(tmp_path / "ws")
    assert _names(_runner(runner_class, workspace), orders()) == ["apple"]
    assert ran() == ["names"]
    assert _names(_runner(runner_class, workspace), orders()) == ["apple"]
    assert ran() == []  # the same rows: cached

    _add(db, "banana")
    runner = _runner(runner_class, workspace)
    assert _names(runner, orders()) == ["apple", "banana"]  # kart before (filepath form): cached, ['apple']
    assert ran() == ["names"]
    assert runner.last_reasons == {"names": "input changed: orders"}
    assert _names(SequentialRunner(), orders()) == ["apple", "banana"]


def test_a_csv_input_stays_stamped_no_load_on_a_cached_run(
    tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)  # the recorded digest is used at once
    path = tmp_path / "orders.csv"
    pd.DataFrame({"name": ["apple", "banana"]}).to_csv(path, index=False)
    workspace = str(tmp_path / "ws")
    assert _names(KartRunner(workspace_directory=workspace), CountedCsv(filepath=str(path))) == ["apple", "banana"]
    assert ran() == ["load", "load", "names"]  # kart's digest, then the node's own load
    assert _names(KartRunner(workspace_directory=workspace), CountedCsv(filepath=str(path))) == ["apple", "banana"]
    assert ran() == []  # neither loaded nor run: the file's stamp names the recorded digest
