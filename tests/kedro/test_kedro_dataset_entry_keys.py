"""A TaskOnKartDataset catalog entry's own keys (``task``, ``params``, ``workspace_directory``, ``metadata``) when
they are wrong: Kedro's ``DataCatalog.from_config`` error names the entry, the key and what it takes, not Python's
words for the constructor call (attacker at24 F11)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest
from kart_kedro import TaskOnKartDataset
from kedro.io import DataCatalog, DatasetError
from kedro_test_tasks import Numbers


def _entry_error(entry: dict[str, Any]) -> str:
    """The message of the DatasetError Kedro raises creating catalog entry ``my_entry`` from ``entry``."""
    catalog = DataCatalog.from_config({"my_entry": {"type": "kart_kedro.TaskOnKartDataset", **entry}})
    with pytest.raises(DatasetError) as raised:
        catalog.get("my_entry")
    message = str(raised.value)
    assert "my_entry" in message  # Kedro names the entry
    assert "unexpected keyword argument" not in message and "dictionary update sequence" not in message
    return message


@pytest.mark.parametrize(
    "params",
    [[1], "size: 3", [["size", 3]], 3],
    ids=["a list", "a string", "a list of pairs", "a number"],
)
def test_params_that_are_not_a_mapping_name_params_and_its_shape(params: Any, workspace: str) -> None:
    message = _entry_error({"task": "kedro_test_tasks.Numbers", "params": params, "workspace_directory": workspace})
    assert "task 'kedro_test_tasks.Numbers': 'params' takes a mapping of parameter name to value" in message
    assert f"got {type(params).__name__} {params!r}" in message


def test_nested_task_params_that_are_not_a_mapping_name_the_nested_task(workspace: str) -> None:
    source = {"task": "kedro_test_tasks.Numbers", "params": [1]}
    message = _entry_error({"task": "kedro_test_tasks.Doubled", "params": {"source": source}})
    assert "task 'kedro_test_tasks.Numbers': 'params' takes a mapping" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"task": "kedro_test_tasks.Numbers", "param": {"size": 2}}, "no key 'param' (did you mean 'params'?)"),
        ({"tsk": "kedro_test_tasks.Numbers"}, "no key 'tsk' (did you mean 'task'?)"),
        ({"task": "kedro_test_tasks.Numbers", "workspace": "ws"}, "no key 'workspace' (did you mean 'workspace_dir"),
        ({"task": "kedro_test_tasks.Numbers", "colour": "red"}, "no key 'colour'. Its keys: type, task, params,"),
        (
            {"task": "kedro_test_tasks.Numbers", "size": 3},
            "no key 'size'; 'size' is a parameter of task 'kedro_test_tasks.Numbers': put it under 'params'",
        ),
        (
            {"task": "kedro_test_tasks.Numbers", "parms": {}, "tsk": "x"},
            "no key 'parms' (did you mean 'params'?) (and 'tsk')",
        ),
    ],
    ids=["param", "tsk", "workspace", "unknown", "a task parameter beside task", "two"],
)
def test_an_unknown_entry_key_is_named_with_the_closest_key(entry: dict[str, Any], expected: str) -> None:
    message = _entry_error(entry)
    assert f"TaskOnKartDataset: the entry has {expected}" in message


def test_an_entry_without_task_says_what_task_takes() -> None:
    message = _entry_error({"params": {"size": 3}})
    assert "the entry has no 'task' key; give it the dotted path of a TaskOnKart class" in message


@pytest.mark.parametrize("value", [5, 2.5, True, ["data", "kart"]], ids=["int", "float", "bool", "list"])
def test_a_workspace_directory_that_is_not_a_path_is_refused(
    value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``workspace_directory: 5`` built into a folder ``./5`` of the working directory."""
    monkeypatch.chdir(tmp_path)
    message = _entry_error({"task": "kedro_test_tasks.Numbers", "workspace_directory": value})
    assert "'workspace_directory' takes a folder path or URL as a string" in message
    assert f"got {type(value).__name__} {value!r}" in message
    assert list(tmp_path.iterdir()) == []


def test_a_path_like_workspace_directory_is_taken_as_its_path(tmp_path: Path) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 2}, tmp_path / "ws")
    assert dataset.task.workspace_directory == str(tmp_path / "ws")
    assert dataset.load() == [1, 2]
    assert Numbers(size=2, workspace_directory=str(tmp_path / "ws")).complete()


def test_good_entries_still_load_pickle_and_copy(workspace: str) -> None:
    catalog = DataCatalog.from_config(
        {
            "numbers": {
                "type": "kart_kedro.TaskOnKartDataset",
                "task": "kedro_test_tasks.Numbers",
                "params": {"size": 3},
                "workspace_directory": workspace,
                "metadata": {"kedro-viz": {"layer": "features"}},
            }
        }
    )
    assert catalog.load("numbers") == [1, 2, 3]
    dataset = catalog.get("numbers")
    for again in (pickle.loads(pickle.dumps(dataset)), copy.copy(dataset)):
        assert again.task.make_unique_id() == dataset.task.make_unique_id()
    assert catalog.to_config()[0]["numbers"]["params"] == {"size": 3}  # Kedro's record of the entry's keys
