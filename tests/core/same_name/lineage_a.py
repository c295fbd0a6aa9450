"""Module a of the same-named lineage pair (``tests/core/test_lineage_owners.py``): its tasks share the manifest
``log/manifest/{Class}_{id}.json`` with module b's tasks of the same name, parameters and requirements (the unique
id does not cover the module), each with its own outputs under its module's folder."""

from __future__ import annotations

import os

import luigi

import kart_core

VALUE = "KART_TEST_SN_LINEAGE_VALUE"  # what the sources dump: set by the test before each build


class SnSource(kart_core.TaskOnKart[int]):
    """A source whose content the test changes between runs (the environment variable, read in run())."""

    n = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(int(os.environ[VALUE]))


class SnReader(kart_core.TaskOnKart[int]):
    """Loads SnSource; module b's SnReader of the same parameters (requiring module b's SnSource, so the same
    unique id) shares its manifest and loads nothing."""

    n = luigi.IntParameter(default=1)

    def requires(self) -> SnSource:
        return SnSource(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 100)
