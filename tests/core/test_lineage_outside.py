"""kart_core.lineage for raw inputs outside the workspace (attacker at25 F7, F8): a file a requirement outputs through
a bare target (``kart_core.target.make_target('/abs/raw.csv')``, what migration.md recommends for such files) or a
luigi target (``luigi.LocalTarget`` under a ``luigi.ExternalTask``, an ``S3Target``). The reader's manifest records
the file by its full path or URL, with its stamp and content hash as ``run()`` began; a new data drop there makes the
reader stale (its build runs it again; ``kart why`` / ``kart verify`` name the file), however the reader read it:
``self.load()``, by path, under ``build()`` or ``luigi.build``. Real files on local disk and moto's S3.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import luigi
import luigi.mock
import pytest

import kart_core as gokart
from kart_core.lineage import stale_outputs
from kart_core.storage import storage_for
from kart_core.structure import flatten
from kart_core.target import make_target


class RawOutside(gokart.TaskOnKart[list[str]]):
    """A raw file outside the workspace, declared as a kart task with no ``run()`` and a bare target."""

    where = luigi.Parameter()

    def output(self) -> gokart.TargetOnKart:
        return make_target(str(self.where))


class LoadsRaw(gokart.TaskOnKart[list[str]]):
    where = luigi.Parameter()

    def requires(self) -> RawOutside:
        return RawOutside(where=self.where, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(" ".join(self.load()).split())  # a text target loads as its lines


class ReadsRawByPath(gokart.TaskOnKart[list[str]]):
    where = luigi.Parameter()

    def requires(self) -> RawOutside:
        return RawOutside(where=self.where, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        path = self.input().path()
        with storage_for(path).open_read(path) as file:
            self.dump(file.read().decode().split())


class LuigiRaw(luigi.ExternalTask):
    """The luigi way to declare a raw file: an ExternalTask whose output is a LocalTarget (or an S3Target)."""

    where = luigi.Parameter()

    def output(self) -> luigi.Target:
        if str(self.where).startswith("s3://"):
            from luigi.contrib.s3 import S3Client, S3Target

            return S3Target(str(self.where), client=S3Client(endpoint_url=os.environ["KART_S3_ENDPOINT_URL"]))
        return luigi.LocalTarget(str(self.where))


class ReadsLuigiRaw(gokart.TaskOnKart[list[str]]):
    where = luigi.Parameter()

    def requires(self) -> LuigiRaw:
        return LuigiRaw(where=self.where)

    def run(self) -> None:
        path = self.input().path  # a luigi target's path is an attribute
        with storage_for(path).open_read(path) as file:
            self.dump(file.read().decode().split())


class LuigiMade(luigi.Task):
    """A plain luigi task that writes its LocalTarget (run outside kart's build, as another tool would)."""

    where = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.where))


class ReadsLuigiMade(gokart.TaskOnKart[list[str]]):
    where = luigi.Parameter()

    def requires(self) -> LuigiMade:
        return LuigiMade(where=self.where)

    def run(self) -> None:
        with self.input().open() as file:
            self.dump(file.read().split())


class MockRaw(luigi.ExternalTask):
    def output(self) -> luigi.mock.MockTarget:
        return luigi.mock.MockTarget("kart-test-mock-raw")


class ReadsMock(gokart.TaskOnKart[str]):
    def requires(self) -> MockRaw:
        return MockRaw()

    def run(self) -> None:
        with self.input().open("r") as file:
            self.dump(file.read())


@pytest.fixture
def raw_place(any_workspace: str, tmp_path: Path) -> str:
    """Where the raw file lies, outside the workspace: a local folder beside it, or another prefix of its bucket."""
    if "://" in any_workspace:
        return any_workspace.rsplit("/", 1)[0] + "/drops/raw.txt"
    return str(tmp_path / "drops" / "raw.txt")


def _drop(path: str, text: str) -> None:
    time.sleep(0.01)  # a new file, a new stamp
    if "://" not in path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with storage_for(path).atomic_write(path) as file:
        file.write(text.encode())


def _inputs(task: gokart.TaskOnKart[object]) -> list[dict[str, object]]:
    record = task.output().record
    return json.loads(storage_for(record.manifest).read_bytes(record.manifest)).get("inputs", [])  # type: ignore[no-any-return]


@pytest.mark.parametrize("reader", [LoadsRaw, ReadsRawByPath, ReadsLuigiRaw])
def test_a_new_drop_outside_the_workspace_makes_the_reader_stale(
    any_workspace: str, raw_place: str, reader: type[gokart.TaskOnKart[list[str]]]
) -> None:
    """Before, the reader's manifest recorded no input: it stayed cached with the old rows, and `kart why` / `kart
    verify` said nothing (F8: a bare target loaded or read by path; F7: a luigi target, local or S3)."""
    _drop(raw_place, "a b")
    full = raw_place if "://" in raw_place else str(Path(raw_place).resolve())

    def make() -> gokart.TaskOnKart[list[str]]:
        return reader(where=raw_place, workspace_directory=any_workspace)

    assert gokart.build(make(), reset_register=False) == ["a", "b"]
    (recorded,) = _inputs(make())
    assert recorded["manifest"] == "" and recorded["key"] == full and recorded["stamp"]
    assert make().complete()

    _drop(raw_place, "a b c")
    stale = stale_outputs(flatten(make().output()))
    assert [item.input.key for item in stale] == [full]
    assert f"whose output is the file {full!r}, which no integrity record vouches for (outside the workspace" in (
        stale[0].describe("R")
    )
    assert not make().complete()
    assert gokart.build(make(), reset_register=False) == ["a", "b", "c"]
    assert make().complete()

    _drop(raw_place, "a b c")  # the same content dropped again: nothing to do
    assert make().complete()


def test_a_new_drop_under_a_plain_luigi_task_makes_the_reader_stale_under_luigi_build(tmp_path: Path) -> None:
    """The finding's second form: a plain luigi task's LocalTarget rewritten by another tool, the reader built by
    luigi's own scheduler (kart's runner under luigi.build)."""
    made, workspace = str(tmp_path / "made.txt"), str(tmp_path / "ws")
    _drop(made, "HELLO")
    assert luigi.build([ReadsLuigiMade(where=made, workspace_directory=workspace)], local_scheduler=True)
    assert ReadsLuigiMade(where=made, workspace_directory=workspace).output().load() == ["HELLO"]
    _drop(made, "NEWDROP")
    assert not ReadsLuigiMade(where=made, workspace_directory=workspace).complete()
    assert luigi.build([ReadsLuigiMade(where=made, workspace_directory=workspace)], local_scheduler=True)
    assert ReadsLuigiMade(where=made, workspace_directory=workspace).output().load() == ["NEWDROP"]


def test_kart_verify_and_why_name_the_file_outside(tmp_path: Path) -> None:
    from kart_core.inspect.verify import verify_workspace
    from kart_core.inspect.why import explain

    workspace, raw = str(tmp_path / "ws"), str(tmp_path / "raw.txt")
    _drop(raw, "one")
    assert gokart.build(LoadsRaw(where=raw, workspace_directory=workspace), reset_register=False) == ["one"]
    assert verify_workspace(workspace).ok
    _drop(raw, "two")
    problems = verify_workspace(workspace).problems
    assert [problem.kind for problem in problems] == ["stale"]
    assert raw in problems[0].detail and "outside the workspace" in problems[0].detail
    told = " ".join(explain(LoadsRaw(where=raw, workspace_directory=workspace)))
    assert raw in told and "outside the workspace" in told and "It will run." in told


def test_a_luigi_target_kart_cannot_read_is_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A luigi target that is no file kart can read (here luigi's MockTarget) is not watched: the run says so once,
    naming the target and what to do."""
    with luigi.mock.MockTarget("kart-test-mock-raw").open("w") as file:
        file.write("mock")
    with caplog.at_level(logging.WARNING):
        assert gokart.build(ReadsMock(workspace_directory=str(tmp_path)), reset_register=False) == "mock"
    warned = [record.getMessage() for record in caplog.records if "kart cannot read" in record.getMessage()]
    assert len(warned) == 1
    assert (
        "MockTarget" in warned[0]
        and "rerun=True" in warned[0]
        and ReadsMock(workspace_directory=str(tmp_path)).kart_label() in warned[0]
    )


def test_a_luigi_folder_target_is_named_once_as_unwatched(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A LocalTarget that is a folder (a partitioned data set) has no content hash kart takes: the run says so."""
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.txt").write_text("x y")
    with caplog.at_level(logging.WARNING):
        task = ReadsLuigiFolder(where=str(folder), workspace_directory=str(tmp_path / "ws"))
        assert gokart.build(task, reset_register=False) == ["x", "y"]
    warned = [record.getMessage() for record in caplog.records if "kart cannot read" in record.getMessage()]
    assert len(warned) == 1 and str(folder) in warned[0] and "a folder" in warned[0]


class ReadsLuigiFolder(gokart.TaskOnKart[list[str]]):
    where = luigi.Parameter()

    def requires(self) -> LuigiRaw:
        return LuigiRaw(where=self.where)

    def run(self) -> None:
        with open(os.path.join(self.input().path, "part-0.txt")) as file:
            self.dump(file.read().split())


class Unrecorded(gokart.TaskOnKart[list[int]]):
    """A task that keeps no integrity record (gokart's should_dump_supplementary_log_files=False): its output's
    target has none, as a bare target's."""

    should_dump_supplementary_log_files = False
    value = luigi.IntParameter()

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("unrecorded/values.pkl", use_unique_id=False)

    def run(self) -> None:
        self.dump([self.value])


class ReadsUnrecorded(gokart.TaskOnKart[list[int]]):
    def requires(self) -> Unrecorded:
        return Unrecorded(value=1, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load())


def test_the_output_of_a_task_that_keeps_no_record_is_watched_like_a_bare_target(workspace: str) -> None:
    """Its readers recorded nothing of it either: another content written there (its other parameter set, gokart)
    now makes them stale, and the message does not claim the file is outside the workspace."""
    reader = ReadsUnrecorded(workspace_directory=workspace)
    assert gokart.build(reader, reset_register=False) == [1]
    assert ReadsUnrecorded(workspace_directory=workspace).complete()
    gokart.build(Unrecorded(value=2, workspace_directory=workspace, rerun=True), reset_register=False)
    (stale,) = stale_outputs(flatten(ReadsUnrecorded(workspace_directory=workspace).output()))
    assert "or of a task that keeps no record" in stale.describe("R")
    assert gokart.build(ReadsUnrecorded(workspace_directory=workspace), reset_register=False) == [2]
