"""A killed rerun never costs a good old output that has no integrity record (one gokart wrote, no manifest yet).

Its rerun writes the output by path under a private name (``kart_core.direct_write``); a SIGKILL half way leaves
the private file and the writer's marker (``.kart-writing`` with records off; the ``direct`` marker beside the
manifest with records on). Before: the old file was deleted when the rerun was armed (gokart's behaviour, which
kart kept for outputs without a record), and ``kart verify --delete`` took a dead writer's ``.kart-writing`` marker
for a partial file at the output's path and deleted that file. Now the old output stays until the rerun's commit
replaces it (its stamp tells whether it did), and ``kart verify --delete`` removes the marker and the private file
only; a file the run changed at the output's path (written in place) is still removed as partial.

Real kills: a process worker that SIGKILLs itself (process workers), or a build process killed (threads); local
disk and moto's S3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import luigi
import pytest
from stored_text import exists_fresh, get_text, put_text

import kart_core
from kart_core.commit_marker import writing_marker
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.storage import storage_for
from kart_core.target_config import RECORD_ENVIRONMENT_VARIABLE

LEASE = 30.0  # the ``where`` fixture's lease (tests/core/conftest.py)
HERE = str(Path(__file__).resolve().parent)


class Rewritten(kart_core.TaskOnKart[Any]):
    """Writes its output by path: ``half``, then (``die``) kills its own process, else ``whole``. ``in_place``:
    writes at the output's path computed by hand (not the name ``path()`` hands out)."""

    die = luigi.BoolParameter(default=False, significant=False)
    in_place = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("rewritten/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if self.in_place:
            path = path.rpartition("/")[0] + "/" + path.rpartition("/")[2].split(".", 2)[2]  # .kart-took-{hex}.{name}
        put_text(path, "half")
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        put_text(path, "whole")


def _killed_rerun(where: str, executor: str, **params: Any) -> None:
    """A rerun of ``Rewritten`` killed half way: a process worker of this build, or a whole build in a thread of a
    process of its own."""
    if executor == "process":
        task = Rewritten(die=True, rerun=True, workspace_directory=where, **params)
        with pytest.raises(kart_core.GokartBuildError, match="WorkerDiedError"):
            kart_core.build(task, workers=2, executor="process", log_level=50)
        return
    arguments = ", ".join(f"{name}={value!r}" for name, value in params.items())
    code = (
        f"import sys; sys.path.insert(0, {HERE!r}); import kart_core; "
        "from test_killed_rerun_keeps_output import Rewritten; "
        f"kart_core.build(Rewritten(die=True, rerun=True, workspace_directory={where!r}, {arguments}), log_level=50)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("executor", ["thread", "process"])
@pytest.mark.parametrize("records", ["false", "true"])
def test_a_killed_rerun_keeps_a_gokart_output_and_verify_delete_keeps_it_too(
    where: str, executor: str, records: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, records)
    task = Rewritten(workspace_directory=where)
    path = task.output().path()
    put_text(path, "old")  # as gokart wrote it: no manifest
    assert task.complete()
    if (
        "://" in where
    ):  # an object's time is to the second: the rerun starts after the file's second (damage._older_than_run)
        time.sleep(1.1)
    _killed_rerun(where, executor)
    assert get_text(path) == "old"  # before: deleted when the rerun was armed
    report = verify_workspace(where)
    [problem] = [each for each in report.problems if each.kind == "commit"]
    if records == "false":
        assert problem.path == writing_marker(path)
        assert "was killed" in problem.detail and f"{path!r} is kept" in problem.detail
    deleted = remove_damaged(report)
    assert path not in deleted and get_text(path) == "old"  # before: the old file was deleted as partial
    assert not exists_fresh(writing_marker(path))
    took = [
        each.relative
        for each in storage_for(where).walk(where, include_temporary=True)
        if ".kart-took-" in each.relative
    ]
    # With records off the private file goes with the marker that names it; the ``direct`` marker beside a manifest
    # names no private file (``kart gc`` sweeps it).
    assert len(took) == (records == "true")
    assert Rewritten(workspace_directory=where).complete()
    assert kart_core.build(Rewritten(rerun=True, workspace_directory=where), log_level=50) == ["whole"]
    assert get_text(path) == "whole"


def test_a_dead_writer_s_marker_over_a_file_it_changed_in_place_still_gets_the_file_removed(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run asked for the path but wrote at the output's path it computed itself: the file there is not the one
    the marker found (its stamp changed), so it may be partial and goes with the marker."""
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "false")
    task = Rewritten(workspace_directory=where)
    path = task.output().path()
    put_text(path, "old")
    _killed_rerun(where, "process", in_place=True)
    assert get_text(path) == "half"
    assert not Rewritten(workspace_directory=where).complete()
    report = verify_workspace(where)
    [problem] = [each for each in report.problems if each.kind == "commit"]
    assert "may be partial" in problem.detail
    assert path in remove_damaged(report)
    assert not exists_fresh(path) and not exists_fresh(writing_marker(path))


def test_a_marker_of_a_kart_that_wrote_in_place_still_gets_its_file_removed(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker without the new fields (kart before private names wrote the output's path itself)."""
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "false")
    task = Rewritten(workspace_directory=where)
    path = task.output().path()
    _killed_rerun(where, "process")
    marker = writing_marker(path)
    document = json.loads(get_text(marker))
    assert {"took", "found"} <= set(document)
    old = {key: value for key, value in document.items() if key not in ("took", "found")}
    put_text(marker, json.dumps(old))
    put_text(path, "half")
    report = verify_workspace(where)
    assert path in remove_damaged(report)
    assert not exists_fresh(path) and not exists_fresh(marker)
