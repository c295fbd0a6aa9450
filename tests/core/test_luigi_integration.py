"""kart tasks under luigi: luigi.build (1 and 2 workers) and the luigi command line write what kart_core.build writes.

luigi's worker calls ``task.run()``, which TaskOnKart routes to ``kart_core.runner.run_one``; the
five run logs of every task are written only there, so finding them proves the route. Each run is
a subprocess in its own temporary directory, on the compat pipeline (tests/core/compat_pipeline).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from compat_pipeline.harness import (
    copy_pipeline,
    copy_workspace,
    driver_env,
    expected_files,
    run_command,
    run_driver,
    settled,
    snapshot,
)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """ "kart" and "luigi": kart_build's and luigi_build's runs, each its own process and directory, run at
    the same time (the module's first test needs both: one after the other they took twice the wall time)."""
    runs = {"kart": ("build-all",), "luigi": ("luigi", "1", "AllTasks")}
    roots = {name: tmp_path_factory.mktemp(f"{name}-build") for name in runs}
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = dict(
            zip(runs, pool.map(lambda name: run_driver("kart", roots[name], *runs[name]), runs), strict=True)
        )
    return {name: (roots[name], reports[name]) for name in runs}


@pytest.fixture(scope="module")
def kart_build(builds: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """AllTasks built by kart_core.build: the reference files and values."""
    return builds["kart"]


@pytest.fixture(scope="module")
def luigi_build(builds: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """AllTasks built by luigi.build with one worker."""
    return builds["luigi"]


def check_luigi_build(root: Path, report: dict[str, Any], kart_build: tuple[Path, dict[str, Any]]) -> None:
    """A luigi.build run succeeded and wrote kart build's files and outputs, with the run logs of run_one."""
    assert report["luigi_status"] == "SUCCESS"
    assert set(report["ids"]) <= set(kart_build[1]["ids"])
    assert all(report["complete_before"].values())  # reported after luigi's run: everything built
    files = set(snapshot(root))
    assert files == expected_files(report) <= set(snapshot(kart_build[0]))
    processing_times = [path for path in files if path.startswith("resources/log/processing_time/")]
    assert len(processing_times) == len(report["class_names"])  # run logs: each task went through run_one
    # Same seeds, same run_one: even the stdlib-random draws are equal.
    assert report["outputs"] == {name: kart_build[1]["outputs"][name] for name in report["outputs"]}


def test_luigi_build_one_worker_writes_what_kart_build_writes(kart_build: Any, luigi_build: Any) -> None:
    """The whole pipeline under luigi.build([AllTasks()], local_scheduler=True, workers=1)."""
    check_luigi_build(*luigi_build, kart_build)
    assert set(snapshot(luigi_build[0])) == set(snapshot(kart_build[0]))


def test_luigi_build_two_workers_on_a_diamond(kart_build: Any, tmp_path: Path) -> None:
    """Two worker processes run Left and Right side by side; the files match kart_core.build's."""
    check_luigi_build(tmp_path, run_driver("kart", tmp_path, "luigi", "2", "Diamond"), kart_build)
    assert len(snapshot(tmp_path)) == 4 * (1 + 5 + 1)  # output, five run logs, integrity manifest


@pytest.mark.slow
def test_luigi_build_two_workers_writes_what_kart_build_writes(kart_build: Any, tmp_path: Path) -> None:
    """The whole pipeline with two luigi worker processes (slow: each forked task rescans installed packages)."""
    check_luigi_build(tmp_path, run_driver("kart", tmp_path, "luigi", "2", "AllTasks"), kart_build)
    assert set(snapshot(tmp_path)) == set(snapshot(kart_build[0]))


def test_luigi_command_line_writes_what_kart_build_writes(
    kart_build: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """``luigi --module compat_pipeline.roots AllTasks --local-scheduler`` with the module on PYTHONPATH."""
    modules = copy_pipeline(tmp_path / "modules")
    workdir = tmp_path / "run"
    workdir.mkdir()
    luigi_command = str(Path(sys.executable).parent / "luigi")
    args = [luigi_command, "--module", "compat_pipeline.roots", "AllTasks", "--local-scheduler"]
    stdout, stderr = run_command(args, workdir, driver_env("kart", pythonpath=modules))
    assert "This progress looks :)" in stdout + stderr, (stdout + stderr)[-3000:]
    report = run_driver("kart", workdir, "ids")
    assert all(report["complete_before"].values())
    assert report["ids"] == [name for name in kart_build[1]["ids"] if not name.startswith("AllTasks_")]
    assert set(snapshot(workdir)) == set(snapshot(kart_build[0])) == expected_files(kart_build[1])


def test_kart_build_reruns_nothing_after_luigi(luigi_build: Any, tmp_path: Path) -> None:
    """A workspace written under luigi is complete for kart_core.build: no file changes."""
    root = copy_workspace(luigi_build[0], tmp_path / "read-by-kart")
    before = snapshot(root)
    report = run_driver("kart", root, "build-all")
    assert all(report["complete_before"].values())
    assert settled(snapshot(root)) == settled(before)
