"""The journal a test's node functions write their names to, so a test can assert which nodes ran.

The file is named by ``KART_KEDRO_TEST_JOURNAL`` (the ``journal`` fixture in tests/kedro/conftest.py sets it per
test); worker processes of KartParallelRunner inherit it and append to the same file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def record(name: str) -> None:
    """Append ``name`` (a node function's label) to the journal."""
    with open(os.environ["KART_KEDRO_TEST_JOURNAL"], "a") as handle:
        handle.write(f"{name}\n")


def ran() -> list[str]:
    """The labels recorded since the last call, in order; empties the journal."""
    path = Path(os.environ["KART_KEDRO_TEST_JOURNAL"])
    names = path.read_text().split() if path.exists() else []
    path.write_text("")
    return names


def ingest(day: str, events: str) -> dict[str, str]:
    """A daily-partition node: one partition named ``day`` holding ``events`` ("" on a day without events)."""
    record("ingest")
    return {day: events}


def report(parts: dict[str, Any]) -> list[str]:
    """A node reading a whole partition folder: the days it covers."""
    record("report")
    return sorted(parts)
