"""A full local disk while kart buffers an upload to object storage: the NoSpaceError names that folder.

A write to S3 or GCS is spooled to a local file in the system temporary folder (``TMPDIR``) and then
put as one object. When that folder's disk is full, the error named the remote object and said "free
space on that disk", as if the bucket were full. It now names the local folder, the task and the
fix (free space there, or point TMPDIR elsewhere). The temporary folder is a real 64 KiB tmpfs
(needs root and mount, as tests/core/test_disk_full.py); the buckets are on moto and the GCS emulator.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from test_disk_full import FillsDisk, failure, fill, small_disk  # noqa: F401 - small_disk is a fixture

import kart_core
from kart_core.errors import NoSpaceError


@pytest.fixture(params=["s3", "gs"])
def bucket_workspace(request: pytest.FixtureRequest) -> str:
    """A workspace in a fresh bucket on moto's S3 server or on the GCS emulator."""
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/ws"
    return f"gs://{request.getfixturevalue('gcs_bucket')}/ws"


class FillsTemporaryFolder(FillsDisk):
    """Fills the disk of the temporary folder (not the workspace's: that is a bucket)."""

    def run(self) -> None:
        if self.when == "before":
            fill(tempfile.gettempdir())
        self.dump(b"x" * 5000)
        if self.when == "after":
            fill(tempfile.gettempdir())


@pytest.mark.parametrize(
    ("when", "what"),
    [
        (
            "before",
            r"write the output of FillsTemporaryFolder\[\w{8}\] to '{ws}/[^']*/FillsTemporaryFolder_\w{{32}}\.pkl'",
        ),
        ("after", r"write the processing_time run log of FillsTemporaryFolder\[\w{8}\] to '{ws}/log/[^']*'"),
    ],
)
def test_a_full_temporary_folder_is_named_not_the_bucket(
    small_disk: Path,  # noqa: F811 - the fixture imported above
    bucket_workspace: str,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
    what: str,
) -> None:
    monkeypatch.setenv("TMPDIR", str(small_disk))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again, as a new process does
    task = FillsTemporaryFolder(workspace_directory=bucket_workspace, when=when)

    error = failure(task)

    assert isinstance(error, NoSpaceError)
    pattern = what.replace("{ws}", re.escape(bucket_workspace)).replace("{{32}}", "{32}")
    assert re.search(
        rf"No space left to {pattern} \(\[Errno 28\] No space left on device: kart buffers each upload in the local "
        rf"folder '{re.escape(str(small_disk))}', whose disk is full, not the object store \(free space there, or set "
        r"TMPDIR to a folder with room\)\)\.",
        str(error),
    ), str(error)
    assert not task.complete()
    os.remove(small_disk / "filler")
    assert kart_core.build(FillsTemporaryFolder(workspace_directory=bucket_workspace)) == b"x" * 5000
