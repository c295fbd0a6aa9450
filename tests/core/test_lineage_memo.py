"""kart_core.lineage.LineageMemo: a build of a root again in the same process takes each manifest of its lineage
whose file is unchanged (one stat) from what the previous build read, never across a change: a rerun of an upstream
with other content between two builds (in this thread, in another thread, in another process), a commit killed half
way, an output rewritten outside kart, a manifest rewritten in place with the same size or with its time set back.

Real builds and files on local disk. The memo keeps a manifest only when its file's times are older than a second
(file times tick coarsely); the tests that need kept manifests give the memo a clock a minute ahead instead of
waiting, which keeps what they just wrote (each change they then make is milliseconds apart: a new file, or times
that moved).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_lineage_interrupted import _dead_pid, _leave_pending
from test_lineage_requirements import FlByPath, FlLoads, FlLoadsByPath, FlUp

import kart_core
from kart_core import lineage
from kart_core.manifest import Manifest
from kart_core.orchestrate import orchestrate
from kart_core.task_memo import memo_of
from kart_core.workspace import MANIFEST, log_task_path

HERE = Path(__file__).resolve().parent


def _ahead() -> int:
    return time.time_ns() + 60_000_000_000


def _build(task: Any, **kwargs: Any) -> Any:
    return kart_core.build(task, reset_register=False, **kwargs)


def _top(ws: str) -> FlLoadsByPath:
    """Up <- ByPath (reads Up by path) <- Top (loads ByPath), with a memo that keeps what it reads at once."""
    top = FlLoadsByPath(workspace_directory=ws)
    memo_of(top).lineage = lineage.LineageMemo(clock=_ahead)
    return top


def _reads() -> int:
    """Read system calls this process made so far (Linux's /proc/self/io)."""
    with open("/proc/self/io") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("syscr:"))


def _check(path: str, memo: lineage.LineageMemo) -> Manifest | None:
    return lineage.Lineage(memo).manifest(path)


def _manifest(commit: str) -> bytes:
    document = {"commit": commit, "format": "kart-manifest/1", "outputs": {}, "requirements": True, "task": "T[1]"}
    return json.dumps(document, sort_keys=True).encode()


def test_a_second_build_takes_the_unchanged_manifests_from_the_memo(workspace: str) -> None:
    """The cached build checks Top's lineage (ByPath, Up) and keeps its manifests in the roots' memo; the next
    build of Top (another task object of the same graph: luigi's instance) finds it and stays cached."""
    top = _top(workspace)
    assert _build(top) == 1100
    memo = memo_of(top).lineage
    result = orchestrate([FlLoadsByPath(workspace_directory=workspace)], load_roots=True)
    assert result.values == [1100] and not result.ran
    assert memo_of(FlLoadsByPath(workspace_directory=workspace)).lineage is memo
    assert len(memo) == 3  # Top's (its complete() reads it), ByPath's and Up's


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts read system calls in /proc/self/io")
def test_an_unchanged_manifest_is_not_read_again(tmp_path: Path) -> None:
    path = tmp_path / "log" / "manifest" / "T_1.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(_manifest("a" * 32))
    memo = lineage.LineageMemo(clock=_ahead)
    first = _check(str(path), memo)
    start = _reads()
    before = _reads()  # what reading the count costs: before - start
    assert _check(str(path), memo) is first
    assert _reads() - before == before - start
    os.utime(path)  # the same bytes, another time: read again
    assert _check(str(path), memo) is not None
    assert _reads() - before > 2 * (before - start)


def test_a_manifest_rewritten_in_place_with_the_same_size_is_read_again(tmp_path: Path) -> None:
    """The same inode, the same size: the times moved (a write a few ms later; file times tick per kernel tick)."""
    path = tmp_path / "T_1.json"
    path.write_bytes(_manifest("a" * 32))
    memo = lineage.LineageMemo(clock=_ahead)
    assert _check(str(path), memo).commit == "a" * 32  # type: ignore[union-attr]
    inode = path.stat().st_ino
    time.sleep(0.05)
    with open(path, "r+b") as file:
        file.write(_manifest("b" * 32))
    assert path.stat().st_ino == inode
    assert _check(str(path), memo).commit == "b" * 32  # type: ignore[union-attr]


def test_a_manifest_rewritten_with_its_times_set_back_is_read_again(tmp_path: Path) -> None:
    """``touch -d`` (``os.utime``) sets the modification time back; the status change time moves all the same."""
    path = tmp_path / "T_1.json"
    path.write_bytes(_manifest("a" * 32))
    times = path.stat()
    memo = lineage.LineageMemo(clock=_ahead)
    assert _check(str(path), memo).commit == "a" * 32  # type: ignore[union-attr]
    time.sleep(0.05)
    path.write_bytes(_manifest("c" * 32))
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert path.stat().st_mtime_ns == times.st_mtime_ns
    assert _check(str(path), memo).commit == "c" * 32  # type: ignore[union-attr]


def test_a_manifest_written_within_the_last_second_is_not_kept(tmp_path: Path) -> None:
    """With the real clock: a second write in the tick of the first would leave the file's times as they were."""
    path = tmp_path / "T_1.json"
    path.write_bytes(_manifest("a" * 32))
    memo = lineage.LineageMemo()
    assert _check(str(path), memo) is not None
    assert len(memo) == 0


def test_a_missing_or_damaged_manifest_is_not_kept(tmp_path: Path) -> None:
    memo = lineage.LineageMemo(clock=_ahead)
    path = tmp_path / "T_1.json"
    assert _check(str(path), memo) is None
    path.write_bytes(_manifest("a" * 32)[:20])
    assert _check(str(path), memo) is None
    assert len(memo) == 0
    path.write_bytes(_manifest("a" * 32))
    assert _check(str(path), memo).commit == "a" * 32  # type: ignore[union-attr]


def test_an_upstream_rerun_with_other_content_between_two_builds_reruns_its_readers(workspace: str) -> None:
    top = _top(workspace)
    assert _build(top) == 1100
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 1100  # the memo holds ByPath and Up now
    _build(FlUp(value=2, rerun=True, workspace_directory=workspace))
    result = orchestrate([FlLoadsByPath(workspace_directory=workspace)], load_roots=True)
    assert result.values == [2100] and len(result.ran) == 2


def test_an_upstream_rerun_by_another_thread_between_two_builds_reruns_its_readers(workspace: str) -> None:
    top = _top(workspace)
    assert _build(top) == 1100
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 1100
    rerun = threading.Thread(target=_build, args=(FlUp(value=4, rerun=True, workspace_directory=workspace),))
    rerun.start()
    rerun.join()
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 4100


def test_an_upstream_rerun_by_another_process_between_two_builds_reruns_its_readers(workspace: str) -> None:
    top = _top(workspace)
    assert _build(top) == 1100
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 1100
    environment = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    environment["PYTHONPATH"] = os.pathsep.join([str(HERE), *sys.path])
    code = (
        "import kart_core, test_lineage_requirements as t; "
        f"print(kart_core.build(t.FlUp(value=3, rerun=True, workspace_directory={workspace!r}), log_level=40))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "30"
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 3100


def test_a_commit_killed_half_way_after_a_build_makes_its_readers_stale(workspace: str) -> None:
    """ByPath's manifest left pending by a dead committer (in place: its inode stays), then Up rerun with other
    content: the next build of Top runs ByPath again, then Top (test_lineage_interrupted, across a kept memo)."""
    top = _top(workspace)
    assert _build(top) == 1100
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 1100
    by_path = FlByPath(workspace_directory=workspace)
    _leave_pending(by_path, _dead_pid())
    _build(FlUp(value=2, rerun=True, workspace_directory=workspace))
    top = FlLoadsByPath(workspace_directory=workspace)
    verdict = lineage.stale_verdict([top.output()], lineage.Lineage(memo_of(top).lineage), top.kart_requires)
    assert verdict is not None and verdict.behind == [by_path.kart_label()]
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 2100


def test_a_commit_killed_half_way_alone_makes_its_readers_stale_across_a_kept_memo(workspace: str) -> None:
    """Only ByPath's manifest changes (in place, pending, its committer dead); no output moves, so only a fresh look
    at that manifest tells: Top is built on ByPath, whose rerun may change what Top loaded."""
    top = _top(workspace)
    assert _build(top) == 1100
    assert _build(FlLoadsByPath(workspace_directory=workspace)) == 1100
    by_path = FlByPath(workspace_directory=workspace)
    time.sleep(0.05)
    _leave_pending(by_path, _dead_pid())
    top = FlLoadsByPath(workspace_directory=workspace)
    verdict = lineage.stale_verdict([top.output()], lineage.Lineage(memo_of(top).lineage), top.kart_requires)
    assert verdict is not None and verdict.behind == [by_path.kart_label()]
    result = orchestrate([FlLoadsByPath(workspace_directory=workspace)], load_roots=True)
    assert result.values == [1100] and by_path.make_unique_id() in " ".join(result.ran)


class MemoTop(kart_core.TaskOnKart[int]):
    """Loads FlLoads (which loads FlUp through kart) and adds 1000."""

    def requires(self) -> FlLoads:
        return FlLoads(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1000)


def test_an_output_rewritten_outside_kart_between_two_builds_makes_its_reader_stale(workspace: str) -> None:
    """Up's output rewritten in place with the same size and other content (as gokart rerunning it would): the
    memo holds Up's manifest, unchanged, but the output's own stat is looked at on every check. Loads rerun and
    records the new version it loads (``kart_core.target``), then Top."""
    top = MemoTop(workspace_directory=workspace)
    memo_of(top).lineage = lineage.LineageMemo(clock=_ahead)
    assert _build(top) == 1012
    assert _build(MemoTop(workspace_directory=workspace)) == 1012
    assert len(memo_of(top).lineage) == 3
    output = FlUp(workspace_directory=workspace).output().path()
    up_manifest = log_task_path(FlUp(workspace_directory=workspace), MANIFEST)
    manifest_stat = os.stat(up_manifest)
    replaced = pickle.dumps(20, protocol=4)
    assert len(replaced) == len(Path(output).read_bytes()) and replaced != Path(output).read_bytes()
    time.sleep(0.05)
    with open(output, "r+b") as file:
        file.write(replaced)
    assert os.stat(up_manifest).st_mtime_ns == manifest_stat.st_mtime_ns
    assert _build(MemoTop(workspace_directory=workspace)) == 1022
