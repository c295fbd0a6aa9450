"""The example Kedro project (examples/kedro) run with real ``kedro run`` subprocesses, copied to tmp_path."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from kedro_project import POSITIVE_VALUES_SUM, copy_project, journal, report, run_kedro, statuses

import kart_core

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the example project, without any data it produced."""
    return copy_project(tmp_path / "project")


def kedro(project: Path, *args: str, pythonpath: str | None = None) -> str:
    """Run ``kedro`` in the project; return its log output."""
    return run_kedro(project, *args, pythonpath=pythonpath)


def build_in_process(project: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The project's kart graph, built by kart_core.build from the project root (its luigi.cfg applies)."""
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project / "src"))
    monkeypatch.setenv("KART_KEDRO_DEMO_JOURNAL", str(project / "journal.txt"))
    from kart_kedro_demo.tasks import default_train

    train = default_train()
    assert str(train.workspace_directory) == "data/kart"
    return kart_core.build(train)


def test_kedro_run_builds_each_kart_task_once_and_kart_core_finds_them_cached(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kedro(project, "run")
    assert sorted(label.split("[")[0] for label in journal(project)) == ["LoadData", "MakeFeatures", "Train"]
    assert report(project, "summary") == {
        "mean": 2 * POSITIVE_VALUES_SUM / 5,
        "rows": 5,
        "total": 2.0 * POSITIVE_VALUES_SUM,
    }
    model = build_in_process(project, monkeypatch)
    assert len(journal(project)) == 3  # cached: kart_core.build ran nothing
    assert report(project, "feature_report")["slope"] == model["slope"]


def test_a_graph_built_by_kart_core_is_loaded_by_kedro_without_rerunning(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_in_process(project, monkeypatch)
    assert len(journal(project)) == 3
    log = kedro(project, "run", "--pipeline", "kart")
    assert len(journal(project)) == 3
    assert report(project, "feature_report")["rows"] == 60
    assert "Loading data from features (TaskOnKartDataset)" in log


def test_parallel_runner_pickles_kart_datasets_and_builds_each_task_once(project: Path) -> None:
    kedro(project, "run", "--runner", "ParallelRunner")
    assert sorted(label.split("[")[0] for label in journal(project)) == ["LoadData", "MakeFeatures", "Train"]
    assert report(project, "feature_report")["rows"] == 60
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}


def test_node_cache_reruns_exactly_what_a_parameter_change_affects(project: Path) -> None:
    first = statuses(kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))
    assert first == {"clean": "ran", "scale": "ran", "summarize": "ran", "count": "ran"}
    logs = sorted((project / "data" / "kart" / "log" / "task_params").iterdir())
    second = statuses(kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))
    assert set(second.values()) == {"cached"}
    assert sorted((project / "data" / "kart" / "log" / "task_params").iterdir()) == logs

    # Plain Kedro: --only-missing-outputs keeps the factor-2 summary after factor changed to 3.
    kedro(project, "run", "--pipeline", "nodes", "--only-missing-outputs", "--params", "factor=3")
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM

    third = statuses(
        kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes", "--params", "factor=3")
    )
    assert third == {"clean": "cached", "scale": "ran", "summarize": "ran", "count": "cached"}
    assert report(project, "summary")["total"] == 3.0 * POSITIVE_VALUES_SUM
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}


ENTRY_POINTS = {"kedro.hooks": "kart_kedro.hooks:hooks", "kedro.project_commands": "kart_kedro.cli:commands"}


def _entry_points_path(tmp_path: Path) -> str | None:
    """A PYTHONPATH folder whose dist-info declares kart_kedro's entry points not installed yet (None if all are).

    They belong in pyproject.toml (``[project.entry-points."kedro.hooks"] kart = "kart_kedro.hooks:hooks"``
    and ``[project.entry-points."kedro.project_commands"] kart = "kart_kedro.cli:commands"``); until an
    install carries them, a minimal dist-info registers exactly those for the subprocess.
    """
    missing = {
        group: value
        for group, value in ENTRY_POINTS.items()
        if not any(e.name == "kart" for e in importlib.metadata.entry_points(group=group))
    }
    if not missing:
        return None
    dist_info = tmp_path / "entry_points" / "kart_kedro_entry_points-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: kart-kedro-entry-points\nVersion: 0.0\n")
    (dist_info / "entry_points.txt").write_text("".join(f"[{g}]\nkart = {v}\n" for g, v in missing.items()))
    return str(dist_info.parent)


def test_one_kart_node_runs_alone_through_the_hooks_receipt_datasets(project: Path, tmp_path: Path) -> None:
    path = _entry_points_path(tmp_path)
    first = kedro(project, "run", "--pipeline", "kart", pythonpath=path)
    features_node = re.search(r"Running node: (MakeFeatures_[0-9a-f]{8})", first).group(1)
    log = kedro(project, "run", "--nodes", features_node, pythonpath=path)  # its input edge comes from the catalog
    assert "Loading data from LoadData_" in log and "(TaskReceiptDataset)" in log
    assert len(journal(project)) == 3


def test_kedro_kart_list_and_clear_commands(project: Path, tmp_path: Path) -> None:
    path = _entry_points_path(tmp_path)
    kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes")
    listed = kedro(project, "kart", "list", pythonpath=path)
    assert "4 cached run(s) in data/kart." in listed
    assert re.search(r"\bscale\s+[0-9a-f]{8}\s+complete\s+took", listed)
    assert "4 run(s) cleared." in kedro(project, "kart", "clear", pythonpath=path)
    assert "No cached Kedro node runs" in kedro(project, "kart", "list", pythonpath=path)
