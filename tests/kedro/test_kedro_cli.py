"""``kedro kart list|clear`` on a workspace filled by real KartRunner runs (click's runner, real files)."""

from __future__ import annotations

import json
import os
import pickle
import time
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from kart_kedro import KartRunner
from kart_kedro.cli import commands
from kart_kedro.node_records import NodeRecords
from kedro.framework.startup import ProjectMetadata
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from kart_core.cli import cli as kart_cli


def _add(values: list[int], step: int) -> list[int]:
    return [value + step for value in values]


def _metadata(tmp_path: Path, package: str) -> ProjectMetadata:
    return ProjectMetadata(
        config_file=tmp_path / "pyproject.toml",
        package_name=package,
        project_name=package,
        project_path=tmp_path,
        source_dir=tmp_path / "src",
        kedro_init_version="1.7.0",
        tools=[],
        example_pipeline="no",
    )


@pytest.fixture
def two_runs(workspace: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Two runs of project demo_pkg (step 1, then step 2: 'grow' ran twice, 'first' once) and one of other_pkg."""
    pipeline = Pipeline([node(_add, ["raw", "params:step"], "grown", name="grow"), node(len, "raw", "n", name="first")])
    for package, step in [("demo_pkg", 1), ("demo_pkg", 2), ("other_pkg", 1)]:
        monkeypatch.setattr("kedro.framework.project.PACKAGE_NAME", package)
        catalog = DataCatalog({"raw": MemoryDataset([1, 2]), "params:step": MemoryDataset(step)})
        KartRunner(workspace_directory=workspace).run(pipeline, catalog)
    return workspace


def _invoke(tmp_path: Path, *args: str, package: str = "demo_pkg") -> str:
    result = CliRunner().invoke(commands, ["kart", *args], obj=_metadata(tmp_path, package))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_the_projects_runs(tmp_path: Path, two_runs: str) -> None:
    lines = _invoke(tmp_path, "list", "--workspace", two_runs).splitlines()
    assert [line.split()[2] for line in lines[:-1]].count("grow") == 2
    assert sorted(line.split()[2] for line in lines[:-1]) == ["first", "grow", "grow"]
    assert all("complete" in line for line in lines[:-1])
    assert lines[-1] == f"3 cached run(s) in {two_runs}."
    assert "5 cached run(s)" in _invoke(tmp_path, "list", "--workspace", two_runs, "--all-projects")


def test_clear_keep_latest_then_one_node_then_dry_run(tmp_path: Path, two_runs: str) -> None:
    assert "1 run(s) cleared." in _invoke(tmp_path, "clear", "--workspace", two_runs, "--keep-latest")
    assert "2 cached run(s)" in _invoke(tmp_path, "list", "--workspace", two_runs)
    assert "0 run(s) to clear." in _invoke(
        tmp_path, "clear", "--workspace", two_runs, "--node", "nope", "--only", "--dry-run"
    )
    assert "1 run(s) to clear." in _invoke(
        tmp_path, "clear", "--workspace", two_runs, "--node", "grow", "--only", "--dry-run"
    )
    assert "1 run(s) cleared." in _invoke(tmp_path, "clear", "--workspace", two_runs, "--node", "grow", "--only")
    remaining = _invoke(tmp_path, "list", "--workspace", two_runs)
    assert "grow" not in remaining and "first" in remaining


def test_clear_deletes_outputs_and_logs_so_the_next_run_reruns(
    tmp_path: Path, two_runs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files_before = {p for p in Path(two_runs).rglob("*") if p.is_file()}
    assert "3 run(s) cleared." in _invoke(tmp_path, "clear", "--workspace", two_runs)
    files_after = {p for p in Path(two_runs).rglob("*") if p.is_file()}
    # per run: one output and the manifest holding the run record (no run log files)
    assert len(files_before - files_after) == 3 * (1 + 1)
    assert "No cached Kedro node runs" in _invoke(tmp_path, "list", "--workspace", two_runs)
    assert "2 cached run(s)" in _invoke(tmp_path, "list", "--workspace", two_runs, "--all-projects")
    monkeypatch.setattr("kedro.framework.project.PACKAGE_NAME", "demo_pkg")
    runner = KartRunner(workspace_directory=two_runs)
    runner.run(Pipeline([node(len, "raw", "n", name="first")]), DataCatalog({"raw": MemoryDataset([1, 2])}))
    assert runner.last_run == {"first": "ran"}


def test_list_and_clear_on_an_fsspec_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = "memory://kart_kedro_cli_test/ws"
    monkeypatch.setattr("kedro.framework.project.PACKAGE_NAME", "demo_pkg")
    KartRunner(workspace_directory=workspace).run(
        Pipeline([node(len, "raw", "n", name="first")]), DataCatalog({"raw": MemoryDataset([1, 2])})
    )
    assert "1 cached run(s)" in _invoke(tmp_path, "list", "--workspace", workspace)
    assert "1 run(s) cleared." in _invoke(tmp_path, "clear", "--workspace", workspace)
    assert "No cached Kedro node runs" in _invoke(tmp_path, "list", "--workspace", workspace)


def _run_grow(workspace: str, step: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run demo_pkg's one-node pipeline 'grow' with ``params:step`` = ``step``; its status and the 8-hex id of the
    node run its ``last_runs`` record names then (the run it built; the one it served too since 2026-12-01)."""
    monkeypatch.setattr("kedro.framework.project.PACKAGE_NAME", "demo_pkg")
    runner = KartRunner(workspace_directory=workspace)
    catalog = DataCatalog({"raw": MemoryDataset([1, 2]), "params:step": MemoryDataset(step)})
    runner.run(Pipeline([node(_add, ["raw", "params:step"], "grown", name="grow")]), catalog)
    used = NodeRecords(workspace, "demo_pkg").last_run("grow")
    assert used is not None
    return runner.last_run["grow"], used.unique_id[:8]


def _listed(tmp_path: Path, workspace: str) -> list[list[str]]:
    """``kedro kart list`` lines as fields: date, time, node, id, state, 'took', seconds[, 'last', 'used']."""
    return [line.split() for line in _invoke(tmp_path, "list", "--workspace", workspace).splitlines()[:-1]]


def test_keep_latest_keeps_the_run_the_parameters_are_set_back_to(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # step 1 built, step 2 built, step 1 again: served. The run built last is step 2's, but the project
    # uses step 1's: --keep-latest keeps both (kart before kept only the newest file and cleared step 1's).
    assert (first := _run_grow(workspace, 1, monkeypatch))[0] == "ran"
    time.sleep(0.01)
    assert (second := _run_grow(workspace, 2, monkeypatch))[0] == "ran"
    assert _run_grow(workspace, 1, monkeypatch)[0] == "cached"
    assert "0 run(s) cleared." in _invoke(tmp_path, "clear", "--workspace", workspace, "--keep-latest")
    assert _run_grow(workspace, 1, monkeypatch) == ("cached", first[1])
    rows = _listed(tmp_path, workspace)
    assert [row[3] for row in rows] == [first[1], second[1]] and rows[0][7:] == ["last", "used"] and rows[1][7:] == []


def test_list_and_keep_latest_order_by_build_time_not_the_manifest_file_time(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run_grow(workspace, 1, monkeypatch)[1]
    time.sleep(0.01)
    second = _run_grow(workspace, 2, monkeypatch)[1]
    # The first run's manifest written again later (as a load recording a new version of an output does).
    (manifest,) = Path(workspace, "log", "manifest").glob(f"KedroNodeRun_{first}*.json")
    later = time.time() + 3600
    os.utime(manifest, (later, later))
    assert [row[3] for row in _listed(tmp_path, workspace)] == [first, second]
    cleared = _invoke(tmp_path, "clear", "--workspace", workspace, "--keep-latest").splitlines()
    assert len(cleared) == 2 and cleared[0].split()[4] == first and cleared[1] == "1 run(s) cleared."
    assert _run_grow(workspace, 2, monkeypatch) == ("cached", second)


def test_kart_runs_shows_when_each_node_run_finished_as_kedro_kart_list_does(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kart runs showed a node run's manifest file time as its finish time: a run whose manifest was written
    # again an hour later read as finished then, and listed after the run built after it.
    first = _run_grow(workspace, 1, monkeypatch)[1]
    time.sleep(0.01)
    second = _run_grow(workspace, 2, monkeypatch)[1]
    (manifest,) = Path(workspace, "log", "manifest").glob(f"KedroNodeRun_{first}*.json")
    built = json.loads(manifest.read_text())["run"]["task_log"]["kart_built_at"]
    later = time.time() + 3600
    os.utime(manifest, (later, later))
    result = CliRunner().invoke(kart_cli, ["runs", "--workspace", workspace, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["unique_id"][:8] for row in rows] == [first, second]
    assert rows[0]["finished_at"] == str(datetime.fromtimestamp(built))
    table = CliRunner().invoke(kart_cli, ["runs", "--workspace", workspace]).output.splitlines()[1:]
    listed = {row[3]: " ".join(row[:2]) for row in _listed(tmp_path, workspace)}
    assert [line.split()[1][:8] for line in table] == [first, second]
    assert [" ".join(line.split()[-5:-3]) for line in table] == [listed[first], listed[second]]


def test_list_takes_a_finish_time_no_date_holds_as_none(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kedro kart list read the finish time itself (kart_kedro kept its own copy of the key) and stopped on
    # OverflowError for a hand-edited record; it reads it through kart_core, which writes it: no time, so the
    # time of the run's committed output instead, as `kart runs` shows it.
    first = _run_grow(workspace, 1, monkeypatch)[1]
    (manifest,) = Path(workspace, "log", "manifest").glob(f"KedroNodeRun_{first}*.json")
    document = json.loads(manifest.read_text())
    document["run"]["task_log"]["kart_built_at"] = 1e20
    manifest.write_text(json.dumps(document))
    (output,) = Path(workspace, "kedro", "demo_pkg").glob(f"grow__grown_{first}*.pkl")
    committed = datetime.fromtimestamp(output.stat().st_mtime)
    (row,) = _listed(tmp_path, workspace)
    assert row[:5] == [f"{committed:%Y-%m-%d}", f"{committed:%H:%M:%S}", "grow", first, "complete"]


def test_list_runs_no_code_planted_in_the_workspace(tmp_path: Path, two_runs: str) -> None:
    """`kedro kart list` reads the logs of runs it did not start and the runner's records as plain data, as `kart
    runs` does: pickles planted as a node run's task_log / processing_time log and as last_runs.pkl run nothing
    (attacker at15 F8), and the listing still shows every run."""
    marker = tmp_path / "code-ran"
    planted = pickle.dumps(_RunsCode(marker))
    logs = Path(two_runs) / "log"
    unique_ids = [path.stem.rsplit("_", 1)[1] for path in (logs / "manifest").glob("KedroNodeRun_*.json")]
    assert len(unique_ids) == 5
    for kind in ("task_log", "processing_time"):
        (logs / kind).mkdir(exist_ok=True)
        for unique_id in unique_ids:
            (logs / kind / f"KedroNodeRun_{unique_id}.pkl").write_bytes(planted)
    (Path(two_runs) / "kedro" / "demo_pkg" / ".kart" / "last_runs.pkl").write_bytes(planted)
    for manifest in (logs / "manifest").glob("TaskOnKart_*.json"):
        manifest.unlink()  # the records' integrity records: without them only the reader stands in the way

    lines = _invoke(tmp_path, "list", "--workspace", two_runs).splitlines()
    _invoke(tmp_path, "clear", "--keep-latest", "--dry-run", "--workspace", two_runs)

    assert not marker.exists()
    assert lines[-1] == f"3 cached run(s) in {two_runs}."
    shown = [line for line in lines if "  took " in line]  # the warnings about the planted records come first
    assert len(shown) == 3 and all(line.endswith("took unknown") for line in shown), lines


class _RunsCode:
    """A pickle that runs code when unpickled in full: it touches the file it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))
