"""Two processes writing one task's output by path at once (kart_core.direct_write): one run's output is kept whole.

Without ``should_lock_run`` two builders of one task both ran it, each writing the output's path: one
truncated the other's half-written file, the first committed the second's bytes, or the second's
undo removed the first's committed file. Each writer here waits at the start of ``run()`` until the
other has started too, so both ask for the path at about the same moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kart_core.inspect.verify import verify_workspace

REPO = str(Path(__file__).resolve().parents[2])

_TASKS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    import luigi
    import kart_core
    from kart_core.storage import storage_for

    LINES = 400


    def _wait_for(folder, prefix, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len([name for name in os.listdir(folder) if name.startswith(prefix)]) >= 2:
                return
            time.sleep(0.01)


    class DwTwice(kart_core.TaskOnKart):
        tag = luigi.Parameter(significant=False)
        sync = luigi.Parameter(significant=False)

        def output(self):
            return self.make_target("dw/twice.txt")

        def run(self):
            Path(self.sync, "ready-" + self.tag).touch()
            _wait_for(self.sync, "ready-", 30)  # both runs started
            path = self.output().path()
            Path(self.sync, "got-" + self.tag).touch()
            lines = "".join(f"{self.tag}-{i}\\n" for i in range(LINES))
            half = len(lines) // 2
            if "://" in path:
                opener = storage_for(path).file_system.open
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                opener = open
            with opener(path, "w") as file:
                file.write(lines[:half])
                file.flush()
                # The other run asks for the path now (it waits for this run's lock since kart takes it).
                _wait_for(self.sync, "got-", 2)
                file.write(lines[half:])


    class DwTwiceCount(kart_core.TaskOnKart):
        upstream = kart_core.TaskInstanceParameter()

        def run(self):
            self.dump(len(self.load("upstream")))
    """
)

_BUILD = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    import kart_core
    from dwtasks import DwTwice, DwTwiceCount

    workspace, tag, sync, how = sys.argv[3:7]
    task = DwTwice(tag=tag, sync=sync, workspace_directory=workspace)
    if how == "process":
        count = kart_core.build(DwTwiceCount(upstream=task, workspace_directory=workspace), workers=2,
                                executor="process", log_level=40)
    else:
        count = None
        kart_core.build(task, log_level=40)
    print(json.dumps({"lines": task.output().load(), "count": count}))
    """
)


def _build_twice(tmp_path: Path, workspace: str, how: str) -> list[dict[str, object]]:
    (tmp_path / "dwtasks.py").write_text(_TASKS)
    (tmp_path / "build.py").write_text(_BUILD)
    sync = tmp_path / "sync"
    sync.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "build.py"), str(tmp_path), REPO, workspace, tag, str(sync), how],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for tag in ("A", "B")
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _one_writers_output(workspace: str, results: list[dict[str, object]]) -> None:
    """The committed output is one writer's whole output, both builds returned it, and it verifies."""
    task_lines = results[0]["lines"]
    assert isinstance(task_lines, list)
    tag = str(task_lines[0]).split("-")[0]
    assert task_lines == [f"{tag}-{i}" for i in range(400)]
    assert results[1]["lines"] == task_lines
    report = verify_workspace(workspace, hashes=True)
    assert report.ok, report.problems


@pytest.mark.parametrize("how", ["build", "process"])
def test_two_processes_writing_one_output_by_path_keep_one_whole_output(
    tmp_path: Path, workspace: str, how: str
) -> None:
    results = _build_twice(tmp_path, workspace, how)
    _one_writers_output(workspace, results)
    if how == "process":
        assert [result["count"] for result in results] == [400, 400]
    folder = Path(workspace, "dw")
    assert [name for name in os.listdir(folder) if name.startswith(".")] == []  # no file moved aside left


def test_on_object_storage_two_processes_writing_by_path_keep_one_whole_output(tmp_path: Path, s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/ws"
    results = _build_twice(tmp_path, workspace, "build")
    _one_writers_output(workspace, results)
