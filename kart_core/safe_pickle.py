"""Unpickle plain data only: for run logs read from a workspace that may hold files nobody vouches for.

A pickle can name any importable callable and call it while loading (``os.system`` included), so
listing a shared workspace (``kart runs``, ``why``, ``report``) must not unpickle what it finds with
``pickle.load``. gokart's run logs hold plain data: a dict of str parameters, an int seed, a float
time, and the task_log dict (output paths and whatever the task put there, in practice numbers,
strings, lists and dicts). ``loads_plain_data`` rebuilds those and refuses every other global.
With signing on, run logs are verified before loading and read by the normal path instead.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["PLAIN_GLOBALS", "loads_plain_data"]

# Globals a pickle of plain data may name (pickle protocols 0-5; numpy scalars that tasks put in
# their task_log, as metrics often are). None of them runs code beyond building the value.
PLAIN_GLOBALS = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("_codecs", "encode"),  # protocol 0-2 pickles of bytes
        ("collections", "OrderedDict"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)


# Protocols 0-2 name builtins as Python 2 did.
PLAIN_GLOBALS = PLAIN_GLOBALS | {("__builtin__", name) for module, name in PLAIN_GLOBALS if module == "builtins"}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PLAIN_GLOBALS:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, and kart loads only plain data from run logs it cannot verify "
                "(turn signing on, KART_SIGNING_KEY, to read logs kart signed in full)"
            )
        return super().find_class(module, name)


def loads_plain_data(data: bytes) -> Any:
    """The value pickled in ``data``, built from plain data types only.

    Raises:
        pickle.UnpicklingError: the pickle names a global outside ``PLAIN_GLOBALS`` (nothing of it ran),
            or it is not a pickle.
        EOFError, ValueError: the data is truncated or malformed.
    """
    return _PlainDataUnpickler(io.BytesIO(data)).load()
