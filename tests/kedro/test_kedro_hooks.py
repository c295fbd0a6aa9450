"""The kedro.hooks plugin: to_pipeline edges become TaskReceiptDatasets, so one node can run alone."""

from __future__ import annotations

import io
import logging
import pickle

import pytest
from kart_kedro import KartReceipt, TaskOnKartDataset, TaskReceiptDataset, to_pipeline
from kart_kedro.hooks import hooks
from kart_kedro.pipeline import node_label
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_test_tasks import Doubled, Numbers, Total, journal_lines
from rich.console import Console
from rich.logging import RichHandler


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


def _printing_root_handler() -> tuple[logging.Handler, io.StringIO]:
    """rich's handler with markup on, as Kedro's logging config installs it, on the root logger."""
    printed = io.StringIO()
    handler = RichHandler(console=Console(file=printed, width=2000), markup=True)
    logging.getLogger().addHandler(handler)
    return handler, printed


def _labelled_warning(value: int) -> int:
    logging.getLogger("kart_core.lineage").warning("Down[aa] was built from Up[fb0d6725]'s commit")
    return value


def test_kart_core_lines_keep_their_labels_in_any_runner_for_the_pipeline_run(workspace: str) -> None:
    """Outside KartRunner (here SequentialRunner, with the hooks a Kedro session calls), rich read ``[fb0d6725]`` as a
    style tag and printed ``Up's commit``; the hooks mark kart_core's records plain for the run, then unmark."""
    handler, printed = _printing_root_handler()
    pipeline = Pipeline([node(_labelled_warning, "x", "y", name="warns")])
    catalog = DataCatalog({"x": MemoryDataset(1)})
    try:
        hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
        SequentialRunner().run(pipeline, catalog)
        hooks.after_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
        assert "was built from Up[fb0d6725]'s commit" in printed.getvalue()
        assert not handler.filters
        logging.getLogger("kart_core.lineage").warning("after Up[fb0d6725]")  # a line outside the run: rich's rules
        assert "after Up[fb0d6725]" not in printed.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_failed_pipeline_run_unmarks_and_marking_twice_adds_one_filter(workspace: str) -> None:
    handler, _ = _printing_root_handler()
    pipeline = Pipeline([node(_labelled_warning, "x", "y", name="warns")])
    try:
        hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=DataCatalog())
        hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=DataCatalog())
        assert len(handler.filters) == 1
        hooks.on_pipeline_error(error=ValueError("x"), run_params={}, pipeline=pipeline, catalog=DataCatalog())
        assert not handler.filters
    finally:
        logging.getLogger().removeHandler(handler)
