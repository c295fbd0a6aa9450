"""The kedro.hooks plugin: to_pipeline edges become TaskReceiptDatasets, so one node can run alone."""

from __future__ import annotations

import pickle

import pytest
from kart_kedro import KartReceipt, TaskOnKartDataset, TaskReceiptDataset, to_pipeline
from kart_kedro.hooks import hooks
from kart_kedro.pipeline import node_label
from kedro.io import DataCatalog, DatasetError
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from kedro_test_tasks import Doubled, Numbers, Total, journal_lines


def _total(workspace: str) -> Total:
    doubled = Doubled(source=Numbers(size=3, workspace_directory=workspace), factor=5, workspace_directory=workspace)
    return Total(doubled=doubled, workspace_directory=workspace)


def _catalog_after_hook(catalog: DataCatalog, pipeline: Pipeline) -> DataCatalog:
    hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    return catalog


def test_the_hook_declares_undeclared_edges_only(workspace: str) -> None:
    total = _total(workspace)
    pipeline = to_pipeline(total, names={total.doubled: "doubled"})
    declared = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 3}, workspace)
    catalog = _catalog_after_hook(DataCatalog({"doubled": declared}), pipeline)
    assert catalog.get("doubled") is declared
    for name in pipeline.datasets() - {"doubled"}:
        assert isinstance(catalog.get(name), TaskReceiptDataset)


def test_one_node_runs_alone_after_its_upstreams_ran_elsewhere(workspace: str, journal: str) -> None:
    total = _total(workspace)
    pipeline = to_pipeline(total)
    last = pipeline.only_nodes(node_label(total))
    with pytest.raises(DatasetError, match=r"Doubled\[[0-9a-f]{8}\] is not built yet"):
        SequentialRunner().run(last, _catalog_after_hook(DataCatalog(), last))
    upstream = pipeline.only_nodes(node_label(total.doubled.source), node_label(total.doubled))
    SequentialRunner().run(upstream, _catalog_after_hook(DataCatalog(), upstream))
    SequentialRunner().run(last, _catalog_after_hook(DataCatalog(), last))  # a fresh catalog, as in another process
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == ["Doubled", "Numbers", "Total"]


def test_receipt_dataset_exists_loads_saves_and_pickles(workspace: str) -> None:
    numbers = Numbers(size=2, workspace_directory=workspace)
    dataset = TaskReceiptDataset(numbers)
    assert not dataset.exists()
    receipt = to_pipeline(numbers).nodes[0].func()
    assert receipt.status == "ran" and dataset.exists()
    dataset.save(receipt)
    loaded = pickle.loads(pickle.dumps(dataset)).load()
    assert isinstance(loaded, KartReceipt) and loaded.node_key == receipt.node_key and loaded.status == "cached"
    assert loaded.paths == receipt.paths and loaded.paths[0].endswith(f"Numbers_{numbers.make_unique_id()}.pkl")
    with pytest.raises(DatasetError, match="only accepts the KartReceipt of its own completed task"):
        dataset.save([1, 2])


def test_the_edges_travel_with_the_nodes_not_with_the_process(workspace: str) -> None:
    total = _total(workspace)
    pipeline = to_pipeline(total)
    other = to_pipeline(Numbers(size=7, workspace_directory=workspace))  # another pipeline of the same process
    last = pipeline.only_nodes(node_label(total))
    catalog = _catalog_after_hook(DataCatalog(), last)
    assert sorted(catalog.keys()) == sorted(last.datasets())
    assert catalog.get(node_label(total.doubled)).task is total.doubled
    assert not set(other.datasets()) & set(catalog.keys())
