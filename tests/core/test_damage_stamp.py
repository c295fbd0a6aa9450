"""A manifest entry's stamp tells a load that the file it opened is the one the commit vouched for (``Entry.stamp``,
kart_core.damage).

Before, an output not newer than its manifest (by the manifest's modification time) counted as what the manifest
committed. ``cp -a``, ``rsync -a`` and ``tar x`` set that time too, so a manifest copied in ahead of its outputs (an
interrupted sync: ``log/`` sorts before the outputs' folders) vouched for the older local output of the same size
under it, and a task built meanwhile recorded the new commit with the old data: stale for good (attacker at20 K14). A
symlink to an older same-size file (a git-annex or DVC checkout) was judged by its target's old times (K5), and a
rewrite while the clock was behind the commit's time was trusted once the clock passed it (K9). Each entry now records
the committed file's inode and status-change time, which none of those reproduce: the load hashes any other file.
Real files, real copies (``cp -a``), real builds; the tasks are test_damage's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_damage import Suffixed, TwoOutputs, Word, _as_older_kart, _manifest, _warnings

import kart_core as gokart
from kart_core.damage import maybe_rewritten
from kart_core.inspect.verify import verify_workspace
from kart_core.manifest import Entry, Manifest, read_unverified
from kart_core.storage import storage_for
from kart_core.target import TargetOnKart


class Exclaimed(gokart.TaskOnKart[str]):
    """A second reader of Word, built only in the workspace the sync goes to."""

    def requires(self) -> Word:
        return Word(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + "!")


def _entry(task: gokart.TaskOnKart) -> Entry:
    manifest = read_unverified(storage_for(str(_manifest(task))), str(_manifest(task)))  # signed too
    assert manifest is not None
    target = task.output()
    assert isinstance(target, TargetOnKart) and target.record is not None
    return manifest.outputs[target.record.key]


def _stamp(path: str) -> tuple[int, int]:
    found = os.stat(path)
    return (found.st_ino, found.st_ctime_ns)


def _cp_a(source: Path, destination: Path) -> None:
    """``cp -a source/. destination/``: files copied with their times (as ``rsync -a`` and ``tar x`` do)."""
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", f"{source}/.", str(destination)], check=True)


def test_commits_record_the_stamp_of_the_file_in_place(workspace: str, signing: bool) -> None:
    """A first commit, a replacing commit (rerun) and a dump outside a run record the stamp of the file moved into
    place (after the move: a rename moves the status-change time). A signed commit records none: its seal binds the
    file to the commit."""
    up = Word(workspace_directory=workspace)
    gokart.build(Suffixed(workspace_directory=workspace), reset_register=False, log_level=50)
    expected = None if signing else _stamp(up.output().path())
    assert _entry(up).stamp == expected
    gokart.build(Word(workspace_directory=workspace, tag="v2", rerun=True), reset_register=False, log_level=50)
    assert _entry(up).stamp == (None if signing else _stamp(up.output().path()))
    up.output().dump("value-v3")
    assert _entry(up).stamp == (None if signing else _stamp(up.output().path()))
    assert up.output().load() == "value-v3"


def test_an_interrupted_sync_does_not_pass_the_old_output_for_the_new_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """K14: ``src`` rebuilt Word with other content of the same size; its ``log/`` is copied over ``ws`` with its
    times (the sync cut short before the outputs). Before: ws's old Word output loaded silently as src's commit, and
    Exclaimed, built then, recorded src's commit with the old data: stale for good once the sync completed."""
    ws, src = tmp_path / "ws", tmp_path / "src"
    assert gokart.build(Suffixed(workspace_directory=str(ws)), reset_register=False, log_level=50) == "value-v1+B"
    time.sleep(0.05)
    gokart.build(Word(workspace_directory=str(src), tag="v2"), reset_register=False, log_level=50)
    assert gokart.build(Suffixed(workspace_directory=str(src)), reset_register=False, log_level=50) == "value-v2+B"
    _cp_a(src / "log", ws / "log")
    up = Word(workspace_directory=str(ws))
    caplog.set_level(logging.WARNING)
    assert up.output().load() == "value-v1"  # what is there, no longer taken for src's commit: a new version
    assert "records it as a new version" in " ".join(_warnings(caplog))
    assert gokart.build(Exclaimed(workspace_directory=str(ws)), reset_register=False, log_level=50) == "value-v1!"

    _cp_a(src, ws)  # the sync runs again and completes
    assert up.output().load() == "value-v2"
    assert gokart.build(Suffixed(workspace_directory=str(ws)), reset_register=False, log_level=50) == "value-v2+B"
    # Before: "value-v1!": its record named Word's current commit
    assert gokart.build(Exclaimed(workspace_directory=str(ws)), reset_register=False, log_level=50) == "value-v2!"
    assert verify_workspace(str(ws)).ok


def test_a_symlink_to_an_older_same_size_file_is_a_new_version(
    workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """K5: Word's output replaced by a symlink to its older version kept aside (a git-annex or DVC checkout). Before:
    the link's target was older than the manifest, so it loaded silently as the current commit and Suffixed stayed
    cached on the new value."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"
    up = down.requires()
    kept = tmp_path / "annex" / "old.pkl"
    kept.parent.mkdir()
    shutil.copy2(up.output().path(), kept)  # the cache keeps the old version
    time.sleep(0.05)
    gokart.build(Word(workspace_directory=workspace, tag="v2", rerun=True), reset_register=False, log_level=50)
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v2+B"
    os.remove(up.output().path())
    os.symlink(kept, up.output().path())
    caplog.set_level(logging.WARNING)
    assert up.output().load() == "value-v1"
    assert "another file is in its place" in " ".join(_warnings(caplog))
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"  # stale: rerun on what loads now


def test_a_symlink_to_the_same_content_is_hashed_once(workspace: str, tmp_path: Path) -> None:
    """A symlink checkout of the committed content: no new version; the first load records the target's stamp, so
    the next one takes one stat."""
    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False, log_level=50)
    commit = _entry(up).commit
    kept = tmp_path / "annex" / "current.pkl"
    kept.parent.mkdir()
    shutil.move(up.output().path(), kept)
    os.symlink(kept, up.output().path())
    manifest = str(_manifest(up))
    assert maybe_rewritten(up.output().path(), manifest)
    time.sleep(0.06)  # a file changed this recently is not settled (a write right after could carry its time)
    assert up.output().load() == "value-v1"
    assert _entry(up).stamp == _stamp(str(kept)) and _entry(up).commit == commit
    assert not maybe_rewritten(up.output().path(), manifest)


def test_a_rewrite_while_the_clock_was_behind_the_commit_is_seen_after_it_passed(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """K9: a commit made while the clock was ahead (its manifest's time a second in the future, then the clock was
    stepped back); a same-size copy over the output right away (its change time before the manifest's); the load
    comes after the clock passed the manifest's time. Before: it loaded silently and Suffixed stayed cached."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"
    up = down.requires()
    manifest = _manifest(up)
    ahead = time.time_ns() + 1_000_000_000
    os.utime(manifest, ns=(ahead, ahead))
    Path(up.output().path()).write_bytes(pickle.dumps("value-v2"))  # cp over it: the same size, other content
    assert os.stat(up.output().path()).st_ctime_ns < manifest.stat().st_mtime_ns
    time.sleep(max(0.0, (ahead - time.time_ns()) / 1e9) + 0.1)  # the next pipeline run, after the clock passed it
    caplog.set_level(logging.WARNING)
    assert gokart.build(down, reset_register=False) == "value-v2+B"
    assert "records it as a new version" in " ".join(_warnings(caplog))


def test_a_copied_workspace_loads_without_damage_and_its_second_load_takes_one_stat(
    workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``cp -a`` of a whole workspace: every output has another stamp. The first load hashes, finds the committed
    content and records the copy's stamp (no new version, no rerun, the commit id kept); the next one is one stat."""
    assert gokart.build(Suffixed(workspace_directory=workspace), reset_register=False, log_level=50) == "value-v1+B"
    copy = tmp_path / "copy"
    _cp_a(Path(workspace), copy)
    down = Suffixed(workspace_directory=str(copy))
    up = down.requires()
    committed = {task: _entry(task).commit for task in (up, down)}
    assert maybe_rewritten(up.output().path(), str(_manifest(up)))
    time.sleep(0.06)
    caplog.set_level(logging.WARNING)
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    assert up.output().load() == "value-v1"
    assert _warnings(caplog) == []
    for task in (up, down):
        assert _entry(task).commit == committed[task]  # a settle is no commit: nothing downstream goes stale
        assert _entry(task).stamp == _stamp(task.output().path())
        assert not maybe_rewritten(task.output().path(), str(_manifest(task)))
    assert "ran" not in " ".join(_warnings(caplog)) and verify_workspace(str(copy)).ok


def test_a_settle_refuses_a_file_changed_too_recently_or_since_its_hash(workspace: str) -> None:
    from kart_core.damage import settle_stamp  # new here (the tests above also run against the code before it)

    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False, log_level=50)
    path, manifest, entry = up.output().path(), str(_manifest(up)), _entry(up)
    os.chmod(path, 0o600)  # the same content, another status-change time
    assert not settle_stamp(manifest, path, entry, os.stat(path))  # changed a moment ago
    time.sleep(0.06)
    hashed = os.stat(path)
    os.chmod(path, 0o644)  # after the hash the caller made
    assert not settle_stamp(manifest, path, entry, hashed)
    assert _entry(up).stamp == entry.stamp
    time.sleep(0.06)
    assert settle_stamp(manifest, path, entry, os.stat(path))
    assert _entry(up).stamp == _stamp(path) and _entry(up).commit == entry.commit


def test_an_older_manifest_without_stamps_keeps_the_time_rule(workspace: str) -> None:
    """A manifest kart wrote before stamps: its unchanged outputs load by two stats, no hash and no new version."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"
    _as_older_kart(workspace)
    up = down.requires()
    assert _entry(up).stamp is None
    assert not maybe_rewritten(up.output().path(), str(_manifest(up)))
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"
    assert up.output().load() == "value-v1" and _entry(up).stamp is None


def test_a_settle_does_not_hide_a_rewrite_of_a_sibling_without_a_stamp(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Attacker at17 H11's shape in a mixed manifest: b's entry has no stamp (older kart) and b was rewritten with
    other content of the same size after the manifest's time. Recording a's new stamp writes the manifest again,
    past b's change, which would hide b's rewrite from the time rule for good: a is not settled then (hashed again
    next time), and b's load still finds its new version."""
    two = TwoOutputs(workspace_directory=workspace)
    gokart.build(two, reset_register=False, log_level=50)
    manifest = Path(two.output()["a"].record.manifest)  # type: ignore[union-attr]  # a kart target's record
    current = Manifest.from_bytes(manifest.read_bytes())
    b_key = next(key for key in current.outputs if key.startswith("two/b"))
    outputs = {**current.outputs, b_key: dataclasses.replace(current.outputs[b_key], stamp=None)}
    before = manifest.stat()
    manifest.write_bytes(dataclasses.replace(current, outputs=outputs).to_bytes())
    os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(0.01)
    Path(two.output()["b"].path()).write_bytes(pickle.dumps("b-v2"))  # the same size, after the manifest's time
    os.chmod(two.output()["a"].path(), 0o600)  # a: the same content, another stamp
    time.sleep(0.06)
    assert two.output()["a"].load() == "a-v1"
    assert manifest.stat().st_mtime_ns == before.st_mtime_ns  # not written: b would look committed
    caplog.set_level(logging.WARNING)
    assert two.output()["b"].load() == "b-v2"
    assert "records it as a new version" in " ".join(_warnings(caplog))
