"""DataFrame equality that ignores the order of rows and columns."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["assert_frame_contents_equal"]


def assert_frame_contents_equal(actual: pd.DataFrame, expected: pd.DataFrame, **kwargs: Any) -> None:
    """Raise AssertionError unless both frames hold the same cells, whatever the row and column order.

    Index and columns must be unique (otherwise rows cannot be matched); ``kwargs`` go to
    ``pandas.testing.assert_frame_equal`` (e.g. ``check_dtype=False``).
    """
    for role, frame in (("actual", actual), ("expected", expected)):
        if not isinstance(frame, pd.DataFrame):
            raise AssertionError(f"{role} is a {type(frame).__name__}, not a pandas DataFrame")
        for axis in ("index", "columns"):
            duplicated = getattr(frame, axis)[getattr(frame, axis).duplicated()]
            if len(duplicated):
                raise AssertionError(
                    f"{role} has duplicated {axis} labels {list(duplicated)[:5]}; make them unique first"
                )
    _assert_same_labels("columns", actual.columns, expected.columns)
    _assert_same_labels("index", actual.index, expected.index)
    pd.testing.assert_frame_equal(actual, expected.reindex(index=actual.index, columns=actual.columns), **kwargs)


def _assert_same_labels(axis: str, actual: pd.Index, expected: pd.Index) -> None:
    missing, extra = set(expected) - set(actual), set(actual) - set(expected)
    if missing or extra:
        raise AssertionError(
            f"{axis} differ: actual lacks {sorted(map(str, missing))}, has extra {sorted(map(str, extra))}"
        )
