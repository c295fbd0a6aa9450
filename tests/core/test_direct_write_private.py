"""Every by-path write goes to a private name: a run taken over never writes into the taker's output.

Since 2026-12-02 ``self.output().path()`` in ``run()`` hands out a private name beside the output
(``kart_core.direct_write.private_name``), which the run's commit moves into place. Before, only a run that took a
task over got one; the run taken over (it may only have been paused) wrote the output's real path, and kart stopped
it with an exception forced into its thread (attacker at13): that stop missed the threads ``run()`` started (1), was
swallowed by ``except Exception`` (4), and on object storage unwound a ``with fs.open(path, "wb")`` block whose close
uploaded the partial file over the taker's object (5); a writer resumed after the taker's commit rewrote the committed
output (at11 F1). Now the run taken over writes its own private file until it asks kart again or ``run()`` returns,
fails with ``MarkerLostError`` and removes that file; the taker's bytes at the output's path are never touched.

"Another host" is stood for by real writes of another process: its marker put in the run's place (it takes the task
over) and its own output at the path; in the last test a real writer process on a faked host, SIGSTOPped past the
lease and resumed after this process's takeover has committed. Local disk and the S3 server (moto).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import luigi
import pytest
from other_host import start_writer, wait_for
from paused_task import Paused, writer_script
from test_marker_ownership import _REPLACE, _in_another_process, _other_marker

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import marker_path
from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.manifest import read_unverified
from kart_core.storage import storage_for

LEASE = 0.6  # seconds: a beat every 0.2 s
TAKER = b"TAKER-COMPLETE-OUTPUT\n"


def _open(path: str, mode: str) -> Any:
    if "://" in path:
        return storage_for(path).file_system.open(path, mode)  # type: ignore[attr-defined]
    return open(path, mode)


def _bytes_at(path: str) -> bytes:
    storage = storage_for(path)
    getattr(storage, "file_system", None) and storage.file_system.invalidate_cache()  # type: ignore[attr-defined]
    with storage.open_read(path) as file:
        return file.read()


def _private_files(path: str) -> list[str]:
    folder = path.rpartition("/")[0]
    if "://" in folder:
        names = storage_for(folder).file_system.ls(folder, refresh=True)  # type: ignore[attr-defined]
    else:
        names = os.listdir(folder)
    return [name for name in names if ".kart-took-" in name]


class TakenOver(kart_core.TaskOnKart[Any]):
    """Writes 30 chunks to its output by the path it asked for once, 0.05 s apart; after the third, another process
    takes the task over: it puts its marker in the run's place and its own complete output at the output's path.

    ``how``: "rewrite" rewrites the whole file at each step (at13's ``Appending``); "thread" does that in a worker
    thread that ``run()`` waits on (at13 finding 1); "retry" wraps each step in ``except Exception`` (finding 4);
    "stream" writes every chunk through one ``with open(path, "wb")`` block, on S3 one upload at its close
    (finding 5).
    """

    how = luigi.Parameter(default="rewrite", significant=False)

    def output(self) -> Any:
        return self.make_target("taken/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.how == "thread":
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(self._rewrite, path).result()
        elif self.how == "stream":
            with _open(path, "wb") as file:
                for step in range(30):
                    file.write(b"L" * 1024)
                    self._step(step)
        else:
            self._rewrite(path)

    def _rewrite(self, path: str) -> None:
        lines = ""
        for step in range(30):
            try:
                lines += f"{step}\n"
                with _open(path, "w") as file:
                    file.write(lines)
                self._step(step)
            except Exception:  # noqa: BLE001 - what a retry loop does ("retry" only)
                if self.how != "retry":
                    raise
                logging.getLogger(__name__).warning("step %d failed: retrying", step)

    def _step(self, step: int) -> None:
        if step == 2:  # a beat's rewrite is conditional: it never overwrites the other process's marker
            _in_another_process(_REPLACE, marker_path(self.output().record), _other_marker())
            final = self.output()._path
            with storage_for(final).atomic_write(final) as file:  # the taker's output
                file.write(TAKER)
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["rewrite", "thread", "retry", "stream"])
def test_a_taken_over_writer_never_writes_the_taker_s_output(where: str, how: str) -> None:
    """Before: the taker's file held the writer's lines ("rewrite": 4 of 30 lines after the async stop; "thread"
    and "retry": all 30; "stream" on S3: the writer's first chunks, uploaded by the stop's unwinding of its with)."""
    task = TakenOver(how=how, workspace_directory=where)
    with pytest.raises(kart_core.GokartBuildError, match=r"MarkerLostError.*process 4242 on elsewhere\.example"):
        kart_core.build(task, log_level=40)
    assert _bytes_at(task.output().path()) == TAKER
    assert _private_files(task.output().path()) == []  # the writer's own file went with its failure


class SlowHandler(logging.Handler):
    """A handler that takes 20 ms per record (a syslog or HTTP handler, a full pipe): another thread mostly waits
    in its lock's ``acquire``."""

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.02)


_HANDLER = SlowHandler()


class Logging(kart_core.TaskOnKart[Any]):
    """Writes its output by path, then logs 60 records through a handler another thread of the process logs
    through too; after 0.3 s another process takes the task over (at13 finding 3)."""

    def output(self) -> Any:
        return self.make_target("taken/logged.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with _open(path, "w") as file:
            file.write("written\n")
        record = self.output().record
        taker = threading.Timer(0.3, lambda: _in_another_process(_REPLACE, marker_path(record), _other_marker()))
        taker.start()
        log = logging.getLogger("at13.app")
        for step in range(60):
            log.warning("step %d", step)
        taker.join()


def test_a_taken_over_writer_leaves_no_lock_of_its_process_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the stop could fire between the handler lock's acquire and release (2 of 6 runs at13; here each of
    five runs takes the marker over while the run's thread mostly waits in that acquire), and every thread that
    logged then hung. Now nothing is raised in the run's thread: the lock is free after each run."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    log = logging.getLogger("at13.app")
    log.addHandler(_HANDLER)
    log.propagate = False
    stop = threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            log.warning("monitor")

    other = threading.Thread(target=monitor, daemon=True)
    other.start()
    try:
        for attempt in range(5):
            task = Logging(workspace_directory=str(tmp_path / f"ws{attempt}"))
            with pytest.raises(kart_core.GokartBuildError, match="MarkerLostError"):
                kart_core.build(task, log_level=40)
            assert _HANDLER.lock is not None and _HANDLER.lock.acquire(timeout=5), f"run {attempt}: lock held"
            _HANDLER.lock.release()
    finally:
        stop.set()
        other.join(10)
        log.removeHandler(_HANDLER)
        log.propagate = True


LOSER = writer_script(who="W", steps=20, mode="name", pause=0.05)


def test_a_writer_resumed_after_the_taker_s_commit_leaves_the_committed_output(tmp_path: Path, where: str) -> None:
    """The writer (another host, by the name it asked for once) is SIGSTOPped past the lease; this process takes it
    over and commits ``A:0``; then the writer resumes and writes ``W:1`` .. ``W:19`` by its name. Before: by the
    output's path, so the committed output became the writer's ``W:19`` (damaged: lost)."""
    writer, flag = start_writer(tmp_path, "loser", LOSER, where, [], LEASE)
    wait_for(flag, writer)
    os.kill(writer.pid, signal.SIGSTOP)
    try:
        taker = Paused(who="A", mode="name", workspace_directory=where)
        assert kart_core.build(taker, log_level=30) == ["A:0"]
    finally:
        os.kill(writer.pid, signal.SIGCONT)
    try:
        stdout, stderr = writer.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        writer.kill()
        raise
    assert stdout.startswith("FAILED"), (stdout, stderr)
    assert "could not keep the marker" in stderr and "left alone" in stderr, stderr
    task = Paused(workspace_directory=where)
    path = task.output().path()
    assert _bytes_at(path) == b"A:0\n", stderr
    record = task.output().record
    manifest = read_unverified(storage_for(record.manifest), record.manifest)
    assert manifest is not None
    with storage_for(path).open_read(path) as file:
        size, digest = digest_stream(file)
    assert (manifest.outputs[record.key].size, manifest.outputs[record.key].digest) == (
        size,
        f"{DEFAULT_ALGORITHM}:{digest}",
    )
    assert task.complete() and task.output().load() == ["A:0"]
    assert _private_files(path) == []


class SeesItsOwn(kart_core.TaskOnKart[Any]):
    """Writes its output by path, then looks at it through kart as gokart code does: the same name again, from a
    thread too, ``exists()`` and ``self.output().load()``."""

    text = luigi.Parameter(default="mine", significant=False)

    def output(self) -> Any:
        return self.make_target("own/out.pkl")

    def run(self) -> None:
        import pickle

        path = self.output().path()
        assert ".kart-took-" in path and path.endswith(os.path.basename(self.output()._path))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert pool.submit(lambda: self.output().path()).result() == path  # one name for the whole run
        assert self.output().path() == path
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        assert self.output().exists() == self.rerun  # the old output, until this run writes its own
        with _open(path, "wb") as file:
            pickle.dump([str(self.text)], file)
        assert self.output().exists()
        assert self.output().load() == [str(self.text)]


def test_a_run_sees_its_own_private_file(where: str) -> None:
    """Before: ``path()`` was the output's own path (no private name) outside a takeover."""
    assert kart_core.build(SeesItsOwn(workspace_directory=where), log_level=40) == ["mine"]
    task = SeesItsOwn(text="again", rerun=True, workspace_directory=where)
    assert kart_core.build(task, log_level=40) == ["again"]
    assert SeesItsOwn(workspace_directory=where).output().load() == ["again"]
    assert _private_files(task.output().path()) == []


class Folder(kart_core.TaskOnKart[Any]):
    """Saves a 'model' folder at its output's path (``model.save(path)``); ``fail``: raises after saving."""

    text = luigi.Parameter(default="v1", significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("model/saved.pkl")  # a folder, named as gokart code names it

    def run(self) -> None:
        folder = self.output().path()
        os.makedirs(folder)
        Path(folder, "weights.bin").write_text(str(self.text))
        assert self.output().exists()
        if self.fail:
            raise RuntimeError("fails after saving")


def test_a_folder_output_is_moved_into_place_when_run_returns(tmp_path: Path) -> None:
    """A folder saved at the private name: a failed run removes it (nothing at the output's path), a successful one
    moves it into place when run() returns, with nothing hidden left beside it."""
    workspace = str(tmp_path / "ws")
    final = Folder(workspace_directory=workspace).output().path()
    with pytest.raises(kart_core.GokartBuildError, match="fails after saving"):
        kart_core.build(Folder(text="v0", fail=True, workspace_directory=workspace), log_level=40, return_value=False)
    assert not os.path.exists(final) and os.listdir(Path(final).parent) == []
    kart_core.build(Folder(workspace_directory=workspace), log_level=40, return_value=False)
    assert Path(final, "weights.bin").read_text() == "v1"
    assert Folder(workspace_directory=workspace).complete()
    assert [name for name in os.listdir(Path(final).parent) if name.startswith(".")] == []


class DumpThenTouch(kart_core.TaskOnKart[Any]):
    """gokart code that post-processes the file it just dumped, through its path (attacker at14 N2): ``how`` is
    "append" (a trailer line), "overwrite" (to_csv over it) or "copy" (shutil.copy to a second output)."""

    how = luigi.Parameter(default="append")

    def output(self) -> Any:
        return {"data": self.make_target("touch/data.csv"), "copy": self.make_target("touch/copy.txt")}

    def run(self) -> None:
        import shutil

        import pandas as pd

        self.dump(pd.DataFrame({"a": [1, 2]}), "data")
        path = self.output()["data"].path()
        if self.how == "append":
            with open(path, "a") as file:
                file.write("3\n")
        elif self.how == "overwrite":
            pd.DataFrame({"a": [9]}).to_csv(path, index=False)
        copy = self.output()["copy"].path()
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        shutil.copy(path, copy)


@pytest.mark.parametrize("signing", ["", "a signing key"])
@pytest.mark.parametrize(("how", "rows"), [("append", [1, 2, 3]), ("overwrite", [9]), ("copy", [1, 2])])
def test_a_by_path_touch_up_after_a_dump_is_kept(
    tmp_path: Path, how: str, rows: list[int], signing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the path request after the dump handed out an empty name, so the append made a file of its one line
    (``KeyError: 'a'`` at load; on kart before private names it was lost: ``[1, 2]``) and the copy raised
    ``FileNotFoundError`` (the dump was staged elsewhere)."""
    if signing:
        monkeypatch.setenv("KART_SIGNING_KEY", signing)
    task = DumpThenTouch(how=how, workspace_directory=str(tmp_path / "ws"))
    kart_core.build(task, log_level=40, return_value=False)
    done = DumpThenTouch(how=how, workspace_directory=str(tmp_path / "ws"))
    assert done.complete()
    assert done.output()["data"].load()["a"].tolist() == rows
    assert [line.strip() for line in done.output()["copy"].load()] == ["a", *map(str, rows)]


class DumpPathDump(kart_core.TaskOnKart[Any]):
    """dump(1); the path asked (``how``: and only that, the copy read, touched, or written by path); dump(2)."""

    how = luigi.Parameter()

    def run(self) -> None:
        self.dump(1)
        path = self.output().path()
        if self.how == "read":
            Path(path).read_bytes()
        elif self.how == "touched":
            os.utime(path)
        elif self.how == "written":
            with open(path, "wb") as file:
                pickle.dump(3, file)
        self.dump(2)


@pytest.mark.parametrize("signing", ["", "a signing key"])
@pytest.mark.parametrize(("how", "value"), [("asked", 2), ("read", 2), ("touched", 2), ("written", 3)])
def test_a_dump_after_the_path_of_an_earlier_dump_is_the_output(
    workspace: str, how: str, value: int, signing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in gokart, where each dump rewrites the file: the later dump is the output unless the code wrote the file by
    path after asking it (attacker at16 G10: the copy of the first dump the path request made won, silently)."""
    if signing:
        monkeypatch.setenv("KART_SIGNING_KEY", signing)
    kart_core.build(DumpPathDump(how=how, workspace_directory=workspace), log_level=40, return_value=False)
    assert DumpPathDump(how=how, workspace_directory=workspace).output().load() == value
