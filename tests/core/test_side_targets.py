"""Targets a run dumps to that are not its outputs ("side targets": ``self.make_target(...)`` not returned by
``output()``) are committed with the run but are never the task's outputs: not in its integrity record, not part
of its completion check, and never deleted by ``kart verify --delete`` on its behalf (attacker N16: a side file
shared with another task was recorded as the first task's output, and once the other task legitimately wrote it,
``verify --delete`` deleted that good file). Local disk and moto's S3; real runs, no mocks.
"""

from __future__ import annotations

import json
import os

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.signing import HEADER_SIZE
from kart_core.storage import storage_for
from kart_core.workspace import join_url

LEASE = 30  # the `where` fixture's commit-marker lease (seconds); no test here waits on it
SHARED = "shared/lookup.pkl"


class SideWriter(gokart.TaskOnKart[int]):
    """Its output is its own file; it also dumps a lookup table other tasks share (not an output)."""

    n = luigi.IntParameter(default=1)

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("side/writer.pkl")

    def run(self) -> None:
        self.dump(f"lookup from {type(self).__name__} {self.n}", self.make_target(SHARED, use_unique_id=False))
        self.dump(self.n)


class OtherSideWriter(SideWriter):
    """Another class (another manifest) writing the same side file."""


class LookupOwner(gokart.TaskOnKart[str]):
    """A task whose real output is the shared file."""

    text = luigi.Parameter(default="lookup from its owner")

    def output(self) -> gokart.TargetOnKart:
        return self.make_target(SHARED, use_unique_id=False)

    def run(self) -> None:
        self.dump(self.text)


def _manifest(task: gokart.TaskOnKart[object]) -> dict[str, object]:
    record = task.output().record
    return json.loads(storage_for(record.manifest).read_bytes(record.manifest).decode())  # type: ignore[no-any-return]


def _shared(workspace: str) -> object:
    return gokart.TaskOnKart(workspace_directory=workspace).make_target(SHARED, use_unique_id=False).load()


def test_a_side_target_is_committed_with_the_run_but_not_recorded_as_an_output(where: str) -> None:
    task = SideWriter(workspace_directory=where)
    assert gokart.build(task, reset_register=False) == 1
    assert storage_for(join_url(where, SHARED)).exists(join_url(where, SHARED))
    assert list(_manifest(task)["outputs"]) == [task.output().record.key]
    assert _shared(where) == "lookup from SideWriter 1"


def test_another_task_writing_the_shared_file_leaves_the_first_complete_and_verify_deletes_nothing(where: str) -> None:
    first = SideWriter(workspace_directory=where)
    gokart.build(first, reset_register=False)
    # The file exists, so the owner counts as complete (as under gokart) until it is rerun.
    owner = LookupOwner(workspace_directory=where, rerun=True)
    gokart.build(owner, reset_register=False)
    assert first.complete() and owner.complete()

    report = verify_workspace(where)
    assert report.ok, report.problems
    assert remove_damaged(report) == []
    assert _shared(where) == "lookup from its owner"
    assert owner.output().load() == "lookup from its owner"


def test_a_later_run_of_the_same_class_rewriting_the_side_file_leaves_the_earlier_one_alone(where: str) -> None:
    first, second = SideWriter(n=1, workspace_directory=where), SideWriter(n=2, workspace_directory=where)
    gokart.build(first, reset_register=False)
    gokart.build(second, reset_register=False)
    report = verify_workspace(where)
    assert report.ok, report.problems
    assert remove_damaged(report) == []
    assert first.complete() and second.complete()
    assert _shared(where) == "lookup from SideWriter 2"


def test_a_side_target_shared_by_two_classes_makes_neither_incomplete_nor_damaged(where: str) -> None:
    first, second = SideWriter(workspace_directory=where), OtherSideWriter(workspace_directory=where)
    gokart.build(first, reset_register=False)
    gokart.build(second, reset_register=False)
    assert first.complete() and second.complete()
    for task in (first, second):
        assert SHARED not in _manifest(task)["outputs"]
    report = verify_workspace(where)
    assert report.ok, report.problems
    assert remove_damaged(report) == []
    assert _shared(where) == "lookup from OtherSideWriter 1"


def test_a_side_target_written_after_the_owner_does_not_make_the_owner_damaged_by_the_side_writer(where: str) -> None:
    """The side writer overwrites the owner's real output: that is the owner's damage (its record no longer
    matches), reported for the owner; the side writer's record claims nothing."""
    owner = LookupOwner(workspace_directory=where)
    gokart.build(owner, reset_register=False)
    side = SideWriter(workspace_directory=where)
    gokart.build(side, reset_register=False)
    report = verify_workspace(where)
    tasks = {problem.task for problem in report.problems}
    assert tasks == {owner.kart_label()}, report.problems


def test_an_older_record_of_a_side_target_never_deletes_the_file_another_task_committed(where: str) -> None:
    """A manifest written before this fix lists the side file as the task's output; the owner's later commit
    is what the file holds now: verify reports nothing for the old claim and --delete keeps the file."""
    first = SideWriter(workspace_directory=where)
    gokart.build(first, reset_register=False)
    owner = LookupOwner(workspace_directory=where, rerun=True)
    gokart.build(owner, reset_register=False)
    # What kart before the fix wrote: the side file's entry as the first task committed it.
    record = first.output().record
    document = _manifest(first)
    claimed = dict(document["outputs"][record.key])  # type: ignore[index]
    claimed["size"] = int(claimed["size"]) + 7  # the content the first run wrote there (not the owner's)
    claimed["digest"] = "xxh3_128:" + "0" * 32
    document["outputs"][SHARED] = claimed  # type: ignore[index]
    with storage_for(record.manifest).atomic_write(record.manifest) as file:
        file.write(json.dumps(document).encode())

    report = verify_workspace(where)
    assert not [problem for problem in report.problems if problem.path == join_url(where, SHARED)], report.problems
    remove_damaged(report)
    assert _shared(where) == "lookup from its owner"
    assert owner.complete() and owner.output().load() == "lookup from its owner"


def test_a_side_target_loads_under_signing(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")
    task = SideWriter(workspace_directory=where)
    gokart.build(task, reset_register=False)
    assert task.make_target(SHARED, use_unique_id=False).load() == "lookup from SideWriter 1"
    report = verify_workspace(where)
    assert report.ok, report.problems


class ByPathSideWriter(gokart.TaskOnKart[int]):
    """Writes its side file by path (``open(target.path(), "w")``), as gokart code often does."""

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("side/by_path.pkl")

    def run(self) -> None:
        path = self.make_target("shared/notes.txt", use_unique_id=False).path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write("notes")
        self.dump(1)


def test_a_side_file_written_by_path_is_committed_and_not_recorded(workspace: str) -> None:
    task = ByPathSideWriter(workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    assert open(join_url(workspace, "shared/notes.txt")).read() == "notes"
    assert list(_manifest(task)["outputs"]) == [task.output().record.key]
    assert verify_workspace(workspace).ok


def test_a_refused_record_listing_another_task_s_output_leaves_that_output(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing on: an older record of the side file (its edit breaks its signature, so verify refuses it) makes
    ``--delete`` remove that task's record and outputs, never the file the owner's signed record vouches for."""
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")
    first = SideWriter(workspace_directory=where)
    gokart.build(first, reset_register=False)
    owner = LookupOwner(workspace_directory=where, rerun=True)
    gokart.build(owner, reset_register=False)
    record = first.output().record
    data = storage_for(record.manifest).read_bytes(record.manifest)
    document = json.loads(data[HEADER_SIZE:])  # after its signature header
    document["outputs"][SHARED] = dict(document["outputs"][record.key])
    with storage_for(record.manifest).atomic_write(record.manifest) as file:
        file.write(json.dumps(document).encode())

    report = verify_workspace(where)
    assert [(problem.kind, problem.task) for problem in report.problems] == [("manifest", first.kart_label())]
    deleted = remove_damaged(report)
    assert join_url(where, SHARED) not in deleted and first.output().path() in deleted
    assert owner.output().load() == "lookup from its owner"


class OwnTargetReader(gokart.TaskOnKart[str]):
    """Reads the shared lookup through its own make_target, the gokart idiom for a path in the workspace."""

    def requires(self) -> SideWriter:
        return SideWriter(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.make_target(SHARED, use_unique_id=False).load())


def test_a_run_reads_another_writer_s_file_through_its_own_make_target(where: str) -> None:
    """The reader's own run in progress is not a dead run of it (attacker at16 G5: the load failed with "a run of
    OwnTargetReader started ... but never finished", as gokart code reading a shared path does)."""
    assert gokart.build(OwnTargetReader(workspace_directory=where), reset_register=False) == "lookup from SideWriter 1"
