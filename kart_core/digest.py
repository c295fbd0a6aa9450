"""Stable md5 digests of data, the same in every process (code: fingerprint.py).

What counts is everything that can change what code reading the value computes:

- containers structurally: lists, tuples and dicts in order (``{"age", "income"}`` and
  ``{"income", "age"}`` differ, as kart's DictParameter ids do), sets independent of order and of
  ``PYTHONHASHSEED``;
- pandas objects by values (``hash_pandas_object``; an object column, Series or index level holding
  anything but strings by each value's exact text and type, so ``1`` and ``"1"``, ``1`` and ``1.0``,
  ``None`` and ``NaN``, ``0.0`` and ``-0.0`` differ), column and index labels *and their names*
  (MultiIndex level names too), each column's dtype, a categorical's categories in order and its
  ordered flag, a Series' name, ``attrs``;
- numpy arrays by dtype (field names of a structured dtype too), shape, memory order and values;
- anything else by its pickle (a polars DataFrame's pickle holds its schema and data).

Values whose pickle holds no data, only a recipe or a reference to it (a polars LazyFrame, a
pyarrow Dataset, a dask collection, a generator or other iterator, an open file, code: a function,
method, class or partial; an instance of a class with ``__call__``, such as a fitted model, counts
by its pickle),
and values that cannot be pickled raise ``UndigestableError``: a cache keyed by them would serve
stale results.
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import datetime
import decimal
import fractions
import functools
import hashlib
import inspect
import io
import pickle
import types
import uuid
from collections.abc import Mapping
from typing import Any

from kart_core.errors import UndigestableError

__all__ = ["digest"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
# Types whose str() is exact: equal text, equal value (a tuple's text holds its items' repr).
_EXACT_TEXT = frozenset(
    {type(None), bool, int, float, complex, str, bytes, tuple, decimal.Decimal, fractions.Fraction, uuid.UUID}
    | {datetime.date, datetime.datetime, datetime.time, datetime.timedelta}
)
_TEXT = ("string", "empty")  # what pandas.api.types.infer_dtype says of an object array of str values only
_STREAMS = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)
# (top-level module, class name) of lazy tables whose pickle is a query plan over files, not data.
_LAZY_TABLES = {("polars", "LazyFrame"): "a polars LazyFrame", ("pyarrow", "FileSystemDataset"): "a pyarrow Dataset"}


def digest(value: Any, code: set[Any] | None = None) -> str:
    """The md5 hex digest of ``value``'s content (32 hex characters).

    Args:
        value: the data.
        code: when given, each class and function that the pickle of a part of ``value`` names (a
            fitted model's class, and any class or function its attributes hold) is added to it. The
            digest holds their names, not their code: a caller whose cache must see an edit of that
            code (the Kedro runner, for project code) fingerprints them itself. The digest is the same.

    Raises:
        UndigestableError: ``value`` holds, anywhere inside, something whose content cannot be
            digested (see the module docstring); ``path`` says where.
    """
    hasher = hashlib.md5()
    token = _pickled_code.set(code) if code is not None else None
    try:
        _feed(hasher, value)
    finally:
        if token is not None:
            _pickled_code.reset(token)
    return hasher.hexdigest()


# The set ``digest(value, code)`` fills, for the pickles made inside that call (a set's items are digested apart).
_pickled_code: contextvars.ContextVar[set[Any] | None] = contextvars.ContextVar("kart_pickled_code", default=None)


class _NamingPickler(pickle.Pickler):
    """A pickler that notes every class and function a pickle names (the bytes are pickle.dumps's)."""

    def __init__(self, file: io.BytesIO, code: set[Any]) -> None:
        super().__init__(file, protocol=4)
        self.code = code

    def reducer_override(self, obj: Any) -> Any:
        """Note ``obj``'s class (``obj`` itself when it is a class or function); pickle it as usual."""
        named = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)
        with contextlib.suppress(TypeError):  # unhashable: not a class or function anyway
            self.code.add(named)
        return NotImplemented


def _pickled(value: Any) -> bytes:
    """``pickle.dumps(value, protocol=4)``, noting the code it names when ``digest`` was asked to."""
    code = _pickled_code.get()
    if code is None:
        return pickle.dumps(value, protocol=4)
    file = io.BytesIO()
    _NamingPickler(file, code).dump(value)
    return file.getvalue()


# What ``_feed`` writes before the ``repr`` of a value of exactly one of these types: its type's qualname and ":".
_PLAIN_PREFIX = {kind: kind.__qualname__.encode() + b":" for kind in _SCALARS}


def _feed(hasher: Any, value: Any) -> None:
    prefix = _PLAIN_PREFIX.get(type(value))
    if prefix is not None:  # the common leaf, in one update: the same bytes as the two below write
        hasher.update(prefix + repr(value).encode())
        return
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
        hasher.update(_pickled(value))
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
    if _is_code(value):
        return f"a callable ({getattr(value, '__qualname__', type(value).__qualname__)})"
    return None


def _is_code(value: Any) -> bool:
    """Whether ``value`` is code pickled by reference: a function, a method (a partition's bound loader),
    a class, a ``functools.partial`` of one. Its pickle names the code and not what calling it reads.

    An instance of a class defining ``__call__`` (a fitted model: a torch module, a user's scorer)
    is not: its pickle holds its state, as any other object's does, so it counts by that pickle.
    """
    return (
        isinstance(value, type | functools.partial | functools.partialmethod)
        or inspect.isroutine(value)
        or (callable(value) and type(value).__module__ in ("builtins", "functools", "operator"))
    )


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
        exact, types = _exact_values(value)
        values = pd.util.hash_pandas_object(exact, index=True).to_numpy().tobytes()
    except (TypeError, ValueError):  # e.g. lists inside object columns (str() of a list array raises ValueError)
        return False
    hasher.update(digest(labels).encode())
    if not isinstance(value, pd.Index) and value.attrs:
        _feed(hasher, value.attrs)
    hasher.update(values)
    for part in types:  # empty for frames of numbers and strings: their digests stay as they were
        hasher.update(part)
    return True


def _exact_values(value: Any) -> tuple[Any, list[bytes]]:
    """``value`` with each object column (Series values) that holds anything but strings replaced by
    the exact hash of its values, and the parts that tell what hashing cannot: each such column's,
    object index level's and negative-zero float's types and positions.

    ``hash_pandas_object`` groups an object column's equal values (``1 == 1.0 == True``, ``0.0 ==
    -0.0``, ``None`` and ``NaN`` are both missing) and hashes them as text (``1`` as ``"1"``), and
    maps ``-0.0`` to ``0.0`` in float columns; code reading the data can tell all of these apart.

    Raises:
        TypeError, ValueError: a value hashing cannot read (a list in an object column).
    """
    import pandas as pd

    parts: list[bytes] = []
    if isinstance(value, pd.DataFrame):
        replaced = {}
        for position, dtype in enumerate(value.dtypes):
            if _hashed_loosely(dtype):
                hashed = _exact(value.iloc[:, position].to_numpy(), f"column {position}", parts)
                if hashed is not None:
                    replaced[position] = hashed
        if replaced:
            value = value.copy(deep=False)
            for position, hashed in replaced.items():
                value.isetitem(position, hashed)
    elif isinstance(value, pd.Series) and _hashed_loosely(value.dtype):
        hashed = _exact(value.to_numpy(), "values", parts)
        if hashed is not None:
            value = pd.Series(hashed, index=value.index, name=value.name, copy=False)
    index = value if isinstance(value, pd.Index) else value.index
    for level in range(index.nlevels):
        dtype = index.levels[level].dtype if isinstance(index, pd.MultiIndex) else index.dtype
        if _hashed_loosely(dtype):
            hashed = _exact(index.get_level_values(level).to_numpy(), f"index level {level}", parts)
            if hashed is not None:
                parts.append(hashed.tobytes())
    return value, parts


def _types(array: Any, where: str) -> bytes:
    """The type of each value of an object array: the distinct types' names and one code per value."""
    import numpy as np
    import pandas as pd

    codes, kinds = pd.factorize(np.frompyfunc(type, 1, 1)(array))
    return _named_codes(codes, kinds, where)


def _named_codes(codes: Any, kinds: Any, where: str) -> bytes:
    names = [f"{kind.__module__}.{kind.__qualname__}" for kind in kinds]
    return f"{where} types {names}:".encode() + codes.astype("<i8").tobytes()


def _hashed_loosely(dtype: Any) -> bool:
    """Whether ``hash_pandas_object`` may hash different values of this dtype alike (object, float, complex)."""
    import numpy as np

    return isinstance(dtype, np.dtype) and dtype.kind in "Ofc"


def _exact(array: Any, where: str, parts: list[bytes]) -> Any:
    """The exact hashes of an object array holding anything but strings (their types added to
    ``parts``), or None when hashing already tells its values apart; a float array's negative zeros
    go to ``parts`` (None: its hash stays).

    Raises:
        TypeError, ValueError: a value hashing cannot read (a list).
    """
    import numpy as np
    import pandas as pd

    if array.dtype.kind in "fc":
        negative = np.zeros(array.shape, dtype=bool)
        for part in (array.real, array.imag) if array.dtype.kind == "c" else (array,):
            negative |= (part == 0) & np.signbit(part)
        if negative.any():
            parts.append(f"{where} -0.0 at:".encode() + np.flatnonzero(negative).astype("<i8").tobytes())
        return None
    if pd.api.types.infer_dtype(array, skipna=False) in _TEXT:
        return None  # str values only: hashed as they are
    if pd.api.types.infer_dtype(array, skipna=True) in _TEXT:
        # Strings and missing values (a read_csv text column): hashing tells the strings apart; the
        # missing ones (None, NaN, pd.NA hash alike) by position and type.
        positions = np.flatnonzero(pd.isna(array))
        parts.append(f"{where} missing at:".encode() + positions.astype("<i8").tobytes())
        parts.append(_types(array[positions], where))
        return None
    codes, kinds = pd.factorize(np.frompyfunc(type, 1, 1)(array))
    unfaithful = [kind for kind in kinds if not _str_is_exact(kind)]
    if unfaithful:  # str() may not tell such values apart (a custom __str__, a truncated array): pickled instead
        raise TypeError(f"object values of type {unfaithful[0].__qualname__} hash by a text that may lose data")
    parts.append(_named_codes(codes, kinds, where))
    # Each value by itself (not grouped by ==); non-strings as their str() (1.0 as "1.0", -0.0 as "-0.0").
    return pd.util.hash_array(array, categorize=False)


def _str_is_exact(kind: type) -> bool:
    """Whether two values of type ``kind`` with the same ``str()`` are the same value (to code reading them)."""
    import numpy as np

    return kind in _EXACT_TEXT or issubclass(kind, np.generic) or kind.__module__.partition(".")[0] == "pandas"


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

    exact, types = _exact_values(categories)
    hashed = pd.util.hash_pandas_object(exact, index=False).to_numpy().tobytes() + b"".join(types)
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
