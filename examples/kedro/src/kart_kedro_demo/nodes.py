"""Plain Kedro node functions (the "nodes" pipeline): cached by ``--runner kart_kedro.KartRunner``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kart_kedro_demo import helpers


def clean(raw_numbers: pd.DataFrame, min_value: float) -> pd.DataFrame:
    """Rows whose value is at least ``min_value``."""
    return raw_numbers[raw_numbers.value >= min_value].reset_index(drop=True)


def scale(clean_numbers: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Values multiplied by ``factor``."""
    return clean_numbers.assign(value=clean_numbers.value * factor)


def summarize(scaled: pd.DataFrame) -> dict[str, Any]:
    """Total and mean of the scaled values (the total through helpers.total)."""
    return {"total": helpers.total(scaled.value), "mean": float(scaled.value.mean()), "rows": int(len(scaled))}


def count(clean_numbers: pd.DataFrame) -> dict[str, int]:
    """Rows per group (does not depend on ``factor``)."""
    return {str(group): int(n) for group, n in clean_numbers.groupby("group").size().items()}


def report_features(features: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    """A Kedro node reading two kart outputs through TaskOnKartDataset entries."""
    return {"rows": int(len(features)), "last_smooth": float(features.y_smooth.iloc[-1]), "slope": model["slope"]}


def report_raw(raw_summary: dict[str, Any]) -> dict[str, Any]:
    """A Kedro node reading a kart task that depends on a raw file (RawFile)."""
    return {**raw_summary, "mean": raw_summary["total"] / raw_summary["rows"]}
