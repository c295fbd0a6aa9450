"""The FileProcessor interface: how one format turns an object into bytes and back."""

from __future__ import annotations

import abc
import dataclasses
import gzip
import io
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any, ClassVar, Generic, Literal, TypeVar

DataFrameType = Literal["pandas", "polars", "polars-lazy"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ProcessorOptions:
    """Per-task choices a processor may honour: the DataFrame library and feather index storage."""

    dataframe_type: DataFrameType = "pandas"
    store_index_in_feather: bool = True


class FileProcessor(abc.ABC, Generic[T]):
    """Reads and writes one family of formats through binary file objects.

    Subclasses list the extensions they serve in ``extensions``. kart always hands a
    binary file; processors written for gokart (text mode, declared through ``format()``)
    still work: see ``open_for_processor``.
    """

    # A subclass that declares no __slots__ keeps its attributes in a __dict__ as usual; one that declares an empty
    # one (the .pkl processor, every target's default) is a bare object: a 100,000-task build holds many at once.
    __slots__ = ()
    extensions: ClassVar[tuple[str, ...]] = ()
    # True: the processor reads and writes bytes itself. None: decide from gokart's format().
    binary: ClassVar[bool | None] = None

    @classmethod
    def create(cls, extension: str, options: ProcessorOptions) -> FileProcessor[Any]:
        """Return the processor for ``extension`` (e.g. ``.tsv``) under ``options``."""
        return cls()

    def format(self) -> Any:
        """gokart's hook for luigi's file format; kart's own processors work on bytes."""
        import luigi.format

        return luigi.format.Nop

    @abc.abstractmethod
    def load(self, file: Any) -> T:
        """Read an object from ``file``."""

    @abc.abstractmethod
    def dump(self, obj: T, file: Any) -> None:
        """Write ``obj`` to ``file``."""

    def __repr__(self) -> str:
        return type(self).__name__


class DeferredProcessor:
    """A FileProcessor class named by its module and class, imported when a file first needs it.

    Registers like the class (``extensions``, ``create``), so a format's module and what it
    imports load with the first file of one of its extensions, not with every task class.
    """

    def __init__(self, module: str, name: str, extensions: tuple[str, ...]) -> None:
        self.module, self.name, self.extensions = module, name, extensions
        self._class: type[FileProcessor[Any]] | None = None

    def load(self) -> type[FileProcessor[Any]]:
        """The class (imports its module the first time; every target made with an explicit path asks).

        Raises:
            ImportError / AttributeError: the module or class does not exist.
        """
        if self._class is None:
            import importlib

            self._class = getattr(importlib.import_module(self.module), self.name)
        return self._class

    def create(self, extension: str, options: ProcessorOptions) -> FileProcessor[Any]:
        """The class's ``create(extension, options)``."""
        return self.load().create(extension, options)

    def __repr__(self) -> str:
        return f"{self.module}.{self.name} (imported on first use)"


def local_source(file: Any) -> Any:
    """The path of ``file`` when it is a plain local file (pyarrow reads paths natively), else ``file``."""
    name = getattr(file, "name", None)
    if isinstance(file, io.BufferedReader) and isinstance(name, str) and os.path.isfile(name):
        return name
    return file


def _file_mode(processor: Any) -> str:
    if getattr(processor, "binary", None):
        return "binary"
    import luigi.format

    fmt = processor.format()
    if fmt is None or isinstance(fmt, luigi.format.TextFormat):
        return "text"
    if fmt is luigi.format.Gzip or isinstance(fmt, luigi.format.GzipFormat):
        return "gzip"
    return "binary"


def open_for_processor(processor: Any, raw: IO[bytes], mode: Literal["r", "w"]) -> AbstractContextManager[Any]:
    """Adapt a binary file to what ``processor`` expects (bytes, text or gzip)."""
    kind = _file_mode(processor)
    if kind == "binary":
        return nullcontext(raw)  # the file itself (every pickle): no generator to run per load and dump
    return _wrapped(kind, raw, mode)


@contextmanager
def _wrapped(kind: str, raw: IO[bytes], mode: Literal["r", "w"]) -> Iterator[Any]:
    """``open_for_processor``'s text or gzip wrapper of ``raw``."""
    if kind == "text":
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="" if mode == "w" else None)
        try:
            yield text
        finally:
            if mode == "w":
                text.flush()
            text.detach()
    else:
        with gzip.GzipFile(fileobj=raw, mode="rb" if mode == "r" else "wb") as zipped:
            yield zipped


# gokart 1.12.2 defines its non-DataFrame processors in gokart.file_processor.base; kart keeps one module per
# format family, so these names load their module when first read (the format modules import this one).
_GOKART_BASE_NAMES = {
    "BinaryFileProcessor": "kart_core.file_processor.misc_formats",
    "NpzFileProcessor": "kart_core.file_processor.misc_formats",
    "XmlFileProcessor": "kart_core.file_processor.misc_formats",
    "PickleFileProcessor": "kart_core.file_processor.pickle_format",
    "load_dill_with_pandas_backward_compatibility": "kart_core.file_processor.pickle_format",
    "GzipFileProcessor": "kart_core.file_processor.text_format",
    "TextFileProcessor": "kart_core.file_processor.text_format",
}


def __getattr__(name: str) -> Any:
    """gokart's ``gokart.file_processor.base`` names (PEP 562), from kart's format modules.

    Raises:
        AttributeError: ``name`` is none of them.
    """
    module = _GOKART_BASE_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
