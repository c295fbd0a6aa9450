"""``.pkl``: pickles that gokart reads, and gokart's dill pickles read back."""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import IO, Any, ClassVar

from kart_core.file_processor.base import FileProcessor

_MAIN = "__main__"
_CODE = (type, types.FunctionType)


class PickleFileProcessor(FileProcessor[Any]):
    """Any picklable object; dill for lambdas, closures, local classes and what a script defines.

    Classes and functions defined in the running script (``__main__``) are stored by value, as
    gokart's dill pickles store them, so another script can load the file. Everything else is
    written by the standard pickler (protocol 5), which is several times faster than dill.
    """

    extensions: ClassVar[tuple[str, ...]] = (".pkl",)
    binary: ClassVar[bool | None] = True
    # No attribute per instance: a processor is made per target, and a 100,000-task build holds many at once.
    __slots__ = ()
    # id() of the ``__main__`` module a processor of this class found defining code (``_main_defines_code``): 0
    # until then, set on the class once found (one int per process, not one per processor). An id, not the module:
    # the answer is about the process's ``__main__``, which a processor pickled to a worker process does not carry.
    _main_with_code: ClassVar[int] = 0

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
            guarded = self._main_defines_code()
            pickler = _MainGuardPickler(file, protocol=5) if guarded else pickle.Pickler(file, protocol=5)
            pickler.dump(obj)
        except (pickle.PicklingError, AttributeError, TypeError, _DefinedInMain):
            import dill

            file.seek(start)
            file.truncate()
            dill.dump(obj, file, protocol=5)

    def _main_defines_code(self) -> bool:
        """Whether the running ``__main__`` module defines a class or function of its own.

        When it defines none (pytest, a worker, a script that only imports), nothing can be pickled
        by a reference to ``__main__``, and the plain pickler runs without a per-object hook. Once a
        ``__main__`` module is found defining code, the processor's class keeps that answer for it (its
        namespace is not scanned again at later dumps of any processor of the class): a wrong "yes" would only cost
        the guard's hook, never a bad pickle (so an id that a later ``__main__`` reuses is harmless). A
        module found defining none is asked again at each dump.
        """
        main = sys.modules.get(_MAIN)
        if main is None:
            return False
        if self._main_with_code == id(main):
            return True
        # Stops at the first class or function ``__main__`` defines (after its imports). A plain loop over a copy
        # (another thread may define names meanwhile) with a tuple for isinstance: a third of the time of any()
        # over a generator testing ``type | FunctionType`` (a new union per name), as a processor is made per target.
        for value in vars(main).copy().values():
            if isinstance(value, _CODE) and getattr(value, "__module__", None) == _MAIN:
                type(self)._main_with_code = id(main)
                return True
        return False


def load_dill_with_pandas_backward_compatibility(file: IO[bytes]) -> Any:
    """gokart's name for reading a ``.pkl`` output: ``PickleFileProcessor().load`` (pickle, dill, pandas' reader).

    Raises:
        Exception: what the last of the three readers raised on a file none of them reads.
    """
    return PickleFileProcessor().load(file)


class _DefinedInMain(Exception):
    """Raised inside the pickler: the object graph holds a class or function of ``__main__``."""


class _MainGuardPickler(pickle.Pickler):
    """The C pickler, stopping at the first class or function defined in ``__main__``.

    ``reducer_override`` is not called for None, bools, ints, floats, str, bytes, dicts, lists,
    tuples and sets, and once only per memoized object, so arrays and frames cost a few calls.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _CODE) and getattr(obj, "__module__", None) == _MAIN:
            raise _DefinedInMain
        return NotImplemented
