"""A task whose run() writes its output by path in steps, for the clock-skew tests (``test_marker_clock_skew``).

Its own module, imported by the test and by the process standing in for another host, so that both runs are
one task class (the manifest's owner) and one output.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import luigi

import kart_core
from kart_core.storage import storage_for


class Skewed(kart_core.TaskOnKart[Any]):
    """Writes ``{who}:{step}`` lines to its output by path, the whole file again each step (object storage has no
    append), ``pause`` seconds apart; touches ``flag`` once the path was handed out (the marker is there)."""

    who = luigi.Parameter(default="here", significant=False)
    steps = luigi.IntParameter(default=1, significant=False)
    pause = luigi.FloatParameter(default=0.0, significant=False)
    flag = luigi.Parameter(default="", significant=False)

    def output(self) -> Any:
        return self.make_target("skew/out.txt")

    def run(self) -> None:
        path = self.output().path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.flag:
            Path(str(self.flag)).touch()
        lines = ""
        for step in range(int(self.steps)):
            lines += f"{self.who}:{step}\n"
            if "://" in path:
                with storage_for(path).file_system.open(path, "w") as file:  # type: ignore[attr-defined]
                    file.write(lines)
            else:
                with open(path, "w") as file:
                    file.write(lines)
            time.sleep(float(self.pause))
