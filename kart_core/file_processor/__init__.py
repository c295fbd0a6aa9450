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
    from kart_core.file_processor.pandas_format import (
        CsvFileProcessor,
        FeatherFileProcessor,
        JsonFileProcessor,
        ParquetFileProcessor,
    )
    from kart_core.file_processor.pickle_format import PickleFileProcessor
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
}

__all__ = [
    "BinaryFileProcessor",
    "CsvFileProcessor",
    "DataFrameType",
    "DeferredProcessor",
    "FeatherFileProcessor",
    "FileProcessor",
    "FileProcessorRegistry",
    "GzipFileProcessor",
    "JsonFileProcessor",
    "NpzFileProcessor",
    "ParquetFileProcessor",
    "PickleFileProcessor",
    "ProcessorOptions",
    "TextFileProcessor",
    "XmlFileProcessor",
    "default_registry",
    "make_file_processor",
    "open_for_processor",
]

install(__name__, _FORMATS)
