"""KartRunner: nodes that build a kart task in a module-level process pool each record what they built (attacker at20 K10).

The pool's worker is forked lazily by the first node's ``submit``, inside that node's run, and keeps a copy of its
context; the second node's nested ``build()`` in it was credited to the first node's run (over by then) and dropped,
so after the kart task reran with other content the second node stayed cached with the old value. Real Kedro, a real
fork ``ProcessPoolExecutor``, local disk.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Any

import luigi
import pytest
from kart_kedro import KartRunner
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

import kart_core

POOL: dict[str, Any] = {}  # the module-level pool the nodes hand their builds to (set and shut down by the fixture)


class PoolUp(kart_core.TaskOnKart[int]):
    """A value read from the file ``value`` beside the workspace, times ``n``."""

    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(int((Path(self.workspace_directory).parent / "value").read_text()) * self.n)


def _build_up(n: int, workspace: str) -> Any:
    return kart_core.build(PoolUp(n=n, workspace_directory=workspace), reset_register=False)


def uses_one(workspace: str) -> int:
    return 10 * POOL["pool"].submit(_build_up, 1, workspace).result()


def uses_two(workspace: str) -> int:
    return 10 * POOL["pool"].submit(_build_up, 2, workspace).result()


@pytest.fixture
def shared_pool() -> Any:
    POOL["pool"] = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    yield POOL
    POOL.pop("pool").shutdown()


def _run(workspace: str) -> tuple[dict[str, str], int, int]:
    pipeline = Pipeline([node(uses_one, "ws", "a", name="uses_one"), node(uses_two, "ws", "b", name="uses_two")])
    runner = KartRunner(workspace_directory=workspace)
    out = runner.run(pipeline, DataCatalog({"ws": MemoryDataset(workspace)}))
    return dict(runner.last_run), out["a"].load(), out["b"].load()


def test_nodes_building_in_a_shared_fork_pool_rerun_when_what_they_built_changes(
    tmp_path: Path, shared_pool: Any
) -> None:
    """Before: the second run gave {"uses_one": "ran", "uses_two": "cached"}, 50, 20 (uses_two stale)."""
    workspace = str(tmp_path / "ws")
    (tmp_path / "value").write_text("1")
    assert _run(workspace) == ({"uses_one": "ran", "uses_two": "ran"}, 10, 20)
    (tmp_path / "value").write_text("5")
    rerun = [PoolUp(n=n, workspace_directory=workspace, rerun=True) for n in (1, 2)]
    assert kart_core.build(rerun, reset_register=False) == [5, 10]
    assert _run(workspace) == ({"uses_one": "ran", "uses_two": "ran"}, 50, 100)
    assert _run(workspace) == ({"uses_one": "cached", "uses_two": "cached"}, 50, 100)
