"""Fixtures for the core tests: kart pointed at the GCS emulator, a quiet root logger, workspaces on each storage.

The servers themselves (s3_server, s3_env, s3_bucket, gcs_server, redis_service) are in tests/service_fixtures.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import GCS_PROJECT, Service, make_gcs_bucket


@pytest.fixture
def gcs_env(gcs_server: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """Point gcsfs (so kart's ``gs://`` storage) at the emulator, anonymously, for one test.

    - ``STORAGE_EMULATOR_HOST``: gcsfs sends its JSON-API requests there.
    - ``token="anon"`` by fsspec's config: without it gcsfs looks for credentials, and its last
      resort asks the GCE metadata server (not on this machine); the GCE variables point any such
      request at a closed port on 127.0.0.1 all the same.

    kart itself picks gcsfs's plain ``GCSFileSystem`` for an emulator (``kart_core.storage.remote``).
    """
    import fsspec.config
    from gcsfs.core import GCSFileSystem

    from kart_core.storage import base

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setitem(fsspec.config.conf, "gs", {"token": "anon", "project": GCS_PROJECT})
    GCSFileSystem.clear_instance_cache()
    base._remote_storage.cache_clear()
    yield gcs_server
    GCSFileSystem.clear_instance_cache()
    base._remote_storage.cache_clear()  # no later test keeps a file system bound to this setup


@pytest.fixture
def gcs_bucket(gcs_env: Service) -> str:
    """A fresh bucket on the GCS emulator (environment already pointing at it)."""
    return make_gcs_bucket(gcs_env)


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


@pytest.fixture(params=["unsigned", "signed"])
def signing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Signing off, and on (KART_SIGNING_KEY, inherited by worker and writer processes)."""
    if request.param == "signed":
        monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
        return True
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    return False
