"""A copied workspace is hashed once, not at every load (kart_core.damage.settle_copied).

Since 77b9000 an output counts as rewritten outside kart when the later of its modification and status-change times
is after its manifest's modification time (attacker at17 H3, at18 I10). ``cp -a``, ``chmod -R`` and ``cp -al`` move
every output's status-change time past its manifest's, so every load (and every staleness check of its readers)
hashed the output again, found the committed content, and remembered nothing: a copied workspace paid a full re-hash
on every load until each task was rebuilt. Now a matching hash settles the manifest (its modification time moves up
to its outputs' change time), in any process; a file written later, a sibling with other content and a file
written while it was hashed still count as rewritten. Real copies (``cp``, ``chmod``), real builds.

Since 2026-12-03 an unsigned manifest records each output's stamp (``Entry.stamp``: inode and status-change time):
such a copy gives every output another stamp, and a hash that finds the committed content records the new one
(``damage.settle_stamp``), output by output (an output no load or check has read yet is hashed at its first). A
signed manifest records none and is settled by its time as before.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import time
from pathlib import Path

import pytest
from test_damage import ReadsA, TwoOutputs, _copy_keeping_time, _rewrite

import kart_core as gokart
from kart_core.damage import maybe_rewritten
from kart_core.errors import GokartBuildError
from kart_core.inspect.verify import verify_workspace
from kart_core.manifest import read_unverified
from kart_core.storage import storage_for


def _cp_a(source: str, tmp_path: Path) -> str:
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-a", source, copy], check=True)
    return copy


def _chmod_r(source: str, tmp_path: Path) -> str:
    subprocess.run(["chmod", "-R", "g+w", source], check=True)
    return source


def _cp_al(source: str, tmp_path: Path) -> str:
    copy = str(tmp_path / "snapshot")
    subprocess.run(["cp", "-al", source, copy], check=True)
    return copy


def _unsettled(workspace: str) -> list[str]:
    """The outputs of ``workspace`` each load of which hashes it (``maybe_rewritten``: another stamp than its entry's,
    or for an entry without one newer than its manifest)."""
    found = []
    for manifest in sorted((Path(workspace) / "log" / "manifest").glob("*.json")):
        current = read_unverified(storage_for(str(manifest)), str(manifest))
        assert current is not None
        for key in current.outputs:
            if maybe_rewritten(os.path.join(workspace, key), str(manifest)):
                found.append(key)
    return found


@pytest.fixture(params=[_cp_a, _chmod_r, _cp_al], ids=["cp -a", "chmod -R", "cp -al"])
def copied(request: pytest.FixtureRequest, workspace: str, tmp_path: Path, signing: bool) -> str:
    """A built workspace (TwoOutputs and its reader), copied (or chmod-ed) as the parameter says."""
    assert gokart.build(ReadsA(workspace_directory=workspace), reset_register=False, log_level=50) == "a-v1+A"
    copy = str(request.param(workspace, tmp_path))
    assert len(_unsettled(copy)) == 3  # every output now looks newer than its manifest
    time.sleep(0.1)  # a file changed this recently is not settled (the clock's steps)
    return copy


def test_a_copied_workspace_is_hashed_once_then_its_loads_take_two_stats(copied: str, signing: bool) -> None:
    assert gokart.build(ReadsA(workspace_directory=copied), reset_register=False, log_level=50) == "a-v1+A"
    two = TwoOutputs(workspace_directory=copied)
    # The reader's check settled its upstream's outputs: a, which it loaded, and b, which it did not load but requires
    # (the input floor records both; signed: the manifest's time, so both); an unsigned load of the reader's own
    # output (the build's root) settled it.
    unsettled = _unsettled(copied)
    if signing:  # signed loads check the MAC, not the time: only staleness checks hash
        assert not any(key.startswith("two/") for key in unsettled), unsettled
    else:
        assert unsettled == [], unsettled
    assert two.output()["a"].load() == "a-v1" and two.output()["b"].load() == "b-v1"
    assert "two/a" not in " ".join(_unsettled(copied))  # before: every load hashed a and b again
    assert signing or _unsettled(copied) == []
    assert verify_workspace(copied).ok


def test_a_same_size_file_put_over_a_settled_output_is_still_a_new_version(
    copied: str, signing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    reader = ReadsA(workspace_directory=copied)
    assert gokart.build(reader, reset_register=False, log_level=50) == "a-v1+A"
    assert not any(key.startswith("two/a") for key in _unsettled(copied))
    two = TwoOutputs(workspace_directory=copied)
    path = two.output()["a"].path()
    old, new = Path(path).read_bytes(), pickle.dumps("a-v2")
    # cp -p of a same-size file (its old time kept); signed: the header kept, its MAC no longer matching
    _copy_keeping_time(path, old[: len(old) - len(new)] + new if signing else new)
    caplog.set_level(logging.WARNING)
    if not signing:
        assert gokart.build(reader, reset_register=False) == "a-v2+A"  # stale: rerun on the new version
        return
    with pytest.raises(GokartBuildError, match="IntegrityError"):  # stale, and its rerun refuses the file
        gokart.build(reader, reset_register=False)


def test_a_sibling_with_other_content_is_not_settled_with_the_output_loaded(
    workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Attacker at17 H11's shape after a copy: b rewritten outside kart (same size, its time set back); a load of a
    must not move the manifest's time past b's change, or b would load as the commit."""
    assert gokart.build(ReadsA(workspace_directory=workspace), reset_register=False, log_level=50) == "a-v1+A"
    copy = _cp_a(workspace, tmp_path)
    two = TwoOutputs(workspace_directory=copy)
    _copy_keeping_time(two.output()["b"].path(), pickle.dumps("b-v2"))
    time.sleep(0.1)
    assert two.output()["a"].load() == "a-v1"
    assert any(key.startswith("two/b") for key in _unsettled(copy))
    caplog.set_level(logging.WARNING)
    assert two.output()["b"].load() == "b-v2"
    assert "records it as a new version" in caplog.text


def test_a_settle_refuses_an_output_written_after_the_hash_or_too_recently(workspace: str, tmp_path: Path) -> None:
    from kart_core.damage import settle_copied  # new here (the tests above also run against the code before it)

    assert gokart.build(TwoOutputs(workspace_directory=workspace), reset_register=False, log_level=50) == {
        "a": "a-v1",
        "b": "b-v1",
    }
    copy = _cp_a(workspace, tmp_path)
    two = TwoOutputs(workspace_directory=copy)
    manifest = two.output()["a"].record.manifest
    assert not settle_copied(manifest)  # changed a moment ago: a write now could carry the same time
    time.sleep(0.1)
    stale = os.stat(two.output()["a"].path())
    _rewrite(two.output()["a"].path(), pickle.dumps("a-v2"), Path(manifest))  # after the stamp the caller hashed
    confirmed = (
        two.output()["a"].path(),
        (stale.st_dev, stale.st_ino, stale.st_size, stale.st_mtime_ns, stale.st_ctime_ns),
    )
    assert not settle_copied(manifest, confirmed)  # hashed again: other content
    assert two.output()["a"].load() == "a-v2"  # a new version, recorded
