"""kart_core.build's gokart names: TaskDumpConfig (and build(task_dump_config=...)), LoggerConfig, WorkerSchedulerFactory.

File names and contents are compared with gokart 1.12.2 run in a separate process (``gokart_twin``).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import luigi
import pytest
from gokart_twin import run_both

import kart_core
from kart_core.build import (
    LoggerConfig,
    TaskDumpConfig,
    TaskDumpMode,
    TaskDumpOutputType,
    WorkerSchedulerFactory,
    process_task_info,
)
from kart_core.worker import Worker


class _Leaf(kart_core.TaskOnKart):
    n = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(self.n)


def test_default_config_reports_nothing(tmp_path: Path) -> None:
    assert TaskDumpConfig() == TaskDumpConfig(TaskDumpMode.NONE, TaskDumpOutputType.NONE)
    process_task_info(_Leaf(workspace_directory=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_half_a_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^Unsupported TaskDumpConfig: "):
        process_task_info(_Leaf(), TaskDumpConfig(mode=TaskDumpMode.TREE))


def test_print_logs_the_tree_at_info(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    task = _Leaf(workspace_directory=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="kart_core.build"):
        process_task_info(task, TaskDumpConfig(TaskDumpMode.TREE, TaskDumpOutputType.PRINT))
    assert caplog.records[-1].getMessage() == kart_core.make_tree_info(task)
    assert f"_Leaf[{task.make_unique_id()}]" in caplog.records[-1].getMessage()


def test_logger_config_sets_and_restores_only_the_build_logger() -> None:
    build_logger = logging.getLogger("kart_core.build")
    before, disabled = build_logger.level, logging.root.manager.disable
    with LoggerConfig(level=logging.WARNING) as config:
        assert build_logger.level == logging.WARNING
        assert config.default_level == before
        assert logging.root.manager.disable == disabled  # gokart disabled logging process-wide; kart does not
    assert build_logger.level == before


def test_gokarts_build_names_are_importable() -> None:
    build_module = importlib.import_module("kart_core.build")  # kart_core.build is also the function
    from kart_core.errors import GokartBuildError, HasLockedTaskException

    assert build_module.GokartBuildError is GokartBuildError
    assert build_module.HasLockedTaskException is HasLockedTaskException
    assert {"add", "run", "__enter__", "__exit__"} <= set(vars(build_module.WorkerProtocol))


def test_worker_scheduler_factory_makes_luigi_parts() -> None:
    import luigi.rpc
    import luigi.scheduler

    factory = WorkerSchedulerFactory()
    scheduler = factory.create_local_scheduler()
    assert isinstance(scheduler, luigi.scheduler.Scheduler)
    assert scheduler._config.prune_on_get_work is True and scheduler._config.record_task_history is False
    assert isinstance(factory.create_remote_scheduler("http://127.0.0.1:1"), luigi.rpc.RemoteScheduler)
    with factory.create_worker(scheduler, worker_processes=2) as worker:
        assert isinstance(worker, Worker) and worker.worker_processes == 2


_DUMP_SCRIPT = """
import json, logging, os, pickle, sys
import luigi
import gokart
from gokart.build import TaskDumpConfig, TaskDumpMode, TaskDumpOutputType

class Leaf(gokart.TaskOnKart):
    n = luigi.IntParameter(default=1)
    def run(self):
        self.dump(self.n)

class Top(gokart.TaskOnKart):
    leaf = gokart.TaskInstanceParameter()
    def run(self):
        self.dump(self.load("leaf") + 1)

def task():
    return Top(leaf=Leaf(n=2))

tree = TaskDumpConfig(mode=TaskDumpMode.TREE, output_type=TaskDumpOutputType.DUMP)
table = TaskDumpConfig(mode=TaskDumpMode.TABLE, output_type=TaskDumpOutputType.DUMP)
first = gokart.build(task(), task_dump_config=tree)
second = gokart.build(task(), task_dump_config=table)
folder = "resources/log/task_info"
names = sorted(os.listdir(folder))
text = open(os.path.join(folder, [n for n in names if n.endswith(".txt")][0])).read()
with open(os.path.join(folder, [n for n in names if n.endswith(".pkl")][0]), "rb") as f:
    frame = pickle.load(f)
try:
    gokart.build(task(), task_dump_config=TaskDumpConfig(mode=TaskDumpMode.NONE, output_type=TaskDumpOutputType.PRINT))
    error = None
except Exception as exc:
    error = [type(exc).__name__, str(exc).split(":")[0]]
print(json.dumps({
    "values": [first, second],
    "names": names,
    "tree_first_line": text.splitlines()[0],
    "tree_lines": len(text.splitlines()),
    "table_columns": list(frame.columns),
    "table_names": sorted(frame["name"]),
    "error": error,
}))
"""


@pytest.mark.slow
def test_task_dump_config_writes_what_gokart_writes(tmp_path: Path) -> None:
    results = run_both(_DUMP_SCRIPT, tmp_path)
    assert results["kart"] == results["gokart"]
    assert results["kart"]["names"] == [
        "Top_7757badf81370beccb26f204c5bddba5.pkl",
        "Top_7757badf81370beccb26f204c5bddba5.txt",
    ]
    assert results["kart"]["error"] == ["ValueError", "Unsupported TaskDumpConfig"]
