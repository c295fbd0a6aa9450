"""KartRunner pauses Python's cyclic garbage collector while it decides nodes, not while the nodes it runs run, and
leaves the collector as the caller had it: enabled or disabled, with the caller's frozen objects still frozen."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path
from typing import Any

from kart_kedro import KartRunner
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node


class _Cycle:
    """An object that refers to itself: freed by the cyclic collector only."""

    def __init__(self) -> None:
        self.me = self


def _note(text: str) -> None:
    with open(os.environ["KART_KEDRO_TEST_JOURNAL"], "a") as handle:
        handle.write(f"{text}\n")


def first(value: int) -> int:
    _note(f"first {gc.isenabled()}")
    weakref.finalize(_Cycle(), _note, "freed")  # noted when the cycle is collected
    return value + 1


def second(value: int) -> int:
    _note(f"second {gc.isenabled()}")
    return value * 2


def _pipeline() -> Pipeline:
    return Pipeline([node(first, "start", "a", name="first"), node(second, "a", "b", name="second")])


def _run(workspace: Path) -> dict[str, Any]:
    runner = KartRunner(workspace_directory=str(workspace))
    runner.run(_pipeline(), DataCatalog({"start": MemoryDataset(3)}))
    return runner.last_run


def _journal(path: str) -> list[str]:
    return Path(path).read_text().splitlines() if Path(path).exists() else []


def test_nodes_run_with_the_collector_enabled_and_it_is_enabled_after_each_run(tmp_path: Path, journal: str) -> None:
    assert gc.isenabled()
    assert _run(tmp_path) == {"first": "ran", "second": "ran"}
    assert [line for line in _journal(journal) if line != "freed"] == ["first True", "second True"]
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert _run(tmp_path) == {"first": "cached", "second": "cached"}
    assert [line for line in _journal(journal) if line != "freed"] == ["first True", "second True"]  # none ran
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_the_caller_disabled_stays_disabled(tmp_path: Path, journal: str) -> None:
    gc.disable()
    try:
        assert _run(tmp_path) == {"first": "ran", "second": "ran"}
        assert _journal(journal) == ["first False", "second False"]
        assert not gc.isenabled()
        assert _run(tmp_path) == {"first": "cached", "second": "cached"}
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_caller_s_frozen_objects_stay_frozen(tmp_path: Path, journal: str) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        _run(tmp_path)
        _run(tmp_path)
        # Still frozen (an unfreeze would leave none): only those freed meanwhile are gone, none was added.
        assert 0.9 * frozen < gc.get_freeze_count() <= frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_reference_cycle_a_node_made_is_still_collected(tmp_path: Path, journal: str) -> None:
    assert _run(tmp_path) == {"first": "ran", "second": "ran"}
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert "freed" in _journal(journal)
