"""A full disk while the heartbeat rewrites a by-path writer's marker fails the run with a NoSpaceError.

A run that writes an output straight to its path keeps a ``direct`` marker beside the manifest fresh
(every third of the lease, ``KART_DIRECT_LEASE_SECONDS``); a run on another host takes a marker older
than the lease for a dead writer's and takes the outputs over. When the disk was full at a beat, the
heartbeat logged a warning with a traceback per beat and the run committed as if nothing happened,
although its marker had aged past the lease meanwhile. Now the run fails with a NoSpaceError naming
the task and the marker, what it wrote by path is removed, and the next build (with room) runs it.
The disk is a real 64 KiB tmpfs (root and mount, as tests/core/test_disk_full.py): the workspace on
it; for a workspace on moto's S3 the temporary folder is on it, which a beat there no longer uses (the marker
goes up from memory in one conditional put), so that run succeeds.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import time
from pathlib import Path

import luigi
import pytest
from test_disk_full import debris, failure, fill, small_disk  # noqa: F401 - small_disk is a fixture

import kart_core
from kart_core.errors import NoSpaceError
from kart_core.storage import storage_for

LEASE = 0.6  # seconds: a beat every 0.2 s


class FullWhileWriting(kart_core.TaskOnKart[str]):
    """Asks for its output's path (the marker is written), fills the disk for three leases, frees it, writes."""

    full = luigi.BoolParameter(default=True, significant=False)

    def run(self) -> None:
        path = self.output().path()
        remote = "://" in path
        folder = tempfile.gettempdir() if remote else os.path.dirname(self.workspace_directory.rstrip("/"))
        if not remote:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.full:
            fill(folder)
            time.sleep(3 * LEASE)  # the beats find no room
            os.remove(os.path.join(folder, "filler"))
        opener = storage_for(path).file_system.open if remote else open  # type: ignore[attr-defined]
        with opener(path, "wb") as file:
            pickle.dump("by path", file)


@pytest.fixture(params=["local", "s3"])
def workspace_on_small_disk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The workspace on the small disk, or in a bucket with the temporary folder on it."""
    disk = request.getfixturevalue("small_disk")
    monkeypatch.setenv("KART_DIRECT_LEASE_SECONDS", str(LEASE))
    if request.param == "local":
        return str(disk / "ws")
    monkeypatch.setenv("TMPDIR", str(disk))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again, as a new process does
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def test_no_room_for_a_heartbeat_fails_the_run_naming_the_marker(
    workspace_on_small_disk: str, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = workspace_on_small_disk
    if "://" in workspace:
        # A beat on S3 is one conditional PutObject from memory (kart_core.storage.conditional): the full
        # temporary folder that buffered each marker upload before no longer fails it.
        assert kart_core.build(FullWhileWriting(workspace_directory=workspace), log_level=40) == "by path"
        return
    task = FullWhileWriting(workspace_directory=workspace)

    error = failure(task)

    assert isinstance(error, NoSpaceError)
    assert re.search(
        rf"No space left to refresh the marker of FullWhileWriting\[\w{{8}}\], which shows that its run is still "
        rf"writing its outputs by path: writing '{re.escape(workspace)}/log/manifest/FullWhileWriting_\w{{32}}"
        r"\.committing' failed \(\[Errno 28\] No space left on device(: kart buffers each upload in the local folder "
        r"'[^']*/small', whose disk is full, not the object store \(free space there, or set TMPDIR to a folder with "
        r"room\))?\)\. .*The run fails: what it wrote at its "
        r"outputs' paths is removed\.",
        str(error),
    ), str(error)
    assert not task.complete()
    assert not storage_for(task.output().path()).exists(task.output().path())
    # Said once, not once per beat with a traceback.
    beats = [record for record in caplog.records if "refresh" in record.getMessage()]
    assert len(beats) == 1 and beats[0].exc_info is None
    if "://" not in workspace:
        assert debris(Path(workspace)) == []
    assert kart_core.build(FullWhileWriting(workspace_directory=workspace, full=False)) == "by path"
