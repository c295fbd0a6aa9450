"""Stable md5 digests of data, the same in every process (code: fingerprint.py).

Containers are hashed structurally (dict and set order do not matter, str hashing seeds do not
leak in); DataFrames and arrays by their values, dtypes and labels; anything else by its pickle.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from typing import Any

__all__ = ["digest"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def digest(value: Any) -> str:
    """The md5 hex digest of ``value``'s content."""
    hasher = hashlib.md5()
    _feed(hasher, value)
    return hasher.hexdigest()


def _feed(hasher: Any, value: Any) -> None:
    hasher.update(type(value).__qualname__.encode() + b":")
    if isinstance(value, _SCALARS):
        hasher.update(repr(value).encode())
    elif isinstance(value, Mapping):
        for key_digest, item in sorted((digest(key), item) for key, item in value.items()):
            hasher.update(key_digest.encode())
            _feed(hasher, item)
    elif isinstance(value, list | tuple):
        hasher.update(str(len(value)).encode())
        for item in value:
            _feed(hasher, item)
    elif isinstance(value, set | frozenset):
        hasher.update(",".join(sorted(digest(item) for item in value)).encode())
    else:
        hasher.update(_array_bytes(value) or pickle.dumps(value, protocol=4))


def _array_bytes(value: Any) -> bytes | None:
    """Value bytes of a pandas or numpy object, or None for anything else (or unhashable cells)."""
    module = type(value).__module__.split(".")[0]
    try:
        if module == "pandas" and hasattr(value, "dtypes"):
            import pandas as pd

            labels = repr((list(getattr(value, "columns", [getattr(value, "name", None)])), str(value.dtypes)))
            return labels.encode() + pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        if module == "numpy" and hasattr(value, "dtype") and value.dtype != object:
            return repr((value.dtype.str, value.shape)).encode() + value.tobytes()
    except TypeError:  # e.g. lists inside object columns: fall back to pickle
        return None
    return None
