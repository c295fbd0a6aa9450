"""``kart verify --delete`` removes a damaged output, an unreadable manifest's outputs and a refused run log
through a descriptor of its folder opened from the workspace (``kart_core.inspect.confined``), never by path:
a folder of the workspace swapped for a symlink after ``kart verify`` looked removes nothing outside it.

Before, these removals went by path (``storage.remove(path)``): the swap (at9 J6's race, the shape of G8) got
the same-named file in the link's target deleted. The links here are made another user's (``lchown``), as an
attacker with write access to a shared workspace would plant them; that needs root (skipped otherwise). Real
files, a real second process flipping the folder, the real moto S3 server; no mocks.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import kart_core
from kart_core.cli import cli
from kart_core.inspect.gc import GcPlan, delete_unreachable
from kart_core.inspect.verify import Problem, VerifyReport, remove_damaged, verify_workspace
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, TASK_LOG, list_files, log_task_path

_OTHER_USER = 12345  # the attacker: any uid but ours and root's


class Confined(kart_core.TaskOnKart[str]):
    """One output in a folder of its own (``sub/``), the folder the attacker swaps."""

    def output(self) -> kart_core.TargetOnKart:
        return self.make_target("sub/out.pkl")

    def run(self) -> None:
        self.dump("hello")


def _foreign_link(link: Path, target: Path) -> None:
    """A symlink ``link -> target`` owned by another user (a plant in a shared workspace)."""
    if os.geteuid() != 0:
        pytest.skip("making a symlink another user's needs root (lchown)")
    link.symlink_to(target)
    os.lchown(link, _OTHER_USER, _OTHER_USER)


def _built(tmp_path: Path, workspace: str) -> tuple[Confined, Path]:
    task = Confined(workspace_directory=workspace)
    assert kart_core.build(task, log_level=40, reset_register=False) == "hello"
    return task, Path(task.output().path().removeprefix("file://"))


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    return folder


def _swap(folder: Path, victim: Path) -> None:
    """``folder`` (walked by verify) replaced by another user's symlink to ``victim``."""
    folder.rename(folder.with_name(folder.name + ".real"))
    _foreign_link(folder, victim)


@pytest.fixture(params=["path", "file-url"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The workspace as a plain path and as a ``file://`` URL (local disk either way, at9 J2)."""
    return str(tmp_path / "ws") if request.param == "path" else f"file://{tmp_path}/ws"


def test_a_damaged_output_whose_folder_became_a_symlink_is_not_removed_through_it(
    tmp_path: Path, workspace: str, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, output = _built(tmp_path, workspace)
    output.write_text("damaged, longer")
    report = verify_workspace(workspace)
    assert [(p.kind, p.path) for p in report.problems] == [("size", _as_given(workspace, output))]
    (victim / output.name).write_text("precious")
    _swap(output.parent, victim)
    assert remove_damaged(report) == []  # another file there than the scan saw (attacker at17 H2): left alone
    assert "the file changed since the scan" in caplog.text
    # Beneath that check, the removal itself never goes through the symlink: a report without the scan's stamp.
    unstamped = dataclasses.replace(report, problems=tuple(dataclasses.replace(p, seen=None) for p in report.problems))
    assert remove_damaged(unstamped) == []
    assert (victim / output.name).read_text() == "precious"
    assert "its path 'sub/" in caplog.text and "goes through 'sub', a symbolic link owned by user 12345" in caplog.text


def test_a_refused_run_log_is_not_removed_through_a_symlinked_log_folder(
    tmp_path: Path, workspace: str, victim: Path
) -> None:
    task, _ = _built(tmp_path, workspace)
    log = Path(log_task_path(task, TASK_LOG).removeprefix("file://"))
    log.write_bytes(b"not a pickle")
    report = verify_workspace(workspace)
    assert [p.kind for p in report.problems] == ["runlog"]
    (victim / log.name).write_text("precious")
    _swap(log.parent, victim)
    assert remove_damaged(report) == []
    assert (victim / log.name).read_text() == "precious"


def test_without_a_swap_the_damaged_output_and_unreadable_manifest_still_go(tmp_path: Path, workspace: str) -> None:
    """The confined removal removes what it should: the files of the workspace, by name, from the CLI."""
    task, output = _built(tmp_path, workspace)
    Path(log_task_path(task, MANIFEST).removeprefix("file://")).write_text("{not json")
    result = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert result.exit_code != 0 or "deleted" in result.output
    assert not output.exists()
    assert not Path(log_task_path(task, MANIFEST).removeprefix("file://")).exists()
    assert not Confined(workspace_directory=workspace).complete()


_FLIPPER = """
import os, sys
ws = sys.argv[1]
while True:  # sub is in turn the real folder verify walked and another user's symlink to the victim
    for source, name in (("sub.real", "sub"), ("sub", "sub.real"), ("sub.link", "sub"), ("sub", "sub.link")):
        try:
            os.rename(os.path.join(ws, source), os.path.join(ws, name))
        except OSError:
            pass
"""


@pytest.mark.parametrize("damage", ["output", "manifest"])
def test_a_folder_flipping_between_real_and_a_symlink_never_gets_a_file_outside_removed(
    tmp_path: Path, victim: Path, damage: str
) -> None:
    """at9 J6's race loop against the damaged-output removal and against an unreadable manifest's outputs (listed
    again by ``remove_damaged``, then removed): on the old code the victim's file goes within a few tries."""
    workspace = str(tmp_path / "ws")
    task, output = _built(tmp_path, workspace)
    manifest = Path(log_task_path(task, MANIFEST))
    if damage == "output":
        output.write_text("damaged, longer")
    else:
        manifest.write_text("{not json")
    report = verify_workspace(workspace)
    (problem,) = report.problems
    assert problem.kind == ("size" if damage == "output" else "manifest")
    output.parent.rename(output.parent.with_name("sub.real"))
    _foreign_link(Path(workspace) / "sub.link", victim)
    flipper = subprocess.Popen([sys.executable, "-c", _FLIPPER, workspace])
    try:
        deadline, tries = time.monotonic() + 15.0, 0
        while time.monotonic() < deadline and tries < 30000:
            (victim / output.name).write_text("precious")
            manifest.write_text("{not json")
            for real in (Path(workspace) / "sub.real", Path(workspace) / "sub"):
                try:
                    if not real.is_symlink():
                        (real / output.name).write_text("damaged, longer")
                except OSError:
                    pass
            remove_damaged(report)
            tries += 1
            assert (victim / output.name).exists(), f"removed outside the workspace after {tries} tries"
    finally:
        flipper.kill()
        flipper.wait()
    assert tries > 100


def test_on_s3_a_damaged_output_and_an_unreadable_manifests_outputs_go_and_nothing_beside_the_prefix(
    tmp_path: Path, s3_bucket: str
) -> None:
    """Object storage (moto): the removals stay keyed under the workspace (``ws/``), not a sibling ``ws-other/``."""
    workspace = f"s3://{s3_bucket}/ws"
    task = Confined(workspace_directory=workspace)
    assert kart_core.build(task, log_level=40, reset_register=False) == "hello"
    output = task.output().path()
    sibling = output.replace("/ws/", "/ws-other/", 1)
    storage = storage_for(output)
    with storage.atomic_write(sibling) as file:
        file.write(b"precious")
    with storage.atomic_write(output) as file:
        file.write(b"damaged, longer")
    report = verify_workspace(workspace)
    assert [(p.kind, p.path) for p in report.problems] == [("size", output)]
    assert remove_damaged(report) == [output]
    assert not storage.exists(output) and storage.exists(sibling)
    stray = VerifyReport(workspace, 0, 0, True, (Problem("size", sibling, "Confined[x]", "planted"),))
    assert remove_damaged(stray) == []  # a path not under the workspace is never removed
    assert storage.exists(sibling)


def _as_given(workspace: str, path: Path) -> str:
    return f"file://{path}" if workspace.startswith("file://") else str(path)


def test_kart_gc_removes_through_the_folder_it_planned_not_a_link_swapped_in_since(
    tmp_path: Path, workspace: str, victim: Path
) -> None:
    """``kart gc`` (``delete_unreachable``) removed its planned files by path: a folder swapped for another user's
    symlink after the plan got the same-named file in the link's target deleted."""
    _, output = _built(tmp_path, workspace)
    planned = [entry for entry in list_files(workspace) if entry.relative.startswith("sub/")]
    assert [entry.relative for entry in planned] == [f"sub/{output.name}"]
    (victim / output.name).write_text("precious")
    _swap(output.parent, victim)
    assert delete_unreachable(GcPlan(workspace=workspace, delete=planned, kept=[])) == []
    assert (victim / output.name).read_text() == "precious"
    output.parent.unlink()
    output.parent.with_name("sub.real").rename(output.parent)  # unswapped: the planned file goes
    assert delete_unreachable(GcPlan(workspace=workspace, delete=planned, kept=[])) == [planned[0].path]
    assert not output.exists()
