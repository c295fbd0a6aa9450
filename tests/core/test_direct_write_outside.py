"""An output outside its task's workspace written by path: a killed writer never leaves it counted complete.

``output()`` may return a bare ``make_target("/srv/exports/x.csv")`` (or an ``s3://`` URL) outside the
workspace: it has no integrity record, so no manifest to put the ``.committing`` marker beside. A run
killed while writing it by path left the partial file, and the next build counted the task complete
(G5). Now the run puts ``.{name}.kart-writing`` beside the output before ``run()`` gets the path and
removes it after the commit (or after a failed run's undo); while it is there the task is incomplete,
so the next build writes the output again. Real processes killed with SIGKILL; local disk and moto S3.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core.storage import storage_for

TASKS = textwrap.dedent(
    """
    import os, signal
    import luigi
    import kart_core
    from kart_core.storage import storage_for
    from kart_core.target import make_target

    def put(path, data, mode):
        if "://" in path:
            storage_for(path).file_system.pipe(path, data)  # an object is put whole: the writer puts it twice
        else:
            with open(path, mode) as file:
                file.write(data)

    class Export(kart_core.TaskOnKart):
        where = luigi.Parameter()
        how = luigi.Parameter(default="", significant=False)  # "die": killed half way; "fail": raises half way

        def output(self):
            return make_target(self.where + "/export.csv")

        def run(self):
            path = self.output().path()
            if "://" not in path:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            put(path, b"a,b\\n1,", "wb")
            if self.how == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "fail":
                raise RuntimeError("half way")
            put(path, b"a,b\\n1,2\\n" if "://" in path else b"2\\n", "ab")

    class DumpedExport(Export):
        def output(self):
            return make_target(self.where + "/export.pkl")

        def run(self):
            if self.how:
                super().run()
            else:
                self.dump("dumped")
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The task module, importable here and in the killed process."""
    (tmp_path / "outside_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("outside_tasks", None)
    return importlib.import_module("outside_tasks")


@pytest.fixture(params=["local", "s3"])
def exports(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder outside the workspace: on local disk, or in a bucket on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "exports")
    return f"s3://{request.getfixturevalue('s3_bucket')}/exports"


def writing_marker(path: str) -> str:
    """Where the marker lies: ``{dir}/.{name}.kart-writing`` (kart_core.commit_marker.writing_marker)."""
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name}.kart-writing"


def _killed_build(tmp_path: Path, name: str, where: str, workspace: str) -> None:
    code = (
        "import kart_core, outside_tasks; "
        f"kart_core.build(outside_tasks.{name}(where={where!r}, how='die', workspace_directory={workspace!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, env=os.environ.copy())
    assert done.returncode == -9, done.stderr.decode()[-2000:]


def _read(path: str) -> bytes:
    with storage_for(path).open_read(path) as file:
        return bytes(file.read())


def test_a_killed_writer_of_an_output_outside_the_workspace_leaves_it_incomplete(
    tasks: Any, tmp_path: Path, exports: str
) -> None:
    workspace = str(tmp_path / "ws")
    path, marker = f"{exports}/export.csv", writing_marker(f"{exports}/export.csv")
    _killed_build(tmp_path, "Export", exports, workspace)
    assert not storage_for(path).exists(path)  # the partial file is the run's private one, beside the path
    task = tasks.Export(where=exports, workspace_directory=workspace)
    assert not task.complete()  # before: True, and every build kept the half row
    assert storage_for(marker).exists(marker)
    kart_core.build(task)
    assert _read(path) == b"a,b\n1,2\n"
    assert task.complete()
    assert not storage_for(marker).exists(marker)


def test_a_failed_writer_removes_its_file_and_marker_and_a_dump_clears_a_killed_ones(
    tasks: Any, tmp_path: Path, exports: str
) -> None:
    workspace = str(tmp_path / "ws")
    path, marker = f"{exports}/export.csv", writing_marker(f"{exports}/export.csv")
    with pytest.raises(kart_core.GokartBuildError, match="RuntimeError: half way"):
        kart_core.build(tasks.Export(where=exports, how="fail", workspace_directory=workspace))
    assert not storage_for(path).exists(path)
    assert not storage_for(marker).exists(marker)

    # A killed by-path run, then a run of the same output that dumps: its commit removes the old marker.
    marker = writing_marker(f"{exports}/export.pkl")
    _killed_build(tmp_path, "DumpedExport", exports, workspace)
    task = tasks.DumpedExport(where=exports, workspace_directory=workspace)
    assert not task.complete()
    assert kart_core.build(task) == "dumped"
    assert task.complete()
    assert not storage_for(marker).exists(marker)
