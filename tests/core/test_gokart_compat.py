"""kart_core against gokart 1.12.2 on one pipeline of 40+ task classes (tests/core/compat_pipeline).

gokart and kart register luigi task classes under the same names, so each implementation runs in
its own subprocess (``compat_pipeline.driver``) with its workspace in a temporary directory; this
module compares their JSON reports and the files they leave.
"""

from __future__ import annotations

import gzip
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from compat_pipeline.harness import (
    KART_LOG_FILES,
    LOG_FILES,
    copy_workspace,
    driver_env,
    expected_files,
    run_command,
    run_driver,
    settled,
    snapshot,
    without_kart_records,
)

# Draws from the stdlib random module are shifted under gokart (see test_python_random_stream).
PYTHON_RANDOM_FAMILIES = ("PythonRandomDraw_",)


@pytest.fixture(scope="module")
def fresh_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """impl -> the pipeline built by it from scratch; the two builds (own processes and directories) run at
    the same time: the module's first test needs both, and one after the other they took twice the wall time."""
    roots = {impl: tmp_path_factory.mktemp(f"fresh-{impl}") for impl in ("gokart", "kart")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = dict(zip(roots, pool.map(lambda impl: run_driver(impl, roots[impl], "build"), roots), strict=True))
    return {impl: (root, reports[impl]) for impl, root in roots.items()}


@pytest.fixture(scope="module")
def gokart_run(fresh_runs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """The pipeline built by gokart 1.12.2 from scratch."""
    return fresh_runs["gokart"]


@pytest.fixture(scope="module")
def kart_run(fresh_runs: dict[str, tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """The pipeline built by kart_core from scratch."""
    return fresh_runs["kart"]


def without_python_random(outputs: dict[str, Any]) -> dict[str, Any]:
    """``outputs`` less the stdlib-random draws."""
    return {name: value for name, value in outputs.items() if not name.startswith(PYTHON_RANDOM_FAMILIES)}


def test_pipeline_covers_at_least_40_task_classes(gokart_run: Any, kart_run: Any) -> None:
    """The pipeline is big enough to matter, and both implementations see the same graph."""
    assert kart_run[1]["task_classes"] >= 40
    assert gokart_run[1]["task_classes"] == kart_run[1]["task_classes"]
    assert not any(gokart_run[1]["complete_before"].values())


def test_unique_ids_are_identical(gokart_run: Any, kart_run: Any) -> None:
    """Every task's unique id and serialized significant parameters match gokart's."""
    gokart_ids, kart_ids = gokart_run[1]["ids"], kart_run[1]["ids"]
    for gokart_id, kart_id in zip(gokart_ids, kart_ids, strict=False):
        print(f"{'==' if gokart_id == kart_id else '!='} gokart {gokart_id}  kart {kart_id}")
    assert kart_ids == gokart_ids
    assert kart_run[1]["params"] == gokart_run[1]["params"]


def test_ids_show_which_parameters_count(kart_run: Any) -> None:
    """Non-significant and PRIVATE parameters leave the id alone, so those tasks collapse to one node."""
    families = [name.rsplit("_", 1)[0] for name in kart_run[1]["ids"]]
    assert families.count("NonSignificantParams") == 1
    assert families.count("VisibilityParams") == 1
    assert families.count("IntParam") == 3  # value=7, -3 and 100
    visibility = next(p for n, p in kart_run[1]["params"].items() if n.startswith("VisibilityParams_"))
    assert visibility == {"public": "pub", "hidden": "hid"}


def test_both_write_the_same_files(gokart_run: Any, kart_run: Any) -> None:
    """Same relative paths: every output and the five run logs per task; kart adds only its integrity manifests."""
    gokart_files, kart_files = set(snapshot(gokart_run[0])), set(snapshot(kart_run[0]))
    assert sorted(without_kart_records(kart_files) ^ gokart_files) == []
    assert kart_files == expected_files(kart_run[1])
    assert gokart_files == expected_files(gokart_run[1], kart=False)


def test_both_build_the_same_values(gokart_run: Any, kart_run: Any) -> None:
    """build() returns equal values and every output loads equal (stdlib-random draws aside)."""
    gokart_report, kart_report = gokart_run[1], kart_run[1]
    assert without_python_random(kart_report["outputs"]) == without_python_random(gokart_report["outputs"])
    assert kart_report["roots"] == gokart_report["roots"]
    gokart_values = without_python_random(dict(zip(gokart_report["roots"], gokart_report["values"], strict=True)))
    kart_values = without_python_random(dict(zip(kart_report["roots"], kart_report["values"], strict=True)))
    assert kart_values == gokart_values
    assert len(kart_values) >= 50  # all roots but the two PythonRandomDraw ones


def seeded_draws(seed: int, skipped: int) -> list[float]:
    """Three random.random() draws after random.seed(seed) and ``skipped`` luigi temp-name draws."""
    generator = random.Random(seed)
    for _ in range(skipped):
        generator.randrange(0, 10_000_000_000)
    return [generator.random() for _ in range(3)]


def python_random_draws(report: dict[str, Any]) -> dict[str, tuple[int, list[float]]]:
    """For each PythonRandomDraw node: its logged seed and the draws it dumped."""
    draws = {}
    for name, output in report["outputs"].items():
        if name.startswith(PYTHON_RANDOM_FAMILIES):
            seed = dict(report["logs"][name]["random_seed"]["mapping"])["seed"]
            draws[name] = (seed, output["list"])
    return draws


def test_python_random_stream(gokart_run: Any, kart_run: Any) -> None:
    """kart's run() sees the seeded stdlib stream from its first draw; gokart's is shifted.

    gokart seeds in one START event handler and writes its start-of-run logs in others, each write
    through luigi's atomic file consuming one ``random.randrange``; the handlers live in a set, so
    how many writes follow the seeding (0 to 3) varies between gokart processes. kart cannot copy a
    shift gokart itself does not keep, so it gives the unshifted stream.
    """
    kart_draws, gokart_draws = python_random_draws(kart_run[1]), python_random_draws(gokart_run[1])
    assert len(kart_draws) == 2 and set(gokart_draws) == set(kart_draws)
    for name, (seed, values) in kart_draws.items():
        assert values == seeded_draws(seed, 0), name
        gokart_seed, gokart_values = gokart_draws[name]
        assert gokart_seed == seed
        assert gokart_values in [seeded_draws(seed, skipped) for skipped in range(4)], name
    fixed = next(seed for seed, _ in kart_draws.values() if seed == 1234)
    assert fixed == 1234


def test_run_logs_agree(gokart_run: Any, kart_run: Any) -> None:
    """task_params and random_seed logs are equal; kart's module_versions lists name==version lines."""
    gokart_logs, kart_logs = gokart_run[1]["logs"], kart_run[1]["logs"]
    for name, logs in kart_logs.items():
        if not logs:  # the plain luigi task has no run logs
            continue
        assert logs["task_params"] == gokart_logs[name]["task_params"], name
        assert logs["random_seed"] == gokart_logs[name]["random_seed"], name
        assert any(line.startswith("luigi==") for line in logs["module_versions"]), name
        assert any(line.startswith("pandas==") for line in logs["module_versions"]), name
        assert all("==" in line for line in logs["module_versions"]), name


def check_reads_without_rerunning(
    writer: tuple[Path, dict[str, Any]], reader_impl: str, tmp_path: Path
) -> dict[str, Any]:
    """Let ``reader_impl`` build the graph in a copy of ``writer``'s workspace; assert it ran nothing."""
    root = copy_workspace(writer[0], tmp_path / f"read-by-{reader_impl}")
    before = snapshot(root)
    report = run_driver(reader_impl, root, "build")
    assert report["ids"] == writer[1]["ids"]
    incomplete = [name for name, done in report["complete_before"].items() if not done]
    assert incomplete == []
    assert settled(snapshot(root)) == settled(before)
    assert report["values"] == writer[1]["values"]
    assert report["outputs"] == writer[1]["outputs"]
    return report


def test_kart_reads_a_gokart_workspace_without_rerunning(gokart_run: Any, tmp_path: Path) -> None:
    """Every task of a gokart-built workspace is complete for kart, loads equal, and no file changes."""
    report = check_reads_without_rerunning(gokart_run, "kart", tmp_path)
    assert report["impl"] == "kart"
    times = [p for p in snapshot(tmp_path / "read-by-kart") if "/log/processing_time/" in p]
    assert len(times) == len(gokart_run[1]["class_names"])


def test_gokart_reads_a_kart_workspace_without_rerunning(kart_run: Any, tmp_path: Path) -> None:
    """Every task of a kart-built workspace is complete for gokart, gokart.build loads equal, no file changes."""
    report = check_reads_without_rerunning(kart_run, "gokart", tmp_path)
    assert report["impl"] == "gokart"


def test_mistakes_and_failures_raise_what_gokart_raises(tmp_path: Path) -> None:
    """Each mistake raises gokart's exception type (or a subclass); a failing build leaves the same files."""

    def errors(impl: str) -> tuple[str, dict[str, Any]]:
        (tmp_path / impl).mkdir()
        return impl, run_driver(impl, tmp_path / impl, "errors")

    with ThreadPoolExecutor(max_workers=2) as pool:  # each its own process and directory, at the same time
        reports = dict(pool.map(errors, ("gokart", "kart")))
    gokart_mistakes, kart_mistakes = reports["gokart"]["mistakes"], reports["kart"]["mistakes"]
    assert set(kart_mistakes) == set(gokart_mistakes) and len(kart_mistakes) == 5
    for case, gokart_mro in gokart_mistakes.items():
        assert gokart_mro is not None and gokart_mro[0] in kart_mistakes[case], case
    failed_id = reports["gokart"]["build"]["failed_id"]
    assert reports["kart"]["build"] == reports["gokart"]["build"]
    assert reports["kart"]["build"]["raised"] == {failed_id: ["ValueError"]}
    # The start-of-run logs of the failed task are written, its output and end-of-run logs are not.
    assert without_kart_records(snapshot(tmp_path / "kart")) == set(snapshot(tmp_path / "gokart"))
    assert f"resources/log/task_params/Fails_{failed_id}.pkl" in snapshot(tmp_path / "kart")
    assert f"resources/log/manifest/Fails_{failed_id}.json" not in snapshot(tmp_path / "kart")  # never committed


def test_text_and_array_outputs_are_byte_identical(gokart_run: Any, kart_run: Any) -> None:
    """.csv .tsv .json .txt .npz outputs are the same bytes; .gz the same text (gzip headers hold a time).

    Binary formats load equal (test_both_build_the_same_values) but are not the same bytes: kart pickles
    with protocol 5 (gokart: 4), writes parquet with snappy (gokart: gzip), leaves a RangeIndex out of
    feather files and stores model zips uncompressed.
    """
    compared = 0
    for relative in gokart_run[1]["output_paths"]:
        gokart_bytes = (gokart_run[0] / relative).read_bytes()
        kart_bytes = (kart_run[0] / relative).read_bytes()
        if relative.endswith((".csv", ".tsv", ".json", ".txt", ".npz")):
            assert kart_bytes == gokart_bytes, relative
            compared += 1
        elif relative.endswith(".gz"):
            assert gzip.decompress(kart_bytes) == gzip.decompress(gokart_bytes), relative
            compared += 1
    assert compared == 10


@pytest.mark.parametrize("name", ["label", "flat_requires", "lock_params", "log_target", "load_data_frame"])
def test_gokart_parameter_names_are_accepted(name: str) -> None:
    """A gokart task may name a parameter like the helpers kart adds (kart's own methods are all kart_*)."""
    import luigi

    import kart_core

    task_class = type(f"Named_{name}", (kart_core.TaskOnKart,), {"__module__": __name__, name: luigi.Parameter()})
    assert isinstance(getattr(task_class(**{name: "x"}), name), str)


SEED_EXAMPLE = """\
import {module} as gokart


class Example(gokart.TaskOnKart):
    def run(self):
        self.dump('Hello, world!')


task = Example()
output = gokart.build(task)
print(output)
"""


def run_seed_example(module: str, directory: Path) -> str:
    """Run the seed tutorial's example as a script in ``directory``; return what it printed."""
    directory.mkdir()
    (directory / "example.py").write_text(SEED_EXAMPLE.format(module=module))
    stdout, _ = run_command([sys.executable, "example.py"], directory, driver_env("kart"), timeout=120)
    return stdout


@pytest.mark.parametrize("module", ["kart_core", "gokart"])
def test_seed_example_as_a_script(module: str, tmp_path: Path) -> None:
    """The tutorial's Example prints 'Hello, world!' and leaves one output and five run logs."""
    assert run_seed_example(module, tmp_path / module).splitlines() == ["Hello, world!"]
    name = "Example_8441c59b5ce0113396d53509f19371fb"
    logs = LOG_FILES + (KART_LOG_FILES if module == "kart_core" else ())
    expected = {f"resources/__main__/{name}.pkl", *(f"resources/{p.format(name=name)}" for p in logs)}
    assert set(snapshot(tmp_path / module)) == expected
    versions = (tmp_path / module / f"resources/log/module_versions/{name}.txt").read_text().splitlines()
    if module == "kart_core":
        assert any(line.startswith(("pandas==", "luigi==")) for line in versions)
        assert all("==" in line for line in versions)
    else:
        assert versions == []  # documented gokart bug: module_versions is always empty


def test_a_10000_task_chain_gets_its_id_at_the_default_recursion_limit(tmp_path: Path) -> None:
    """kart computes the id of a 10,000-deep requires() chain without raising the recursion limit."""
    report = run_driver("kart", tmp_path, "chain", "10000")
    assert report["recursion_limit"] == 1000
    assert len(report.get("unique_id", "")) == 32, report


def test_gokart_fails_on_a_deep_chain(tmp_path: Path) -> None:
    """A documented fact, for contrast: gokart's recursive id hits the default limit on a 2,000-deep chain."""
    report = run_driver("gokart", tmp_path, "chain", "2000")
    assert report["recursion_limit"] == 1000
    assert "RecursionError" in report.get("errors", []), report


def test_kart_rebuilds_only_a_deleted_output(gokart_run: Any, tmp_path: Path) -> None:
    """The no-change check can fail: a deleted gokart output is rebuilt by kart, and only that task's files change."""
    root = copy_workspace(gokart_run[0], tmp_path / "one-missing")
    victim = next(Path(p) for p in gokart_run[1]["output_paths"] if p.endswith(".csv") and "/frames/" in p)
    (root / victim).unlink()
    before = snapshot(root)
    report = run_driver("kart", root, "build")
    after = snapshot(root)
    changed = sorted(path for path in after if before.get(path) != after[path])
    stem = victim.stem.rsplit("_", 1)[1]
    logs = LOG_FILES + KART_LOG_FILES  # the rebuilt task's logs, and its new integrity manifest
    assert changed == sorted([victim.as_posix(), *(f"resources/{p.format(name=f'FrameAs_{stem}')}" for p in logs)])
    assert [name for name, done in report["complete_before"].items() if not done] == [f"FrameAs_{stem}"]
    assert report["outputs"] == gokart_run[1]["outputs"]
