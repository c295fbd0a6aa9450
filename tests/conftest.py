"""Shared fixtures: every test runs in its own temporary directory with a fresh luigi config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import luigi.configuration
import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in tmp_path so the default ./resources/ workspace never lands in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    yield tmp_path


@pytest.fixture(autouse=True)
def _fresh_luigi_config() -> Iterator[None]:
    """Give each test an empty luigi config and restore the previous one afterwards."""
    config_class = luigi.configuration.get_config().__class__
    saved_instance, saved_paths = config_class._instance, list(config_class._config_paths)
    config_class._instance = None
    yield
    config_class._instance, config_class._config_paths = saved_instance, saved_paths


@pytest.fixture
def workspace(tmp_path: Path) -> str:
    """A workspace directory inside the test's temporary directory."""
    return str(tmp_path / "ws")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--docs-screenshots``: the report screenshot test also copies its pictures into docs/img/."""
    parser.addoption(
        "--docs-screenshots",
        action="store_true",
        default=False,
        help="copy the report screenshots the browser test takes into docs/img/ (make docs-screenshots)",
    )
