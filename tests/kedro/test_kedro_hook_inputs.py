"""A project hook that changes a node's inputs counts in the node's key (attacker at10 K2, at12 A3/A5/A6).

Kedro runs a node on what its ``before_node_run`` hooks return (a dict replacing inputs: masking, casting, a
fresh token), and ``after_dataset_loaded`` hooks may change loaded data in place. kart keyed the node by the
inputs as loaded and its own code: an edit of the hook (its code, a module constant it reads) served the old
result. Now the code of the project's data hooks counts in every cached node's key; the hook instance's state
does not (a timer hook's state changes every run and would never let a node be served). Real Kedro hook
manager, a real project module on disk, KartRunner, KartThreadRunner (the session's hook manager) and
KartParallelRunner (whose worker processes build their own: the session's counts in the keys).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node

HOOKS = textwrap.dedent(
    """
    from kedro.framework.hooks import hook_impl

    SCALE = 1


    class Inject:
        def __init__(self, offset=0):
            self.offset = offset

        @hook_impl
        def before_node_run(self, node, inputs):
            if node.name == "total":
                return {"values": [value * SCALE + self.offset for value in inputs["values"]]}
            return None


    class Timer:
        def __init__(self):
            self.started = {}

        @hook_impl
        def before_pipeline_run(self, run_params):
            self.run_started = object()  # per-run state, as a timing hook keeps

        @hook_impl
        def before_node_run(self, node, inputs):
            self.started[node.name] = len(self.started)


    class Scale:
        @hook_impl
        def after_dataset_loaded(self, dataset_name, data, node):
            if dataset_name == "values":
                data[:] = [value * SCALE for value in data]
    """
)


def total(values: list[int]) -> int:
    """What the node computes from the values it receives."""
    return sum(values)


@pytest.fixture
def hooks_module(tmp_path: Path) -> Iterator[ModuleType]:
    """``proj_k2_hooks`` written to a temporary folder and imported (a project module: no distribution)."""
    (tmp_path / "proj_k2_hooks.py").write_text(HOOKS)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("proj_k2_hooks")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("proj_k2_hooks", None)


def _run(runner_class: type, workspace: Path, plugin: Any) -> tuple[str, int]:
    """One run with ``plugin`` registered: (the node's status, what it returned; -1 from worker processes)."""
    manager = _create_hook_manager()
    manager.register(plugin)
    pipeline = Pipeline([node(total, "values", "total", name="total")])
    if runner_class is KartParallelRunner:  # worker processes: the input and output on disk
        from kedro_datasets.json import JSONDataset

        values = JSONDataset(filepath=str(workspace.parent / "values.json"))
        values.save([1, 2, 3])
        catalog = SharedMemoryDataCatalog({"values": values, "total": MemoryDataset()})
    else:
        catalog = DataCatalog({"values": MemoryDataset([1, 2, 3]), "total": MemoryDataset()})
    if runner_class is KartRunner:
        runner = KartRunner(workspace_directory=str(workspace))
    else:
        runner = runner_class(max_workers=2, workspace_directory=str(workspace))
    found = runner.run(pipeline, catalog, manager)
    if runner_class is KartParallelRunner:  # the value stays in the worker's memory: the status tells
        return runner.last_run["total"], -1
    value = found["total"]
    return runner.last_run["total"], value.load() if hasattr(value, "load") else value


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner])
def test_an_edit_of_a_constant_the_hook_reads_reruns_the_node(
    hooks_module: ModuleType, tmp_path: Path, runner_class: type
) -> None:
    ws = tmp_path / "ws"
    assert _run(runner_class, ws, hooks_module.Inject()) == ("ran", 6)
    assert _run(runner_class, ws, hooks_module.Inject()) == ("cached", 6)
    hooks_module.SCALE = 100  # plain `kedro run`: 600
    assert _run(runner_class, ws, hooks_module.Inject()) == ("ran", 600)  # kart before: cached, 6
    assert _run(runner_class, ws, hooks_module.Inject()) == ("cached", 600)


def test_a_hook_keeping_per_run_state_lets_nodes_be_served(hooks_module: ModuleType, tmp_path: Path) -> None:
    # at12 A3: the hook instance's state counted, so a timing hook (state set in before_pipeline_run and per
    # node) changed every key on every run: nothing was ever served.
    ws, timer = tmp_path / "ws", hooks_module.Timer()
    assert _run(KartRunner, ws, timer) == ("ran", 6)
    assert _run(KartRunner, ws, timer) == ("cached", 6)
    assert _run(KartRunner, ws, hooks_module.Timer()) == ("cached", 6)


def test_an_edit_of_an_after_dataset_loaded_hook_reruns_the_node(hooks_module: ModuleType, tmp_path: Path) -> None:
    # at12 A6: a hook changing loaded data in place is outside the node's inputs' digests too.
    ws = tmp_path / "ws"
    assert _run(KartRunner, ws, hooks_module.Scale()) == ("ran", 6)
    assert _run(KartRunner, ws, hooks_module.Scale()) == ("cached", 6)
    hooks_module.SCALE = 100
    assert _run(KartRunner, ws, hooks_module.Scale()) == ("ran", 600)


def test_the_parallel_runner_counts_the_sessions_hooks(hooks_module: ModuleType, tmp_path: Path) -> None:
    # at12 A5: KartParallelRunner gave its run no hook manager (its worker processes build their own from the
    # project's settings), so a hook edit kept every node cached while the workers ran the edited hook.
    ws = tmp_path / "ws"
    assert _run(KartParallelRunner, ws, hooks_module.Inject())[0] == "ran"
    assert _run(KartParallelRunner, ws, hooks_module.Inject())[0] == "cached"
    hooks_module.SCALE = 100
    assert _run(KartParallelRunner, ws, hooks_module.Inject())[0] == "ran"
