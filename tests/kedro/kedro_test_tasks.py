"""Small kart tasks for the Kedro tests: Numbers -> Doubled -> Total, and Combine over a list of tasks.

Each run appends the task's label to the file named by KART_KEDRO_TEST_JOURNAL (if set), so tests
count runs across processes.
"""

from __future__ import annotations

import datetime
import enum
import os
from typing import Any

import luigi

import kart_core


def journal(task: kart_core.TaskOnKart[Any]) -> None:
    """Append the task's label to the journal file, if one is set."""
    path = os.environ.get("KART_KEDRO_TEST_JOURNAL")
    if path:
        with open(path, "a") as handle:
            handle.write(f"{task.kart_label()}\n")


def journal_lines(path: str) -> list[str]:
    """The labels journalled so far."""
    return open(path).read().split() if os.path.exists(path) else []


class Numbers(kart_core.TaskOnKart[list]):
    """``size`` numbers starting at ``start``."""

    size = luigi.IntParameter(default=4)
    start = luigi.IntParameter(default=1)
    day = luigi.DateParameter(default=datetime.date(2024, 1, 1))

    def run(self) -> None:
        journal(self)
        self.dump(list(range(self.start, self.start + self.size)))


class Doubled(kart_core.TaskOnKart[list]):
    """Each number times ``factor``."""

    source = kart_core.TaskInstanceParameter(expected_type=Numbers)
    factor = luigi.IntParameter(default=2)

    def run(self) -> None:
        journal(self)
        self.dump([value * self.factor for value in self.load("source")])


class Total(kart_core.TaskOnKart[int]):
    """The sum of the doubled numbers."""

    doubled = kart_core.TaskInstanceParameter(expected_type=Doubled)

    def run(self) -> None:
        journal(self)
        self.dump(sum(self.load("doubled")))


class Combine(kart_core.TaskOnKart[list]):
    """The concatenation of several Numbers outputs."""

    parts = kart_core.ListTaskInstanceParameter(expected_elements_type=Numbers)

    def run(self) -> None:
        journal(self)
        self.dump([value for part in self.load("parts") for value in part])


class NotATask:
    """A class that is not a TaskOnKart (for the bad-config tests)."""


class Color(enum.Enum):
    """An enum for EnumParameter."""

    RED = 1
    BLUE = 2


class Typed(kart_core.TaskOnKart[dict]):
    """One parameter of each luigi type (for the YAML value checks)."""

    count = luigi.IntParameter(default=1)
    ratio = luigi.FloatParameter(default=0.5)
    flag = luigi.BoolParameter(default=False)
    name = luigi.Parameter(default="x")
    maybe = luigi.OptionalIntParameter(default=None)
    day = luigi.DateParameter(default=datetime.date(2024, 1, 1))
    moment = luigi.DateSecondParameter(default=datetime.datetime(2024, 1, 1))
    items = luigi.ListParameter(default=())
    mapping = luigi.DictParameter(default={})
    choice = luigi.ChoiceParameter(choices=["a", "b"], default="a")
    color = luigi.EnumParameter(enum=Color, default=Color.RED)

    def run(self) -> None:
        self.dump({"count": self.count})
