"""A symlinked folder in a workspace: followed when the link and its target are this user's (or root's), refused
otherwise, the same way by ``complete()``'s undo of a killed run's files and by ``kart verify --delete``
(``kart_core.confine``).

A user may make ``resources/<task>/`` a symlink to a bigger disk (gokart users do); another user with write
access to a shared workspace may plant one, or swap a folder for one, to get the files named by a killed run's
marker deleted in the link's target. Before, ``complete()``'s undo went by path and followed any link, and
``kart verify --delete`` refused every link, the user's own included. Links "of another user" are made with
``lchown`` (needs root: skipped otherwise). Real files, a real second process flipping the folder; no mocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import kart_core
from kart_core.cli import cli
from kart_core.commit_marker import DIRECT, Marker, host_identity
from kart_core.confine import open_folder
from kart_core.errors import UnsafeFolderError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.workspace import MANIFEST, log_task_path

_OTHER_USER = 12345


class Kept(kart_core.TaskOnKart[str]):
    """One output in its own folder ``sub/``: the folder made a symlink."""

    def output(self) -> kart_core.TargetOnKart:
        return self.make_target("sub/keep.pkl")

    def run(self) -> None:
        self.dump("hello")


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file another user's needs root (chown)")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _killed_writer(task: Kept, key: str, pid: int | None = None) -> Path:
    """A killed by-path writer's ``.committing`` marker of this host naming the task's own output ``key``."""
    marker = Path(
        log_task_path(task, MANIFEST).removeprefix("file://").removesuffix(MANIFEST.extension) + ".committing"
    )
    marker.write_bytes(Marker("x", host_identity(), pid or _dead_pid(), 0.0, DIRECT, ((key, None),)).to_bytes())
    return marker


def _built(workspace: str) -> tuple[Kept, Path, str]:
    task = Kept(workspace_directory=workspace)
    assert kart_core.build(task, log_level=40, reset_register=False) == "hello"
    output = Path(task.output().path().removeprefix("file://"))
    return task, output, f"sub/{output.name}"


def _link_sub(output: Path, target: Path, link_owner: int | None = None) -> None:
    """``sub`` (the output's folder) replaced by a symlink to ``target`` holding a file of the output's name."""
    (target / output.name).write_text("precious")
    output.parent.rename(output.parent.with_name("sub.real"))
    output.parent.symlink_to(target)
    if link_owner is not None:
        os.lchown(output.parent, link_owner, link_owner)


@pytest.fixture(params=["path", "file-url"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "ws") if request.param == "path" else f"file://{tmp_path}/ws"


def test_complete_refuses_to_undo_through_another_users_symlinked_folder(tmp_path: Path, workspace: str) -> None:
    _needs_root()
    task, output, key = _built(workspace)
    victim = tmp_path / "victim"
    victim.mkdir()
    _link_sub(output, victim, link_owner=_OTHER_USER)
    marker = _killed_writer(task, key)
    with pytest.raises(UnsafeFolderError, match=r"goes through 'sub', a symbolic link owned by user 12345") as error:
        Kept(workspace_directory=workspace).complete()
    assert "Kept[" in str(error.value) and "chown -h" in str(error.value)
    assert error.value.folder == "sub" and error.value.owner == _OTHER_USER
    assert (victim / output.name).read_text() == "precious"
    assert marker.exists()


def test_complete_refuses_a_link_of_this_user_to_another_users_folder(tmp_path: Path) -> None:
    _needs_root()
    task, output, key = _built(str(tmp_path / "ws"))
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chown(victim, _OTHER_USER, _OTHER_USER)
    _link_sub(output, victim)
    _killed_writer(task, key)
    with pytest.raises(UnsafeFolderError, match=r"'sub', a symbolic link to a folder owned by user 12345"):
        Kept(workspace_directory=str(tmp_path / "ws")).complete()
    assert (victim / output.name).read_text() == "precious"


def test_a_users_own_symlinked_folder_is_followed_by_complete_and_by_verify(tmp_path: Path, workspace: str) -> None:
    """``resources/<task>`` on a bigger disk: the killed run's partial file there is removed by either."""
    task, output, key = _built(workspace)
    big = tmp_path / "bigdisk"
    big.mkdir()
    _link_sub(output, big)
    _killed_writer(task, key)
    assert not Kept(workspace_directory=workspace).complete()
    assert not (big / output.name).exists()  # undone through the user's own link

    (big / output.name).write_text("partial")
    marker = _killed_writer(task, key)
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.direct_write]
    assert "was killed" in problem.detail
    removed = remove_damaged(report)
    assert not (big / output.name).exists() and not marker.exists()
    assert any(path.endswith(key) for path in removed)


def test_verify_refuses_another_users_link_naming_it(tmp_path: Path) -> None:
    _needs_root()
    task, output, key = _built(str(tmp_path / "ws"))
    victim = tmp_path / "victim"
    victim.mkdir()
    _link_sub(output, victim, link_owner=_OTHER_USER)
    marker = _killed_writer(task, key)
    result = CliRunner().invoke(cli, ["verify", "-w", str(tmp_path / "ws"), "--delete"])
    assert "'sub', a symbolic link owned by user 12345" in result.output
    assert (victim / output.name).read_text() == "precious"
    assert marker.exists()


def test_a_chain_of_links_is_judged_link_by_link(tmp_path: Path) -> None:
    """The user's link to a path through another user's link is refused at that link."""
    _needs_root()
    (tmp_path / "real").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared/d").symlink_to(tmp_path / "real")
    os.lchown(tmp_path / "shared/d", _OTHER_USER, _OTHER_USER)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws/sub").symlink_to(tmp_path / "shared/d")
    with pytest.raises(UnsafeFolderError, match="owned by user 12345") as error:
        open_folder(str(tmp_path / "ws"), ["sub"])
    assert error.value.folder.startswith("sub/")
    os.lchown(tmp_path / "shared/d", 0, 0)
    os.close(open_folder(str(tmp_path / "ws"), ["sub"]))


_FLIPPER = """
import os, sys
ws = sys.argv[1]
while True:  # sub is in turn the real folder and another user's symlink to the victim
    for source, name in (("sub.real", "sub"), ("sub", "sub.real"), ("sub.link", "sub"), ("sub", "sub.link")):
        try:
            os.rename(os.path.join(ws, source), os.path.join(ws, name))
        except OSError:
            pass
"""


def test_complete_never_undoes_through_a_folder_flipping_to_another_users_link(tmp_path: Path) -> None:
    """at9's race loop against complete()'s undo: on the old code the victim's file goes within a few tries."""
    _needs_root()
    workspace = str(tmp_path / "ws")
    task, output, key = _built(workspace)
    victim = tmp_path / "victim"
    victim.mkdir()
    output.parent.rename(output.parent.with_name("sub.real"))
    (Path(workspace) / "sub.link").symlink_to(victim)
    os.lchown(Path(workspace) / "sub.link", _OTHER_USER, _OTHER_USER)
    dead = _dead_pid()
    flipper = subprocess.Popen([sys.executable, "-c", _FLIPPER, workspace])
    try:
        deadline, tries = time.monotonic() + 15.0, 0
        while time.monotonic() < deadline and tries < 3000:
            (victim / output.name).write_text("precious")
            for real in (Path(workspace) / "sub.real", Path(workspace) / "sub"):
                try:
                    if not real.is_symlink():
                        (real / output.name).write_text("partial")
                except OSError:
                    pass
            _killed_writer(task, key, dead)
            try:
                Kept(workspace_directory=workspace).complete()
            except UnsafeFolderError:
                pass
            tries += 1
            assert (victim / output.name).exists(), f"removed outside the workspace after {tries} tries"
    finally:
        flipper.kill()
        flipper.wait()
    assert tries > 10
