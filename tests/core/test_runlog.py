"""kart_core.runlog: the five gokart run logs, two for a ``kart_compact_run_logs`` class, or none beside the manifest's run record (``kart_run_record_in_manifest``), read back by every reader."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.inspect import runs
from kart_core.tree.task_info import make_task_info_as_table


class RlPlain(kart_core.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.dump(list(range(self.n)))


class RlCompact(RlPlain):
    kart_compact_run_logs = True


def _logs(workspace: str, class_name: str) -> dict[str, Any]:
    """Run log kind -> value, for the one run of ``class_name`` in ``workspace``."""
    found = {}
    for folder in Path(workspace, "log").iterdir():
        for path in folder.glob(f"{class_name}_*"):
            found[folder.name] = path.read_text() if path.suffix == ".txt" else path.read_bytes()
    return found


def test_a_plain_task_writes_gokart_s_five_run_logs(workspace: str) -> None:
    kart_core.build(RlPlain(n=2, workspace_directory=workspace), reset_register=False)
    assert sorted(_logs(workspace, "RlPlain")) == [
        "manifest",
        "module_versions",
        "processing_time",
        "random_seed",
        "task_log",
        "task_params",
    ]


def test_a_compact_class_keeps_seed_versions_and_time_in_its_task_log(workspace: str) -> None:
    task = RlCompact(n=4, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    logs = _logs(workspace, "RlCompact")
    assert sorted(logs) == ["manifest", "task_log", "task_params"]
    task_log = pickle.loads(logs["task_log"])
    assert task_log["random_seed"] == {
        "seed": int(task.make_unique_id(), 16) % (2**32 - 1),
        "seed_methods": task_log["random_seed"]["seed_methods"],
    }
    assert "random.seed" in task_log["random_seed"]["seed_methods"]
    assert "luigi==" in task_log["module_versions"]
    assert isinstance(task_log["processing_time"], float) and task_log["processing_time"] >= 0
    assert task_log["file_path"] == [task.output().path()]
    assert pickle.loads(logs["task_params"]) == {"n": "4"}


def test_every_reader_finds_the_processing_time_of_a_compact_run(workspace: str) -> None:
    task = RlCompact(n=5, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    seconds = pickle.loads(_logs(workspace, "RlCompact")["task_log"])["processing_time"]
    task.task_log.clear()  # as a new process sees it: read from the stored task log
    assert task.get_processing_time() == seconds
    table = runs(workspace)
    assert table["status"].tolist() == ["complete"]
    assert table["processing_time"].tolist() == [seconds]
    tree = make_task_info_as_table(task)
    assert tree["processing_time"].tolist() == [f"{seconds}s"]


def test_a_compact_run_without_its_task_log_has_unknown_time(workspace: str) -> None:
    task = RlCompact(n=6, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    Path(task.kart_log_target("task_log", ".pkl").path()).unlink()
    task.task_log.clear()
    assert task.get_processing_time() == "unknown"
    assert runs(workspace)["status"].tolist() == ["unfinished"]


class RlRecorded(RlPlain):
    kart_run_record_in_manifest = True


class RlRecordedOdd(RlPlain):
    """Its task log holds a value JSON cannot hold: its run logs go to files."""

    kart_run_record_in_manifest = True

    def run(self) -> None:
        self.task_log["odd"] = {1, 2}
        self.dump([self.n])


def test_a_record_in_manifest_class_writes_its_run_record_into_the_manifest_only(workspace: str) -> None:
    task = RlRecorded(n=7, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    logs = _logs(workspace, "RlRecorded")
    assert sorted(logs) == ["manifest"]  # no run log file: one write per run
    document = json.loads(logs["manifest"])
    run = document["run"]
    assert run["task_params"] == {"n": "7"}
    assert run["task_log"]["file_path"] == [task.output().path()]
    assert run["task_log"]["random_seed"]["seed"] == int(task.make_unique_id(), 16) % (2**32 - 1)
    assert "luigi==" in run["task_log"]["module_versions"]
    seconds = run["task_log"]["processing_time"]
    assert isinstance(seconds, float) and seconds >= 0
    assert list(document["outputs"]) == [os.path.relpath(task.output().path(), workspace)]
    # Every reader finds it there, as a new process would.
    task.task_log.clear()
    assert task.get_task_params() == {"n": "7"}
    assert task.get_task_log()["file_path"] == [task.output().path()]
    assert task.get_processing_time() == seconds
    assert kart_core.stored_run_params(workspace, "RlRecorded", task.make_unique_id()) == {"n": "7"}
    assert RlRecorded.restore(task.make_unique_id(), workspace).n == 7
    table = runs(workspace)
    assert table["status"].tolist() == ["complete"]
    assert table["processing_time"].tolist() == [seconds]
    assert make_task_info_as_table(task)["processing_time"].tolist() == [f"{seconds}s"]
    assert kart_core.load_output(task) == list(range(7))  # the manifest still checks the output


def test_a_record_in_manifest_run_whose_output_changed_size_shows_as_damaged(workspace: str) -> None:
    task = RlRecorded(n=3, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    Path(task.output().path()).write_bytes(b"other")
    assert runs(workspace)["status"].tolist() == ["damaged output"]
    Path(task.output().path()).unlink()
    assert runs(workspace)["status"].tolist() == ["outputs missing"]


def test_a_task_log_json_cannot_hold_goes_to_the_compact_files(workspace: str) -> None:
    task = RlRecordedOdd(n=2, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    logs = _logs(workspace, "RlRecordedOdd")
    assert sorted(logs) == ["manifest", "task_log", "task_params"]
    assert "run" not in json.loads(logs["manifest"])
    assert pickle.loads(logs["task_log"])["odd"] == {1, 2}
    assert pickle.loads(logs["task_params"]) == {"n": "2"}


def test_without_the_integrity_record_the_run_logs_go_to_the_compact_files(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_INTEGRITY_RECORD", "0")
    task = RlRecorded(n=5, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    logs = _logs(workspace, "RlRecorded")
    assert sorted(logs) == ["task_log", "task_params"]
    task.task_log.clear()
    assert task.get_task_params() == {"n": "5"}


class RlRecordedClock(RlPlain):
    """Each run differs: its output and task log carry the run's clock reading."""

    kart_run_record_in_manifest = True

    def run(self) -> None:
        value = time.perf_counter_ns()
        self.task_log["value"] = value
        self.dump([value])


def test_a_rerun_replaces_the_run_record_with_its_outputs(workspace: str) -> None:
    """The replacing commit writes the manifest pending, then final, each with the new run's record."""
    kart_core.build(RlRecordedClock(workspace_directory=workspace), reset_register=False)
    manifest_path = next(Path(workspace, "log", "manifest").glob("RlRecordedClock_*.json"))
    first = json.loads(manifest_path.read_text())["run"]["task_log"]["value"]
    task = RlRecordedClock(workspace_directory=workspace, rerun=True)
    kart_core.build(task, reset_register=False)
    document = json.loads(manifest_path.read_text())
    assert "pending" not in document
    assert document["run"]["task_log"]["value"] != first
    assert kart_core.load_output(RlRecordedClock(workspace_directory=workspace)) == [
        document["run"]["task_log"]["value"]
    ]
    assert sorted(_logs(workspace, "RlRecordedClock")) == ["manifest"]  # no run log file
    assert [path.name for path in Path(workspace, "log", "manifest").glob("RlRecordedClock_*")] == [manifest_path.name]
