"""A task whose run() writes its output by path and can be paused, for ``test_direct_write_paused``.

Its own module, imported by the test and by the process standing in for another host, so that both runs are
one task class (the manifest's owner) and one output.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import luigi

import kart_core
from kart_core.storage import storage_for


def _write(path: str, text: str) -> None:
    """Write ``text`` as the whole file at ``path`` (object storage has no append)."""
    if "://" in path:
        with storage_for(path).file_system.open(path, "w") as file:  # type: ignore[attr-defined]
            file.write(text)
    else:
        with open(path, "w") as file:
            file.write(text)


def hold_the_gil(seconds: float) -> None:
    """One C call that keeps the GIL for ``seconds``: libc's sleep through ``ctypes.PyDLL``, which (unlike
    ``CDLL``) does not release the GIL, as a long regex match or a big ``pickle.dumps`` does not."""
    libc = ctypes.PyDLL(ctypes.util.find_library("c"))
    libc.usleep(ctypes.c_uint(int(seconds * 1_000_000)))


class Paused(kart_core.TaskOnKart[Any]):
    """Writes ``{who}:{step}`` lines to its output by path, ``pause`` seconds apart; touches ``flag`` once the
    first line is written (the marker is there).

    ``mode``: "path" asks for the output's path again at each step and writes the whole file there; "fd" asks
    once and writes every line through the one descriptor it opened; "gil" writes one line, holds the GIL for
    ``hog`` seconds (its heartbeat thread cannot run), then asks for the path again and writes the second line;
    "name" asks once and writes the whole file by that name at each step (``{who}:{step}``, the last step only),
    each step after the first holding the GIL for ``hog`` seconds (if set) right before its write.
    ``resume``: a process id sent SIGCONT after the first write, before the ``pause`` (a taker resuming the
    writer it took over while its own run is still going).
    """

    who = luigi.Parameter(default="here", significant=False)
    steps = luigi.IntParameter(default=1, significant=False)
    pause = luigi.FloatParameter(default=0.0, significant=False)
    flag = luigi.Parameter(default="", significant=False)
    mode = luigi.Parameter(default="path", significant=False)
    hog = luigi.FloatParameter(default=0.0, significant=False)
    resume = luigi.IntParameter(default=0, significant=False)

    def output(self) -> Any:
        return self.make_target("paused/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.mode == "fd":
            with open(path, "w") as file:
                for step in range(int(self.steps)):
                    file.write(f"{self.who}:{step}\n")
                    file.flush()
                    if step == 0 and self.flag:
                        Path(str(self.flag)).touch()
                    time.sleep(float(self.pause))
            return
        if self.mode == "name":
            for step in range(int(self.steps)):
                if step and self.hog:  # a stop mostly lands here: resumed, this thread keeps the GIL and writes
                    hold_the_gil(float(self.hog))
                _write(path, f"{self.who}:{step}\n")  # the name it got before any pause, never asked again
                if step == 0 and self.flag:
                    Path(str(self.flag)).touch()
                if step == 0 and self.resume:
                    os.kill(int(self.resume), signal.SIGCONT)
                if self.pause:
                    time.sleep(float(self.pause))
            return
        lines = ""
        for step in range(int(self.steps)):
            if step:
                path = self.output().path()  # a path request: kart looks at its marker when a beat is due
            lines += f"{self.who}:{step}\n"
            _write(path, lines)
            if step == 0 and self.flag:
                Path(str(self.flag)).touch()
            if step == 0 and self.mode == "gil":
                hold_the_gil(float(self.hog))
            time.sleep(float(self.pause))


def writer_script(**params: object) -> str:
    """The script of a by-path writer on another host (``paused.example``: its own lock folder too) that builds
    ``Paused(**params)`` and prints ``BUILT <value>`` or ``FAILED <error type>``; for ``other_host.start_writer``
    (argv: workspace, two import folders, the pause flag)."""
    arguments = "".join(f"{name}={value!r}, " for name, value in params.items())
    return textwrap.dedent(
        f"""
        import socket, sys
        sys.path[:0] = [sys.argv[2], sys.argv[3]]
        workspace, flag = sys.argv[1], sys.argv[4]
        socket.gethostname = lambda: "paused.example"
        import kart_core
        from paused_task import Paused

        task = Paused({arguments}flag=flag, workspace_directory=workspace)
        try:
            print("BUILT", kart_core.build(task, log_level=30), flush=True)
        except BaseException as exc:
            print("FAILED", type(exc).__name__, flush=True)
        """
    )
