"""A kart task for the KartRunner trust tests (its own module: kedro_test_tasks' class list is asserted elsewhere)."""

from __future__ import annotations

import os

import luigi
from kedro_test_tasks import journal

import kart_core


class Shifted(kart_core.TaskOnKart[list]):
    """``range(size)`` plus a shift read from KART_KEDRO_TEST_SHIFT, which the unique id does not cover:
    it stands for an edit of helper code the id does not see (rebuilt, the same id holds other content)."""

    size = luigi.IntParameter(default=3)

    def run(self) -> None:
        journal(self)
        shift = int(os.environ.get("KART_KEDRO_TEST_SHIFT", "0"))
        self.dump([value + shift for value in range(self.size)])
