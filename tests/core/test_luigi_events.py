"""luigi's events and reporter callbacks around a task's run, as luigi's worker gives them (attacker at14 N13, N14).

gokart projects hang alerts, audit logs and timings on ``@Task.event_handler(luigi.Event.X)`` and on
``on_success``/``on_failure``; ``set_status_message`` and ``set_progress_percentage`` are called in ``run()``.
Handlers write to a journal file, so a run in a worker process is seen too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest
from gokart_twin import run_both

import kart_core
from kart_core.errors import GokartBuildError


class Journaled(kart_core.TaskOnKart[int]):
    """Writes a line per event to the file ``journal`` names."""

    journal = luigi.Parameter(significant=False)
    x = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.set_status_message(f"working on {self.x}")
        self.set_progress_percentage(50)
        if self.x < 0:
            raise ValueError("a negative x")
        self.dump(self.x)

    def on_success(self) -> None:
        _note(self, "on_success", self.x)

    def on_failure(self, exception: BaseException) -> str:
        _note(self, "on_failure", self.x, type(exception).__name__)
        return "explained"


class JournaledSum(kart_core.TaskOnKart[int]):
    journal = luigi.Parameter(significant=False)
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(sum(self.load("leaves")))


def _note(task: Any, *event: Any) -> None:
    with open(task.journal, "a") as file:
        file.write(json.dumps([type(task).__name__, *event]) + "\n")


@Journaled.event_handler(luigi.Event.START)
def _started(task: Any) -> None:
    _note(task, "start", task.x)


@Journaled.event_handler(luigi.Event.PROCESSING_TIME)
def _timed(task: Any, seconds: float) -> None:
    _note(task, "time", task.x, type(seconds).__name__, seconds >= 0)


@Journaled.event_handler(luigi.Event.SUCCESS)
def _succeeded(task: Any) -> None:
    # The output is committed when SUCCESS fires: a handler may read it (an upload, an audit of the value).
    _note(task, "success", task.x, task.output().load())


@Journaled.event_handler(luigi.Event.FAILURE)
def _failed(task: Any, exception: BaseException) -> None:
    _note(task, "failure", task.x, type(exception).__name__)


@kart_core.TaskOnKart.event_handler(luigi.Event.SUCCESS)
def _any_succeeded(task: Any) -> None:
    if isinstance(task, JournaledSum):
        _note(task, "any_success")


@pytest.fixture(autouse=True, scope="module")
def _handlers_end_with_the_module() -> Iterator[None]:
    """The handlers above are registered at import, as a project registers them; they are removed when this module's
    tests are done, so the test files an xdist worker runs next do not build with luigi events on."""
    yield
    for cls, event, callback in [
        (Journaled, luigi.Event.START, _started),
        (Journaled, luigi.Event.PROCESSING_TIME, _timed),
        (Journaled, luigi.Event.SUCCESS, _succeeded),
        (Journaled, luigi.Event.FAILURE, _failed),
        (kart_core.TaskOnKart, luigi.Event.SUCCESS, _any_succeeded),
    ]:
        cls.remove_event_handler(event, callback)


def _journal(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("workers, executor", [(1, "process"), (2, "thread"), (2, "process")])
def test_a_successful_run_fires_luigis_events_in_luigis_order(tmp_path: Path, workers: int, executor: str) -> None:
    journal, workspace = tmp_path / "journal.txt", str(tmp_path / "ws")
    leaves = [Journaled(journal=str(journal), x=x, workspace_directory=workspace) for x in (1, 2)]
    root = JournaledSum(journal=str(journal), leaves=leaves, workspace_directory=workspace)
    assert kart_core.build(root, workers=workers, executor=executor) == 3
    for x in (1, 2):
        assert [event for event in _journal(journal) if event[0] == "Journaled" and event[2] == x] == [
            ["Journaled", "start", x],
            ["Journaled", "time", x, "float", True],
            ["Journaled", "on_success", x],
            ["Journaled", "success", x, x],
        ]
    assert ["JournaledSum", "any_success"] in _journal(journal)

    kart_core.build(root, workers=workers, executor=executor)  # cached: nothing runs, no event fires
    assert len(_journal(journal)) == 9


def test_a_failed_run_fires_failure_and_on_failure(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    task = Journaled(journal=str(journal), x=-1, workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(GokartBuildError):
        kart_core.build(task)
    assert _journal(journal) == [
        ["Journaled", "start", -1],
        ["Journaled", "failure", -1, "ValueError"],
        ["Journaled", "on_failure", -1, "ValueError"],
    ]


def test_status_and_progress_calls_in_run_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    task = Journaled(journal=str(tmp_path / "journal.txt"), x=7, workspace_directory=str(tmp_path / "ws"))
    caplog.set_level(logging.INFO, logger="kart_core.luigi_events")
    assert kart_core.build(task) == 7
    messages = [record.getMessage() for record in caplog.records if record.name == "kart_core.luigi_events"]
    assert any(m.endswith("status: working on 7") for m in messages)
    assert any(m.endswith("progress 50%") for m in messages)
    assert task.set_status_message is None  # as luigi's worker leaves it after the run


def test_under_luigi_build_each_event_fires_once(tmp_path: Path) -> None:
    # luigi's worker fires the events around run(), which goes through kart's run_one: not twice.
    journal = tmp_path / "journal.txt"
    task = Journaled(journal=str(journal), x=3, workspace_directory=str(tmp_path / "ws"))
    assert luigi.build([task], local_scheduler=True, log_level="ERROR")
    assert _journal(journal) == [
        ["Journaled", "start", 3],
        ["Journaled", "time", 3, "float", True],
        ["Journaled", "on_success", 3],
        ["Journaled", "success", 3, 3],
    ]


# --- the events of luigi's dependency walk (attacker at14 N13) -----------------------------------------------

_WALK_SCRIPT = """
import json
import luigi
import gokart

EVENTS = []

def name(task):
    return task.task_family + ':' + str(getattr(task, 'tag', ''))

@luigi.Task.event_handler(luigi.Event.DEPENDENCY_DISCOVERED)
def _discovered(task, dependency):
    EVENTS.append(['discovered', name(task), name(dependency)])

@luigi.Task.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _missing(task):
    EVENTS.append(['missing', name(task)])

@luigi.Task.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _present(task):
    EVENTS.append(['present', name(task)])

@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def _broken(task, exception):
    EVENTS.append(['broken', name(task), type(exception).__name__, str(exception)])


class Leaf(gokart.TaskOnKart):
    tag = luigi.Parameter()
    def run(self):
        self.dump(self.tag)

class Mid(gokart.TaskOnKart):
    tag = luigi.Parameter()
    def requires(self):
        return Leaf(tag=self.tag)
    def run(self):
        self.dump(self.load())

class Absent(luigi.ExternalTask):
    tag = luigi.Parameter()
    def output(self):
        return luigi.LocalTarget('absent.csv')

class BadRequires(luigi.Task):
    tag = luigi.Parameter()
    def requires(self):
        raise ValueError('requires broke')
    def output(self):
        return luigi.LocalTarget('bad.txt')

class BadComplete(luigi.Task):
    tag = luigi.Parameter()
    def complete(self):
        raise OSError('cannot reach the store')

class Root(gokart.TaskOnKart):
    tag = luigi.Parameter()
    kind = luigi.Parameter()
    def requires(self):
        upstream = {}
        if self.kind.endswith('_first'):  # walked first: luigi's worker still walks the others
            upstream['bad'] = BadRequires(tag=self.tag) if 'requires' in self.kind else BadComplete(tag=self.tag)
        upstream.update({'cached': Leaf(tag='cached'), 'mid': Mid(tag=self.tag)})
        if self.kind == 'absent':
            upstream['absent'] = Absent(tag=self.tag)
        if self.kind == 'bad_requires':
            upstream['bad'] = BadRequires(tag=self.tag)
        if self.kind == 'bad_complete':
            upstream['bad'] = BadComplete(tag=self.tag)
        return upstream
    def run(self):
        self.dump('root')


def events_of(kind):
    del EVENTS[:]
    try:
        gokart.build(Root(tag=kind, kind=kind), reset_register=False, return_value=False)
        outcome = 'built'
    except Exception as exc:
        outcome = type(exc).__name__
    return {'outcome': outcome, 'events': sorted(EVENTS)}


def events_of_run():
    del EVENTS[:]
    try:
        gokart.run(['Root', '--local-scheduler', '--tag', 'run', '--kind', 'plain'])
    except SystemExit as exit:
        outcome = exit.code
    return {'outcome': outcome, 'events': sorted(EVENTS)}


gokart.build(Leaf(tag='cached'), reset_register=False)
kinds = ['plain', 'absent', 'bad_requires', 'bad_complete', 'bad_requires_first', 'bad_complete_first']
found = {kind: events_of(kind) for kind in kinds}
found['again'] = events_of('plain')  # all complete now: the root is present, nothing is discovered
found['run'] = events_of_run()
print(json.dumps(found))
"""


def test_the_dependency_walk_fires_luigis_events_as_gokart(tmp_path: Path) -> None:
    """``DEPENDENCY_DISCOVERED`` (task, upstream) for each upstream of a task found incomplete,
    ``DEPENDENCY_PRESENT`` for a complete task, ``DEPENDENCY_MISSING`` for a missing external input or a
    ``complete()`` that raised, ``BROKEN_TASK`` (task, exception) for a ``requires()`` that raised: each once,
    under ``build()`` and ``gokart.run``, equal to gokart 1.12.2's (luigi's worker), each in its own process."""
    results = run_both(_WALK_SCRIPT, tmp_path)
    assert results["kart"] == results["gokart"]
    assert ["present", "Root:plain"] in results["kart"]["again"]["events"]
    assert ["broken", "BadRequires:bad_requires", "ValueError", "requires broke"] in results["kart"]["bad_requires"][
        "events"
    ]
