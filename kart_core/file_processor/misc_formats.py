"""Small formats: ``.xml`` (ElementTree), ``.npz`` (one ndarray), ``.png``/``.jpg`` (raw bytes)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, ClassVar

from kart_core.errors import UnsupportedObjectError
from kart_core.file_processor.base import FileProcessor


class XmlFileProcessor(FileProcessor[ET.ElementTree]):
    """An ``xml.etree.ElementTree.ElementTree``; an empty file loads as an empty tree."""

    extensions: ClassVar[tuple[str, ...]] = (".xml",)
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> ET.ElementTree:
        """Parse the file."""
        data = file.read()
        if not data.strip():
            return ET.ElementTree()
        return ET.ElementTree(ET.fromstring(data))

    def dump(self, obj: ET.ElementTree, file: Any) -> None:
        """Write the tree."""
        if not isinstance(obj, ET.ElementTree):
            # TypeError and AssertionError: gokart's xml processor fails an assert here.
            raise UnsupportedObjectError(
                f"requires xml.etree.ElementTree.ElementTree, but {type(obj).__name__} was passed"
            )
        obj.write(file)


class NpzFileProcessor(FileProcessor[Any]):
    """One numpy array, stored compressed under the key ``data`` (as gokart does)."""

    extensions: ClassVar[tuple[str, ...]] = (".npz",)
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> Any:
        """Read the array."""
        import numpy as np

        with np.load(file) as archive:
            return archive["data"]

    def dump(self, obj: Any, file: Any) -> None:
        """Write the array."""
        import numpy as np

        if not isinstance(obj, np.ndarray):
            # TypeError and AssertionError: gokart's npz processor fails an assert here.
            raise UnsupportedObjectError(f"requires numpy.ndarray, but {type(obj).__name__} was passed")
        np.savez_compressed(file, data=obj)


class BinaryFileProcessor(FileProcessor[bytes]):
    """Raw bytes, e.g. an image rendered to a buffer."""

    extensions: ClassVar[tuple[str, ...]] = (".png", ".jpg")
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> bytes:
        """Return the file's bytes."""
        return bytes(file.read())

    def dump(self, obj: bytes, file: Any) -> None:
        """Write the bytes."""
        if not isinstance(obj, bytes | bytearray | memoryview):
            raise TypeError(f"requires bytes, but {type(obj).__name__} was passed")
        file.write(obj)
