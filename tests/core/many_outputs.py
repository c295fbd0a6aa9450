"""A dump-only task with several outputs, built in the pytest process and checked from a process "on another
host" (tests/core/test_commit_marker_heartbeat.py): both import it from here, so they agree on its outputs."""

from __future__ import annotations

import luigi

import kart_core
from kart_core.target import TargetOnKart


class Many(kart_core.TaskOnKart[str]):
    """``outputs`` outputs ``many/p<i>.pkl``, each holding ``value``; each run appends ``value`` to the file ``ran``.

    No parameter is significant: every value names the same task, so a run with another ``value`` replaces
    the outputs of the first (a commit that puts a marker).
    """

    value = luigi.Parameter(default="first", significant=False)
    outputs = luigi.IntParameter(default=12, significant=False)
    ran = luigi.Parameter(default="", significant=False)

    def output(self) -> dict[str, TargetOnKart]:
        return {f"p{i}": self.make_target(f"many/p{i}.pkl") for i in range(self.outputs)}

    def run(self) -> None:
        if self.ran:
            with open(self.ran, "a") as file:
                file.write(f"{self.value}\n")
        for i in range(self.outputs):
            self.dump(self.value, f"p{i}")
