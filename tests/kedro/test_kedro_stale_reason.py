"""A node rerun because a kart task it built went stale says so (attacker at20 K6).

A node whose function builds a kart task (``kart_core.build`` inside it) is cached on that task's commit; when the
task is committed again with other content the node runs again (right), but its line said "its cache was cleared"
(nothing was), and the warning before it gave a kart task's advice (``rerun=True``, ``kart run --rerun``) for the
node run, which no user builds. Now the reason names the task and the warning says KartRunner reruns the node.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import pytest
from kart_kedro import KartRunner, KartThreadRunner
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro_trust_tasks import Shifted
from rich.console import Console
from rich.logging import RichHandler

import kart_core


def built_sum(x: int) -> int:
    """Builds Shifted(size=2) in the node's own workspace and adds its values to ``x``."""
    task = Shifted(size=2, workspace_directory=os.environ["KART_KEDRO_TEST_WORKSPACE"])
    return int(sum(kart_core.build(task, reset_register=False))) + x


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner], ids=lambda cls: cls.__name__)
def test_a_node_whose_built_task_went_stale_names_it(
    workspace: str,
    journal: str,
    runner_class: type,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("KART_KEDRO_TEST_WORKSPACE", workspace)
    pipeline = Pipeline([node(built_sum, "x", "total", name="built_sum")])

    def run() -> tuple[Any, Any, int]:
        runner = runner_class(workspace_directory=workspace)
        outputs = runner.run(pipeline, DataCatalog({"x": MemoryDataset(100)}))
        return runner.last_run, runner.last_reasons, outputs["total"].load()

    assert run()[0] == {"built_sum": "ran"}
    assert run()[0] == {"built_sum": "cached"}
    monkeypatch.setenv("KART_KEDRO_TEST_SHIFT", "10")
    task = Shifted(size=2, workspace_directory=workspace, rerun=True)
    assert kart_core.build(task, reset_register=False) == [10, 11]  # the same id committed again, other content
    with caplog.at_level(logging.WARNING):
        statuses, reasons, total = run()
    assert (statuses, total) == ({"built_sum": "ran"}, 121)
    label = Shifted(size=2, workspace_directory=workspace).kart_label()
    assert reasons == {"built_sum": f"{label}, which it built, was committed again with other content"}
    (warning,) = [record.getMessage() for record in caplog.records if "is stale" in record.getMessage()]
    assert "It caches the Kedro node 'built_sum': KartRunner runs the node again" in warning
    assert "rerun=True" not in warning and "kart run" not in warning


def test_kart_core_warnings_keep_their_task_labels_under_a_markup_reading_handler(
    workspace: str, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kedro's RichHandler reads ``[...]`` as markup (its ``markup`` default is True); a label whose id starts with a
    letter (``Shifted[fb0d6725]``) lost its id in kart_core's stale warning. rich's own handler with markup on, as
    Kedro's is, stands for it (Kedro's also installs rich tracebacks and captures warnings for the process)."""
    monkeypatch.setenv("KART_KEDRO_TEST_WORKSPACE", workspace)
    label = Shifted(size=2, workspace_directory=workspace).kart_label()
    assert label[len("Shifted[")].isalpha()  # the case rich takes for a style tag
    pipeline = Pipeline([node(built_sum, "x", "total", name="built_sum")])
    KartRunner(workspace_directory=workspace).run(pipeline, DataCatalog({"x": MemoryDataset(100)}))
    monkeypatch.setenv("KART_KEDRO_TEST_SHIFT", "10")
    kart_core.build(Shifted(size=2, workspace_directory=workspace, rerun=True), reset_register=False)
    printed = io.StringIO()
    handler = RichHandler(console=Console(file=printed, width=2000), markup=True)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        KartRunner(workspace_directory=workspace).run(pipeline, DataCatalog({"x": MemoryDataset(100)}))
    finally:
        root.removeHandler(handler)
    assert f"was built from {label}'s commit" in printed.getvalue()
    assert not handler.filters  # the filter is the run's only
