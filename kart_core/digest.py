"""Stable md5 digests of data, the same in every process (code: fingerprint.py).

What counts is everything that can change what code reading the value computes:

- containers structurally: lists, tuples and dicts in order (``{"age", "income"}`` and
  ``{"income", "age"}`` differ, as kart's DictParameter ids do), sets independent of order and of
  ``PYTHONHASHSEED``;
- pandas objects by values (``hash_pandas_object``), column and index labels *and their names*
  (MultiIndex level names too), each column's dtype, a categorical's categories in order and its
  ordered flag, a Series' name, ``attrs``;
- numpy arrays by dtype (field names of a structured dtype too), shape, memory order and values;
- anything else by its pickle (a polars DataFrame's pickle holds its schema and data).

Values whose pickle holds no data, only a recipe or a reference to it (a polars LazyFrame, a
pyarrow Dataset, a dask collection, a generator or other iterator, an open file, any callable),
and values that cannot be pickled raise ``UndigestableError``: a cache keyed by them would serve
stale results.
"""

from __future__ import annotations

import collections.abc
import hashlib
import io
import pickle
import types
from collections.abc import Mapping
from typing import Any

from kart_core.errors import UndigestableError

__all__ = ["digest"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_STREAMS = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)
# (top-level module, class name) of lazy tables whose pickle is a query plan over files, not data.
_LAZY_TABLES = {("polars", "LazyFrame"): "a polars LazyFrame", ("pyarrow", "FileSystemDataset"): "a pyarrow Dataset"}


def digest(value: Any) -> str:
    """The md5 hex digest of ``value``'s content (32 hex characters).

    Raises:
        UndigestableError: ``value`` holds, anywhere inside, something whose content cannot be
            digested (see the module docstring); ``path`` says where.
    """
    hasher = hashlib.md5()
    _feed(hasher, value)
    return hasher.hexdigest()


def _feed(hasher: Any, value: Any) -> None:
    hasher.update(type(value).__qualname__.encode() + b":")
    if isinstance(value, _SCALARS):
        hasher.update(repr(value).encode())
    elif isinstance(value, Mapping):
        hasher.update(str(len(value)).encode())
        for key, item in value.items():
            try:
                _feed(hasher, key)
                _feed(hasher, item)
            except UndigestableError as exc:
                exc.path.insert(0, f"[{key!r}]")
                raise
    elif isinstance(value, list | tuple):
        hasher.update(str(len(value)).encode())
        for index, item in enumerate(value):
            try:
                _feed(hasher, item)
            except UndigestableError as exc:
                exc.path.insert(0, f"[{index}]")
                raise
    elif isinstance(value, set | frozenset):
        hasher.update(",".join(sorted(digest(item) for item in value)).encode())
    else:
        _feed_object(hasher, value)


def _feed_object(hasher: Any, value: Any) -> None:
    """Feed a non-container: frames and arrays by content, lazy objects refused, anything else pickled."""
    module = type(value).__module__.partition(".")[0]
    if module == "pandas" and _feed_pandas(hasher, value):
        return
    if module == "numpy" and _feed_array(hasher, value):
        return
    kind = _undigestable_kind(value, module)
    if kind is not None:
        raise UndigestableError(kind)
    try:
        hasher.update(pickle.dumps(value, protocol=4))
    except (TypeError, AttributeError, ValueError, pickle.PicklingError) as exc:  # what pickling such objects raises
        raise UndigestableError(
            f"a {type(value).__name__} that cannot be pickled ({type(exc).__name__}: {exc})"
        ) from exc


def _undigestable_kind(value: Any, module: str) -> str | None:
    """What ``value`` is, when its pickle would not hold the data it stands for; None otherwise."""
    lazy = _LAZY_TABLES.get((module, type(value).__name__))
    if lazy is not None:
        return lazy
    if hasattr(type(value), "__dask_graph__"):
        return f"a dask {type(value).__name__}"
    if isinstance(value, _STREAMS):
        return f"a {type(value).__name__}"
    if isinstance(value, io.IOBase):  # before Iterator: files iterate over their lines
        return f"an open file ({type(value).__name__})"
    if isinstance(value, collections.abc.Iterator):
        return f"an iterator ({type(value).__name__})"
    if callable(value):  # a function, a loader object: pickled by reference or by its settings, never by data
        return f"a callable ({getattr(value, '__qualname__', type(value).__qualname__)})"
    return None


def _feed_pandas(hasher: Any, value: Any) -> bool:
    """Feed a DataFrame, Series or Index by labels, dtypes and values; False for other pandas objects
    and for frames with unhashable cells (lists in an object column), which are pickled instead."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        labels: list[Any] = [
            _index_labels(value.columns, with_labels=True),
            [_dtype_label(dtype) for dtype in value.dtypes],
        ]
    elif isinstance(value, pd.Series):
        labels = [value.name, _dtype_label(value.dtype)]
    elif isinstance(value, pd.Index):
        labels = [_index_labels(value)]
    else:
        return False
    if not isinstance(value, pd.Index):
        labels.append(_index_labels(value.index))
    try:
        values = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
    except TypeError:  # e.g. lists inside object columns
        return False
    hasher.update(digest(labels).encode())
    if not isinstance(value, pd.Index) and value.attrs:
        _feed(hasher, value.attrs)
    hasher.update(values)
    return True


def _index_labels(index: Any, *, with_labels: bool = False) -> list[Any]:
    """An Index's level names and level dtypes; its labels too for columns (a row index's labels are
    in ``hash_pandas_object``'s row hashes)."""
    levels = index.levels if hasattr(index, "levels") else [index]
    names = [list(index.names), [_dtype_label(level.dtype) for level in levels]]
    return [*names, list(index)] if with_labels else names


def _dtype_label(dtype: Any) -> Any:
    """A dtype's name; for a categorical, also its categories in order and its ordered flag."""
    categories = getattr(dtype, "categories", None)
    if categories is None:
        return str(dtype)
    import pandas as pd

    hashed = pd.util.hash_pandas_object(categories, index=False).to_numpy().tobytes()
    return ["category", bool(dtype.ordered), str(categories.dtype), hashlib.md5(hashed).hexdigest()]


def _feed_array(hasher: Any, value: Any) -> bool:
    """Feed a numpy array or scalar by dtype, shape, memory order and bytes; False for object arrays
    and masked arrays (their mask is not in the bytes), which are pickled instead."""
    import numpy as np

    if not isinstance(value, np.ndarray | np.generic) or value.dtype == object or isinstance(value, np.ma.MaskedArray):
        return False
    dtype = value.dtype.descr if value.dtype.names else value.dtype.str
    order = "F" if value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous else "C"
    hasher.update(repr((dtype, value.shape, order)).encode())
    hasher.update(value.tobytes())
    return True
