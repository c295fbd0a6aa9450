"""``.pkl``: pickles that gokart reads, and gokart's dill pickles read back."""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import Any, ClassVar

from kart_core.file_processor.base import FileProcessor

_MAIN = "__main__"


class PickleFileProcessor(FileProcessor[Any]):
    """Any picklable object; dill for lambdas, closures, local classes and what a script defines.

    Classes and functions defined in the running script (``__main__``) are stored by value, as
    gokart's dill pickles store them, so another script can load the file. Everything else is
    written by the standard pickler (protocol 5), which is several times faster than dill.
    """

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
        """Stream the object to the file (no in-memory copy); dill when pickle cannot, or would store
        a ``__main__`` class or function by a reference that no other script can resolve."""
        start = file.tell()
        try:
            # Protocol 5 writes large buffers straight through; dill and gokart load it.
            pickler = _MainGuardPickler(file, protocol=5) if _main_defines_code() else pickle.Pickler(file, protocol=5)
            pickler.dump(obj)
        except (pickle.PicklingError, AttributeError, TypeError, _DefinedInMain):
            import dill

            file.seek(start)
            file.truncate()
            dill.dump(obj, file, protocol=5)


class _DefinedInMain(Exception):
    """Raised inside the pickler: the object graph holds a class or function of ``__main__``."""


class _MainGuardPickler(pickle.Pickler):
    """The C pickler, stopping at the first class or function defined in ``__main__``.

    ``reducer_override`` is not called for None, bools, ints, floats, str, bytes, dicts, lists,
    tuples and sets, and once only per memoized object, so arrays and frames cost a few calls.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and getattr(obj, "__module__", None) == _MAIN:
            raise _DefinedInMain
        return NotImplemented


def _main_defines_code() -> bool:
    """Whether the running ``__main__`` module defines a class or function of its own.

    When it defines none (pytest, a worker, a script that only imports), nothing can be pickled
    by a reference to ``__main__``, and the plain pickler runs without a per-object hook. Once a
    ``__main__`` module is found defining code, that answer is kept for it (its namespace is not
    scanned on every dump): a wrong "yes" would only cost the guard's hook, never a bad pickle.
    """
    main = sys.modules.get(_MAIN)
    if main is None:
        return False
    if _main_with_code[0] is main:
        return True
    found = any(
        isinstance(value, type | types.FunctionType) and getattr(value, "__module__", None) == _MAIN
        for value in list(vars(main).values())
    )
    if found:
        _main_with_code[0] = main
    return found


# The ``__main__`` module last found defining code (one slot, replaced when ``__main__`` is another module).
_main_with_code: list[Any] = [None]
