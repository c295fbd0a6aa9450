"""Helpers the nodes call. KartRunner's code fingerprint follows them: editing any function, method
or constant here reruns exactly the nodes that use it; comments and formatting do not count."""

from __future__ import annotations

from typing import Any

UNIT = 1.0  # totals are reported in this unit


class Rounder:
    """Rounds report numbers to ``digits`` decimals."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def apply(self, value: float) -> float:
        """``value`` rounded."""
        return round(value, self.digits)


def in_units(value: float) -> float:
    """``value`` in UNIT, rounded for the report."""
    return Rounder(6).apply(value / UNIT)


def total(values: Any) -> float:
    """The sum of ``values`` in UNIT."""
    return in_units(float(values.sum()))
