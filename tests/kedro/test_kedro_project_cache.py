"""KartRunner in the example project, with real ``kedro run`` subprocesses: the code fingerprint follows
the code, fresher data is never overwritten, clearing is consistent, every runner caches, the
summary is visible by default and versioned datasets get no new version from a cached node."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from kedro_project import (
    POSITIVE_VALUES_SUM,
    copy_project,
    copy_ran_project,
    edit,
    report,
    run_kedro,
    statuses,
    versions,
)

pytestmark = pytest.mark.slow

ALL = ("clean", "scale", "summarize", "count")
RUNNERS = ("kart_kedro.KartRunner", "kart_kedro.KartThreadRunner", "kart_kedro.KartParallelRunner")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the example project."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def ran(tmp_path: Path, nodes_first_run: Path) -> Path:
    """A copy of the example project after a first KartRunner run of its "nodes" pipeline (every node ran)."""
    return copy_ran_project(nodes_first_run, tmp_path / "project")


def kart(project: Path, *args: str, runner: str = RUNNERS[0], pythonpath: str | None = None) -> dict[str, str]:
    """``kedro run --pipeline nodes`` with a kart runner; what it said about each node."""
    log = run_kedro(project, "run", "--runner", runner, "--pipeline", "nodes", *args, pythonpath=pythonpath)
    return statuses(log)


def only(*ran: str) -> dict[str, str]:
    """The statuses when exactly ``ran`` ran and the other nodes were cached."""
    return {name: "ran" if name in ran else "cached" for name in ALL}


def test_the_code_fingerprint_follows_helpers_classes_and_constants_but_not_comments(ran: Path) -> None:
    project = ran  # after a first run: every node ran
    helpers = project / "src" / "kart_kedro_demo" / "helpers.py"
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM  # 52.0

    # Comments, blank lines, formatting and docstrings do not count.
    edit(helpers, '    """``value`` in UNIT, rounded for the report."""\n', '    """Reworded."""\n\n    # why\n')
    edit(helpers, "class Rounder:", "# a comment above a class\nclass Rounder:  # and beside it")
    assert kart(project) == only()

    edit(helpers, "return in_units(float(values.sum()))", "return in_units(float(values.sum()) * 1000)")  # a helper
    assert kart(project) == only("summarize")
    assert report(project, "summary")["total"] == 52000.0

    edit(helpers, "Rounder(6).apply(value / UNIT)", "Rounder(6).apply(value / UNIT / 10)")  # the helper's helper
    assert kart(project) == only("summarize")
    assert report(project, "summary")["total"] == 5200.0

    edit(helpers, "return round(value, self.digits)", "return round(value, self.digits) + 0.5")  # a method
    assert kart(project) == only("summarize")
    assert report(project, "summary")["total"] == 5200.5

    edit(helpers, "UNIT = 1.0", "UNIT = 2.0")  # a module-level constant
    log = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes")
    assert statuses(log) == only("summarize")
    assert report(project, "summary")["total"] == 2600.5
    assert "code changed: kart_kedro_demo.helpers.UNIT (summarize)" in log


def _fake_distribution(site: Path, version: str, factor: int) -> None:
    """An installed distribution 'fakeunits' (a dist-info folder beside the package) on a PYTHONPATH folder."""
    (site / "fakeunits").mkdir(parents=True, exist_ok=True)
    (site / "fakeunits" / "__init__.py").write_text(f"def factor():\n    return {factor}\n")
    for old in site.glob("fakeunits-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    dist_info = site / f"fakeunits-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakeunits\nVersion: {version}\n")
    (dist_info / "top_level.txt").write_text("fakeunits\n")


def test_third_party_code_counts_by_its_version(project: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _fake_distribution(site, "1.0", factor=1)
    helpers = project / "src" / "kart_kedro_demo" / "helpers.py"
    edit(helpers, "from typing import Any\n", "from typing import Any\n\nimport fakeunits\n")
    edit(helpers, "return in_units(float(values.sum()))", "return in_units(float(values.sum()) * fakeunits.factor())")
    assert kart(project, pythonpath=str(site)) == only(*ALL)
    assert kart(project, pythonpath=str(site)) == only()

    _fake_distribution(site, "1.0", factor=3)  # installed code changed, version did not: by the rule, cached
    assert kart(project, pythonpath=str(site)) == only()
    assert report(project, "summary")["total"] == 52.0

    _fake_distribution(site, "2.0", factor=3)  # an upgrade
    log = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes", pythonpath=str(site))
    assert statuses(log) == only("summarize")
    assert "code changed: fakeunits (summarize)" in log
    assert report(project, "summary")["total"] == 156.0


def test_fresher_data_written_by_a_plain_kedro_run_is_never_overwritten_by_the_cache(project: Path) -> None:
    nodes = project / "src" / "kart_kedro_demo" / "nodes.py"
    helpers = project / "src" / "kart_kedro_demo" / "helpers.py"
    # Pin summarize's code version, so a helper edit is invisible to the cache: a stale cached result.
    edit(nodes, "import pandas as pd\n", "import pandas as pd\nfrom kart_kedro import code_version\n")
    edit(nodes, "def summarize(", '@code_version("1")\ndef summarize(')
    assert kart(project) == only(*ALL)
    edit(helpers, "return in_units(float(values.sum()))", "return in_units(float(values.sum()) * 1000)")
    assert kart(project) == only()
    assert report(project, "summary")["total"] == 52.0  # stale, as the pinned version asked

    run_kedro(project, "run", "--pipeline", "nodes")  # plain Kedro writes the right value
    assert report(project, "summary")["total"] == 52000.0

    log = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes")
    assert statuses(log) == only("summarize")
    assert "output 'summary' holds data written outside kart" in log
    assert report(project, "summary")["total"] == 52000.0  # not overwritten with the cached 52.0
    assert kart(project) == only()
    assert report(project, "summary")["total"] == 52000.0


def test_clear_node_clears_what_is_downstream_unless_only(ran: Path) -> None:
    project = ran  # after a first run
    cleared = run_kedro(project, "kart", "clear", "--node", "scale")
    assert "2 run(s) cleared." in cleared and "summarize" in cleared and "count" not in cleared
    assert kart(project) == only("scale", "summarize")

    assert "1 run(s) cleared." in run_kedro(project, "kart", "clear", "--node", "clean", "--only")
    assert kart(project) == only("clean")

    bad = run_kedro(project, "kart", "clear", "--node", "scal", check=False)
    assert "pipeline '__default__' has no node 'scal'. Did you mean 'scale'?" in bad
    # No close name: the pipeline's nodes and the ways out (it said only "has no node 'nosuch'.").
    unknown = " ".join(run_kedro(project, "kart", "clear", "--node", "nosuch", check=False).split())
    assert "pipeline '__default__' has no node 'nosuch'. Its nodes: " in unknown
    assert (
        ", clean, count, report_features, report_raw, scale, summarize. Name a node of it, another --pipeline"
        in unknown
    )


def test_only_missing_outputs_is_refused_with_the_reason(project: Path) -> None:
    log = run_kedro(
        project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes", "--only-missing-outputs", check=False
    )
    assert "KartRunner does not take --only-missing-outputs" in log
    assert "would hand back stale results" in log
    assert not (project / "data" / "08_reporting" / "summary.json").exists()


# KartRunner's own run of these steps (first run, cached, factor=3, back to factor 2) is
# test_kedro_project.py::test_node_cache_reruns_exactly_what_a_parameter_change_affects.
@pytest.mark.parametrize("runner", RUNNERS[1:])
def test_every_runner_caches_and_reruns_exactly_what_changed(project: Path, runner: str) -> None:
    assert kart(project, runner=runner) == only(*ALL)
    assert kart(project, runner=runner) == only()
    assert kart(project, "--params", "factor=3", runner=runner) == only("scale", "summarize")
    assert report(project, "summary")["total"] == 3.0 * POSITIVE_VALUES_SUM
    assert kart(project, runner=runner) == only()  # back to factor 2: served, the file written back
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}
    assert len(versions(project, "counts")) == 1  # count was cached in every run after the first


def test_the_summary_shows_under_kedros_default_logging(project: Path) -> None:
    (project / "conf" / "logging.yml").unlink()  # Kedro's own default: only the 'kedro' logger at INFO
    first = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes")
    assert "kart: 4 node(s): 4 ran because first run (clean, count, scale and 1 more)" in first
    second = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes", "--params", "factor=3")
    assert (
        "kart: 4 node(s): 2 cached, 2 ran because parameters changed: params:factor (scale); "
        "upstream changed: scaled (summarize)" in second
    )


def test_a_cached_node_writes_no_new_version_of_a_versioned_dataset(ran: Path) -> None:
    # Cached runs that leave count's version alone: test_every_runner_... and test_node_cache_reruns_...
    project = ran  # after a first run: one version
    assert len(versions(project, "counts")) == 1
    assert kart(project, "--params", "min_value=4") == only(*ALL)
    assert len(versions(project, "counts")) == 2
    assert report(project, "counts") == {"a": 2, "c": 1}
    assert kart(project) == only()  # back to min_value 0: kart's own older output is written back
    assert len(versions(project, "counts")) == 3
    assert report(project, "counts") == {"a": 3, "b": 1, "c": 1}


def test_a_damaged_node_cache_is_a_miss_the_node_reruns_with_a_warning(ran: Path) -> None:
    project = ran  # after a first run: every node ran
    (cache,) = (project / "data" / "kart" / "kedro" / "kart_kedro_demo").glob("summarize__summary_*.pkl")
    cache.write_bytes(cache.read_bytes()[:10])  # truncated
    (project / "data" / "08_reporting" / "summary.json").unlink()  # so the cache would be copied back
    log = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "nodes")
    assert statuses(log) == only("summarize")
    assert "DamagedOutputError" not in log and "rerun=True" not in log
    assert "kart: node 'summarize' runs again: its cached output 'summary' at" in log
    assert "summary_" in log and "is damaged" in log
    assert "its cached output 'summary' was damaged (summarize)" in log  # the summary line's reason
    assert report(project, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM
    assert kart(project) == only()


def test_a_changed_dataset_type_at_the_same_path_rewrites_the_output(ran: Path) -> None:
    project = ran  # after a first run: every node ran
    (project / "src" / "kart_kedro_demo" / "pickles.py").write_text(
        "import pickle\nfrom pathlib import Path\n\nfrom kedro.io import AbstractDataset\n\n\n"
        "class PickleDataset(AbstractDataset):\n"
        "    def __init__(self, filepath):\n        self._filepath = Path(filepath)\n\n"
        "    def load(self):\n        return pickle.loads(self._filepath.read_bytes())\n\n"
        "    def save(self, data):\n        self._filepath.write_bytes(pickle.dumps(data))\n\n"
        "    def _exists(self):\n        return self._filepath.exists()\n\n"
        "    def _describe(self):\n        return {'filepath': str(self._filepath)}\n"
    )
    catalog = project / "conf" / "base" / "catalog.yml"
    edit(
        catalog,
        "summary:\n  type: kart_kedro_demo.datasets.JsonDataset",
        "summary:\n  type: kart_kedro_demo.pickles.PickleDataset",
    )
    # A project dataset class counts by its code in the key of the node writing it (attacker at10 K9): the
    # producer runs again and writes through the new type (a library class would be re-saved from the cache).
    assert kart(project) == only("summarize")
    data = (project / "data" / "08_reporting" / "summary.json").read_bytes()
    assert pickle.loads(data)["total"] == 2.0 * POSITIVE_VALUES_SUM
    assert kart(project) == only()
    assert (project / "data" / "08_reporting" / "summary.json").read_bytes() == data


def test_a_kedro_node_reading_a_kart_output_reruns_when_the_task_is_rebuilt_with_other_content(project: Path) -> None:
    def kart_pipeline() -> tuple[dict[str, str], dict]:
        log = run_kedro(project, "run", "--runner", RUNNERS[0], "--pipeline", "kart")
        return {name: status for name, status in statuses(log).items() if name.startswith("report")}, report(
            project, "feature_report"
        )

    first_statuses, first = kart_pipeline()
    assert first_statuses == {"report_features": "ran", "report_raw": "ran"}
    assert kart_pipeline()[0] == {"report_features": "cached", "report_raw": "cached"}
    # An edit of MakeFeatures.run (not part of its unique id), its output deleted and built again.
    edit(project / "src" / "kart_kedro_demo" / "tasks.py", "min_periods=1).mean()", "min_periods=1).mean() * 2")
    for output in (project / "data" / "kart" / "kart_kedro_demo" / "tasks").glob("MakeFeatures_*.pkl"):
        output.unlink()
    again_statuses, again = kart_pipeline()
    assert again_statuses == {"report_features": "ran", "report_raw": "cached"}
    assert again["last_smooth"] == pytest.approx(2 * first["last_smooth"])
