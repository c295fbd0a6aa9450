"""gokart's ``gokart.file_processor.polars``: each DataFrame format's polars backend under gokart's names.

The classes are kart's polars processors with gokart's constructors: ``lazy=True`` loads a
``polars.LazyFrame``. Polars is imported on the first load or dump (the ``polars`` extra).
"""

from __future__ import annotations

from kart_core.file_processor.base import FileProcessor
from kart_core.file_processor.polars_format import (
    PolarsCsvFileProcessor,
    PolarsFeatherFileProcessor,
    PolarsJsonFileProcessor,
    PolarsParquetFileProcessor,
)

__all__ = [
    "FileProcessor",
    "CsvFileProcessorPolars",
    "FeatherFileProcessorPolars",
    "JsonFileProcessorPolars",
    "ParquetFileProcessorPolars",
]


class CsvFileProcessorPolars(PolarsCsvFileProcessor):
    """Delimited text with a header (gokart's ``CsvFileProcessorPolars(sep, encoding, lazy)``)."""

    def __init__(self, sep: str = ",", encoding: str = "utf-8", lazy: bool = False) -> None:
        super().__init__(sep=sep, lazy=lazy, encoding=encoding)


class JsonFileProcessorPolars(PolarsJsonFileProcessor):
    """JSON rows; ``orient='records'`` is one object per line (gokart's ``JsonFileProcessorPolars(orient, lazy)``)."""

    def __init__(self, orient: str | None = None, lazy: bool = False) -> None:
        super().__init__(lines=orient == "records", lazy=lazy)


class ParquetFileProcessorPolars(PolarsParquetFileProcessor):
    """Parquet, zstd unless ``compression`` says otherwise (gokart's ``ParquetFileProcessorPolars``).

    ``engine`` is accepted and unused, as in gokart.
    """

    def __init__(self, engine: str = "pyarrow", compression: str | None = None, lazy: bool = False) -> None:
        super().__init__(lazy=lazy, compression=compression or "zstd")


class FeatherFileProcessorPolars(PolarsFeatherFileProcessor):
    """Arrow IPC (gokart's ``FeatherFileProcessorPolars(store_index_in_feather, lazy)``).

    ``store_index_in_feather`` is accepted and unused: a polars frame has no index, as in gokart.
    """

    def __init__(self, store_index_in_feather: bool, lazy: bool = False) -> None:
        super().__init__(lazy=lazy)
