"""A manifest whose time is ahead of the clock does not vouch for its outputs (kart_core.damage, attacker at19 J2).

An output counts as rewritten outside kart when it changed after its manifest's modification time. A commit made
while the machine's clock was ahead (then stepped back by NTP, a VM resumed with a fast clock) or a workspace copied
with its times from such a machine (``rsync -a``, ``cp -a``) leaves a manifest time in the future, and every rewrite
before that moment looked committed: a same-size foreign copy over an output loaded silently while its reader stayed
fresh on the old value. Such a manifest's outputs are now hashed; a hash that finds the committed content sets the
manifest's time back to theirs. Real files, real builds; the future times are set with ``os.utime`` as a fast
clock or ``cp -a`` of such files leaves them.

Since 2026-12-03 a manifest records each output's stamp (``Entry.stamp``: inode and status-change time), which no
clock step reproduces: such a copy is another stamp, found also after the clock passed the manifest's time (attacker
at20 K9, ``test_damage_stamp``). The time rule judges only entries without a stamp (older kart, signing): the tests
that check it write the manifests as older kart did (``_as_older_kart``).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_damage import Suffixed, _as_older_kart, _copy_keeping_time, _manifest, _warnings

import kart_core as gokart
from kart_core.damage import maybe_rewritten
from kart_core.inspect.verify import verify_workspace

AHEAD_NS = 600 * 1_000_000_000  # ten minutes


def _ahead(path: Path) -> None:
    later = time.time_ns() + AHEAD_NS
    os.utime(path, ns=(later, later))


def _commit_under_a_fast_clock(workspace: str, tmp_path: Path) -> str:
    """The upstream's manifest carries a time ten minutes ahead, as a commit made before the clock stepped back."""
    _ahead(_manifest(Suffixed(workspace_directory=workspace).requires()))
    return workspace


def _copied_from_a_fast_machine(workspace: str, tmp_path: Path) -> str:
    """``cp -a`` of a workspace whose files all carry times ten minutes ahead (written on a machine whose clock was
    ahead): the copy keeps those modification times; its status-change times are now."""
    for path in Path(workspace).rglob("*"):
        if path.is_file():
            _ahead(path)
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-a", workspace, copy], check=True)
    return copy


def _plain_copy(path: str, data: bytes) -> None:
    """``cp`` over the file: its times are now."""
    Path(path).write_bytes(data)


@pytest.mark.parametrize("older", [True, False], ids=["older kart", "stamped"])
@pytest.mark.parametrize("skewed", [_commit_under_a_fast_clock, _copied_from_a_fast_machine], ids=["commit", "cp -a"])
@pytest.mark.parametrize("put", [_plain_copy, _copy_keeping_time], ids=["cp", "cp -p"])
def test_a_manifest_ahead_of_the_clock_does_not_hide_a_same_size_copy(
    workspace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    skewed: Callable[[str, Path], str],
    put: Callable[[str, bytes], None],
    older: bool,
) -> None:
    assert gokart.build(Suffixed(workspace_directory=workspace), reset_register=False, log_level=50) == "value-v1+B"
    if older:
        _as_older_kart(workspace)
    place = skewed(workspace, tmp_path)
    down = Suffixed(workspace_directory=place)
    up = down.requires()
    time.sleep(0.06)
    put(up.output().path(), pickle.dumps("value-v2"))  # the same size, other content
    caplog.set_level(logging.WARNING)
    # Before: the foreign value loaded silently and the reader stayed fresh on the old one ("value-v1+B").
    assert gokart.build(down, reset_register=False) == "value-v2+B"
    messages = " ".join(_warnings(caplog))
    assert "records it as a new version" in messages
    assert not older or "ahead of this machine's clock" in messages  # a stamped entry: its stamp tells
    assert up.output().load() == "value-v2"
    assert verify_workspace(place).ok


def test_a_manifest_ahead_of_the_clock_is_set_back_once_its_outputs_hash_to_the_commit(workspace: str) -> None:
    """Only the manifest ahead (its outputs' times are now): the first check hashes, finds the committed content and
    sets the manifest's time back to the output's change time, so later loads take two stats; a write after
    that is still a new version."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v1+B"
    _as_older_kart(workspace)
    up = down.requires()
    manifest, output = _manifest(up), up.output().path()
    _ahead(manifest)
    assert maybe_rewritten(output, str(manifest))  # before: False, the rewrite check skipped
    time.sleep(0.06)  # a file changed this recently is not settled
    assert up.output().load() == "value-v1"
    assert manifest.stat().st_mtime_ns <= time.time_ns() and not maybe_rewritten(output, str(manifest))
    time.sleep(0.01)
    _plain_copy(output, pickle.dumps("value-v3"))
    assert gokart.build(down, reset_register=False, log_level=50) == "value-v3+B"


@pytest.mark.parametrize("older", [True, False], ids=["older kart", "stamped"])
def test_outputs_ahead_of_the_clock_keep_their_manifest_unsettled(workspace: str, tmp_path: Path, older: bool) -> None:
    """Outputs whose own times are ahead (copied with them) cannot settle the manifest at a time in the past: their
    loads hash (and load the committed value) until the clock passes those times. A stamped entry settles at the
    first load (the copy's status-change time is now, whatever its modification time says)."""
    assert gokart.build(Suffixed(workspace_directory=workspace), reset_register=False, log_level=50) == "value-v1+B"
    if older:
        _as_older_kart(workspace)
    copy = _copied_from_a_fast_machine(workspace, tmp_path)
    up = Suffixed(workspace_directory=copy).requires()
    time.sleep(0.06)
    assert up.output().load() == "value-v1"
    assert maybe_rewritten(up.output().path(), str(_manifest(up))) is older
    assert gokart.build(Suffixed(workspace_directory=copy), reset_register=False, log_level=50) == "value-v1+B"
