"""Tasks of one lineage for the catalog entries' staleness tests: Level <- LevelPlus <- LevelTimes."""

from __future__ import annotations

import luigi
from kedro_test_tasks import journal

import kart_core


class Level(kart_core.TaskOnKart[int]):
    """Dumps 10 * ``value``: not part of the id, so a rerun with another value is new content under the same id."""

    value = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        journal(self)
        self.dump(10 * self.value)


class LevelPlus(kart_core.TaskOnKart[int]):
    """Level + 1."""

    def requires(self) -> Level:
        return Level(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        journal(self)
        self.dump(self.load() + 1)


class LevelTimes(kart_core.TaskOnKart[int]):
    """LevelPlus * 100: two links above Level."""

    def requires(self) -> LevelPlus:
        return LevelPlus(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        journal(self)
        self.dump(self.load() * 100)
