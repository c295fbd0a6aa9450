"""The kart runners on versioned kedro-datasets datasets (``versioned: true``), with real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kart_kedro import KartRunner, KartThreadRunner
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.pickle import PickleDataset
from node_journal import ran, record


def double(frame: pd.DataFrame) -> pd.DataFrame:
    record("double")
    return frame.assign(v=frame["v"] * 2)


def total(frame: pd.DataFrame) -> dict[str, int]:
    record("total")
    return {"sum": int(frame["v"].sum())}


DATASETS = {"parquet": ParquetDataset, "pickle": PickleDataset}


def _run(runner: Any, root: Path, kind: type) -> dict[str, int]:
    """raw (versioned) -> double -> doubled (versioned) -> total -> total.json; the sum the run wrote."""
    pipeline = Pipeline([node(double, "raw", "doubled", name="double"), node(total, "doubled", "total", name="total")])
    catalog = DataCatalog(
        {
            "raw": kind(filepath=str(root / "raw.data"), version=Version(None, None)),
            "doubled": kind(filepath=str(root / "doubled.data"), version=Version(None, None)),
            "total": JSONDataset(filepath=str(root / "total.json")),
        }
    )
    runner.run(pipeline, catalog)
    return json.loads((root / "total.json").read_text())


def _save(kind: type, path: Path, version: str, values: list[int]) -> None:
    kind(filepath=str(path), version=Version(None, version)).save(pd.DataFrame({"v": values}))


@pytest.mark.parametrize("kind", sorted(DATASETS))
@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
def test_a_newer_version_saved_outside_kart_is_what_the_reader_gets(
    tmp_path: Path, journal: str, runner_class: type, kind: str
) -> None:
    dataset = DATASETS[kind]

    def runner() -> Any:
        if runner_class is KartRunner:
            return KartRunner(workspace_directory=str(tmp_path / "ws"))
        return runner_class(max_workers=2, workspace_directory=str(tmp_path / "ws"))

    results = {}
    for name in ("sequential", "kart"):
        root = tmp_path / name
        _save(dataset, root / "raw.data", "2026-01-01T00.00.00.000Z", [1, 2])
        make = SequentialRunner if name == "sequential" else runner
        assert _run(make(), root, dataset) == {"sum": 6}
        _save(dataset, root / "raw.data", "2026-01-02T00.00.00.000Z", [1, 2, 3])  # a new raw version
        assert _run(make(), root, dataset) == {"sum": 12}
        # Someone saves a version of the intermediate dated after any this test's runs save: loads read it.
        _save(dataset, root / "doubled.data", "2099-01-01T00.00.00.000Z", [1000])
        with pytest.warns(UserWarning, match="did not match load version"):  # Kedro's own warning
            results[name] = _run(make(), root, dataset)
    assert results["sequential"] == {"sum": 1000}
    assert results["kart"] == results["sequential"]  # kart before: total stayed cached with {"sum": 12}


def train(values: list[int]) -> dict[str, int]:
    record("train")
    return {"weight": sum(values)}


def score(model: dict[str, int], values: list[int]) -> list[int]:
    record("score")
    return [value * model["weight"] for value in values]


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
def test_a_pinned_load_version_leaves_the_producer_cached_and_writes_no_version(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    older = "2026-01-01T00.00.00.000Z"  # a version saved by a plain kedro run with other values
    pipeline = Pipeline(
        [node(train, "values", "model", name="train"), node(score, ["model", "values"], "scores", name="score")]
    )

    def run(runner: Any, root: Path, pin: str | None) -> list[int]:
        catalog = DataCatalog(
            {
                "model": PickleDataset(filepath=str(root / "model.pkl"), version=Version(pin, None)),
                "values": MemoryDataset([1, 2]),
                "scores": JSONDataset(filepath=str(root / "scores.json")),
            }
        )
        runner.run(pipeline, catalog)
        return json.loads((root / "scores.json").read_text())

    def kart() -> Any:
        if runner_class is KartRunner:
            return KartRunner(workspace_directory=str(tmp_path / "ws"))
        return runner_class(max_workers=2, workspace_directory=str(tmp_path / "ws"))

    def versions(root: Path) -> list[str]:
        return sorted(path.name for path in (root / "model.pkl").iterdir())

    for side in ("sequential", "kart"):
        PickleDataset(filepath=str(tmp_path / side / "model.pkl"), version=Version(None, older)).save({"weight": 10})
    assert run(SequentialRunner(), tmp_path / "sequential", older) == [10, 20]  # the pinned version's weight
    ran()

    root = tmp_path / "kart"
    assert run(kart(), root, None) == [3, 6]
    assert ran() == ["train", "score"]
    saved = versions(root)
    assert len(saved) == 2
    runner = kart()
    assert run(runner, root, older) == [10, 20]
    assert runner.last_run == {"train": "cached", "score": "ran"}  # kart before: train reran, "written outside kart"
    assert versions(root) == saved  # no version from a cached node
    runner = kart()
    assert run(runner, root, None) == [3, 6]  # unpinned again: the newest version, kart's
    assert runner.last_run == {"train": "cached", "score": "cached"}
    assert versions(root) == saved  # kart before: a fourth version, written by the cached train
