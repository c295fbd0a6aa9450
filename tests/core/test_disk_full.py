"""A full disk during a run or its commit: a ``NoSpaceError`` naming the task and the file, and no debris.

The workspace is a real 64 KiB tmpfs (mounted here, so these tests need root and ``mount``; skipped
elsewhere). The task's ``run()`` fills what is left of it with a file beside the workspace, so the
write that fails is chosen by where the task fills: before its dump (the output), or after it (the
run logs staged at commit, or the manifest the commit creates). Nothing may be left that
contradicts "nothing was written": no temporary file, no empty manifest; after the filler is
deleted the next build runs the task and succeeds.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, NoSpaceError
from kart_core.storage.local import LocalStorage


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 64 KiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(folder: str) -> None:
    """Write ``folder``/filler until the disk is full."""
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"f" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


class FillsDisk(kart_core.TaskOnKart[bytes]):
    """Dumps 5 kB; fills the disk before the dump (``when='before'``) or after it (``'after'``)."""

    when = luigi.Parameter(default="", significant=False)

    def run(self) -> None:
        filler_folder = os.path.dirname(self.workspace_directory.rstrip("/"))
        if self.when == "before":
            fill(filler_folder)
        self.dump(b"x" * 5000)
        if self.when == "after":
            fill(filler_folder)


class FillsDiskRecordInManifest(FillsDisk):
    """Writes its run record into its manifest (as kart_kedro's node runs): the commit writes the manifest only."""

    kart_compact_run_logs = True
    kart_run_record_in_manifest = True


def debris(workspace: Path) -> list[str]:
    """Temporary files and empty files under ``workspace``."""
    found = []
    for folder, _, names in os.walk(workspace):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".kart-tmp") or os.path.getsize(path) == 0:
                found.append(os.path.relpath(path, workspace))
    return found


def failure(task: FillsDisk) -> BaseException:
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(task, workers=1)
    (errors,) = raised.value.raised_exceptions.values()
    return errors[0]


@pytest.mark.parametrize(
    ("task_class", "when", "file"),
    [
        (FillsDisk, "before", r"write the output of FillsDisk\[\w{8}\] to '[^']*/FillsDisk_\w{32}\.pkl'"),
        (FillsDisk, "after", r"write the (processing_time|task_log) run log of FillsDisk\[\w{8}\] to '[^']*/log/\w+/"),
        (
            FillsDiskRecordInManifest,
            "after",
            r"commit FillsDiskRecordInManifest\[\w{8}\]: writing '[^']*/log/manifest/FillsDiskRecordInManifest_\w{32}",
        ),
    ],
)
def test_a_full_disk_is_named_and_leaves_nothing(
    small_disk: Path, task_class: type[FillsDisk], when: str, file: str
) -> None:
    workspace = small_disk / "ws"
    task = task_class(workspace_directory=str(workspace), when=when)

    error = failure(task)

    assert isinstance(error, NoSpaceError) and isinstance(error, OSError)
    assert re.search(f"No space left to {file}", str(error)), str(error)
    assert "Free space on that disk (or raise the quota), then build again." in str(error)
    assert debris(workspace) == []
    assert not task.complete()
    os.remove(small_disk / "filler")
    assert kart_core.build(task_class(workspace_directory=str(workspace))) == b"x" * 5000


def test_a_claimed_manifest_that_does_not_fit_is_removed(small_disk: Path) -> None:
    fill(str(small_disk))
    path = str(small_disk / "manifest.json")
    with pytest.raises(OSError) as raised:
        with LocalStorage().claim_new(path, b"m" * 5000):
            pass
    assert raised.value.errno == errno.ENOSPC
    assert not os.path.exists(path)


def test_a_spool_whose_flush_failed_is_discarded(small_disk: Path) -> None:
    fill(str(small_disk))
    spool = LocalStorage().spool(str(small_disk / "out.pkl"))
    spool.file.write(b"s" * 5000)
    with pytest.raises(OSError):
        spool.file.flush()
    spool.discard()  # closing flushes the buffer again, which fails again
    assert sorted(os.listdir(small_disk)) == ["filler"]


def test_a_dump_outside_a_run_whose_manifest_does_not_fit_is_removed(small_disk: Path) -> None:
    task = FillsDisk(workspace_directory=str(small_disk / "ws"))
    task.make_target("warm.pkl", use_unique_id=False).dump(b"w")  # the folders; a page of the manifest each
    fill(str(small_disk))
    with open(small_disk / "filler", "r+b") as filler:  # room for the 5 kB output (two pages), none for its manifest
        filler.truncate(os.path.getsize(small_disk / "filler") - 8192)
    target = task.output()

    with pytest.raises(NoSpaceError) as raised:
        target.dump(b"x" * 5000)

    assert re.search(
        r"No space left to record the output of FillsDisk\[\w{8}\] in its manifest '[^']*/log/manifest/FillsDisk_\w{32}"
        r"\.json' \(\[Errno 28\] No space left on device\)\. The output just written to '[^']*/FillsDisk_\w{32}\.pkl' "
        r"is removed: its manifest does not describe it\.",
        str(raised.value),
    ), str(raised.value)
    assert not os.path.exists(target.path())
    assert debris(small_disk / "ws") == []


class WritesByPath(kart_core.TaskOnKart[bytes]):
    """Pickles 12 kB straight to its output's path; fills the disk before asking for the path
    (``when='before-path'``: the direct-write marker does not fit) or after writing (``'after-write'``:
    with signing on, the signed copy the commit makes does not fit)."""

    when = luigi.Parameter(default="", significant=False)

    def run(self) -> None:
        filler_folder = os.path.dirname(self.workspace_directory.rstrip("/"))
        # The output's folder, before the disk fills (a by-path writer makes its folders itself).
        os.makedirs(os.path.join(self.workspace_directory, *type(self).__module__.split(".")), exist_ok=True)
        if self.when == "before-path":
            fill(filler_folder)
        with open(self.output().path(), "wb") as file:
            pickle.dump(b"y" * 12000, file)
        if self.when == "after-write":
            fill(filler_folder)


@pytest.mark.parametrize(
    ("when", "file"),
    [
        (
            "before-path",
            r"mark WritesByPath\[\w{8}\] as writing its output '[^']*/WritesByPath_\w{32}\.pkl' by path: writing "
            r"'[^']*/log/manifest/WritesByPath_\w{32}\.committing' failed",
        ),
        (
            "after-write",
            r"sign the output of WritesByPath\[\w{8}\] that its run wrote to '[^']*/WritesByPath_\w{32}\.pkl'",
        ),
    ],
)
def test_a_full_disk_while_writing_by_path_signed_is_named_and_leaves_nothing(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, when: str, file: str
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    workspace = small_disk / "ws"
    task = WritesByPath(workspace_directory=str(workspace), when=when)

    error = failure(task)

    assert isinstance(error, NoSpaceError) and isinstance(error, OSError)
    assert re.search(f"No space left to {file}", str(error)), str(error)
    assert "[Errno 28] No space left on device" in str(error)
    assert "Free space on that disk (or raise the quota), then build again." in str(error)
    assert debris(workspace) == []
    assert not os.path.exists(task.output().path())
    assert not task.complete()
    os.remove(small_disk / "filler")
    assert kart_core.build(WritesByPath(workspace_directory=str(workspace))) == b"y" * 12000
