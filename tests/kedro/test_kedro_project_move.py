"""A Kedro project moved or copied to another place keeps KartRunner's cache, and never trusts it blindly.

Real ``kedro run --runner kart_kedro.KartRunner`` subprocesses on a copy of examples/kedro whose
kart workspace is inside the project (``data/kart``).
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
from kedro_project import POSITIVE_VALUES_SUM, copy_ran_project, report, run_kedro, statuses

pytestmark = pytest.mark.slow

NODES = ("clean", "count", "scale", "summarize")
RACY_SECONDS = 2.1  # NodeRecords.RACY_NS and a little: a digest of files changed just before is not reused


def kart(project: Path) -> dict[str, str]:
    """``kedro run --runner kart_kedro.KartRunner --pipeline nodes``; what it said about each node."""
    return statuses(run_kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))


def raw_digest_record(project: Path) -> tuple:
    """What the runner recorded for the raw input ``raw_numbers``: (config, stamp key, newest ns, recorded ns, digest)."""
    records = project / "data" / "kart" / "kedro" / "kart_kedro_demo" / ".kart" / "input_digests.pkl"
    return tuple(pickle.loads(records.read_bytes())["raw_numbers"])


def settle(path: Path) -> None:
    """Wait until ``path`` last changed more than the racy window ago, so a digest recorded now is reused."""
    changed = max(os.stat(path).st_mtime_ns, os.stat(path).st_ctime_ns) / 1e9
    time.sleep(max(0.0, changed + RACY_SECONDS - time.time()))


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) and put the modification time back, as a careful hand edit would."""
    assert len(old) == len(new)
    before = os.stat(path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_moved_project_is_cached_without_rereading_its_raw_inputs_and_an_edit_after_the_move_reruns(
    nodes_first_run: Path, tmp_path: Path
) -> None:
    project = copy_ran_project(nodes_first_run, tmp_path / "alice" / "project")
    raw = project / "data" / "01_raw" / "numbers.csv"
    settle(raw)
    assert kart(project) == dict.fromkeys(NODES, "cached")  # a copy: new inodes, so numbers.csv is read once
    recorded = raw_digest_record(project)

    # Moved as a whole (a renamed folder, another parent): same files, another absolute path.
    inode = os.stat(raw).st_ino
    (tmp_path / "ci" / "builds").mkdir(parents=True)
    moved = Path(shutil.move(project, tmp_path / "ci" / "builds" / "project"))
    raw = moved / "data" / "01_raw" / "numbers.csv"
    assert os.stat(raw).st_ino == inode and not project.exists()
    assert kart(moved) == dict.fromkeys(NODES, "cached")
    # The recorded digest was reused: numbers.csv was not read again (its stamp holds no absolute path).
    assert raw_digest_record(moved) == recorded

    # A copy of it elsewhere whose numbers.csv has other content with the same size and mtime reruns.
    clone = copy_ran_project(moved, tmp_path / "bob" / "project")
    same_size_edit(clone / "data" / "01_raw" / "numbers.csv", "a,3\n", "a,5\n")
    ran = kart(clone)
    assert ran["clean"] == "ran" and ran["summarize"] == "ran"
    assert report(clone, "summary")["total"] == 2.0 * (POSITIVE_VALUES_SUM + 2)

    # An edit after the move that keeps size and mtime reruns too (its status-change time moved).
    same_size_edit(raw, "c,10\n", "c,12\n")
    ran = kart(moved)
    assert ran["clean"] == "ran" and ran["summarize"] == "ran"
    assert report(moved, "summary")["total"] == 2.0 * (POSITIVE_VALUES_SUM + 2)
    assert raw_digest_record(moved)[4] != recorded[4]
