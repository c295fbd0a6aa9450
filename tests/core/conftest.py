"""Fixtures for the core tests: a quiet root logger, workspaces on each storage (with a short lease), signing on
and off.

The servers and kart pointed at them (s3_server, s3_env, s3_bucket, gcs_server, gcs_env, gcs_bucket, redis_service)
are in tests/service_fixtures.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_foreign_root_log_handlers() -> Iterator[None]:
    """Detach root-logger handlers that other test packages left behind, for the length of one test.

    Importing kedro.framework.project (the Kedro and Airflow tests do, and they run first) puts a
    RichHandler on the root logger that prints INFO records to the current sys.stdout; core tests
    read the kart CLI's stdout (e.g. ``kart runs --format json``) and would see luigi's "Loaded ..."
    lines in it. A kart command run from a shell has no such handler. pytest's own handlers stay.
    """
    root = logging.getLogger()
    foreign = [handler for handler in root.handlers if not type(handler).__module__.startswith("_pytest")]
    for handler in foreign:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in foreign:
            root.addHandler(handler)


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server (test files may define their own)."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A workspace on local disk and one on the S3-compatible server, with the commit-marker lease set to the test
    module's ``LEASE`` (seconds): for the tests of by-path writers, markers and takeovers."""
    from kart_core import commit_marker

    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(request.module.LEASE))
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


@pytest.fixture(params=["unsigned", "signed"])
def signing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Signing off, and on (KART_SIGNING_KEY, inherited by worker and writer processes)."""
    if request.param == "signed":
        monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
        return True
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    return False
