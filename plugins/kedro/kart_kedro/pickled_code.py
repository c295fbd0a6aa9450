"""The classes and functions a cached node output's pickle names: code its readers run without naming it.

A node reading a model another node returned (``train`` -> ``model`` -> ``predict``) calls
``model.predict(...)``: a method found at run time, not named in the reader's code, so the reader's code
fingerprint does not hold it. Nor do the model's bytes: a pickle names a class by module and qualified
name, not by its code, so ``train`` run again after an edit of ``Regressor.predict`` returns the same bytes.
KartRunner therefore keys a reader of a cached node's output also by the code fingerprint of each project
class or function that output's pickle names (pipeline_run ``upstream_code``): kart before 2026-12-01
18:25 UTC served ``predict`` from the cache with the old ``predict``'s results (attacker at6 D4).

The names are read from the committed pickle's opcodes (``pickletools.genops``: ``GLOBAL``, ``INST``,
``STACK_GLOBAL`` with its two strings, memoised ones too), without unpickling anything. Values that are
plain data (``plain_data``: numbers, strings, bytes, lists, tuples and dicts of them, numpy arrays and
pandas objects of numbers or strings) name no project code: the worker says so, and their files are not read.
"""

from __future__ import annotations

import importlib
import pickletools
import sys
from typing import Any, BinaryIO

__all__ = ["pickled_names", "plain_data", "resolve_name"]

_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_LIMIT = 10_000  # items plain_data looks at; a bigger value is scanned from its pickle instead
# Opcodes that push a string (the module and name STACK_GLOBAL pops are pushed so, or fetched from the memo).
_STRINGS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_SILENT = frozenset({"FRAME", "PROTO", "MEMOIZE", *_PUTS})  # opcodes that push nothing


def plain_data(value: Any) -> bool:
    """Whether ``value`` is plain data whose pickle names no code but the builtins', numpy's or pandas'.

    Plain: ``None``, bools, numbers, strings, bytes; lists, tuples and dicts of plain data; numpy arrays
    (not of dtype object) and scalars; pandas DataFrames, Series and Indexes (not MultiIndexes) whose
    dtypes are numpy's or ``StringDtype`` and whose object columns and labels hold strings only. Anything else (any other
    class, an object column of other values, more than 10,000 items) is not: its pickle is scanned.
    """
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list or kind is tuple:
            if len(item) <= _LIMIT and _SCALARS.issuperset(map(type, item)):
                seen += 2 * len(item)  # counted as the loop counts them: with their container, and popped
            else:
                seen += len(item)
                stack.extend(item)
        elif kind is dict:
            if (
                len(item) <= _LIMIT
                and _SCALARS.issuperset(map(type, item))
                and _SCALARS.issuperset(map(type, item.values()))
            ):
                seen += 3 * len(item)  # likewise: with the dict, each key and each value popped
            else:
                seen += len(item)
                stack.extend(item)
                stack.extend(item.values())
        elif not _plain_array(item, kind.__module__.partition(".")[0]):
            return False
        if seen > _LIMIT:
            return False
    return True


def _plain_array(item: Any, module: str) -> bool:
    """A numpy array or scalar not of dtype object, or a pandas object of numbers and strings."""
    if module == "numpy":
        import numpy as np

        return isinstance(item, np.generic | np.ndarray) and not item.dtype.hasobject
    if module != "pandas":
        return False
    import pandas as pd

    if type(item) is pd.DataFrame:
        labeled = [item.index, item.columns]
        columns = [item.iloc[:, position] for position in range(item.shape[1])]
        return bool(not item.attrs and all(map(_plain_labels, labeled)) and all(map(_plain_labels, columns)))
    if type(item) is pd.Series:
        return bool(not item.attrs and _plain_labels(item.index) and _plain_labels(item) and _scalar(item.name))
    return isinstance(item, pd.Index) and _plain_labels(item)


def _plain_labels(values: Any) -> bool:
    """A Series or (not Multi) Index of strings (``StringDtype``) or of a numpy dtype whose object values are
    strings only."""
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.MultiIndex) or not _scalar(values.name):
        return False
    if isinstance(values.dtype, pd.StringDtype):  # strings only (pandas 3's default for text)
        return True
    if not isinstance(values.dtype, np.dtype):
        return False
    return not values.dtype.hasobject or pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")


def _scalar(value: Any) -> bool:
    return type(value) in _SCALARS


def pickled_names(file: BinaryIO) -> tuple[str, ...]:
    """The ``module:qualname`` of each class and function a pickle names, sorted, each once.

    Args:
        file: the pickle, read from its current position to its ``STOP`` (nothing is unpickled).

    Raises:
        ValueError: not a pickle (an unknown opcode, a truncated stream), or a ``STACK_GLOBAL`` whose
            module and name are not two strings just pushed (no pickler kart knows writes that).
    """
    names: set[str] = set()
    memo: dict[int, Any] = {}
    top: list[Any] = [None, None]  # the two values pushed last (None: not a string kart tracks)
    for opcode, arg, _ in pickletools.genops(file):
        op = opcode.name
        if op in _SILENT:
            if op == "MEMOIZE":
                memo[len(memo)] = top[-1]
            elif op in _PUTS:
                memo[_index(arg)] = top[-1]
            continue
        if op in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            names.add(f"{module}:{name}")
        elif op == "STACK_GLOBAL":
            module, name = top
            if not isinstance(module, str) or not isinstance(name, str):
                raise ValueError("a STACK_GLOBAL whose module and name are not the two strings pushed before it")
            names.add(f"{module}:{name}")
        pushed = arg if op in _STRINGS else memo.get(_index(arg)) if op in _GETS else None
        top = [top[-1], pushed]
    return tuple(sorted(names))


def _index(arg: Any) -> int:
    """A memo index as pickletools decodes it (an int; text for protocol 0's ``PUT``/``GET``)."""
    return arg if isinstance(arg, int) else int(str(arg))


def resolve_name(name: str) -> Any:
    """The class or function ``module:qualname`` names (its module imported if it is not yet), or None.

    None when the module does not import or has no such attribute (a ``<locals>`` class): such a
    value cannot be loaded back either.
    """
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # any error of a module that does not import here: its code cannot be named
            return None
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return found
