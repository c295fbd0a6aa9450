"""A project ``before_node_run`` hook that replaces a node's inputs counts in the node's key (attacker at10 K2).

Kedro runs a node on what its ``before_node_run`` hooks return (a dict replacing inputs: masking, casting, a
fresh token). kart keyed the node by the inputs as loaded and its own code: an edit of the hook (its code, a
module constant it reads, its instance's state) served the old result. Now the code of the project's
``before_node_run`` hook implementations counts in every cached node's key. Real Kedro hook manager, a
real project module on disk, KartRunner and KartThreadRunner (which share the session's hook manager).
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
from kart_kedro import KartRunner, KartThreadRunner
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
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
    """One run with ``plugin`` registered: (the node's status, what it returned)."""
    manager = _create_hook_manager()
    manager.register(plugin)
    pipeline = Pipeline([node(total, "values", "total", name="total")])
    catalog = DataCatalog({"values": MemoryDataset([1, 2, 3]), "total": MemoryDataset()})
    if runner_class is KartRunner:
        runner = KartRunner(workspace_directory=str(workspace))
    else:
        runner = runner_class(max_workers=2, workspace_directory=str(workspace))
    found = runner.run(pipeline, catalog, manager)
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


def test_another_state_of_the_hook_instance_reruns_the_node(hooks_module: ModuleType, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert _run(KartRunner, ws, hooks_module.Inject()) == ("ran", 6)
    assert _run(KartRunner, ws, hooks_module.Inject(offset=10)) == ("ran", 36)  # kart before: cached, 6
    assert _run(KartRunner, ws, hooks_module.Inject()) == ("cached", 6)  # the first key's entry still serves
