"""File formats, chosen by extension. One module per format family; plugins add more.

The names of gokart's ``gokart.file_processor`` module are available here. The format classes
load on first use (``kart_core.lazy``), as the registry loads a format with its first file
(``DeferredProcessor``): defining a task class imports no format module.
"""

from typing import TYPE_CHECKING

from kart_core.file_processor.base import (
    DataFrameType,
    DeferredProcessor,
    FileProcessor,
    ProcessorOptions,
    open_for_processor,
)
from kart_core.file_processor.registry import FileProcessorRegistry, default_registry, make_file_processor
from kart_core.lazy import install

if TYPE_CHECKING:
    from kart_core.file_processor.misc_formats import BinaryFileProcessor, NpzFileProcessor, XmlFileProcessor
    from kart_core.file_processor.pandas import (
        CsvFileProcessorPandas,
        FeatherFileProcessorPandas,
        JsonFileProcessorPandas,
        ParquetFileProcessorPandas,
    )
    from kart_core.file_processor.pandas_format import (
        CsvFileProcessor,
        FeatherFileProcessor,
        JsonFileProcessor,
        ParquetFileProcessor,
    )
    from kart_core.file_processor.pickle_format import PickleFileProcessor
    from kart_core.file_processor.polars import (
        CsvFileProcessorPolars,
        FeatherFileProcessorPolars,
        JsonFileProcessorPolars,
        ParquetFileProcessorPolars,
    )
    from kart_core.file_processor.text_format import GzipFileProcessor, TextFileProcessor

_FORMATS = {
    "BinaryFileProcessor": "kart_core.file_processor.misc_formats",
    "NpzFileProcessor": "kart_core.file_processor.misc_formats",
    "XmlFileProcessor": "kart_core.file_processor.misc_formats",
    "CsvFileProcessor": "kart_core.file_processor.pandas_format",
    "FeatherFileProcessor": "kart_core.file_processor.pandas_format",
    "JsonFileProcessor": "kart_core.file_processor.pandas_format",
    "ParquetFileProcessor": "kart_core.file_processor.pandas_format",
    "PickleFileProcessor": "kart_core.file_processor.pickle_format",
    "GzipFileProcessor": "kart_core.file_processor.text_format",
    "TextFileProcessor": "kart_core.file_processor.text_format",
    # gokart's backend classes (gokart.file_processor.pandas / .polars), same names here.
    "CsvFileProcessorPandas": "kart_core.file_processor.pandas",
    "FeatherFileProcessorPandas": "kart_core.file_processor.pandas",
    "JsonFileProcessorPandas": "kart_core.file_processor.pandas",
    "ParquetFileProcessorPandas": "kart_core.file_processor.pandas",
    "CsvFileProcessorPolars": "kart_core.file_processor.polars",
    "FeatherFileProcessorPolars": "kart_core.file_processor.polars",
    "JsonFileProcessorPolars": "kart_core.file_processor.polars",
    "ParquetFileProcessorPolars": "kart_core.file_processor.polars",
}

__all__ = [
    "BinaryFileProcessor",
    "CsvFileProcessor",
    "CsvFileProcessorPandas",
    "CsvFileProcessorPolars",
    "DataFrameType",
    "DeferredProcessor",
    "FeatherFileProcessor",
    "FeatherFileProcessorPandas",
    "FeatherFileProcessorPolars",
    "FileProcessor",
    "FileProcessorRegistry",
    "GzipFileProcessor",
    "JsonFileProcessor",
    "JsonFileProcessorPandas",
    "JsonFileProcessorPolars",
    "NpzFileProcessor",
    "ParquetFileProcessor",
    "ParquetFileProcessorPandas",
    "ParquetFileProcessorPolars",
    "PickleFileProcessor",
    "ProcessorOptions",
    "TextFileProcessor",
    "XmlFileProcessor",
    "default_registry",
    "make_file_processor",
    "open_for_processor",
]

install(__name__, _FORMATS)
