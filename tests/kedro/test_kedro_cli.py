"""``kedro kart list|clear`` on a workspace filled by real KartRunner runs (click's runner, real files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from kart_kedro import KartRunner
from kart_kedro.cli import commands
from kedro.framework.startup import ProjectMetadata
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node


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
