"""The kart runners on kedro-datasets' IncrementalDataset: a cached node that confirms moves the checkpoint.

Kedro's Task confirms a node's ``confirms`` datasets after the node ran; a node served from the kart
cache must leave the checkpoint where a run would, or every later run reads the same partitions again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kedro.io import DataCatalog, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.partitions import IncrementalDataset
from node_journal import ran, record
from runner_choice import make_runner


def process(parts: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The new partitions' ids and sum of ``v``."""
    record("process")
    return {"keys": sorted(parts), "sum": int(sum(int(part["v"].sum()) for part in parts.values()))}


def _history(root: Path, runner_class: type) -> list[tuple[Any, str | None]]:
    """Run a confirming node over an incremental folder through a checkpoint reset; (output, checkpoint) per run."""
    folder = root / "inc"
    folder.mkdir(parents=True)
    for name, value in (("p1", 1), ("p2", 2)):
        pd.DataFrame({"v": [value]}).to_csv(folder / f"{name}.csv", index=False)
    pipeline = Pipeline([node(process, "inc", "out", name="process", confirms="inc")])
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    history = []
    for step in range(4):
        if step == 1:
            (folder / "CHECKPOINT").unlink()  # reprocess everything: the cached result of step 0 fits
        catalog = catalog_class(
            {
                "inc": IncrementalDataset(path=str(folder), dataset="pandas.CSVDataset", filename_suffix=".csv"),
                "out": JSONDataset(filepath=str(root / "out.json")),
            }
        )
        make_runner(runner_class, str(root / "ws")).run(pipeline, catalog)
        checkpoint = folder / "CHECKPOINT"
        history.append(
            (json.loads((root / "out.json").read_text()), checkpoint.read_text() if checkpoint.exists() else None)
        )
    return history


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner, KartParallelRunner], ids=lambda c: c.__name__)
def test_a_cached_node_confirms_its_incremental_input_as_a_run_would(
    tmp_path: Path, journal: str, runner_class: type
) -> None:
    expected = _history(tmp_path / "sequential", SequentialRunner)
    both, nothing = {"keys": ["p1", "p2"], "sum": 3}, {"keys": [], "sum": 0}
    assert expected == [(both, "p2"), (both, "p2"), (nothing, "p2"), (nothing, "p2")]
    ran()
    # kart before: step 1 was served without confirming, so the checkpoint stayed deleted and every
    # later run was served p1 and p2 again.
    assert _history(tmp_path / "kart", runner_class) == expected
    assert ran() == ["process", "process"]  # step 1 served from step 0's cache, step 3 from step 2's
