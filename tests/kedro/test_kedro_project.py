"""The example Kedro project (examples/kedro) run with real ``kedro run`` subprocesses, copied to tmp_path."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kedro_project import (
    POSITIVE_VALUES_SUM,
    copy_project,
    copy_ran_project,
    journal,
    report,
    run_kedro,
    statuses,
    versions,
)

import kart_core

pytestmark = pytest.mark.slow

KART_TASKS = ["LoadData", "MakeFeatures", "RawSummary", "Train"]  # the kart tasks a full `kedro run` builds


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
    assert sorted(label.split("[")[0] for label in journal(project)) == KART_TASKS
    assert report(project, "summary") == {
        "mean": 2 * POSITIVE_VALUES_SUM / 5,
        "rows": 5,
        "total": 2.0 * POSITIVE_VALUES_SUM,
    }
    model = build_in_process(project, monkeypatch)
    assert len(journal(project)) == 4  # cached: kart_core.build ran nothing
    assert report(project, "feature_report")["slope"] == model["slope"]


def test_a_graph_built_by_kart_core_is_loaded_by_kedro_without_rerunning(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_in_process(project, monkeypatch)
    assert len(journal(project)) == 3
    log = kedro(project, "run", "--pipeline", "kart")
    assert sorted(label.split("[")[0] for label in journal(project)) == KART_TASKS  # only RawSummary was new
    assert report(project, "feature_report")["rows"] == 60
    assert "Loading data from features (TaskOnKartDataset)" in log


def test_parallel_runner_pickles_kart_datasets_and_builds_each_task_once(project: Path) -> None:
    kedro(project, "run", "--runner", "ParallelRunner")
    assert sorted(label.split("[")[0] for label in journal(project)) == KART_TASKS
    assert report(project, "feature_report")["rows"] == 60
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}


def test_node_cache_reruns_exactly_what_a_parameter_change_affects(tmp_path: Path, nodes_first_run: Path) -> None:
    # The first run (every node ran, conftest.nodes_first_run) is copied; the other runners' runs of these
    # steps are test_kedro_project_cache.py::test_every_runner_caches_and_reruns_exactly_what_changed.
    project = copy_ran_project(nodes_first_run, tmp_path / "project")
    records = project / "data" / "kart" / "log" / "manifest"  # a node run's record: its manifest
    logs = sorted(records.glob("KedroNodeRun_*"))
    assert len(logs) == 4
    second = statuses(kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))
    assert set(second.values()) == {"cached"}
    assert sorted(records.glob("KedroNodeRun_*")) == logs

    # Plain Kedro: --only-missing-outputs keeps the factor-2 summary after factor changed to 3.
    kedro(project, "run", "--pipeline", "nodes", "--only-missing-outputs", "--params", "factor=3")
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM

    third = statuses(
        kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes", "--params", "factor=3")
    )
    assert third == {"clean": "cached", "scale": "ran", "summarize": "ran", "count": "cached"}
    assert report(project, "summary")["total"] == 3.0 * POSITIVE_VALUES_SUM
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}

    back = statuses(kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))
    assert set(back.values()) == {"cached"}  # back to factor 2: served, the file written back
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM
    assert len(versions(project, "counts")) == 1  # count was cached in every run after the first


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
    assert len(journal(project)) == 4


def test_kedro_kart_list_and_clear_commands(tmp_path: Path, nodes_first_run: Path) -> None:
    path = _entry_points_path(tmp_path)
    project = copy_ran_project(nodes_first_run, tmp_path / "project")  # after a KartRunner run of "nodes"
    listed = kedro(project, "kart", "list", pythonpath=path)
    assert "4 cached run(s) in data/kart." in listed
    assert re.search(r"\bscale\s+[0-9a-f]{8}\s+complete\s+took", listed)
    assert "4 run(s) cleared." in kedro(project, "kart", "clear", pythonpath=path)
    assert "No cached Kedro node runs" in kedro(project, "kart", "list", pythonpath=path)


CATALOG_TASK_ID = """
import sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path.cwd())
with KedroSession.create(project_path=Path.cwd()) as session:
    catalog = session.load_context().catalog
    task = catalog.get("raw_summary").task
    print(task.make_unique_id(), task.source.path)
from kart_kedro import RawFile
from kart_kedro_demo.tasks import RawSummary
print(RawSummary(source=RawFile(path="data/01_raw/numbers.csv")).make_unique_id())
"""


def _catalog_task_id(project: Path) -> tuple[str, str, str]:
    """(unique id of the catalog's raw_summary task, its RawFile path, the id of the same task built in Python)."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONPATH": os.pathsep.join([str(project / "src"), *sys.path])}
    env.pop("LUIGI_CONFIG_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", CATALOG_TASK_ID], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    catalog_line, python_line = done.stdout.strip().splitlines()[-2:]
    unique_id, path = catalog_line.split()
    return unique_id, path, python_line.strip()


def test_a_catalog_task_with_a_path_parameter_is_the_same_from_any_checkout(tmp_path: Path) -> None:
    first = copy_project(tmp_path / "one" / "project")
    second = copy_project(tmp_path / "somewhere" / "else" / "checkout")
    id_one, path_one, python_one = _catalog_task_id(first)
    id_two, path_two, python_two = _catalog_task_id(second)
    assert path_one == path_two == "data/01_raw/numbers.csv"  # Kedro made it absolute; the dataset undid that
    assert id_one == id_two == python_one == python_two


def test_a_kart_task_reading_a_raw_file_reruns_when_the_file_changes(project: Path) -> None:
    kedro(project, "run", "--pipeline", "kart")
    assert report(project, "raw_report") == {"rows": 7, "total": 20.0, "mean": 20.0 / 7}
    kedro(project, "run", "--pipeline", "kart")
    assert [label.split("[")[0] for label in journal(project)].count("RawSummary") == 1  # cached
    with (project / "data" / "01_raw" / "numbers.csv").open("a") as raw:
        raw.write("c,8\n")
    kedro(project, "run", "--pipeline", "kart")
    assert [label.split("[")[0] for label in journal(project)].count("RawSummary") == 2
    assert report(project, "raw_report") == {"rows": 8, "total": 28.0, "mean": 3.5}
    assert [label.split("[")[0] for label in journal(project)].count("MakeFeatures") == 1  # not reading it
