"""Kedro test fixtures: a run journal shared by every process of a test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file each test task appends its label to when it runs (child processes inherit it)."""
    path = str(tmp_path / "journal.txt")
    monkeypatch.setenv("KART_KEDRO_TEST_JOURNAL", path)
    return path
