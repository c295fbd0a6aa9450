"""File formats, chosen by extension. One module per format family; plugins add more.

The names of gokart's ``gokart.file_processor`` module are available here.
"""

from kart_core.file_processor.base import DataFrameType, FileProcessor, ProcessorOptions, open_for_processor
from kart_core.file_processor.misc_formats import BinaryFileProcessor, NpzFileProcessor, XmlFileProcessor
from kart_core.file_processor.pandas_format import (
    CsvFileProcessor,
    FeatherFileProcessor,
    JsonFileProcessor,
    ParquetFileProcessor,
)
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.file_processor.registry import FileProcessorRegistry, default_registry, make_file_processor
from kart_core.file_processor.text_format import GzipFileProcessor, TextFileProcessor

__all__ = [
    "BinaryFileProcessor",
    "CsvFileProcessor",
    "DataFrameType",
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
