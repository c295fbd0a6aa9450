"""On object storage a reader never gets a by-path rerun's uncommitted bytes, also when their size is the old one.

A rerun that wrote its output straight to its path on S3 or GCS overwrote the committed object at once, and a
same-size rewrite loaded as the committed output (object storage has no modification time to compare); then the
rerun's marker made a load check the hash and refuse other bytes. Since 2026-12-02 the rerun writes a private
object (``kart_core.direct_write.private_name``) that its commit copies into place: until then a load gets the
committed bytes, and the marker keeps ``complete()`` False.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.commit_marker import marker_path
from kart_core.storage import storage_for


class DwRewrite(kart_core.TaskOnKart[Any]):
    """Writes ``text`` (times ``repeat``) by path; with ``hold`` it then waits for ``_GATE`` before returning."""

    text = luigi.Parameter(default="aaaa", significant=False)
    repeat = luigi.IntParameter(default=1, significant=False)
    hold = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("dw/rewrite.txt")

    def run(self) -> None:
        path = self.output().path()
        with storage_for(path).file_system.open(path, "w") as file:  # type: ignore[attr-defined]
            file.write(str(self.text) * int(self.repeat))
        if self.hold:
            _WRITTEN.set()
            assert _GATE.wait(60)


_WRITTEN = threading.Event()
_GATE = threading.Event()


def _workspace(storage: str, request: pytest.FixtureRequest) -> str:
    bucket = request.getfixturevalue("s3_bucket" if storage == "s3" else "gcs_bucket")
    return f"{storage}://{bucket}/ws"


def _rerun_in_progress(workspace: str, text: str, repeat: int) -> threading.Thread:
    """Start a rerun (in a thread, as a thread worker runs it) that has written ``text`` and not committed yet."""
    _WRITTEN.clear()
    _GATE.clear()
    rerun = DwRewrite(text=text, repeat=repeat, hold=True, rerun=True, workspace_directory=workspace)
    thread = threading.Thread(target=kart_core.build, args=(rerun,))
    thread.start()
    assert _WRITTEN.wait(60)
    return thread


@pytest.mark.parametrize("storage", ["s3", "gs"])
@pytest.mark.parametrize("repeat", [1, 2**20 + 7], ids=["small", "over 4 MiB"])  # read whole at the open, or in parts
def test_a_same_size_uncommitted_rewrite_is_not_served(
    storage: str, repeat: int, request: pytest.FixtureRequest
) -> None:
    workspace = _workspace(storage, request)
    assert len(kart_core.build(DwRewrite(repeat=repeat, workspace_directory=workspace))[0]) == 4 * repeat
    # A rerun that wrote the same bytes: what the reader gets is the commit, so it loads.
    thread = _rerun_in_progress(workspace, "aaaa", repeat)
    try:
        assert DwRewrite(workspace_directory=workspace).output().load()[0].startswith("aaaa")
    finally:
        _GATE.set()
        thread.join(60)
    thread = _rerun_in_progress(workspace, "bbbb", repeat)
    try:
        reader = DwRewrite(workspace_directory=workspace)
        assert storage_for(workspace).exists(marker_path(reader.output().record))
        # The rerun writes its private object: the committed 'aaaa…' is what is at the path until its commit.
        assert reader.output().load()[0].startswith("aaaa")  # 'bbbb…' served before 2026-11, then refused
        assert not reader.complete()
    finally:
        _GATE.set()
        thread.join(60)
    assert DwRewrite(workspace_directory=workspace).output().load()[0].startswith("bbbb")


def test_a_rerun_in_another_process_is_not_served_either(tmp_path: Path, s3_bucket: str) -> None:
    """The rerun in another process (held in its commit hook, after run() wrote 'bbbb'); the reader in a third."""
    from test_direct_write_heartbeat import _finished, _writer

    workspace = f"s3://{s3_bucket}/ws"
    assert _finished(_writer(tmp_path, workspace, "first", "aaaa"))[0] == "['aaaa']"
    rerun = _writer(tmp_path, workspace, "slow", "bbbb")
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "committing").exists():
            assert rerun.poll() is None and time.monotonic() < deadline, rerun.communicate()
            time.sleep(0.02)
        reader = _writer(tmp_path, workspace, "check", "")
        stdout, stderr = reader.communicate(timeout=120)
        assert reader.returncode == 0 and "['aaaa']" in stdout, stderr  # the commit; the rerun's is private
    finally:
        (tmp_path / "committing.done").touch()
    assert _finished(rerun)[0] == "['bbbb']"
    assert _finished(_writer(tmp_path, workspace, "check", ""))[0] == "['bbbb']"
