"""KartRunner when another writer changes a raw input between kart's digest and the node's own read.

kart keys a node by the digest of each raw input (taken once per run, or reused from the records while the
input's stamp is unchanged); Kedro then loads the input for the node. A write in between (a daily upload landing
mid-run) made the node compute from the new content under the key of the old: as soon as the input held the old
content again (a re-upload, a restored version), that result was served (attacker at8 H5).

The other writer here is a node earlier in the pipeline (``upload``): a real Kedro pipeline whose order is fixed
by its edges. ``peek`` reads the input first (kart digests it then), ``upload`` writes it, ``total`` reads it
after: ``total``'s key names the content ``peek`` saw, ``total`` computes from what ``upload`` wrote.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import boto3
import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.node_records import NodeRecords
from kedro.io import DataCatalog, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, SQLTableDataset
from kedro_datasets.partitions import PartitionedDataset
from node_journal import ran, record
from runner_choice import make_runner

RACE_TARGET = "KART_TEST_RACE_TARGET"  # where upload writes: a local path or s3://bucket/key


def _csv(values: list[int]) -> bytes:
    return ("v\n" + "".join(f"{value}\n" for value in values)).encode()


def _write(where: str, data: bytes) -> None:
    """Write ``data`` at ``where`` as another client would: a plain file write, a boto3 put, or (``sqlite:{file}``)
    the rows of table ``frame`` replaced through sqlite3."""
    if where.startswith("sqlite:"):
        values = [(int(line),) for line in data.decode().split()[1:]]
        with sqlite3.connect(where[len("sqlite:") :]) as connection:
            connection.execute("DELETE FROM frame")
            connection.executemany("INSERT INTO frame (v) VALUES (?)", values)
    elif where.startswith("s3://"):
        bucket, _, key = where[len("s3://") :].partition("/")
        client = boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])
        client.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        Path(where).write_bytes(data)


def _sum(frame: Any) -> int:
    """The sum of column ``v`` of a CSV frame, or of every partition of a folder (loaders called)."""
    if isinstance(frame, dict):
        return sum(int(frame[key]()["v"].sum()) for key in sorted(frame))
    return int(frame["v"].sum())


def peek(frame: Any) -> int:
    """Reads the input first: kart digests it for this node's key, before ``upload`` runs."""
    record("peek")
    return _sum(frame)


def upload(seen: int) -> bool:
    """Another writer, placed between the digest and ``total``'s read: writes the input (4, 4)."""
    record("upload")
    _write(os.environ[RACE_TARGET], _csv([4, 4]))
    return True


def total(frame: Any, uploaded: bool) -> dict[str, int]:
    """What is cached under the input's digest."""
    record("total")
    return {"sum": _sum(frame)}


def report(totals: dict[str, int]) -> int:
    """A reader of ``total``'s output."""
    record("report")
    return totals["sum"] * 10


PIPELINE = Pipeline(
    [
        node(peek, "frame", "seen", name="peek"),
        node(upload, "seen", "uploaded", name="upload"),
        node(total, ["frame", "uploaded"], "totals", name="total"),
        node(report, "totals", "reported", name="report"),
    ]
)


@pytest.fixture(autouse=True)
def _trusted_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded raw input digests are used by the next run at once (no two-second "racy" wait)."""
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)


def _run(runner_class: type, frame: Any, tmp_path: Path) -> tuple[list[str], int, dict[str, int]]:
    """One run on a fresh catalog: (nodes that ran, ``reported``, the ``totals`` file)."""
    kind = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    catalog = kind(
        {
            "frame": frame,
            "totals": JSONDataset(filepath=str(tmp_path / "totals.json")),
            "reported": JSONDataset(filepath=str(tmp_path / "reported.json")),
        }
    )
    make_runner(runner_class, str(tmp_path / "ws")).run(PIPELINE, catalog)
    return (
        ran(),
        json.loads((tmp_path / "reported.json").read_text()),
        json.loads((tmp_path / "totals.json").read_text()),
    )


RUNNERS = [KartRunner, KartThreadRunner, KartParallelRunner]


def _race_then_restore(
    runner_class: type, frame: Any, target: str, first: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Run with ``upload`` writing (4, 4) after ``peek``; then put ``first`` back and run twice: the reader must
    compute from ``first`` (sum 3), never be served the result computed from (4, 4) under ``first``'s key."""
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        names, reported, totals = _run(runner_class, frame, tmp_path)
    assert sorted(names) == ["peek", "report", "total", "upload"]
    assert totals == {"sum": 8} and reported == 80  # this run's outputs stand: computed from what total read
    warned = [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    _write(target, first)  # the first content again: a re-upload, a restored version
    names, reported, totals = _run(runner_class, frame, tmp_path)
    assert totals == {"sum": 3} and reported == 30, names  # kart before served 8 and 80 here
    assert "total" in names
    assert len(warned) == 1 and "'total'" in warned[0] and "'frame'" in warned[0], warned
    names, reported, totals = _run(runner_class, frame, tmp_path)
    assert (names, reported, totals) == ([], 30, {"sum": 3})  # and cached for good once nothing raced


@pytest.mark.parametrize("runner_class", RUNNERS)
def test_a_local_csv_written_between_the_digest_and_the_read_is_not_cached_under_the_old_content(
    runner_class: type, tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "frame.csv"
    path.write_bytes(_csv([1, 2]))
    monkeypatch.setenv(RACE_TARGET, str(path))
    _race_then_restore(runner_class, CSVDataset(filepath=str(path)), str(path), _csv([1, 2]), tmp_path, caplog)


def test_a_partition_added_between_the_digest_and_the_read_is_not_cached_under_the_old_listing(
    tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_bytes(_csv([1, 2]))
    added = folder / "b.csv"
    monkeypatch.setenv(RACE_TARGET, str(added))
    frame = PartitionedDataset(path=str(folder), dataset="pandas.CSVDataset", filename_suffix=".csv")
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        names, reported, totals = _run(KartRunner, frame, tmp_path)
    assert totals == {"sum": 11} and "total" in names  # a.csv and the partition upload added
    warned = [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    added.unlink()  # the folder as peek saw it
    names, reported, totals = _run(KartRunner, frame, tmp_path)
    assert totals == {"sum": 3} and reported == 30 and "total" in names  # kart before served 11 and 110
    assert len(warned) == 1 and "'total'" in warned[0] and "'frame'" in warned[0], warned


def test_an_s3_object_written_between_the_digest_and_the_read_is_not_cached_under_the_old_content(
    s3_bucket: str, tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    target = f"s3://{s3_bucket}/frame.csv"
    _write(target, _csv([1, 2]))
    monkeypatch.setenv(RACE_TARGET, target)
    credentials = {"client_kwargs": {"endpoint_url": os.environ["KART_S3_ENDPOINT_URL"]}}
    frame = CSVDataset(filepath=target, credentials=credentials)
    _race_then_restore(KartRunner, frame, target, _csv([1, 2]), tmp_path, caplog)


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner])
def test_a_database_table_changed_between_the_digest_and_the_read_is_not_cached_under_the_old_rows(
    runner_class: type,
    tmp_path: Path,
    journal: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A table has no stamp: what Kedro loaded for the node is digested and compared with the key's digest."""
    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE frame (v INTEGER)")
    target = f"sqlite:{db}"
    _write(target, _csv([1, 2]))
    monkeypatch.setenv(RACE_TARGET, target)
    frame = SQLTableDataset(table_name="frame", credentials={"con": f"sqlite:///{db}"})
    _race_then_restore(runner_class, frame, target, _csv([1, 2]), tmp_path, caplog)


META_CHANGE = "KART_TEST_META_CHANGE"  # what meddle does to the input: chmod, hard link, or set back


def meddle(seen: int) -> bool:
    """Between the digest and ``total``'s read: a chmod, a hard link, or a same-size write that sets the
    modification time back (each moves only the status-change time of the input's stamp)."""
    record("meddle")
    path, how = os.environ[RACE_TARGET], os.environ[META_CHANGE]
    if how == "chmod":
        os.chmod(path, 0o640)  # a team's `chmod -R g+r data/`
    elif how == "hard link":
        os.link(path, path + ".snap")  # a backup's hard-link snapshot (`cp -al`, rsnapshot)
    else:
        before = os.stat(path)
        with open(path, "r+b") as file:  # the same inode and size, other content
            file.write(_csv([1, 3]))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return True


META_PIPELINE = Pipeline(
    [
        node(peek, "frame", "seen", name="peek"),
        node(meddle, "seen", "uploaded", name="meddle"),
        node(total, ["frame", "uploaded"], "totals", name="total"),
    ]
)


def _run_meta(runner_class: type, path: Path, tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """One run of META_PIPELINE on a fresh catalog: (the runner's last_run, the ``totals`` file)."""
    kind = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    catalog = kind(
        {"frame": CSVDataset(filepath=str(path)), "totals": JSONDataset(filepath=str(tmp_path / "totals.json"))}
    )
    runner = make_runner(runner_class, str(tmp_path / "ws"))
    runner.run(META_PIPELINE, catalog)
    return runner.last_run, json.loads((tmp_path / "totals.json").read_text())


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner])
@pytest.mark.parametrize("how", ["chmod", "hard link"])
def test_a_metadata_change_between_the_digest_and_the_read_is_not_a_write(
    runner_class: type,
    how: str,
    tmp_path: Path,
    journal: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chmod or hard link moves only the input's status-change time: the node loads it again, finds the content of
    its key and is cached. Before, it "ran uncached" with a warning that the input was written, and the next run
    ran it again (attacker at19 J3)."""
    path = tmp_path / "frame.csv"
    path.write_bytes(_csv([1, 2]))
    monkeypatch.setenv(RACE_TARGET, str(path))
    monkeypatch.setenv(META_CHANGE, how)
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        statuses, totals = _run_meta(runner_class, path, tmp_path)
    assert totals == {"sum": 3} and statuses["total"] == "ran", statuses
    assert not [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    statuses, totals = _run_meta(runner_class, path, tmp_path)
    assert statuses == {"peek": "cached", "meddle": "cached", "total": "cached"} and totals == {"sum": 3}


def test_a_write_with_its_time_set_back_between_the_digest_and_the_read_is_not_cached(
    tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the status-change time moved, but the content did: the node's result is not cached."""
    path = tmp_path / "frame.csv"
    path.write_bytes(_csv([1, 2]))
    monkeypatch.setenv(RACE_TARGET, str(path))
    monkeypatch.setenv(META_CHANGE, "set back")
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        statuses, totals = _run_meta(KartRunner, path, tmp_path)
    assert totals == {"sum": 4} and statuses["total"] == "ran uncached", statuses
    warned = [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    assert len(warned) == 1 and "'total'" in warned[0] and "'frame'" in warned[0], warned
