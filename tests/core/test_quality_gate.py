"""A requirement whose own complete() refuses its output after its run keeps its readers from running (at14 N18).

luigi's worker checks every requirement's ``complete()`` right before a task runs and fails the task with
"Unfulfilled dependency at run time" when one says False: gokart projects gate data that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pandas as pd
import pytest

import kart_core
from kart_core.errors import GokartBuildError, UnfulfilledDependencyError


class Extract(kart_core.TaskOnKart[pd.DataFrame]):
    """Delivers ``rows`` rows; done only when it delivered some (the gate)."""

    rows = luigi.IntParameter()

    def run(self) -> None:
        self.dump(pd.DataFrame({"sales": [1.5] * self.rows}))

    def complete(self) -> bool:
        return super().complete() and len(self.output().load()) > 0


class Report(kart_core.TaskOnKart[float]):
    rows = luigi.IntParameter()

    def requires(self) -> Any:
        return Extract(rows=self.rows, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(float(self.load()["sales"].sum()))


class Notify(kart_core.TaskOnKart[str]):
    """A side-effect task whose complete() asks a system that lags behind: never complete."""

    def complete(self) -> bool:
        return False

    def run(self) -> None:
        self.dump("sent")


class AfterNotify(kart_core.TaskOnKart[str]):
    def requires(self) -> Any:
        return Notify(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load())


def _failures(raised: pytest.ExceptionInfo[GokartBuildError]) -> list[BaseException]:
    return [error for errors in raised.value.raised_exceptions.values() for error in errors]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reader_of_a_refused_output_fails_and_is_not_cached(tmp_path: Path, workers: int) -> None:
    report = Report(rows=0, workspace_directory=str(tmp_path))
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(report, workers=workers)
    (error,) = _failures(raised)
    assert isinstance(error, UnfulfilledDependencyError) and isinstance(error, RuntimeError)  # luigi's type
    assert "Extract[" in str(error) and "still incomplete" in str(error)
    assert not report.complete() and not Path(report.output().path()).exists()


def test_a_reader_of_an_accepted_output_runs(tmp_path: Path) -> None:
    assert kart_core.build(Report(rows=2, workspace_directory=str(tmp_path))) == 3.0


def test_a_requirement_that_is_never_complete_stops_its_reader(tmp_path: Path) -> None:
    after = AfterNotify(workspace_directory=str(tmp_path))
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(after)
    (error,) = _failures(raised)
    assert isinstance(error, UnfulfilledDependencyError) and "Notify[" in str(error)
    assert not Path(after.output().path()).exists()
