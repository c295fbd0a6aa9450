"""DataFrame formats with polars, chosen for tasks declared ``TaskOnKart[pl.DataFrame]`` / ``[pl.LazyFrame]``.

Same extensions and files as the pandas formats (gokart's polars backend reads and writes
the same way): ``.csv``/``.tsv``, ``.json``/``.ndjson``, ``.parquet``, ``.feather`` (Arrow IPC).
A LazyFrame is collected before it is written; ``polars-lazy`` loads return ``.lazy()`` frames.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from kart_core.errors import KartError
from kart_core.file_processor.base import FileProcessor, ProcessorOptions, local_source

__all__ = [
    "PolarsCsvFileProcessor",
    "PolarsJsonFileProcessor",
    "PolarsParquetFileProcessor",
    "PolarsFeatherFileProcessor",
    "polars_processor_for",
]


def _polars() -> Any:
    try:
        import polars as pl
    except ImportError as exc:
        raise KartError("This task declares a polars DataFrame: pip install 'kart-suite[polars]'.") from exc
    return pl


def _collected(obj: Any) -> Any:
    """A polars DataFrame from a DataFrame or LazyFrame; TypeError for anything else."""
    pl = _polars()
    if isinstance(obj, pl.LazyFrame):
        obj = obj.collect()
    if not isinstance(obj, pl.DataFrame):
        raise TypeError(f"requires polars.DataFrame or polars.LazyFrame, but {type(obj).__name__} was passed")
    return obj


class _PolarsProcessor(FileProcessor[Any]):
    """Shared by the polars formats: eager or lazy results, empty files as empty frames."""

    binary: ClassVar[bool | None] = True

    def __init__(self, lazy: bool = False) -> None:
        self._lazy = lazy

    def _result(self, frame: Any) -> Any:
        return frame.lazy() if self._lazy else frame

    def _empty(self) -> Any:
        return self._result(_polars().DataFrame())


class PolarsCsvFileProcessor(_PolarsProcessor):
    """Delimited text with a header."""

    extensions: ClassVar[tuple[str, ...]] = (".csv", ".tsv")

    def __init__(self, sep: str = ",", lazy: bool = False, encoding: str = "utf-8") -> None:
        super().__init__(lazy)
        self._sep = sep
        # polars reads and writes UTF-8 only; another encoding is transcoded here.
        self._encoding = None if encoding.lower().replace("-", "") == "utf8" else encoding

    def load(self, file: Any) -> Any:
        """Read a polars frame."""
        source = local_source(file)
        if self._encoding is not None:
            source = io.BytesIO(file.read().decode(self._encoding).encode("utf-8"))
        elif source is file:
            source = io.BytesIO(file.read())
        try:
            return self._result(_polars().read_csv(source, separator=self._sep))
        except _polars().exceptions.NoDataError:
            return self._empty()

    def dump(self, obj: Any, file: Any) -> None:
        """Write a polars frame with a header."""
        if self._encoding is None:
            _collected(obj).write_csv(file, separator=self._sep, include_header=True)
            return
        text = _collected(obj).write_csv(separator=self._sep, include_header=True)
        file.write(text.encode(self._encoding))


class PolarsJsonFileProcessor(_PolarsProcessor):
    """A JSON array of row objects; ``.ndjson`` one object per line."""

    extensions: ClassVar[tuple[str, ...]] = (".json", ".ndjson")

    def __init__(self, lines: bool = False, lazy: bool = False) -> None:
        super().__init__(lazy)
        self._lines = lines

    def load(self, file: Any) -> Any:
        """Read a polars frame."""
        data = file.read()
        if not data.strip():
            return self._empty()
        pl = _polars()
        reader = pl.read_ndjson if self._lines else pl.read_json
        return self._result(reader(io.BytesIO(data)))

    def dump(self, obj: Any, file: Any) -> None:
        """Write a polars frame."""
        frame = _collected(obj)
        frame.write_ndjson(file) if self._lines else frame.write_json(file)


class PolarsParquetFileProcessor(_PolarsProcessor):
    """Parquet, zstd-compressed unless ``compression`` says otherwise (polars' default)."""

    extensions: ClassVar[tuple[str, ...]] = (".parquet",)

    def __init__(self, lazy: bool = False, compression: str = "zstd") -> None:
        super().__init__(lazy)
        self._compression = compression

    def load(self, file: Any) -> Any:
        """Read a polars frame."""
        return self._result(_polars().read_parquet(local_source(file)))

    def dump(self, obj: Any, file: Any) -> None:
        """Write a polars frame."""
        _collected(obj).write_parquet(file, compression=self._compression)


class PolarsFeatherFileProcessor(_PolarsProcessor):
    """Arrow IPC; a pandas index column written by the pandas backend is left as a column."""

    extensions: ClassVar[tuple[str, ...]] = (".feather",)

    def load(self, file: Any) -> Any:
        """Read a polars frame."""
        return self._result(_polars().read_ipc(local_source(file)))

    def dump(self, obj: Any, file: Any) -> None:
        """Write a polars frame."""
        _collected(obj).write_ipc(file)


def polars_processor_for(extension: str, options: ProcessorOptions) -> FileProcessor[Any]:
    """The polars processor for a DataFrame extension under ``options.dataframe_type``."""
    lazy = options.dataframe_type == "polars-lazy"
    if extension in (".csv", ".tsv"):
        return PolarsCsvFileProcessor(sep="\t" if extension == ".tsv" else ",", lazy=lazy)
    if extension in (".json", ".ndjson"):
        return PolarsJsonFileProcessor(lines=extension == ".ndjson", lazy=lazy)
    if extension == ".parquet":
        return PolarsParquetFileProcessor(lazy=lazy)
    if extension == ".feather":
        return PolarsFeatherFileProcessor(lazy=lazy)
    raise ValueError(f"no polars processor for {extension!r}")
