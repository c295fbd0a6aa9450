"""Module b of the same-named lineage pair (see ``lineage_a``)."""

from __future__ import annotations

import os

import luigi

import kart_core

VALUE = "KART_TEST_SN_LINEAGE_VALUE"


class SnSource(kart_core.TaskOnKart[int]):
    """Dumps what the test sets (a source of module b's SnReader, so both SnReaders have the same unique id:
    gokart's id covers the ids of what a task requires)."""

    n = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(int(os.environ[VALUE]))


class SnReader(kart_core.TaskOnKart[int]):
    """Requires an SnSource (as module a's SnReader does: the same unique id) but loads nothing: its commit writes
    the shared manifest with no inputs."""

    n = luigi.IntParameter(default=1)

    def requires(self) -> SnSource:
        return SnSource(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(int(os.environ[VALUE]))
