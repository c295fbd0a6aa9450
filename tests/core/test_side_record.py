"""Side files under signing (attacker at16 G4; kart_core.side_record): a file a run dumps beside its outputs
(``self.make_target(...)`` not returned by ``output()``) is sealed with the run's commit, listed under its task's
manifest's ``side`` section (not as an output) and named by the path's signed record as the last writer's.

An older signed copy put back is refused through every task's target (994f1a0 had sealed side files without a
commit, so such a copy was served and propagated downstream); the latest legitimate copy loads through every task's
target, also when another task or class wrote the shared path last; ``complete()``, ``kart verify`` (and
``--delete``) and ``kart gc`` keep treating side files as no task's outputs. A side file written by the path ``run()``
asked is signed and listed too (it was committed unsigned, so every load refused it). Real builds, local disk and
moto's S3, pickle and CSV.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from typing import Any

import luigi
import pandas as pd
import pytest

import kart_core as gokart
from kart_core.errors import GokartBuildError, IntegrityError, MissingOutputError
from kart_core.inspect import delete_unreachable, plan_gc
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.signing import read_seal
from kart_core.storage import storage_for
from kart_core.target import TargetOnKart
from kart_core.workspace import join_url

LEASE = 30  # the `where` fixture's commit-marker lease (seconds); no test here waits on it


class SideWriter(gokart.TaskOnKart[int]):
    """Its output is its own file; it also dumps a table other tasks share (a side file, not an output)."""

    n = luigi.IntParameter(default=1)
    ext = luigi.Parameter(default="pkl")

    def output(self) -> TargetOnKart:
        return self.make_target("side/writer.pkl")

    def run(self) -> None:
        table = {"threshold": self.n}
        self.dump(table if self.ext == "pkl" else pd.DataFrame({"threshold": [self.n]}), _shared(self))
        self.dump(self.n)


class OtherSideWriter(SideWriter):
    """Another class (another manifest) writing the same shared side file."""


class Reader(gokart.TaskOnKart[int]):
    """Reads the shared table through its upstream's make_target, as the attacker's repro does."""

    ext = luigi.Parameter(default="pkl")

    def requires(self) -> SideWriter:
        return SideWriter(n=2, ext=self.ext, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(_threshold(_shared(self.requires()).load()))


class ByPathSideWriter(gokart.TaskOnKart[int]):
    """Writes its side file by the path run() asks for, as gokart code often does."""

    n = luigi.IntParameter(default=1)

    def output(self) -> TargetOnKart:
        return self.make_target("side/by_path.pkl")

    def run(self) -> None:
        path = self.make_target("shared/notes.txt", use_unique_id=False).path()
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with storage_for(path).atomic_write(path) as file:  # by path: a local file, or one put on object storage
            file.write(f"threshold {self.n}\n".encode())
        self.dump(self.n)


def _shared(task: gokart.TaskOnKart[Any]) -> TargetOnKart:
    return task.make_target(f"shared/lookup.{getattr(task, 'ext', 'pkl')}", use_unique_id=False)


def _threshold(table: Any) -> int:
    """The threshold of the shared table: a dict (pickle) or a one-row DataFrame (CSV)."""
    return int(table["threshold"] if isinstance(table, dict) else table["threshold"].iloc[0])


def _bare(workspace: str, ext: str) -> TargetOnKart:
    """The shared table through a task that never wrote it."""
    return gokart.TaskOnKart(workspace_directory=workspace).make_target(f"shared/lookup.{ext}", use_unique_id=False)


def _record_name(key: str) -> str:
    """Where the signed record of the side file at ``key`` lives (kart_core.side_record's layout)."""
    return f"log/side/{hashlib.sha256(key.encode()).hexdigest()}.json"


def _read(path: str) -> bytes:
    return storage_for(path).read_bytes(path)


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _manifest(task: gokart.TaskOnKart[Any]) -> dict[str, Any]:
    record = task.output().record
    data = _read(record.manifest)
    return json.loads(data[64:] if data.startswith(b"KARTSIG2") else data)  # type: ignore[no-any-return]


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")


@pytest.fixture(params=["pkl", "csv"])
def ext(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _build(task: gokart.TaskOnKart[Any]) -> Any:
    return gokart.build(task, reset_register=False, log_level=50)


def test_an_older_signed_copy_put_back_is_refused_through_every_target(where: str, ext: str, signed: None) -> None:
    first, second = (
        SideWriter(n=1, ext=ext, workspace_directory=where),
        SideWriter(n=2, ext=ext, workspace_directory=where),
    )
    _build(first)
    path = _shared(first).path()
    old = _read(path)  # a backup of the signed table
    _build(second)
    assert _build(Reader(ext=ext, workspace_directory=where)) == 2

    _put(path, old)  # the older signed version put back
    for target in (_shared(second), _shared(first), _bare(where, ext)):
        with pytest.raises(IntegrityError, match="older version copied back"):
            target.load()
    with pytest.raises(GokartBuildError, match="IntegrityError"):
        _build(Reader(ext=ext, workspace_directory=where, rerun=True))
    # The way out the message gives: the writer's rerun writes the table anew.
    _build(SideWriter(n=2, ext=ext, workspace_directory=where, rerun=True))
    assert _build(Reader(ext=ext, workspace_directory=where, rerun=True)) == 2


def test_an_older_copy_of_the_same_task_s_run_is_refused(where: str, signed: None) -> None:
    """The path's record names this task's manifest both times; put back with the file, the older record is refused
    too: the manifest's ``side`` entry names the newer run."""
    task = SideWriter(n=2, workspace_directory=where)
    _build(task)
    path = _shared(task).path()
    record_path = join_url(where, _record_name("shared/lookup.pkl"))
    old = _read(path)
    old_record = _read(record_path) if storage_for(record_path).exists(record_path) else None
    _build(SideWriter(n=2, workspace_directory=where, rerun=True))
    _put(path, old)
    with pytest.raises(IntegrityError, match="older version copied back"):
        _shared(task).load()
    assert old_record is not None and _read(record_path) != old_record
    _put(record_path, old_record)
    with pytest.raises(IntegrityError, match="older version copied back"):
        _shared(task).load()


def test_a_copy_sealed_without_a_commit_put_back_is_refused(
    where: str, signed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A side file signed without a commit (kart from 13:44 on, or integrity records off) put back over the copy
    of a run that recorded the path: an older version, refused (a downgrade to the weaker seal)."""
    monkeypatch.setenv("KART_INTEGRITY_RECORD", "0")
    first = SideWriter(n=1, workspace_directory=where)
    _build(first)
    path = _shared(first).path()
    old = _read(path)
    seal = read_seal(old)
    assert seal is not None and seal.commit is None
    monkeypatch.delenv("KART_INTEGRITY_RECORD")
    assert _threshold(_shared(first).load()) == 1  # no run of this kart recorded the path: it loads
    second = SideWriter(n=2, workspace_directory=where)
    _build(second)
    _put(path, old)
    for target in (_shared(second), _shared(first), _bare(where, "pkl")):
        with pytest.raises(IntegrityError, match="older version copied back"):
            target.load()
    # Attacker at18 I12: the path's record deleted too; the second writer's signed manifest still lists the path.
    side = _shared(second).record
    assert side is not None
    record = join_url(where, _record_name(side.key))
    storage_for(record).remove(record)
    for target in (_shared(second), _shared(first), _bare(where, "pkl")):
        with pytest.raises(IntegrityError, match="older version copied back"):
            target.load()


def test_the_last_writer_s_copy_loads_through_every_task_s_target(where: str, ext: str, signed: None) -> None:
    writers = [
        SideWriter(n=1, ext=ext, workspace_directory=where),
        SideWriter(n=2, ext=ext, workspace_directory=where),
        OtherSideWriter(n=3, ext=ext, workspace_directory=where),
    ]
    for writer in writers:
        _build(writer)
        for target in [*(_shared(each) for each in writers), _bare(where, ext)]:
            assert _threshold(target.load()) == writer.n
    assert all(writer.complete() for writer in writers)


def test_side_files_are_listed_apart_and_verify_and_gc_leave_them_alone(where: str, signed: None) -> None:
    first, other = SideWriter(n=1, workspace_directory=where), OtherSideWriter(n=3, workspace_directory=where)
    _build(first)
    _build(other)
    path = _shared(first).path()
    seal = read_seal(_read(path))
    assert seal is not None
    for task in (first, other):
        document = _manifest(task)
        record = task.output().record
        assert record is not None and list(document["outputs"]) == [record.key]
        assert list(document["side"]) == ["shared/lookup.pkl"]
    assert _manifest(other)["side"]["shared/lookup.pkl"]["commit"] == seal.commit  # the last writer's run
    assert _manifest(first)["side"]["shared/lookup.pkl"]["commit"] != seal.commit

    report = verify_workspace(where)
    assert report.ok, report.problems
    assert remove_damaged(report) == []
    for scope in ("classes", "all"):
        deleted = delete_unreachable(plan_gc([first, other], where, scope=scope))  # type: ignore[arg-type]
        assert path not in deleted and not any("log/side/" in item for item in deleted), deleted
    assert first.complete() and other.complete()
    assert _threshold(_shared(first).load()) == 3


class Vocabulary(gokart.TaskOnKart[int]):
    """A side file named with the task's unique id (the default of make_target), as the attacker's G13 repro."""

    def run(self) -> None:
        self.dump(["a", "b"], self.make_target("work/vocab.pkl"))
        self.dump(2)


def test_a_kart_named_side_file_is_not_reported_unrecorded_and_rollback_refused(where: str, signed: None) -> None:
    task = Vocabulary(workspace_directory=where)
    _build(task)
    vocab = task.make_target("work/vocab.pkl")
    old = _read(vocab.path())
    report = verify_workspace(where)
    assert report.ok, report.problems
    assert remove_damaged(report, unrecorded=True) == []
    _build(Vocabulary(workspace_directory=where, rerun=True))
    assert vocab.load() == ["a", "b"]
    _put(vocab.path(), old)
    with pytest.raises(IntegrityError, match="older version copied back"):
        vocab.load()


def test_a_side_file_written_by_path_is_signed_listed_and_rollback_refused(where: str, signed: None) -> None:
    workspace = where
    first = ByPathSideWriter(n=1, workspace_directory=workspace)
    _build(first)
    target = first.make_target("shared/notes.txt", use_unique_id=False)
    assert target.load() == ["threshold 1"]
    assert list(_manifest(first)["side"]) == ["shared/notes.txt"]
    old = _read(target.path())
    _build(ByPathSideWriter(n=2, workspace_directory=workspace))
    assert target.load() == ["threshold 2"]
    _put(target.path(), old)
    with pytest.raises(IntegrityError):
        target.load()
    report = verify_workspace(workspace)  # kart verify reports what the load refuses (test_side_record_verify.py)
    assert [(problem.kind, problem.path) for problem in report.problems] == [("signature", target.path())]


def test_a_side_file_read_by_path_but_not_written_is_not_signed_as_the_run_s(workspace: str, signed: None) -> None:
    """A run that only reads a shared file by the path of its own make_target must not vouch for those bytes."""

    class PathReader(gokart.TaskOnKart[str]):
        def run(self) -> None:
            with open(self.make_target("shared/notes.json", use_unique_id=False).path()) as file:
                self.dump(file.read())

    path = join_url(workspace, "shared/notes.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as file:
        file.write('{"planted": true}')
    assert _build(PathReader(workspace_directory=workspace)) == '{"planted": true}'
    assert _read(path) == b'{"planted": true}'  # not sealed: kart did not write it
    assert "side" not in _manifest(PathReader(workspace_directory=workspace))


def test_unsigned_side_files_are_listed_and_load(any_workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIGNING_KEY, raising=False)
    task = SideWriter(n=4, workspace_directory=any_workspace)
    _build(task)
    entry = _manifest(task)["side"]["shared/lookup.pkl"]
    assert entry["sealed"] is False and entry["commit"] and entry["digest"].startswith("xxh3_128:")
    assert _shared(task).load() == {"threshold": 4}
    assert not storage_for(any_workspace).exists(join_url(any_workspace, _record_name("shared/lookup.pkl")))


def _unchecked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "loads unchecked" in record.getMessage()]


def test_unsigned_side_files_load_through_every_target_without_a_false_warning(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Attacker at19 J8: every load of a shared side file through its writer's make_target warned that the writer's
    manifest "is gone: it was removed since" (it is there and lists the path under 'side'), through another task's
    that "no run ... recorded it"; a file no manifest lists still warns."""
    monkeypatch.delenv(SIGNING_KEY, raising=False)
    caplog.set_level(logging.WARNING)
    first, second = (
        SideWriter(n=1, workspace_directory=any_workspace),
        SideWriter(n=2, workspace_directory=any_workspace),
    )
    _build(first)
    _build(second)
    assert _build(Reader(workspace_directory=any_workspace)) == 2
    assert _build(Reader(workspace_directory=any_workspace, rerun=True)) == 2
    for target in (_shared(second), _shared(first), _bare(any_workspace, "pkl")):
        assert _threshold(target.load()) == 2
    assert _unchecked(caplog) == []

    # A file no run listed (put there by hand) still warns, as does one whose only listing manifest was removed.
    planted = second.make_target("shared/planted.pkl", use_unique_id=False)
    _put(planted.path(), pickle.dumps({"threshold": 9}))
    assert planted.load() == {"threshold": 9}
    (warning,) = _unchecked(caplog)
    assert "shared/planted.pkl" in warning and "is gone" in warning
    only = OtherSideWriter(n=3, ext="csv", workspace_directory=any_workspace)
    _build(only)
    kept = only.output().record
    assert kept is not None
    manifest = kept.manifest
    storage_for(manifest).remove(manifest)
    assert _threshold(_shared(only).load()) == 3
    assert any("shared/lookup.csv" in message and "is gone" in message for message in _unchecked(caplog))


@pytest.mark.parametrize("scope", ["classes", "all"])
@pytest.mark.parametrize("last", ["same_class", "other_class"])
def test_gc_keeps_the_run_that_vouches_for_a_side_file_outside_the_kept_graph(
    any_workspace: str, signed: None, scope: str, last: str
) -> None:
    """Attacker at19 J7: `kart gc --keep Reader --all --delete` deleted the manifest of the shared table's last writer
    (outside Reader's graph); every load of the table was then refused and Reader could not run again. Now gc keeps
    that run's files while the table is there; once it is gone, they are deleted as any unreachable run's."""
    kept = SideWriter(n=2, workspace_directory=any_workspace)
    writer = (SideWriter if last == "same_class" else OtherSideWriter)(n=1, workspace_directory=any_workspace)
    _build(kept)
    _build(writer)
    assert _build(Reader(workspace_directory=any_workspace)) == 1  # the last writer's table, through kept's target
    record = writer.output().record
    assert record is not None

    plan = plan_gc([Reader(workspace_directory=any_workspace)], any_workspace, scope=scope)  # type: ignore[arg-type]
    assert plan.vouching == {"shared/lookup.pkl": record.manifest_name}
    deleted = delete_unreachable(plan)
    assert record.manifest not in deleted and writer.output().path() not in deleted, deleted
    for target in (_shared(kept), _shared(writer), _bare(any_workspace, "pkl")):
        assert _threshold(target.load()) == 1
    assert writer.complete()
    assert _build(Reader(workspace_directory=any_workspace, rerun=True)) == 1

    storage_for(_shared(kept).path()).remove(_shared(kept).path())  # the table gone: nothing to vouch for
    plan = plan_gc([Reader(workspace_directory=any_workspace)], any_workspace, scope="all")  # type: ignore[arg-type]
    assert plan.vouching == {}
    assert record.manifest in delete_unreachable(plan)


def test_a_side_file_kart_verify_deleted_names_the_task_that_writes_it_again(where: str, signed: None) -> None:
    """Attacker at19 J5's tail: after `kart verify --delete` removed a refused side file, a load said "Build the task
    first" while every writer counted as complete (a build does nothing). It now names the path's last writer and
    rerun=True, which brings the file back."""
    first, second = SideWriter(n=1, workspace_directory=where), SideWriter(n=2, workspace_directory=where)
    _build(first)
    path = _shared(first).path()
    old = _read(path)
    _build(second)
    _put(path, old)  # an older signed copy put back: refused, reported, deleted
    deleted = remove_damaged(verify_workspace(where))
    assert deleted == [path]
    assert first.complete() and second.complete()
    for target in (_shared(second), _shared(first), _bare(where, "pkl")):
        with pytest.raises(MissingOutputError, match="side file") as raised:
            target.load()
        assert f"Build {second.kart_label()} again with rerun=True" in str(raised.value), str(raised.value)
    with pytest.raises(GokartBuildError, match=r"side file .*rerun=True"):
        _build(Reader(workspace_directory=where))
    _build(SideWriter(n=2, workspace_directory=where, rerun=True))
    assert _build(Reader(workspace_directory=where)) == 2
