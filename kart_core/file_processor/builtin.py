"""The formats kart ships, registered as a plugin like any third-party format."""

from __future__ import annotations

from kart_core.file_processor.misc_formats import BinaryFileProcessor, NpzFileProcessor, XmlFileProcessor
from kart_core.file_processor.pandas_format import (
    CsvFileProcessor,
    FeatherFileProcessor,
    JsonFileProcessor,
    ParquetFileProcessor,
)
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.file_processor.text_format import GzipFileProcessor, TextFileProcessor
from kart_core.hooks.markers import hookimpl


@hookimpl
def kart_file_processors() -> list[type]:
    """Every built-in FileProcessor class."""
    return [
        PickleFileProcessor,
        TextFileProcessor,
        GzipFileProcessor,
        CsvFileProcessor,
        JsonFileProcessor,
        ParquetFileProcessor,
        FeatherFileProcessor,
        XmlFileProcessor,
        NpzFileProcessor,
        BinaryFileProcessor,
    ]
