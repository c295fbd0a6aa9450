"""A killed by-path writer of an output without an integrity record: incomplete, reported by ``kart verify``,
undone by ``kart verify --delete`` (kart_core.inspect.writing), and only kart's own markers' files removed.

Two kinds of output have no manifest to put the ``.committing`` marker beside: a bare ``make_target`` outside
the workspace (G5), and, with ``integrity_record`` off, every output. Before: with records off a run killed while
writing an output by path left a partial file that counted as complete (no marker at all), and ``kart verify``
never looked at ``.kart-writing`` markers (so a killed writer outside the workspace left its partial file and
marker until the next build). Real kills: a process worker that SIGKILLs itself, or a build process killed;
local disk and moto's S3.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import luigi
import pytest
from click.testing import CliRunner
from stored_text import exists_fresh
from test_direct_write_outside import _killed_build, _read, writing_marker
from test_direct_write_outside import tasks as tasks  # noqa: F401 - a fixture

import kart_core
from kart_core.cli import cli
from kart_core.commit_marker import host_identity
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.storage import storage_for
from kart_core.target_config import RECORD_ENVIRONMENT_VARIABLE


class Partial(kart_core.TaskOnKart[Any]):
    """Writes its output by path: half of it, then (``die``) kills its own process, else the rest."""

    die = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("partial/out.txt")

    def run(self) -> None:
        path = self.output().path()
        storage = storage_for(path)
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with storage.file_system.open(path, "w") if "://" in path else open(path, "w") as file:  # type: ignore[attr-defined]
            file.write("half")
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        with storage.file_system.open(path, "w") if "://" in path else open(path, "w") as file:  # type: ignore[attr-defined]
            file.write("whole")


@pytest.fixture(params=["local", "s3", "gs"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder on local disk, or in a bucket on the S3 server or the GCS emulator."""
    if request.param == "local":
        return str(tmp_path / "ws")
    bucket = request.getfixturevalue("s3_bucket" if request.param == "s3" else "gcs_bucket")
    return f"{request.param}://{bucket}/ws"


def test_a_killed_process_worker_with_records_off_leaves_its_task_incomplete_and_verify_undoes_it(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "false")
    task = Partial(die=True, workspace_directory=where)
    with pytest.raises(kart_core.GokartBuildError, match="WorkerDiedError"):
        kart_core.build(task, workers=2, executor="process", log_level=40)
    path = task.output().path()
    marker = writing_marker(path)
    assert not exists_fresh(path)  # the run wrote its private file beside it (2026-12-02)
    with storage_for(path).atomic_write(path) as file:  # as a kart before 2026-12-02 left it: the half file in place
        file.write(b"half")
    assert not task.complete()  # before: True, the half file served as the output
    report = verify_workspace(where)
    [problem] = [p for p in report.problems if p.path == marker]
    assert problem.kind == "commit" and problem.task == task.kart_label()
    assert f"a run that wrote {path!r} by path (process " in problem.detail and "was killed" in problem.detail
    assert "`kart verify --delete` removes the file and the marker now" in problem.detail
    assert not report.notices  # the partial file is reported with its marker, not as an unrecorded output
    assert sorted(remove_damaged(report)) == sorted([path, marker])
    assert not exists_fresh(path) and not exists_fresh(marker)
    assert verify_workspace(where).problems == ()
    assert kart_core.build(Partial(workspace_directory=where)) == ["whole"]


def test_verify_reports_and_deletes_a_killed_writer_s_file_outside_the_workspace(
    tasks: Any, tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = str(tmp_path / "exports") if "://" not in where else where.rsplit("/", 1)[0] + "/exports"
    if "://" in where:  # an object outside the workspace is acted on only through a signed pointer (no owners there)
        monkeypatch.setenv("KART_SIGNING_KEY", "a secret")
    workspace = str(tmp_path / "ws")
    path, marker = f"{exports}/export.csv", writing_marker(f"{exports}/export.csv")
    _killed_build(tmp_path, "Export", exports, workspace)
    task = tasks.Export(where=exports, workspace_directory=workspace)
    shown = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert shown.exit_code == 3 and f"commit  {task.kart_label()}" in shown.output
    report = verify_workspace(workspace)
    [problem] = report.problems
    assert problem.kind == "commit" and problem.task == task.kart_label()
    assert problem.path.startswith(f"{workspace}/log/manifest/Export_{task.make_unique_id()}.")
    assert problem.path.endswith(".kart-writing")  # the pointer the run left in its workspace
    assert f"a run that wrote {path!r} by path" in problem.detail and "was killed" in problem.detail
    deleted = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert f"{problem.path}: {problem.detail} (deleted)" in deleted.output  # not "(undone: the old outputs are back)"
    assert not exists_fresh(path) and not exists_fresh(marker) and not exists_fresh(problem.path)
    assert verify_workspace(workspace).problems == ()
    kart_core.build(task)
    assert _read(path).endswith(b"a,b\n1,2\n")  # after a signature header with signing on


def _plant(marker: str, pid: int = 999999, **fields: Any) -> bytes:
    data = json.dumps({"task": "Export[deadbeef]", "host": host_identity(), "pid": pid, "time": 0.0, **fields})
    Path(marker).write_text(data)
    return data.encode()


def test_verify_delete_removes_nothing_a_planted_marker_names_outside_the_workspace(tmp_path: Path) -> None:
    from kart_core.inspect import writing  # new with this test

    workspace, victim = tmp_path / "ws", tmp_path / "victim"
    (workspace / "log" / "manifest").mkdir(parents=True)
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (victim / "other.txt").write_text("precious")
    # Through a symlinked folder inside the workspace (G8's way out), planted by another user.
    (workspace / "evil").symlink_to(victim)
    os.lchown(workspace / "evil", 12345, 12345)
    _plant(str(victim / ".keep.txt.kart-writing"))
    # A pointer and a marker of the same content beside another user's file in a shared folder.
    os.chown(victim / "other.txt", 12345, 12345)
    data = _plant(str(victim / ".other.txt.kart-writing"), path=str(victim / "other.txt"))
    (workspace / "log" / "manifest" / "Export_0123.abcdef012345.kart-writing").write_bytes(data)
    # A marker that is not kart's, and a live writer's (this process) beside files in the workspace.
    (workspace / "a.txt").write_text("a")
    (workspace / ".a.txt.kart-writing").write_text("not json")
    (workspace / "b.txt").write_text("b")
    _plant(str(workspace / ".b.txt.kart-writing"), pid=os.getpid())
    report = verify_workspace(str(workspace))
    details = {p.path.removeprefix(str(workspace) + "/"): p.detail for p in report.problems}
    # The walk does not enter linked folders; asked for that marker by name, kart refuses it all the same.
    [through] = writing.find(str(workspace), ["evil/.keep.txt.kart-writing"])
    assert "leads out of the workspace through 'evil', a symbolic link owned by user 12345" in through.detail
    assert through.removes == ()
    assert writing.undo(str(workspace), through.path) == []
    assert "different owners" in details["log/manifest/Export_0123.abcdef012345.kart-writing"]
    assert "is not a marker of kart's" in details[".a.txt.kart-writing"]
    assert "is still running" in details[".b.txt.kart-writing"]
    assert remove_damaged(report) == []
    assert (victim / "keep.txt").read_text() == (victim / "other.txt").read_text() == "precious"
    assert (workspace / "a.txt").exists() and (workspace / "b.txt").exists()


def test_verify_delete_gives_a_file_url_every_local_check(tmp_path: Path) -> None:
    """at9 J1/J2: ``file://`` is local disk (kart's own form for ``make_target("file:///...")``); any "://" used
    to skip the owner, symlink, regular-file and inside-the-workspace checks, so a planted ``file://`` pointer
    deleted another user's file in a shared folder, and a ``file://`` folder crashed ``--delete``."""
    from kart_core.inspect import writing

    workspace, shared = tmp_path / "ws", tmp_path / "shared"
    pointers = workspace / "log" / "manifest"
    pointers.mkdir(parents=True)
    shared.mkdir()
    (shared / "precious.txt").write_text("precious")
    os.chown(shared / "precious.txt", 12345, 12345)  # another user's file: the planted marker is ours
    data = _plant(str(shared / ".precious.txt.kart-writing"), path=f"file://{shared}/precious.txt")
    (pointers / "Export_0123.abcdef012345.kart-writing").write_bytes(data)
    (shared / "folder").mkdir()
    (shared / "folder" / "inner.txt").write_text("precious")
    data = _plant(str(shared / ".folder.kart-writing"), path=f"file://{shared}/folder")
    (pointers / "Export_4567.abcdef012345.kart-writing").write_bytes(data)
    report = verify_workspace(str(workspace))
    details = {p.path.removeprefix(str(workspace) + "/"): p.detail for p in report.problems}
    assert "different owners" in details["log/manifest/Export_0123.abcdef012345.kart-writing"]
    assert (
        "is not a regular file (a folder is left to you)"
        in details["log/manifest/Export_4567.abcdef012345.kart-writing"]
    )
    deleted = CliRunner().invoke(cli, ["verify", "-w", str(workspace), "--delete"])
    assert deleted.exit_code == 3 and "(deleted)" not in deleted.output, deleted.output  # before: IsADirectoryError
    assert (shared / "precious.txt").read_text() == (shared / "folder" / "inner.txt").read_text() == "precious"
    # The workspace itself given as a URL: a folder of it linked out is still refused (the walk skips it; by name).
    (workspace / "evil").symlink_to(shared)
    os.lchown(workspace / "evil", 12345, 12345)
    (shared / "keep.txt").write_text("precious")
    _plant(str(shared / ".keep.txt.kart-writing"))
    url = f"file://{workspace}"
    [through] = writing.find(url, ["evil/.keep.txt.kart-writing"])
    assert "through 'evil', a symbolic link owned by user 12345" in through.detail and through.removes == ()
    assert writing.undo(url, f"{url}/evil/.keep.txt.kart-writing") == []
    assert (shared / "keep.txt").read_text() == "precious"


def test_verify_delete_removes_through_the_judged_folder_not_a_symlink_put_there_since(tmp_path: Path) -> None:
    """at9 J6/J6b: ``undo`` judged by path, then removed by path: a folder swapped for a symlink in between got
    a file outside it deleted. The removal now goes through a folder descriptor opened without following links
    (inside the workspace) and judges the marker and file again through it. The race made deterministic: the
    judgement is taken with the real folder, the swap done, then the removal step run on that judgement."""
    from kart_core.inspect import writing

    workspace, victim, shared = tmp_path / "ws", tmp_path / "victim", tmp_path / "shared"
    (workspace / "log" / "manifest").mkdir(parents=True)
    for folder in (workspace / "evil", victim, shared / "d"):
        folder.mkdir(parents=True)
    (victim / "keep.txt").write_text("precious")
    # Inside the workspace: ws/evil is a real folder with a killed writer's marker and file when judged.
    _plant(str(workspace / "evil" / ".keep.txt.kart-writing"))
    (workspace / "evil" / "keep.txt").write_text("partial")
    relative = "evil/.keep.txt.kart-writing"
    [judged] = writing.find(str(workspace), [relative])
    assert judged.removes == (str(workspace / "evil" / "keep.txt"), str(workspace / relative))
    (workspace / "evil").rename(workspace / "evilreal")
    (workspace / "evil").symlink_to(victim)  # the swap (another user's link); the victim folder needs no marker
    os.lchown(workspace / "evil", 12345, 12345)
    removed: list[str] = []
    with pytest.raises(OSError):  # UnsafeFolderError: ws/evil opened with O_NOFOLLOW, the link not ours
        writing._remove(str(workspace), relative, judged, "", removed)
    assert removed == [] and (victim / "keep.txt").read_text() == "precious"
    # The same with a marker planted in the victim folder too (J6's first run): still refused.
    _plant(str(victim / ".keep.txt.kart-writing"))
    with pytest.raises(OSError):
        writing._remove(str(workspace), relative, judged, "", removed)
    assert removed == [] and (victim / "keep.txt").read_text() == "precious"
    # Outside the workspace (J6b): a pointer naming shared/d/keep.txt, shared/d the planter's own folder when
    # judged (its marker, its file: one owner), then a symlink to the victim's folder holding the victim's file.
    os.chown(victim / "keep.txt", 12345, 12345)
    data = _plant(str(shared / "d" / ".keep.txt.kart-writing"), path=str(shared / "d" / "keep.txt"))
    (shared / "d" / "keep.txt").write_text("partial")
    pointer = "log/manifest/Export_0123.abcdef012345.kart-writing"
    (workspace / pointer).write_bytes(data)
    [judged] = writing.find(str(workspace), [pointer])
    assert judged.removes == (
        str(shared / "d" / "keep.txt"),
        str(shared / "d" / ".keep.txt.kart-writing"),
        str(workspace / pointer),
    )
    (shared / "d").rename(shared / "dreal")
    (shared / "d").symlink_to(victim)
    (victim / ".keep.txt.kart-writing").write_bytes(data)  # even a copy of the marker there: the owners differ
    with pytest.raises(writing._Refused):
        writing._remove(str(workspace), pointer, judged, str(workspace / pointer), removed)
    assert removed == [] and (victim / "keep.txt").read_text() == "precious"
    assert (workspace / pointer).exists()
    # Unswapped, the same removal removes exactly the judged files.
    (shared / "d").unlink()
    (shared / "dreal").rename(shared / "d")
    assert writing.undo(str(workspace), str(workspace / pointer)) == list(judged.removes)
    assert sorted(os.listdir(shared / "d")) == [] and not (workspace / pointer).exists()


def test_verify_delete_refuses_a_pointer_to_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """at9 J8: a planted pointer whose path is relative named files from the verifier's working folder."""
    from kart_core.inspect import writing

    workspace, cwd = tmp_path / "ws", tmp_path / "cwd"
    (workspace / "log" / "manifest").mkdir(parents=True)
    cwd.mkdir()
    (tmp_path / "victim").write_text("precious")
    data = _plant(str(tmp_path / ".victim.kart-writing"), path="../victim")
    pointer = workspace / "log" / "manifest" / "B_1.bbbbbbbbbbbb.kart-writing"
    pointer.write_bytes(data)
    monkeypatch.chdir(cwd)
    [found] = writing.find(str(workspace), ["log/manifest/B_1.bbbbbbbbbbbb.kart-writing"])
    assert "names the relative path '../victim'" in found.detail and found.removes == ()
    assert writing.undo(str(workspace), str(pointer)) == []
    assert (tmp_path / "victim").read_text() == "precious" and pointer.exists()
