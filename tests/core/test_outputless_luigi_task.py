"""A plain luigi.Task with no outputs (a side effect, such as a notification) in a kart graph (attacker at25 F5).

luigi's ``complete()`` is False for a task with no outputs, so luigi's worker runs it on every build and counts it
done once ``run()`` returns; gokart 1.12.2's ``build()`` returns ``[]`` for it. kart ran it and then failed the build
("ran but is still incomplete: an external input is missing"), on every build. A task that requires it is refused
as luigi's worker refuses it ('Unfulfilled dependency at run time'), and gokart fails it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, TaskDefinitionError, UnfulfilledDependencyError
from kart_core.runner import RunStatus, run_one


class Source(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class Notify(luigi.Task):
    """Appends a line to ``log`` (the side effect) each time it runs; no output()."""

    log = luigi.Parameter()
    workspace_directory = luigi.Parameter()

    def requires(self) -> Any:
        return Source(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        with open(self.log, "a") as file:
            file.write("sent\n")


class AfterNotify(kart_core.TaskOnKart[str]):
    log = luigi.Parameter()

    def requires(self) -> Any:
        return Notify(log=self.log, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump("after")


class WritesNothing(luigi.Task):
    """Declares an output its run() never writes."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)

    def run(self) -> None:
        pass


def _sent(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_outputless_luigi_task_runs_on_every_build_and_the_build_succeeds(
    any_workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    log = tmp_path / "sent.log"
    notify = Notify(log=str(log), workspace_directory=any_workspace)
    assert kart_core.build(notify, workers=workers, executor=executor, reset_register=False) == []
    assert _sent(log) == 1
    assert kart_core.build(notify, workers=workers, executor=executor, reset_register=False) == []
    assert _sent(log) == 2  # never complete: its side effect runs again, as under luigi


def test_run_one_runs_an_outputless_luigi_task_each_time(workspace: str, tmp_path: Path) -> None:
    """The one way every scheduler (Airflow's operator, Kedro) runs a task."""
    log = tmp_path / "sent.log"
    kart_core.build(Source(workspace_directory=workspace), reset_register=False)
    notify = Notify(log=str(log), workspace_directory=workspace)
    assert run_one(notify) is RunStatus.RAN
    assert run_one(notify) is RunStatus.RAN
    assert _sent(log) == 2


def test_luigi_build_of_an_outputless_task_succeeds(workspace: str, tmp_path: Path) -> None:
    log = tmp_path / "sent.log"
    notify = Notify(log=str(log), workspace_directory=workspace)
    assert luigi.build([notify], local_scheduler=True, log_level="CRITICAL")
    assert _sent(log) == 1


def test_a_task_requiring_an_outputless_task_is_refused_as_luigi_refuses_it(workspace: str, tmp_path: Path) -> None:
    log = tmp_path / "sent.log"
    after = AfterNotify(log=str(log), workspace_directory=workspace)
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(after, reset_register=False)
    ((failure,),) = raised.value.raised_exceptions.values()
    assert isinstance(failure, UnfulfilledDependencyError)
    assert "declares no outputs" in str(failure) and "Notify(" in str(failure) and "AfterNotify[" in str(failure)
    assert _sent(log) == 1  # the side effect ran; its reader did not
    assert not after.complete()


def test_a_luigi_task_whose_run_wrote_nothing_names_its_output(workspace: str, tmp_path: Path) -> None:
    path = tmp_path / "never.txt"
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(WritesNothing(path=str(path)), reset_register=False)
    ((failure,),) = raised.value.raised_exceptions.values()
    assert isinstance(failure, TaskDefinitionError)
    assert str(path) in str(failure) and "run() wrote nothing" in str(failure)
