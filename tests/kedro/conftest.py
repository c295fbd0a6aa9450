"""Kedro test fixtures: a run journal shared by every process of a test; the example project after a first
KartRunner run of its ``nodes`` pipeline, built once per test process. Datasets on ``s3://`` use the shared
``s3_bucket`` (tests/service_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_project import copy_project, run_kedro, statuses

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
