"""Helpers for testing kart/gokart pipelines: frame comparison and the empty-DataFrame check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kart_core.testing.check_if_run_with_empty_data_frame import (
    TestStatus,
    gokart_run_name,
    run_with_empty_data_frames,
    test_run,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TestStatus",
    "assert_frame_contents_equal",
    "run_with_empty_data_frames",
    "test_run",
    "try_to_run_test_for_empty_data_frame",
]


def assert_frame_contents_equal(actual: pd.DataFrame, expected: pd.DataFrame, **kwargs: Any) -> None:
    """Raise AssertionError unless both frames hold the same cells, whatever the row and column order."""
    # Imported here: pandas is loaded only by code that compares frames.
    from kart_core.testing.pandas_assert import assert_frame_contents_equal as compare

    compare(actual, expected, **kwargs)


def __getattr__(name: str) -> Any:
    """gokart's ``gokart.testing.try_to_run_test_for_empty_data_frame``, from ``kart_core.run`` on first use.

    Raises:
        AttributeError: any other name.
    """
    return gokart_run_name(__name__, name)
