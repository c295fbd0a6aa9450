"""Two hosts without a shared lock commit the same task at once: the later marker wins, the other run keeps its outputs.

Attacker at26 G1: two processes with their own lock folders (two machines, no redis) built a fresh task on object
storage at the same moment. Both found no manifest (object stores have no create-if-absent, so a first commit takes
the commit lock, here each its own) and both put their commit marker; the one whose marker the other overwrote failed
its build with ``MarkerLostError`` ("A run on another host that takes a commit for a killed one ..."), though the
other had committed a whole result, and its downstream tasks did not run. Now it waits for that commit to finish and
keeps its outputs, as a run beaten to the manifest does (``Transaction._yielded``).

The moment is chosen: right after this run's commit put its marker, another process (a fresh Python with its own
``KART_LOCK_DIR``) builds the same task to the end, so its marker replaces this run's and its commit finishes before
this run's first move. A rerun (a replacing commit) on local disk races the same way.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core import commit_marker
from kart_core.manifest import read_unverified
from kart_core.storage import storage_for

_MODULE = '''
import os
import kart_core


class Raced(kart_core.TaskOnKart):
    """Two outputs, each tagged with the process that wrote it."""

    def output(self):
        return {"a": self.make_target("raced/a.pkl"), "b": self.make_target("raced/b.pkl")}

    def run(self):
        self.dump(("a", os.getpid()), "a")
        self.dump(("b", os.getpid()), "b")
'''

_OTHER_HOST = """
import os
import sys
import time
import kart_core
from kart_core import commit_marker
import racedmod

workspace, rerun, flags = sys.argv[1], sys.argv[2] == "rerun", sys.argv[3]
real_put = commit_marker.put


def put_when_told(*args, **kwargs):
    # This host has settled its commit (no manifest of another commit found): say so, and put its marker only once
    # the first host has put its own and written its pending manifest.
    open(os.path.join(flags, "other settled"), "w").close()
    while not os.path.exists(os.path.join(flags, "first pending")):
        time.sleep(0.01)
    real_put(*args, **kwargs)


commit_marker.put = put_when_told
kart_core.build(racedmod.Raced(workspace_directory=workspace, rerun=rerun), reset_register=False, log_level=50)
"""


@pytest.fixture
def racedmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module of ``Raced``, importable here and in the other host's process; this host's own lock folder."""
    folder = tmp_path / "mod"
    folder.mkdir()
    (folder / "racedmod.py").write_text(_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks-here"))
    monkeypatch.delitem(sys.modules, "racedmod", raising=False)
    return importlib.import_module("racedmod")


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.01)


@pytest.mark.parametrize("rerun", [False, True], ids=["first build", "rerun"])
def test_a_commit_whose_marker_another_host_s_commit_replaced_keeps_that_commit(
    any_workspace: str, racedmod: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rerun: bool
) -> None:
    """Both hosts settle their commit, this one puts its marker and writes its pending manifest, the other puts its
    marker over it and commits to the end while this one waits before its first move; then this one goes on."""
    if rerun:
        kart_core.build(racedmod.Raced(workspace_directory=any_workspace), reset_register=False)
    elif "://" not in any_workspace:
        pytest.skip("a first commit on local disk creates its manifest exclusively (O_EXCL): it takes no marker")
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {
        **os.environ,
        "KART_LOCK_DIR": str(tmp_path / "locks-elsewhere"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "mod"), os.environ.get("PYTHONPATH", "")]),
    }
    other: list[subprocess.Popen[str]] = []
    real_put, real_check = commit_marker.put, commit_marker.FencedMoves.check

    def put_after_the_other_host_settled(*args: Any, **kwargs: Any) -> None:
        if not other:
            command = [sys.executable, "-c", _OTHER_HOST, any_workspace, "rerun" if rerun else "first", str(flags)]
            other.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            _wait_for(flags / "other settled", other[0])
        real_put(*args, **kwargs)

    def check_after_the_other_host_committed(self: commit_marker.FencedMoves) -> None:
        if not (flags / "first pending").exists():
            (flags / "first pending").touch()
            _, error = other[0].communicate(timeout=120)
            assert other[0].returncode == 0, error
        real_check(self)

    monkeypatch.setattr(commit_marker, "put", put_after_the_other_host_settled)
    monkeypatch.setattr(commit_marker.FencedMoves, "check", check_after_the_other_host_committed)
    value = kart_core.build(racedmod.Raced(workspace_directory=any_workspace, rerun=rerun), reset_register=False)
    assert other and other[0].returncode == 0
    writer = value["a"][1]
    assert writer == other[0].pid and value == {"a": ("a", writer), "b": ("b", writer)}  # the other host's, whole
    record = racedmod.Raced(workspace_directory=any_workspace).output()["a"].record
    storage = storage_for(record.manifest)
    manifest = read_unverified(storage, record.manifest)
    assert manifest is not None and not manifest.pending
    assert not storage.exists(commit_marker.marker_path(record))
    assert racedmod.Raced(workspace_directory=any_workspace).complete()
    assert kart_core.build(racedmod.Raced(workspace_directory=any_workspace), reset_register=False) == value


def test_a_commit_whose_marker_a_killed_host_left_in_its_place_still_fails(
    any_workspace: str, racedmod: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another commit's marker that stands unchanged (its committer killed before it finished) is not waited for
    past the lease: the run fails naming it, and the task stays incomplete."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.6")
    kart_core.build(racedmod.Raced(workspace_directory=any_workspace), reset_register=False)
    real_put = commit_marker.put

    def put_then_a_dead_host_s_marker(storage: Any, record: Any, commit: str, signer: Any = None) -> None:
        real_put(storage, record, commit, signer)
        dead = commit_marker.Marker("d" * 32, "elsewhere.example", 4242, 0.0)
        with storage.atomic_write(commit_marker.marker_path(record)) as file:
            file.write(dead.to_bytes())

    monkeypatch.setattr(commit_marker, "put", put_then_a_dead_host_s_marker)
    with pytest.raises(kart_core.GokartBuildError, match=r"MarkerLostError.*process 4242 on elsewhere\.example"):
        kart_core.build(racedmod.Raced(workspace_directory=any_workspace, rerun=True), reset_register=False)
