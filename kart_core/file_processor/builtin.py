"""The formats kart ships, registered as a plugin like any third-party format.

Each is declared by its extensions and where its class lives (``DeferredProcessor``): a format's
module (and what it imports, e.g. ``xml.etree`` for XML) loads when a file with one of its
extensions is first read or written, not when a task class is defined.
"""

from __future__ import annotations

from kart_core.file_processor.base import DeferredProcessor
from kart_core.hooks.markers import hookimpl

_PACKAGE = "kart_core.file_processor"

BUILTIN = (
    DeferredProcessor(f"{_PACKAGE}.pickle_format", "PickleFileProcessor", (".pkl",)),
    DeferredProcessor(f"{_PACKAGE}.text_format", "TextFileProcessor", (".txt", ".ini")),
    DeferredProcessor(f"{_PACKAGE}.text_format", "GzipFileProcessor", (".gz",)),
    DeferredProcessor(f"{_PACKAGE}.pandas_format", "CsvFileProcessor", (".csv", ".tsv")),
    DeferredProcessor(f"{_PACKAGE}.pandas_format", "JsonFileProcessor", (".json", ".ndjson")),
    DeferredProcessor(f"{_PACKAGE}.pandas_format", "ParquetFileProcessor", (".parquet",)),
    DeferredProcessor(f"{_PACKAGE}.pandas_format", "FeatherFileProcessor", (".feather",)),
    DeferredProcessor(f"{_PACKAGE}.misc_formats", "XmlFileProcessor", (".xml",)),
    DeferredProcessor(f"{_PACKAGE}.misc_formats", "NpzFileProcessor", (".npz",)),
    DeferredProcessor(f"{_PACKAGE}.misc_formats", "BinaryFileProcessor", (".png", ".jpg")),
)
"""Every built-in format, in registration order (a later one wins an extension)."""


@hookimpl
def kart_file_processors() -> list[object]:
    """Every built-in FileProcessor, as a ``DeferredProcessor`` (the registry takes either)."""
    return list(BUILTIN)
