"""gokart's ``gokart.file_processor.pandas``: each DataFrame format's pandas backend under gokart's names.

gokart 1.12.2 splits each format into a pandas class, a polars class and a front class choosing one by
``dataframe_type``. kart's front classes (``CsvFileProcessor``, …) do the pandas work themselves; these
names are those classes with gokart's pandas-only constructors, for code that subclasses or builds them.
"""

from __future__ import annotations

from kart_core.file_processor.base import FileProcessor
from kart_core.file_processor.pandas_format import (
    CsvFileProcessor,
    FeatherFileProcessor,
    JsonFileProcessor,
    ParquetFileProcessor,
)

__all__ = [
    "FileProcessor",
    "CsvFileProcessorPandas",
    "FeatherFileProcessorPandas",
    "JsonFileProcessorPandas",
    "ParquetFileProcessorPandas",
]


class CsvFileProcessorPandas(CsvFileProcessor):
    """Delimited text through pandas, without the index (gokart's ``CsvFileProcessorPandas(sep, encoding)``)."""

    def __init__(self, sep: str = ",", encoding: str = "utf-8") -> None:
        super().__init__(sep=sep, encoding=encoding)


class JsonFileProcessorPandas(JsonFileProcessor):
    """pandas JSON; ``orient='records'`` is one record per line (gokart's ``JsonFileProcessorPandas(orient)``)."""

    def __init__(self, orient: str | None = None) -> None:
        super().__init__(orient=orient)


class ParquetFileProcessorPandas(ParquetFileProcessor):
    """Parquet through pandas, without the index (gokart's ``ParquetFileProcessorPandas(engine, compression)``).

    Uncompressed unless ``compression`` is given, as gokart's class (its ``make_file_processor`` passes gzip,
    kart's ``.parquet`` default is snappy).
    """

    def __init__(self, engine: str = "pyarrow", compression: str | None = None) -> None:
        super().__init__(engine=engine, compression=compression)


class FeatherFileProcessorPandas(FeatherFileProcessor):
    """Arrow IPC through pandas (gokart's ``FeatherFileProcessorPandas(store_index_in_feather)``)."""

    def __init__(self, store_index_in_feather: bool) -> None:
        super().__init__(store_index_in_feather=store_index_in_feather)
