"""``.pkl``: pickles that gokart reads, and gokart's dill pickles read back."""

from __future__ import annotations

import io
import pickle
from typing import Any, ClassVar

from kart_core.file_processor.base import FileProcessor


class PickleFileProcessor(FileProcessor[Any]):
    """Any picklable object; falls back to dill for lambdas, closures and local classes."""

    extensions: ClassVar[tuple[str, ...]] = (".pkl",)
    binary: ClassVar[bool | None] = True

    def load(self, file: Any) -> Any:
        """Read a pickle written by kart, gokart (dill) or pandas' to_pickle."""
        if not file.seekable():
            file = io.BytesIO(file.read())
        start = file.tell()
        try:
            return pickle.load(file)
        except Exception:
            # dill pickles of functions and pickles from old pandas need their own loaders.
            file.seek(start)
            import dill

            try:
                return dill.load(file)
            except Exception:
                file.seek(start)
                import pandas as pd

                return pd.read_pickle(file)

    def dump(self, obj: Any, file: Any) -> None:
        """Stream the object to the file (no in-memory copy); dill when pickle cannot."""
        start = file.tell()
        try:
            # Protocol 5 writes large buffers straight through; dill and gokart load it.
            pickle.dump(obj, file, protocol=5)
        except (pickle.PicklingError, AttributeError, TypeError):
            import dill

            file.seek(start)
            file.truncate()
            dill.dump(obj, file, protocol=5)
