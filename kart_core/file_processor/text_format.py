"""``.txt``/``.ini`` and ``.gz``: a list becomes one line per item, anything else its ``str()``."""

from __future__ import annotations

import gzip
from typing import Any, ClassVar

from kart_core.file_processor.base import FileProcessor


def _to_text(obj: Any) -> str:
    if isinstance(obj, list):
        return "".join(f"{item}\n" for item in obj)
    return str(obj)


def _to_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


class TextFileProcessor(FileProcessor[Any]):
    """UTF-8 text; loads as a list of right-stripped lines (gokart's semantics)."""

    extensions: ClassVar[tuple[str, ...]] = (".txt", ".ini")
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> list[str]:
        """Read the lines of the file."""
        return _to_lines(file.read().decode("utf-8"))

    def dump(self, obj: Any, file: Any) -> None:
        """Write a list one item per line, or ``str(obj)``."""
        file.write(_to_text(obj).encode("utf-8"))


class GzipFileProcessor(FileProcessor[Any]):
    """Gzipped UTF-8 text, same semantics as TextFileProcessor."""

    extensions: ClassVar[tuple[str, ...]] = (".gz",)
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> list[str]:
        """Read the lines of the gzipped file."""
        with gzip.GzipFile(fileobj=file, mode="rb") as zipped:
            return _to_lines(zipped.read().decode("utf-8"))

    def dump(self, obj: Any, file: Any) -> None:
        """Write gzipped text."""
        with gzip.GzipFile(fileobj=file, mode="wb") as zipped:
            zipped.write(_to_text(obj).encode("utf-8"))
