"""kart_core.runlog: the five gokart run logs, or two for a ``kart_compact_run_logs`` class, read back by every reader."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import luigi

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
