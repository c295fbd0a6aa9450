"""``kart verify --delete`` never removes or moves a file outside the workspace on a planted marker's or
manifest's word, through a symlinked folder inside the workspace (attacker at9 J7, the rest of at2 G8).

With signing off a ``.committing`` marker and the manifest beside it are read unverified; their paths were
checked lexically only (``commit_marker.workspace_key``), so ``evil/id_rsa`` with ``ws/evil -> victim/``
deleted ``victim/id_rsa`` and rmtree'd ``victim/projects``. Real files, the real CLI, no mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import kart_core
from kart_core.cli import cli
from kart_core.commit_marker import DIRECT, Marker, host_identity
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.workspace import MANIFEST, log_task_path

MANIFEST_STEM = "log/manifest/Ex_5caec6f2266e7a463fc0b32ca71b5c49"


def _direct_marker(moves: list[list[str | None]]) -> bytes:
    """A killed by-path writer's ``.committing`` marker of this host naming ``moves`` (commit_marker's own JSON form)."""
    return Marker(
        "x", host_identity(), _dead_pid(), 0.0, DIRECT, tuple((path, backup) for path, backup in moves)
    ).to_bytes()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _entry() -> dict[str, object]:
    return {"commit": "c", "digest": "xxh3_128:00", "owner": "t.Ex", "sealed": False, "size": 1}


def _plant(workspace: Path, keys: list[str], moves: list[list[str | None]] | None, pending: bool = False) -> Path:
    """A manifest listing ``keys`` and, when ``moves`` is given, a killed direct writer's marker naming them."""
    (workspace / "log/manifest").mkdir(parents=True, exist_ok=True)
    document: dict[str, object] = {
        "commit": "c",
        "format": "kart-manifest/1",
        "outputs": {key: _entry() for key in keys},
        "task": "Ex[5caec6f2]",
    }
    if pending:
        document["pending"] = True
    (workspace / f"{MANIFEST_STEM}.json").write_text(json.dumps(document))
    marker = workspace / f"{MANIFEST_STEM}.committing"
    if moves is not None:
        marker.write_bytes(_direct_marker(moves))
    return marker


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the workspace: a private key and a project tree."""
    folder = tmp_path / "victim"
    (folder / "projects/p1").mkdir(parents=True)
    (folder / "projects/p1/x").write_text("a")
    (folder / "id_rsa").write_text("precious")
    return folder


def _planted_link(link: Path, target: Path) -> None:
    """``link -> target`` as another user would plant it (a link of this user or root's is followed, by rule)."""
    if os.geteuid() != 0:
        pytest.skip("making a symlink another user's needs root (lchown)")
    link.symlink_to(target)
    os.lchown(link, 12345, 12345)


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_attackers_plant_through_a_symlinked_folder_deletes_nothing_outside(tmp_path: Path, victim: Path) -> None:
    """at9 J7 as reported: a file and a folder tree outside, through ``ws/evil -> victim``."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    _planted_link(workspace / "evil", victim)
    marker = _plant(workspace, ["evil/id_rsa", "evil/projects"], [["evil/id_rsa", None], ["evil/projects", None]])
    report = CliRunner().invoke(cli, ["verify", "-w", str(workspace)])
    assert "its path 'evil/id_rsa' goes through 'evil', a symbolic link owned by user 12345" in report.output
    assert "`kart verify --delete` now" not in report.output
    deleted = CliRunner().invoke(cli, ["verify", "-w", str(workspace), "--delete"])
    assert "removed" not in deleted.output
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}
    assert marker.exists()  # refused: left for the task's next run, which replaces it


def test_a_killed_writers_own_output_in_a_symlinked_folder_is_not_undone_by_verify(tmp_path: Path) -> None:
    """The variant with a single file: a real build's own output key (j9), its folder now a symlink out."""

    class Ex(kart_core.TaskOnKart[str]):
        def output(self) -> object:
            return self.make_target("evil/keep.txt")

        def run(self) -> None:
            self.dump("hello")

    workspace = tmp_path / "ws"
    task = Ex(workspace_directory=str(workspace))
    assert kart_core.build(task, log_level=40)
    (output,) = (workspace / "evil").iterdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / output.name).write_text("someone else's file")
    (workspace / "evil" / output.name).unlink()
    (workspace / "evil").rmdir()
    _planted_link(workspace / "evil", shared)
    key = f"evil/{output.name}"
    stem = log_task_path(task, MANIFEST).removesuffix(MANIFEST.extension)
    marker = Path(f"{stem}.committing")
    marker.write_bytes(_direct_marker([[key, None]]))
    report = verify_workspace(str(workspace))
    (problem,) = [p for p in report.problems if p.path == str(marker)]
    assert f"its path {key!r} goes through 'evil', a symbolic link owned by user 12345" in problem.detail
    assert remove_damaged(report) == []
    assert (shared / output.name).read_text() == "someone else's file"
    assert marker.exists()


def test_a_report_made_before_the_link_appeared_still_refuses_at_delete(
    tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check is made again, by the kernel (O_NOFOLLOW), when the undo acts: naming the marker and the path."""
    workspace = tmp_path / "ws"
    (workspace / "evil").mkdir(parents=True)
    (workspace / "evil/id_rsa").write_text("partial")
    marker = _plant(workspace, ["evil/id_rsa"], [["evil/id_rsa", None]])
    report = verify_workspace(str(workspace))
    assert any(p.path == str(marker) and p.direct_write for p in report.problems)
    (workspace / "evil/id_rsa").unlink()
    (workspace / "evil").rmdir()
    _planted_link(workspace / "evil", victim)
    assert remove_damaged(report) == []
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}
    assert marker.exists()
    assert f"left the marker {str(marker)!r} and every path it names alone" in caplog.text
    assert "'evil/id_rsa' goes through 'evil'" in caplog.text


def test_a_pending_manifest_naming_a_file_through_a_symlinked_folder_deletes_nothing_outside(
    tmp_path: Path, victim: Path
) -> None:
    """The same plant as an interrupted commit's pending manifest (no direct marker): its outputs stay."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    _planted_link(workspace / "evil", victim)
    _plant(workspace, ["evil/id_rsa"], None, pending=True)
    CliRunner().invoke(cli, ["verify", "-w", str(workspace), "--delete"])
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}


def test_a_symlinked_output_file_loses_the_link_only(tmp_path: Path, victim: Path) -> None:
    """A killed writer's output that is itself a symlink to a file outside: the link goes, the file stays."""
    workspace = tmp_path / "ws"
    (workspace / "out").mkdir(parents=True)
    (workspace / "out/id_rsa").symlink_to(victim / "id_rsa")
    marker = _plant(workspace, ["out/id_rsa"], [["out/id_rsa", None]])
    assert remove_damaged(verify_workspace(str(workspace))) == [str(marker), str(workspace / "out/id_rsa")]
    assert not os.path.lexists(workspace / "out/id_rsa")
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}


@pytest.mark.parametrize("key", ["../victim/id_rsa", "evil/../../victim/id_rsa", "out/../../victim/projects"])
def test_a_manifest_and_marker_naming_dotdot_paths_touch_nothing_outside(
    tmp_path: Path, victim: Path, key: str
) -> None:
    """'..' climbing out (lexically, or through a symlinked folder's parent) is refused; nothing is followed."""
    workspace = tmp_path / "ws"
    (workspace / "out").mkdir(parents=True)
    _planted_link(workspace / "evil", victim / "projects")
    marker = _plant(workspace, [key], [[key, None]])
    deleted = CliRunner().invoke(cli, ["verify", "-w", str(workspace), "--delete"])
    assert "removed" not in deleted.output
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}
    assert marker.exists()
    _plant(workspace, [key], None, pending=True)
    CliRunner().invoke(cli, ["verify", "-w", str(workspace), "--delete"])
    assert _files(victim) == {"id_rsa": "precious", "projects/p1/x": "a"}
