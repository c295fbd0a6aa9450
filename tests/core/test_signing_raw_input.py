"""Signing and raw inputs (attacker at25 F11): a task with no ``run()`` whose file was dropped in by hand has no kart
commit to sign. With signing on, its file loads unsigned as a requirement of a running task when its format runs no
code (csv, txt, ...): what vouches for it is the content hash that task's signed manifest records, so a new drop makes
the reader stale. A pickle is still refused, and so is a load outside such a run, each with advice that can work
(never ``kart verify --delete``, which has nothing to delete there). Real builds on local disk and moto's S3.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.errors import GokartBuildError, IntegrityError
from kart_core.storage import storage_for
from kart_core.target import make_target

KEY = "a test key of some length"


class RawCsv(gokart.TaskOnKart[object]):
    """A raw csv dropped in by hand: an output and no ``run()``."""

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("raw/rows.csv", use_unique_id=False)


class SumRows(gokart.TaskOnKart[int]):
    def requires(self) -> RawCsv:
        return RawCsv(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(int(self.load()["a"].sum()))


class RawPickle(gokart.TaskOnKart[object]):
    def output(self) -> gokart.TargetOnKart:
        return self.make_target("raw/rows.pkl", use_unique_id=False)


class SumPickle(gokart.TaskOnKart[int]):
    def requires(self) -> RawPickle:
        return RawPickle(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


class RawOutsideCsv(gokart.TaskOnKart[object]):
    """A raw csv outside the workspace, under a bare target."""

    where = luigi.Parameter()

    def output(self) -> gokart.TargetOnKart:
        return make_target(str(self.where))


class SumOutside(gokart.TaskOnKart[int]):
    where = luigi.Parameter()

    def requires(self) -> RawOutsideCsv:
        return RawOutsideCsv(where=self.where, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(int(self.load()["a"].sum()))


def _put(path: str, data: bytes) -> None:
    time.sleep(0.01)  # a new file, a new stamp
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _rows(*values: int) -> bytes:
    return ("a\n" + "".join(f"{value}\n" for value in values)).encode()


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", KEY)


@pytest.mark.usefixtures("signed")
@pytest.mark.parametrize("runner", ["build", "luigi.build"])
def test_a_raw_input_loads_under_signing_and_a_new_drop_makes_its_reader_stale(any_workspace: str, runner: str) -> None:
    """Before, the reader's load was refused ("kart did not sign this file"), with `kart verify --delete` as the
    advice, which found nothing to delete: a raw input could never be loaded with signing on."""
    if runner == "luigi.build" and "://" in any_workspace:
        pytest.skip("luigi's scheduler is exercised on local disk")

    def build() -> int:
        reader = SumRows(workspace_directory=any_workspace)
        if runner == "build":
            return int(gokart.build(reader, reset_register=False))
        assert luigi.build([reader], local_scheduler=True)
        return int(reader.output().load())

    _put(RawCsv(workspace_directory=any_workspace).output().path(), _rows(1, 2))
    assert build() == 3
    assert SumRows(workspace_directory=any_workspace).complete()
    _put(RawCsv(workspace_directory=any_workspace).output().path(), _rows(1, 2, 4))
    assert not SumRows(workspace_directory=any_workspace).complete()
    assert build() == 7


@pytest.mark.usefixtures("signed")
def test_a_raw_input_outside_the_workspace_loads_under_signing(any_workspace: str, tmp_path: Path) -> None:
    where = (
        any_workspace.rsplit("/", 1)[0] + "/drops/rows.csv" if "://" in any_workspace else str(tmp_path / "rows.csv")
    )
    _put(where, _rows(5))
    assert gokart.build(SumOutside(where=where, workspace_directory=any_workspace), reset_register=False) == 5
    _put(where, _rows(5, 6))
    assert gokart.build(SumOutside(where=where, workspace_directory=any_workspace), reset_register=False) == 11


@pytest.mark.usefixtures("signed")
def test_a_raw_pickle_is_still_refused_with_advice_that_works(workspace: str) -> None:
    """Loading a pickle runs code: signing never admits an unsigned one, raw or not. The message says why and what
    works (a data format, or a run() that writes it), not `kart verify --delete`."""
    _put(RawPickle(workspace_directory=workspace).output().path(), pickle.dumps([1, 2]))
    with pytest.raises(GokartBuildError) as raised:
        gokart.build(SumPickle(workspace_directory=workspace), reset_register=False)
    message = str(raised.value)
    assert "defines no run()" in message and "runs code from the file" in message
    assert "`kart verify --delete` does not apply" in message


@pytest.mark.usefixtures("signed")
def test_a_raw_input_loaded_outside_a_run_is_refused_with_advice_that_works(workspace: str) -> None:
    target = RawCsv(workspace_directory=workspace).output()
    _put(target.path(), _rows(1))
    with pytest.raises(IntegrityError) as raised:
        target.load()
    message = str(raised.value)
    assert "defines no run()" in message and "in the run() of a task that requires RawCsv" in message
    assert "`kart verify --delete` does not apply" in message
    assert "removes every refused file" not in message


@pytest.mark.usefixtures("signed")
def test_a_file_a_task_with_a_run_should_have_signed_is_still_refused(workspace: str) -> None:
    """Only a raw input is admitted: an unsigned file in place of a committed output is refused as before."""

    reader = SumRows(workspace_directory=workspace)
    _put(RawCsv(workspace_directory=workspace).output().path(), _rows(1, 2))
    assert gokart.build(reader, reset_register=False) == 3
    _put(reader.output().path(), pickle.dumps(99))  # an unsigned file over the reader's signed output
    with pytest.raises(IntegrityError) as raised:
        reader.output().load()
    assert "defines no run()" not in str(raised.value)


def test_kart_tree_counts_a_raw_input_in_a_data_format_as_loadable(workspace: str) -> None:
    """`kart tree` / `kart why` marked such a raw input REFUSED with `kart verify --delete` as the fix; it loads in
    its readers' runs, so only a raw pickle is listed as refused."""
    from kart_core.refusal import output_refusals
    from kart_core.signing import Signer
    from kart_core.structure import flatten

    csv, pickled = RawCsv(workspace_directory=workspace), RawPickle(workspace_directory=workspace)
    _put(csv.output().path(), _rows(1))
    _put(pickled.output().path(), pickle.dumps([1]))
    assert output_refusals(flatten(csv.output()), Signer(KEY.encode())) == []
    assert [found.path for found in output_refusals(flatten(pickled.output()), Signer(KEY.encode()))] == [
        pickled.output().path()
    ]
