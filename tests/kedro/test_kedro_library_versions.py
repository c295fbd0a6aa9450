"""A library upgrade that changes a model class's method reruns the node calling it (attacker at10 K3).

``train`` returns ``fakelib.Model(2)``; ``predict`` calls ``model.predict(values)``, a method its own code does
not name. ``fakelib`` is an installed distribution on a temporary ``site-packages`` folder (a ``dist-info``
with ``METADATA``'s ``Version``, as pip writes it), upgraded from 1.0 to 2.0 between runs by rewriting those
files (no pip here). ``train`` reruns (its code names ``fakelib``) and returns a model that pickles to the
same bytes; kart before counted the classes a value's pickle names only when they were project code, and
served ``predict`` the old version's predictions. Now third-party names count by their distribution's
version. Each run is its own process (a real upgrade between runs).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from kedro_project import run_script_json

FAKELIB = textwrap.dedent(
    """
    class Model:
        def __init__(self, k):
            self.k = k

        def predict(self, xs):
            return [x * self.k for x in xs]
    """
)

NODES = textwrap.dedent(
    """
    import fakelib

    def train(values):
        return fakelib.Model(2)

    def predict(model, values):
        return model.predict(values)
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, os, pickle, sys
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pickle import PickleDataset
    from kart_kedro import KartParallelRunner, KartRunner
    import fakelib, proj_nodes

    root, shape, runner_name = sys.argv[1:4]
    pipeline = Pipeline([node(proj_nodes.train, "params:values", "model", name="train"),
                         node(proj_nodes.predict, ["model", "params:values"], "predictions", name="predict")])
    entries = {"params:values": MemoryDataset([1, 2])}  # predictions: a free output the runner hands back
    if shape == "pickle":  # a raw input: a model file another program wrote
        if not os.path.exists(root + "/model.pkl"):  # written once, by the first run
            with open(root + "/model.pkl", "wb") as file:
                pickle.dump(fakelib.Model(2), file)
        entries["model"] = PickleDataset(filepath=root + "/model.pkl")
        pipeline = Pipeline([node(proj_nodes.predict, ["model", "params:values"], "predictions", name="predict")])
    if runner_name == "parallel":
        from kedro.io import SharedMemoryDataCatalog
        runner, catalog = KartParallelRunner(max_workers=2, workspace_directory=root + "/ws"), SharedMemoryDataCatalog(entries)
    else:
        runner, catalog = KartRunner(workspace_directory=root + "/ws"), DataCatalog(entries)
    value = runner.run(pipeline, catalog)["predictions"]
    print(json.dumps([runner.last_run, value.load() if hasattr(value, "load") else value]))
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``site/site-packages/fakelib`` 1.0 (a dist-info as pip writes it), ``src/proj_nodes.py`` and the run script."""
    site = tmp_path / "site" / "site-packages"
    (site / "fakelib").mkdir(parents=True)
    (site / "fakelib" / "__init__.py").write_text(FAKELIB)
    _dist_info(site, "1.0")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "proj_nodes.py").write_text(NODES)
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _dist_info(site: Path, version: str) -> None:
    info = site / f"fakelib-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakelib\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakelib\n")
    (info / "RECORD").write_text("fakelib/__init__.py,,\n")


def _upgrade(project: Path) -> None:
    """fakelib 1.0 -> 2.0, whose ``predict`` adds 1000."""
    site = project / "site" / "site-packages"
    for info in site.glob("fakelib-*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    _dist_info(site, "2.0")
    source = site / "fakelib" / "__init__.py"
    source.write_text(source.read_text().replace("x * self.k for", "x * self.k + 1000 for"))


def _run(project: Path, shape: str, runner: str = "sequential") -> tuple[dict[str, str], list[int]]:
    """One run in a new process: (statuses by node, the predictions)."""
    statuses, predictions = run_script_json(
        project, shape, runner, paths=[project / "src", project / "site" / "site-packages"]
    )
    return statuses, predictions


@pytest.mark.parametrize("runner", ["sequential", "parallel"])
def test_an_upgrade_of_the_model_s_library_reruns_its_reader(project: Path, runner: str) -> None:
    """A model another node returned (a memory dataset between them)."""
    assert _run(project, "memory", runner) == ({"train": "ran", "predict": "ran"}, [2, 4])
    assert _run(project, "memory", runner) == ({"train": "cached", "predict": "cached"}, [2, 4])
    _upgrade(project)
    # kart before: predict cached, [2, 4]
    assert _run(project, "memory", runner) == ({"train": "ran", "predict": "ran"}, [1002, 1004])
    assert _run(project, "memory", runner) == ({"train": "cached", "predict": "cached"}, [1002, 1004])


def test_an_upgrade_of_a_raw_model_file_s_library_reruns_its_reader(project: Path) -> None:
    """A raw PickleDataset input whose file stays the same: its recorded digest is not reused under 2.0."""
    assert _run(project, "pickle") == ({"predict": "ran"}, [2, 4])
    assert _run(project, "pickle") == ({"predict": "cached"}, [2, 4])
    _upgrade(project)
    assert _run(project, "pickle") == ({"predict": "ran"}, [1002, 1004])  # kart before: cached, [2, 4]
    assert _run(project, "pickle") == ({"predict": "cached"}, [1002, 1004])


def test_a_library_that_becomes_project_code_counts_by_its_code_on_reuse(project: Path) -> None:
    """fakelib vendored into the project (moved to ``src/``, its dist-info gone: on the path, not installed, as
    ``pip install -e ../fakelib`` also leaves it), then edited: the raw model file's record named fakelib as a
    library; it is project code now, so the input is read again and ``Model`` counts by its code (attacker
    at12 A4)."""
    assert _run(project, "pickle") == ({"predict": "ran"}, [2, 4])
    # This run records model.pkl's digest ("digest|fakelib"): the first read it just after writing it (racy).
    assert _run(project, "pickle") == ({"predict": "cached"}, [2, 4])
    site = project / "site" / "site-packages"
    shutil.rmtree(site / "fakelib-1.0.dist-info")
    shutil.move(site / "fakelib", project / "src" / "fakelib")
    assert _run(project, "pickle") == ({"predict": "ran"}, [2, 4])
    assert _run(project, "pickle") == ({"predict": "cached"}, [2, 4])
    source = project / "src" / "fakelib" / "__init__.py"
    source.write_text(source.read_text().replace("x * self.k for", "x * self.k + 1000 for"))
    assert _run(project, "pickle") == ({"predict": "ran"}, [1002, 1004])  # kart before: cached, [2, 4]
    assert _run(project, "pickle") == ({"predict": "cached"}, [1002, 1004])
