"""FileProcessors take gokart 1.12.2's constructor arguments, dataframe_type='polars' / 'polars-lazy' included.

Each library writes every case in its own process (``gokart_twin``); each then reads the other's
files, so the formats are shown to be interchangeable, not only self-consistent.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gokart_twin import run_script

from kart_core.file_processor import CsvFileProcessor, FeatherFileProcessor, JsonFileProcessor, ParquetFileProcessor

pl = pytest.importorskip("polars")

_FRAME = {"a": [1, 2, 3], "b": ["x", "y", "z"]}


def _cases(dataframe_type: str) -> dict[str, Any]:
    return {
        "csv": CsvFileProcessor(sep=",", dataframe_type=dataframe_type),
        "tsv": CsvFileProcessor(sep="\t", encoding="utf-8", dataframe_type=dataframe_type),
        "json": JsonFileProcessor(dataframe_type=dataframe_type),
        "ndjson": JsonFileProcessor(orient="records", dataframe_type=dataframe_type),
        "parquet": ParquetFileProcessor(engine="pyarrow", compression="gzip", dataframe_type=dataframe_type),
        "feather": FeatherFileProcessor(store_index_in_feather=True, dataframe_type=dataframe_type),
    }


@pytest.mark.parametrize("dataframe_type", ["polars", "polars-lazy"])
@pytest.mark.parametrize("name", ["csv", "tsv", "json", "ndjson", "parquet", "feather"])
def test_polars_round_trip(name: str, dataframe_type: str) -> None:
    processor = _cases(dataframe_type)[name]
    buffer = io.BytesIO()
    source = pl.DataFrame(_FRAME)
    processor.dump(source.lazy() if dataframe_type == "polars-lazy" else source, buffer)
    buffer.seek(0)
    loaded = processor.load(buffer)
    expected_type = pl.LazyFrame if dataframe_type == "polars-lazy" else pl.DataFrame
    assert isinstance(loaded, expected_type)
    frame = loaded.collect() if dataframe_type == "polars-lazy" else loaded
    assert frame.to_dict(as_series=False) == _FRAME


def test_pandas_stays_the_default_and_rejects_polars_frames() -> None:
    processor = CsvFileProcessor()
    buffer = io.BytesIO()
    processor.dump(pd.DataFrame(_FRAME), buffer)
    buffer.seek(0)
    assert processor.load(buffer).to_dict(orient="list") == _FRAME
    with pytest.raises(TypeError, match="requires pandas.DataFrame or pandas.Series"):
        processor.dump(pl.DataFrame(_FRAME), io.BytesIO())
    with pytest.raises(TypeError, match="requires polars.DataFrame or polars.LazyFrame"):
        CsvFileProcessor(dataframe_type="polars").dump(pd.DataFrame(_FRAME), io.BytesIO())


def test_csv_encoding_is_honoured_with_polars() -> None:
    processor = CsvFileProcessor(encoding="latin-1", dataframe_type="polars")
    buffer = io.BytesIO()
    processor.dump(pl.DataFrame({"name": ["café"]}), buffer)
    assert buffer.getvalue() == "name\ncafé\n".encode("latin-1")
    buffer.seek(0)
    assert processor.load(buffer)["name"].to_list() == ["café"]


def test_unknown_dataframe_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"dataframe_type must be 'pandas', 'polars' or 'polars-lazy', not 'arrow'"):
        ParquetFileProcessor(dataframe_type="arrow")  # type: ignore[arg-type]


_SCRIPT = """
import json, os
import polars as pl
from gokart.file_processor import CsvFileProcessor, FeatherFileProcessor, JsonFileProcessor, ParquetFileProcessor

def cases(dataframe_type):
    return {
        "csv": CsvFileProcessor(sep=",", dataframe_type=dataframe_type),
        "tsv": CsvFileProcessor(sep="\\t", encoding="utf-8", dataframe_type=dataframe_type),
        "json": JsonFileProcessor(dataframe_type=dataframe_type),
        "ndjson": JsonFileProcessor(orient="records", dataframe_type=dataframe_type),
        "parquet": ParquetFileProcessor(engine="pyarrow", compression="gzip", dataframe_type=dataframe_type),
        "feather": FeatherFileProcessor(store_index_in_feather=True, dataframe_type=dataframe_type),
    }

def read(path, processor):
    with open(path, "rb") as file:
        loaded = processor.load(file)
    frame = loaded.collect() if isinstance(loaded, pl.LazyFrame) else loaded
    return [type(loaded).__name__, frame.to_dict(as_series=False)]

frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
result = {}
os.makedirs("out", exist_ok=True)
for dataframe_type in ("polars", "polars-lazy"):
    for name, processor in cases(dataframe_type).items():
        path = os.path.join("out", f"{dataframe_type}.{name}")
        with open(path, "wb") as file:
            processor.dump(frame, file)
        result[f"own {dataframe_type} {name}"] = read(path, processor)
        other = os.environ.get("OTHER")
        if other:
            result[f"other {dataframe_type} {name}"] = read(os.path.join(other, "out", f"{dataframe_type}.{name}"), processor)
print(json.dumps(result))
"""


@pytest.mark.slow
def test_polars_files_are_interchangeable_with_gokarts(tmp_path: Path) -> None:
    gokart_first = run_script("gokart", _SCRIPT, tmp_path / "gokart")
    kart = run_script("kart", _SCRIPT, tmp_path / "kart", env={"OTHER": str(tmp_path / "gokart")})
    gokart = run_script("gokart", _SCRIPT, tmp_path / "gokart", env={"OTHER": str(tmp_path / "kart")})
    assert {key: value for key, value in gokart.items() if key.startswith("own")} == gokart_first
    assert kart == gokart
    assert kart["other polars-lazy parquet"] == ["LazyFrame", {"a": [1, 2, 3], "b": ["x", "y", "z"]}]
