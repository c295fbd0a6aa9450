"""A new data drop landing while a running task loads a file no integrity record vouches for (attacker at16 G11).

The load's record of such an input (its stamp and content hash, ``kart_core.lineage``) must describe the file the
load read. Before, the stamp and hash were taken by a second read of the path after the load had opened it, so a
drop landing in between recorded the new file's stamp and hash beside the old file's result: the reader stayed
fresh for good with the old value. The interleaving is forced at each point a stat or read of the path happens
during the run (``kart_core.storage.stamp.stamp`` wrapped: the pause a slow NFS stat or an S3 HEAD leaves open), and
inside the format's read. Whatever the point: the run fails with ``InputChangedError`` (naming the file and the
rerun), or the value it committed is the new file's; the next build always gives the new file's sum. Real builds
on local disk and moto's S3.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from typing import IO, Any

import pytest

import kart_core as gokart
from kart_core.errors import GokartBuildError
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.storage import stamp as stamp_module
from kart_core.storage import storage_for
from kart_core.target import TargetOnKart

OLD, NEW = [1, 2, 3], [1, 2, 4]  # the same pickle size, other bytes: 6, then 7


class _Plan:
    """When the new drop lands: at the ``at``-th stat of the raw file during the reader's run (0: never by a stat),
    or inside the format's read (``in_read``)."""

    def __init__(self) -> None:
        self.at = 0
        self.in_read = False
        self.stats = 0
        self.running = False
        self.drop: Callable[[], None] | None = None

    def land(self) -> None:
        drop, self.drop = self.drop, None
        if drop is not None:
            drop()


PLAN = _Plan()


class DroppingPickle(PickleFileProcessor):
    """Pickle, but the planned drop lands once the load has read the file (a drop during a slow parse)."""

    def load(self, file: IO[bytes]) -> Any:
        value = super().load(file)
        if PLAN.in_read and PLAN.running:
            PLAN.land()
        return value


class RawNumbers(gokart.TaskOnKart[list[int]]):
    """Raw data dropped in by hand: an output and no ``run()``."""

    def output(self) -> TargetOnKart:
        return self.make_target("raw/numbers.pkl", use_unique_id=False, processor=DroppingPickle())


class SumNumbers(gokart.TaskOnKart[int]):
    def requires(self) -> RawNumbers:
        return RawNumbers(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        PLAN.running = True
        try:
            self.dump(sum(self.load()))
        finally:
            PLAN.running = False


def _drop(path: str, values: list[int], how: str = "replace") -> None:
    if how == "in place":  # the same inode, written over (local disk)
        with open(path, "r+b") as file:
            file.write(pickle.dumps(values))
        return
    with storage_for(path).atomic_write(path) as file:  # a new file (a rename; one put on S3)
        file.write(pickle.dumps(values))


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Plan]:
    real = stamp_module.stamp

    def stamp(path: str, *args: Any, **kwargs: Any) -> Any:
        if PLAN.running and path.endswith("raw/numbers.pkl"):
            PLAN.stats += 1
            if PLAN.stats == PLAN.at:
                PLAN.land()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(stamp_module, "stamp", stamp)
    PLAN.__init__()  # type: ignore[misc]
    yield PLAN
    PLAN.__init__()  # type: ignore[misc]


def _race(workspace: str, plan: _Plan, how: str = "replace") -> tuple[object, int]:
    """Build the reader with the drop planned; then the drop is surely there and the reader is built again.
    Returns (the first build's value or its error, the second build's value)."""
    path = RawNumbers(workspace_directory=workspace).output().path()
    _drop(path, OLD)
    plan.drop = lambda: _drop(path, NEW, how)
    first: object
    try:
        first = gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False, log_level=50)
    except GokartBuildError as error:
        first = error
    plan.land()  # landed already, or lands now: the file holds NEW either way
    return first, gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False, log_level=50)


def _changed_error(first: object, workspace: str) -> str:
    assert isinstance(first, GokartBuildError), f"the run was expected to fail, it gave {first!r}"
    message = str(first)
    assert "InputChangedError" in message
    assert RawNumbers(workspace_directory=workspace).output().path() in message
    assert "rerun SumNumbers" in message
    return message


@pytest.mark.parametrize(
    "at",
    [
        # The load's stats of the file: before its hash and the open, then after the read (the hash is taken first
        # since attacker at19 J3, so that a metadata-only change during the read is told from a write by content).
        pytest.param(1, id="before the open"),
        pytest.param(2, id="after the read"),
    ],
)
def test_a_drop_at_a_stat_of_the_load_never_leaves_the_old_sum_fresh(
    any_workspace: str, planned: _Plan, at: int
) -> None:
    planned.at = at
    first, again = _race(any_workspace, planned)
    assert again == 7  # never the old sum kept as fresh while the file holds the new drop
    assert SumNumbers(workspace_directory=any_workspace).complete()
    assert planned.stats >= 2  # both points were reached in the run
    if at == 1:  # before the load opened the file: it read the new one, recorded as the new one
        assert first == 7
    else:  # the load read the old file, the new one was there when its record was taken
        _changed_error(first, any_workspace)


def test_a_drop_during_the_format_s_read_fails_the_run(any_workspace: str, planned: _Plan) -> None:
    planned.in_read = True
    first, again = _race(any_workspace, planned)
    assert again == 7
    _changed_error(first, any_workspace)


def test_a_write_in_place_during_the_read_fails_the_run(workspace: str, planned: _Plan) -> None:
    """The same inode written over with the same size: the status-change time tells (local disk)."""
    planned.in_read = True
    first, again = _race(workspace, planned, how="in place")
    assert again == 7
    _changed_error(first, workspace)


def test_without_a_drop_the_reader_records_the_file_and_stays_fresh(any_workspace: str, planned: _Plan) -> None:
    path = RawNumbers(workspace_directory=any_workspace).output().path()
    _drop(path, OLD)
    assert gokart.build(SumNumbers(workspace_directory=any_workspace), reset_register=False, log_level=50) == 6
    assert SumNumbers(workspace_directory=any_workspace).complete()
    _drop(path, NEW)
    assert not SumNumbers(workspace_directory=any_workspace).complete()


def _chmod(path: str) -> None:
    os.chmod(path, 0o640)  # a team's `chmod -R g+r data/`


def _hard_link(path: str) -> None:
    os.link(path, path + ".snap")  # a backup tool's hard-link snapshot (rsnapshot, `cp -al`, `rsync --link-dest`)


@pytest.mark.parametrize("change", [_chmod, _hard_link], ids=["chmod", "hard link"])
def test_a_metadata_change_during_the_read_is_not_a_write(
    workspace: str, planned: _Plan, change: Callable[[str], None]
) -> None:
    """Only the status-change time moves (same bytes, modification time, size and inode): the run succeeds and
    records the file, and its reader stays fresh. Before, the run failed with InputChangedError saying another file
    was put there or it was written to (attacker at19 J3)."""
    path = RawNumbers(workspace_directory=workspace).output().path()
    _drop(path, OLD)
    planned.in_read = True
    planned.drop = lambda: change(path)
    assert gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False, log_level=50) == 6
    assert planned.drop is None  # the change landed during the read
    assert SumNumbers(workspace_directory=workspace).complete()  # recorded with the file's stamp after the change
    _drop(path, NEW, how="in place")
    assert not SumNumbers(workspace_directory=workspace).complete()  # a later write still makes it stale


def test_a_write_during_the_read_says_it_was_written(workspace: str, planned: _Plan) -> None:
    planned.in_read = True
    first, again = _race(workspace, planned, how="in place")
    assert again == 7
    assert "it was written to while the load read it" in _changed_error(first, workspace)


def test_a_new_file_during_the_read_says_another_file_was_put_there(workspace: str, planned: _Plan) -> None:
    planned.in_read = True
    first, again = _race(workspace, planned)
    assert again == 7
    assert "another file was put in its place" in _changed_error(first, workspace)


def test_a_write_with_its_time_set_back_during_the_read_fails_the_run(workspace: str, planned: _Plan) -> None:
    """The same inode written over with the same size and its modification time set back (``touch -r``): only the
    status-change time moved, but the content did, which the hash taken before the load tells."""
    path = RawNumbers(workspace_directory=workspace).output().path()

    def set_back() -> None:
        before = os.stat(path)
        _drop(path, NEW, how="in place")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    _drop(path, OLD)
    planned.in_read = True
    planned.drop = set_back
    with pytest.raises(GokartBuildError) as caught:
        gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False, log_level=50)
    message = _changed_error(caught.value, workspace)
    assert "its content changed while its modification time, size and inode did not" in message
    assert gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False, log_level=50) == 7
