"""Kedro test fixtures: a run journal shared by every process of a test; the example project after a first
KartRunner run of its ``nodes`` pipeline, built once per test process; a moto S3 server for datasets on ``s3://``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kedro_project import copy_project, run_kedro, statuses
from services import S3_KEY_ID, S3_SECRET, Service, make_bucket, moto_server, moto_server_binary

FIRST_RUN_NODES = ("clean", "count", "scale", "summarize")  # the nodes of the example's "nodes" pipeline


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file each test task appends its label to when it runs (child processes inherit it)."""
    path = str(tmp_path / "journal.txt")
    monkeypatch.setenv("KART_KEDRO_TEST_JOURNAL", path)
    return path


@pytest.fixture(scope="session")
def nodes_first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project after ``kedro run --runner kart_kedro.KartRunner --pipeline nodes`` (every node ran).

    Many end-to-end tests start with that run; they copy this state (``kedro_project.copy_ran_project``)
    instead of running it again (a ``kedro run`` is ~3 s of CPU, mostly Kedro's imports).
    """
    project = copy_project(tmp_path_factory.mktemp("kedro-nodes-first-run") / "project")
    log = run_kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes")
    assert statuses(log) == dict.fromkeys(FIRST_RUN_NODES, "ran"), log
    return project


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """moto's standalone S3 server on 127.0.0.1, for the test process's Kedro datasets on ``s3://``."""
    if moto_server_binary() is None:
        pytest.skip("moto_server is not installed (dev extra: moto[server])")
    with moto_server(str(tmp_path_factory.mktemp("moto"))) as service:
        yield service


@pytest.fixture
def s3_bucket(s3_server: Service, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the test S3 server; kart's storage (``KART_S3_ENDPOINT_URL``) and boto3 point at it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("KART_S3_ENDPOINT_URL", s3_server.url)
    return make_bucket(s3_server)
