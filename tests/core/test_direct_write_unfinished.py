"""An output still open for writing when ``run()`` returns is not committed (FENCE item 4: the commit's record must
not vouch for bytes it did not see written whole).

``run()`` starts a thread that writes the output through one descriptor, a line at a time, and returns before the
thread is done: by the path ``path()`` hands out (a private name), or by the output's path computed by hand (in
place). Before: the commit hashed what was there so far and recorded it (the thread's later lines made it damage
at the next load, or a kill left the partial file recorded as whole). Now the run fails with ``RunWriteError``
naming the file, nothing is committed, and the partial file is removed (a first run's in-place file too, which
would count as complete). Local disk (``/proc/self/fd``); threads and process workers.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core

_WRITERS: list[threading.Thread] = []


class Streamed(kart_core.TaskOnKart[Any]):
    """A thread writes ``lines`` lines, ``pause`` seconds apart; ``in_place``: at the output's own path."""

    in_place = luigi.BoolParameter(default=False, significant=False)
    lines = luigi.IntParameter(default=3, significant=False)
    pause = luigi.FloatParameter(default=0.3, significant=False)

    def output(self) -> Any:
        return self.make_target("streamed/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if self.in_place:
            folder, _, name = path.rpartition("/")
            path = f"{folder}/{name.split('.', 2)[2]}"  # .kart-took-{hex}.{name} -> {name}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        file = open(path, "w")  # noqa: SIM115 - closed by the thread
        file.write("line 0\n")
        file.flush()
        if int(self.lines) <= 1:
            file.close()
            return

        def finish() -> None:
            for line in range(1, int(self.lines)):
                time.sleep(float(self.pause))
                file.write(f"line {line}\n")
                file.flush()
            file.close()

        writer = threading.Thread(target=finish)
        writer.start()
        _WRITERS.append(writer)


@pytest.mark.parametrize("in_place", [False, True], ids=["private", "in_place"])
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_output_still_being_written_when_run_returns_is_not_committed(
    tmp_path: Path, executor: str, in_place: bool
) -> None:
    workspace = str(tmp_path / "ws")
    task = Streamed(in_place=in_place, workspace_directory=workspace)
    workers = 2 if executor == "process" else 1
    with pytest.raises(kart_core.GokartBuildError, match="still open for writing"):  # before: built ['line 0']
        kart_core.build(task, workers=workers, executor=executor, return_value=False, log_level=50)
    for writer in _WRITERS:
        writer.join()
    time.sleep(1.0)  # a process worker's thread
    assert not os.path.exists(task.output().path())
    assert not Streamed(workspace_directory=workspace).complete()
    done = kart_core.build(Streamed(lines=1, workspace_directory=workspace), log_level=50)  # no thread left writing
    assert done == ["line 0"]


class StreamedBeside(kart_core.TaskOnKart[Any]):
    """The output written whole by path, and (``where``) a file still being written by a thread when run() returns:
    "folder": inside a folder saved at the output's path; "companion": beside it, under a name derived from it."""

    where = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target("beside/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if self.where == "folder":
            os.makedirs(path)  # its folder too
            streamed = os.path.join(path, "part0.txt")
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as whole:
                whole.write("data\n")
            streamed = os.path.splitext(path)[0] + ".schema.json"
        file = open(streamed, "w")  # noqa: SIM115 - closed by the thread
        file.write('{"cols": [')
        file.flush()

        def finish() -> None:
            time.sleep(0.5)
            file.write('"a"]}')
            file.close()

        writer = threading.Thread(target=finish)
        writer.start()
        _WRITERS.append(writer)


@pytest.mark.parametrize("where", ["folder", "companion"])
def test_a_file_of_a_folder_output_or_a_companion_still_being_written_is_not_committed(
    tmp_path: Path, where: str
) -> None:
    """Attacker at16 G8: only the output's own file was looked at, so a folder's file or a companion still being
    written was committed half written and the task counted complete."""
    workspace = str(tmp_path / "ws")
    task = StreamedBeside(where=where, workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError, match="still open for writing"):
        kart_core.build(task, return_value=False, log_level=50)
    for writer in _WRITERS:
        writer.join()
    assert not StreamedBeside(where=where, workspace_directory=workspace).complete()
    final = task.output().path()
    assert not os.path.exists(final) and not os.path.exists(os.path.splitext(final)[0] + ".schema.json")
