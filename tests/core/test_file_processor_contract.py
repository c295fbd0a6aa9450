"""One contract for every FileProcessor on every storage: round trip, atomic write, missing and corrupt files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from kart_core.errors import DumpError, LoadError, UnsupportedObjectError
from kart_core.storage import storage_for
from kart_core.target import make_target

OWNER = "MakeFeatures[3f2ac1e0]"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.arange(6, dtype="int64"),
            "f": np.linspace(0.0, 1.0, 6),
            "s": ["a", "b", "c", "d", "e", "f"],
        }
    )


def _frame_with_time() -> pd.DataFrame:
    frame = _frame()
    frame["t"] = pd.date_range("2024-01-01", periods=6, freq="h")
    return frame


def _indexed_frame() -> pd.DataFrame:
    return _frame_with_time().set_index(pd.Index([10, 20, 30, 40, 50, 60], name="key"))


def _polars_frame() -> pl.DataFrame:
    return pl.DataFrame({"i": [1, 2, 3], "f": [0.5, 1.5, 2.5], "s": ["x", "y", "z"]})


def _same_frame(expected: Any, actual: Any) -> None:
    pd.testing.assert_frame_equal(actual, expected)


def _same_polars(expected: Any, actual: Any) -> None:
    if isinstance(actual, pl.LazyFrame):
        actual = actual.collect()
    assert isinstance(actual, pl.DataFrame)
    assert actual.equals(_collect(expected))
    assert actual.schema == _collect(expected).schema


def _collect(frame: Any) -> Any:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def _same_xml(expected: ET.ElementTree, actual: Any) -> None:
    assert isinstance(actual, ET.ElementTree)
    assert ET.tostring(actual.getroot()) == ET.tostring(expected.getroot())


def _same_array(expected: np.ndarray, actual: Any) -> None:
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == expected.dtype


def _equal(expected: Any, actual: Any) -> None:
    assert actual == expected


@dataclass(frozen=True)
class Case:
    """One format under one DataFrame backend, with a sample value and how to compare it."""

    extension: str
    make: Callable[[], Any]
    same: Callable[[Any, Any], None]
    dataframe_type: str = "pandas"
    processor: str = ""
    detects_corruption: bool = True
    checks_type: bool = True

    def __str__(self) -> str:
        return f"{self.extension}-{self.dataframe_type}"


CASES = [
    Case(".pkl", _indexed_frame, _same_frame, processor="PickleFileProcessor", checks_type=False),
    Case(".csv", _frame, _same_frame, processor="CsvFileProcessor"),
    Case(".tsv", _frame, _same_frame, processor="CsvFileProcessor"),
    Case(".json", _frame, _same_frame, processor="JsonFileProcessor"),
    Case(".ndjson", _frame, _same_frame, processor="JsonFileProcessor"),
    Case(".parquet", _frame_with_time, _same_frame, processor="ParquetFileProcessor"),
    Case(".feather", _indexed_frame, _same_frame, processor="FeatherFileProcessor"),
    Case(".txt", lambda: ["alpha", "beta"], _equal, processor="TextFileProcessor", checks_type=False),
    Case(".ini", lambda: ["[s]", "k = v"], _equal, processor="TextFileProcessor", checks_type=False),
    Case(".gz", lambda: ["one", "two"], _equal, processor="GzipFileProcessor", checks_type=False),
    Case(".npz", lambda: np.arange(12, dtype="float32").reshape(3, 4), _same_array, processor="NpzFileProcessor"),
    Case(
        ".xml", lambda: ET.ElementTree(ET.fromstring("<a><b x='1'>t</b></a>")), _same_xml, processor="XmlFileProcessor"
    ),
    Case(".png", lambda: b"\x89PNG\r\n\x1a\nfake", _equal, processor="BinaryFileProcessor", detects_corruption=False),
    Case(".jpg", lambda: b"\xff\xd8\xff\xe0fake", _equal, processor="BinaryFileProcessor", detects_corruption=False),
]
for _kind in ("polars", "polars-lazy"):
    for _extension, _name in [
        (".csv", "PolarsCsvFileProcessor"),
        (".tsv", "PolarsCsvFileProcessor"),
        (".json", "PolarsJsonFileProcessor"),
        (".ndjson", "PolarsJsonFileProcessor"),
        (".parquet", "PolarsParquetFileProcessor"),
        (".feather", "PolarsFeatherFileProcessor"),
    ]:
        _make = _polars_frame if _kind == "polars" else (lambda: _polars_frame().lazy())
        CASES.append(Case(_extension, _make, _same_polars, dataframe_type=_kind, processor=_name))


@pytest.fixture(params=["local", "memory", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A workspace on each storage: local disk, fsspec memory://, and a real S3 server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    if request.param == "memory":
        return f"memory://kart-contract/{tmp_path.name}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _target(root: str, case: Case, name: str = "out") -> Any:
    return make_target(
        f"{root}/{name}{case.extension}", unique_id="0123abcd", owner=OWNER, dataframe_type=case.dataframe_type
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_round_trip(root: str, case: Case) -> None:
    target = _target(root, case)
    assert type(target.processor).__name__ == case.processor
    assert not target.exists()
    value = case.make()
    target.dump(value)
    assert target.exists()
    case.same(value, target.load())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_missing_file_names_task_and_path(root: str, case: Case) -> None:
    target = _target(root, case)
    with pytest.raises(LoadError, match=r"MakeFeatures\[3f2ac1e0\]") as info:
        target.load()
    assert target.path() in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("case", [c for c in CASES if c.detects_corruption], ids=str)
def test_corrupt_file_names_task_path_processor_and_cause(root: str, case: Case) -> None:
    target = _target(root, case)
    target.dump(case.make())
    storage = storage_for(target.path())
    with storage.open_read(target.path()) as file:
        whole = file.read()
    with storage.atomic_write(target.path()) as file:
        # Truncated and then overwritten with bytes no format accepts (invalid UTF-8, no magic).
        file.write(b"\xff\xfe\x00\x01" + whole[: len(whole) // 3][4:] + b"\xff\x00garbage\xfe")
    with pytest.raises(LoadError) as info:
        target.load()
    message = str(info.value)
    assert OWNER in message and target.path() in message and case.processor in message
    assert type(info.value.__cause__).__name__ in message


@pytest.mark.parametrize("case", [c for c in CASES if c.checks_type], ids=str)
def test_wrong_object_type_leaves_no_file(root: str, case: Case) -> None:
    target = _target(root, case)
    with pytest.raises(DumpError, match=r"MakeFeatures\[3f2ac1e0\]") as info:
        target.dump(object())
    assert case.processor in str(info.value) and type(info.value.__cause__).__name__ in str(info.value)
    # gokart raises TypeError (pandas formats) or fails an assert (xml, npz): kart's error is both.
    assert isinstance(info.value, UnsupportedObjectError)
    assert isinstance(info.value, TypeError) and isinstance(info.value, AssertionError)
    assert isinstance(info.value.__cause__, TypeError)
    assert not target.exists()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_failed_dump_keeps_the_previous_output_whole(root: str, case: Case) -> None:
    target = _target(root, case)
    value = case.make()
    target.dump(value)
    with pytest.raises(DumpError):
        target.dump(_Exploding())
    case.same(value, target.load())
    names = list(storage_for(root).list_dir(root))
    assert names == [target.path().rsplit("/", 1)[-1]]


class _Exploding:
    """Fails while being written, whatever the format: after str() or pickling has started."""

    def __reduce__(self) -> Any:
        raise RuntimeError("boom while pickling")

    def __str__(self) -> str:
        raise RuntimeError("boom while formatting")

    def __iter__(self) -> Any:
        raise RuntimeError("boom while iterating")
