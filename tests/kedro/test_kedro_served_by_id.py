"""A cached node checked by its key's id (``PipelineRun.check``): in a new process KartRunner makes no node run for a
node it serves, unless it loads one of its outputs, and that check refuses what the node run's own check refuses."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import luigi.task_register
import pytest
from kart_kedro import KartRunner
from kart_kedro.node_cache import KedroNodeRun, NodeKey
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

import kart_core

FACTOR = 2  # what ``times`` multiplies by: its code reaches it, so it counts in the node's key


def start(raw: list[int]) -> list[int]:
    return list(raw)


def times(values: list[int]) -> list[int]:
    return [value * FACTOR for value in values]


def total(values: list[int], offset: int) -> int:
    return sum(values) + offset


PIPELINE = Pipeline(
    [
        node(start, "raw", "started", name="start"),
        node(times, "started", "timed", name="times"),
        node(total, ["timed", "params:offset"], "out", name="total"),
    ]
)


def _catalog(raw: list[int] | None = None, offset: int = 0) -> DataCatalog:
    return DataCatalog({"raw": MemoryDataset(raw or [1, 2, 3]), "params:offset": MemoryDataset(offset)})


def _new_process() -> None:
    """What a new ``kedro run`` process starts without: luigi's instance cache (every node run made)."""
    luigi.task_register.Register.clear_instance_cache()


def _made() -> set[str]:
    """The nodes whose node run luigi's instance cache holds (made since ``_new_process``)."""
    cache = luigi.task_register.Register._Register__instance_cache  # type: ignore[attr-defined]
    return {str(task.node_name) for task in (cache or {}).values() if isinstance(task, KedroNodeRun)}


def _run(workspace: str, catalog: DataCatalog) -> KartRunner:
    runner = KartRunner(workspace_directory=workspace)
    runner.run(PIPELINE, catalog)
    return runner


def _cache_file(workspace: str, node_name: str, output: str) -> Path:
    (found,) = Path(workspace, "kedro", "_").glob(f"{node_name}__{output}_*.pkl")
    return found


def _manifest_of(cache: Path) -> Path:
    unique_id = cache.stem.rsplit("_", 1)[1]
    return Path(cache.parents[2], "log", "manifest", f"KedroNodeRun_{unique_id}.json")


@pytest.fixture
def cached(workspace: str) -> str:
    """A workspace where every node of PIPELINE ran once, then a new process's state."""
    assert _run(workspace, _catalog()).last_run == {"start": "ran", "times": "ran", "total": "ran"}
    _new_process()
    return workspace


def test_a_cached_run_makes_the_node_runs_of_the_first_node_and_of_the_outputs_it_loads_only(cached: str) -> None:
    catalog = _catalog()
    assert _run(cached, catalog).last_run == {"start": "cached", "times": "cached", "total": "cached"}
    assert catalog.load("out") == 12
    assert _made() == {"start", "total"}  # start: the run's first check; total: its output handed back


def test_a_truncated_output_checked_by_id_is_refused_when_it_is_loaded(
    cached: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _cache_file(cached, "times", "timed")
    cache.write_bytes(cache.read_bytes()[:-3])
    catalog = _catalog(offset=1)  # total runs, so it loads the output of times, served by id
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        runner = _run(cached, catalog)
    assert runner.last_run == {"start": "cached", "times": "ran", "total": "ran"}
    assert runner.last_reasons["times"] == "its cached output 'timed' was damaged"
    assert catalog.load("out") == 13
    assert any("node 'times' runs again" in record.getMessage() for record in caplog.records)


def test_an_output_missing_from_its_manifest_is_named_by_its_bytes_not_served_by_id(cached: str) -> None:
    """Its record names no content: the node run's own check names it by its bytes, so its reader's key changes."""
    manifest = _manifest_of(_cache_file(cached, "times", "timed"))
    recorded = json.loads(manifest.read_text())
    recorded["outputs"] = {}
    manifest.write_text(json.dumps(recorded))
    catalog = _catalog()
    runner = _run(cached, catalog)
    assert runner.last_run == {"start": "cached", "times": "cached", "total": "ran"}
    assert runner.last_reasons["total"] == "upstream changed: timed"
    assert catalog.load("out") == 12
    assert "times" in _made()  # checked as the node run, not by id


def test_a_changed_upstream_reruns_the_node_checked_by_id(cached: str) -> None:
    catalog = _catalog(raw=[1, 2, 4])
    runner = _run(cached, catalog)
    assert runner.last_run == {"start": "ran", "times": "ran", "total": "ran"}
    assert catalog.load("out") == 14


def test_a_changed_node_function_reruns_the_node_checked_by_id(cached: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.FACTOR", 3)
    catalog = _catalog()
    runner = _run(cached, catalog)
    assert runner.last_run == {"start": "cached", "times": "ran", "total": "ran"}
    assert catalog.load("out") == 18


def test_with_signing_on_a_manifest_signed_with_another_key_is_refused(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "the first key of some length")
    assert _run(workspace, _catalog()).last_run == {"start": "ran", "times": "ran", "total": "ran"}
    _new_process()
    assert _run(workspace, _catalog()).last_run == {"start": "cached", "times": "cached", "total": "cached"}
    _new_process()
    monkeypatch.setenv("KART_SIGNING_KEY", "another key of some length")
    with pytest.raises(kart_core.errors.IntegrityError, match="signature is wrong"):
        _run(workspace, _catalog())


def _cache_file_all(workspace: str, node_name: str, output: str) -> list[Path]:
    return sorted(Path(workspace, "kedro", "_").glob(f"{node_name}__{output}_*.pkl"))


def _holds(path: Path, value: object) -> bool:
    return bool(pickle.loads(path.read_bytes()) == value)


def _times_plus_one(values: list[int]) -> list[int]:
    return [value * FACTOR + 1 for value in values]


def test_a_second_run_after_one_served_by_id_refuses_what_the_first_refuses(
    cached: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids and import scans the first run kept for the process (``_ids_by_values``, ``_scanned_imports``) serve
    no stale result: an edited node function, a truncated output and a changed upstream each rerun what they must."""
    assert _run(cached, _catalog()).last_run == {"start": "cached", "times": "cached", "total": "cached"}
    assert _made() == {"start", "total"}  # served by id: the node runs of the others were never made
    monkeypatch.setattr(times, "__code__", _times_plus_one.__code__)  # the same function object, edited code
    catalog = _catalog()
    assert _run(cached, catalog).last_run == {"start": "cached", "times": "ran", "total": "ran"}
    assert catalog.load("out") == 15
    monkeypatch.undo()  # the code as first cached: its runs (and their readers', by content) serve again
    assert _run(cached, _catalog()).last_run == {"start": "cached", "times": "cached", "total": "cached"}
    (cache,) = (path for path in _cache_file_all(cached, "times", "timed") if _holds(path, [2, 4, 6]))
    cache.write_bytes(cache.read_bytes()[:-3])
    catalog = _catalog(offset=1)  # total runs, so it loads the output of times, served by id
    runner = _run(cached, catalog)
    assert runner.last_run == {"start": "cached", "times": "ran", "total": "ran"}
    assert runner.last_reasons["times"] == "its cached output 'timed' was damaged"
    assert catalog.load("out") == 13
    catalog = _catalog(raw=[1, 2, 4])
    assert _run(cached, catalog).last_run == {"start": "ran", "times": "ran", "total": "ran"}
    assert catalog.load("out") == 14


class _Shouted(str):
    """A node name of a ``str`` subclass: equal to its text, but luigi serializes it as its ``str()``, shouted."""

    def __str__(self) -> str:
        return self.upper()

    __hash__ = str.__hash__


def test_a_key_of_a_str_subclass_value_is_not_named_by_the_id_of_the_equal_str() -> None:
    """``_ids_by_values`` compares values by equality: ``_Shouted("times") == "times"``. Its id is the node run's own
    (luigi's serialization), never the memo's entry for the plain string."""
    fields = {
        "project": "",
        "node_name": "times",
        "code": "c",
        "parameters": "p",
        "data": "d",
        "inputs": ("started",),
        "outputs": ("timed",),
        "upstream": (),
    }
    plain = NodeKey(fields)
    assert plain.unique_id == KedroNodeRun.keyed(**fields).make_unique_id()
    shouted = {**fields, "node_name": _Shouted("times")}
    assert shouted == fields
    _new_process()  # luigi's instance cache finds a task by equal values too: its own node run, made alone
    subclassed = NodeKey(shouted)
    assert subclassed.unique_id is None  # not of the plain form: the node run tells it
    assert subclassed.make_unique_id() != plain.unique_id
    assert str(subclassed.task.node_name) == "TIMES"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"inputs": (), "upstream": ()},
        {"inputs": ("a", "b\u00e9", 'q"uote'), "upstream": ("u1",), "project": "p"},
        {"outputs": ("o1", "o2", "o3"), "upstream": ("u1", "u2")},
    ],
)
def test_a_key_of_plain_values_is_named_as_its_node_run(changes: dict[str, Any]) -> None:
    """``NodeKey``'s strings and id from the fields alone (``_strings_and_id``) are the node run's own (luigi's
    serialization), for string lists of none, one and several items (escaped characters included)."""
    fields = {
        "project": "",
        "node_name": "times",
        "code": "c",
        "parameters": "p",
        "data": "d",
        "inputs": ("started",),
        "outputs": ("timed",),
        "upstream": (),
        **changes,
    }
    key = NodeKey(fields)
    task = KedroNodeRun.keyed(**fields)
    assert key.unique_id == task.make_unique_id()
    assert key.strings == luigi.Task.to_str_params(task, only_significant=True)


@pytest.mark.parametrize(
    "changes",
    [
        {"inputs": ["started"]},  # a list, not a tuple
        {"upstream": ("u1", 7)},  # an item not a str
        {"code": 7},  # a luigi.Parameter's value not a str
        {"outputs": "timed"},  # a str for a string list
    ],
)
def test_a_key_of_values_not_of_the_plain_form_is_named_by_its_node_run(changes: dict[str, Any]) -> None:
    fields = {
        "project": "",
        "node_name": "times",
        "code": "c",
        "parameters": "p",
        "data": "d",
        "inputs": ("started",),
        "outputs": ("timed",),
        "upstream": (),
        **changes,
    }
    assert NodeKey(fields).unique_id is None and NodeKey(fields).strings is None
    missing = {name: value for name, value in fields.items() if name != "data"}  # luigi would take a default
    assert NodeKey(missing).unique_id is None


def test_a_served_node_s_persistent_output_is_checked_by_its_key_s_paths(workspace: str, tmp_path: Path) -> None:
    """The states its run recorded are found by the key's paths (``NodeKey.record_paths``: the node run's own), so a
    served node with a persistent output makes no node run either; an output written outside kart still reruns it."""
    from kedro_datasets.json import JSONDataset

    def catalog() -> DataCatalog:
        found = _catalog()
        found["timed"] = JSONDataset(filepath=str(tmp_path / "timed.json"))
        return found

    assert _run(workspace, catalog()).last_run == {"start": "ran", "times": "ran", "total": "ran"}
    _new_process()
    assert _run(workspace, catalog()).last_run == {"start": "cached", "times": "cached", "total": "cached"}
    assert _made() == {"start", "total"}
    fields = {"project": "", "node_name": "times", "code": "c", "parameters": "p", "data": "d", "inputs": ("started",)}
    fields.update(outputs=("timed",), upstream=(), workspace_directory=workspace)
    task = KedroNodeRun.keyed(**fields)
    assert NodeKey(fields).record_paths(workspace) == (
        task.states_path(),
        kart_core.workspace.log_task_path(task, kart_core.workspace.TASK_LOG),
    )
    _new_process()
    (tmp_path / "timed.json").write_text("[7, 7, 7]")
    catalog_ = catalog()
    runner = _run(workspace, catalog_)
    assert runner.last_run == {"start": "cached", "times": "ran", "total": "cached"}
    assert runner.last_reasons["times"] == "output 'timed' holds data written outside kart"
    assert json.loads((tmp_path / "timed.json").read_text()) == [2, 4, 6]
