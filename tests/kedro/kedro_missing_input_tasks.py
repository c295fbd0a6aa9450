"""A kart task that needs a raw input file nothing here can make (a ``luigi.ExternalTask``), for the Kedro tests."""

from __future__ import annotations

from typing import Any

import luigi
from kedro_test_tasks import Numbers

import kart_core


class RawInput(luigi.ExternalTask):
    """A file dropped in by another system (nothing here can make it)."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)


class NeedsRawInput(kart_core.TaskOnKart[int]):
    """Counts the lines of a raw input file and adds Numbers' sum."""

    path = luigi.Parameter()
    numbers = kart_core.TaskInstanceParameter(expected_type=Numbers)

    def requires(self) -> dict[str, Any]:
        return {"raw": RawInput(path=self.path), "numbers": self.numbers}

    def run(self) -> None:
        with open(self.path) as handle:
            self.dump(len(handle.readlines()) + sum(self.load("numbers")))
