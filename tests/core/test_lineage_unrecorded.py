"""kart_core.lineage for inputs no integrity record vouches for (attacker N12): a raw file dropped in by hand under a
task without ``run()``, or an upstream output gokart wrote (no manifest entry). The downstream's manifest records
such a load by path, stamp and content hash; a new file there with other content makes the downstream stale, as a
recorded upstream committed again would; an unchanged file costs one stat per check, no read. Real builds on local
disk and moto's S3.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest

import kart_core as gokart
from kart_core import raw_content
from kart_core.lineage import stale_outputs
from kart_core.storage import storage_for
from kart_core.structure import flatten


class RawNumbers(gokart.TaskOnKart[list[int]]):
    """Raw data dropped in by hand: an output and no ``run()``."""

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("raw/numbers.pkl", use_unique_id=False)


class SumNumbers(gokart.TaskOnKart[int]):
    def requires(self) -> RawNumbers:
        return RawNumbers(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


class Produce(gokart.TaskOnKart[list[int]]):
    """An upstream whose output the test then treats as gokart's (its manifest removed)."""

    def run(self) -> None:
        self.dump([1, 2, 3])


class SumProduced(gokart.TaskOnKart[int]):
    def requires(self) -> Produce:
        return Produce(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


def _drop(workspace: str, values: list[int]) -> None:
    path = RawNumbers(workspace_directory=workspace).output().path()
    with storage_for(path).atomic_write(path) as file:
        file.write(pickle.dumps(values))


def _inputs(task: gokart.TaskOnKart[object]) -> list[dict[str, object]]:
    record = task.output().record
    return json.loads(storage_for(record.manifest).read_bytes(record.manifest)).get("inputs", [])  # type: ignore[no-any-return]


def test_a_new_data_drop_makes_the_reader_stale(any_workspace: str) -> None:
    _drop(any_workspace, [1, 2, 3])
    assert gokart.build(SumNumbers(workspace_directory=any_workspace), reset_register=False) == 6
    reader = SumNumbers(workspace_directory=any_workspace)
    (recorded,) = _inputs(reader)
    assert recorded["key"] == "raw/numbers.pkl" and recorded["commit"] is None and recorded["stamp"]
    assert reader.complete() and stale_outputs(flatten(reader.output())) == []

    _drop(any_workspace, [1, 2, 3, 4])  # another size
    stale = stale_outputs(flatten(reader.output()))
    assert [item.input.key for item in stale] == ["raw/numbers.pkl"]
    assert "no integrity record vouches for" in stale[0].describe(reader.kart_label())
    assert not SumNumbers(workspace_directory=any_workspace).complete()
    assert gokart.build(SumNumbers(workspace_directory=any_workspace), reset_register=False) == 10
    assert SumNumbers(workspace_directory=any_workspace).complete()


def test_a_same_size_drop_with_other_content_makes_the_reader_stale(workspace: str) -> None:
    _drop(workspace, [1, 2, 3])
    gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False)
    _drop(workspace, [1, 2, 4])  # the same pickle size, other bytes
    assert not SumNumbers(workspace_directory=workspace).complete()
    assert gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False) == 7


@pytest.mark.parametrize("how", ["in place", "new file in the freed inode"])
def test_a_same_size_drop_with_its_times_set_back_makes_the_reader_stale(workspace: str, how: str) -> None:
    """A same-size file whose modification time is the old one (`touch -r`, `cp -p`, `rsync --inplace -t`, or a
    release unpacked with an archive's fixed times into the inode just freed): the status-change time still moved,
    so the content is read again (attacker at16 G1: the stamp was equal and the old sum served for good)."""
    _drop(workspace, [1, 2, 3])
    assert gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False) == 6
    path = RawNumbers(workspace_directory=workspace).output().path()
    before = os.stat(path)
    if how == "in place":
        with open(path, "r+b") as file:
            file.write(pickle.dumps([1, 2, 4]))
    else:
        os.remove(path)
        with open(path, "wb") as file:  # most file systems hand the freed inode out again
            file.write(pickle.dumps([1, 2, 4]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns

    assert not SumNumbers(workspace_directory=workspace).complete()
    assert gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False) == 7


def test_the_same_content_dropped_again_leaves_the_reader_fresh(any_workspace: str) -> None:
    _drop(any_workspace, [1, 2, 3])
    gokart.build(SumNumbers(workspace_directory=any_workspace), reset_register=False)
    _drop(any_workspace, [1, 2, 3])  # a new file (new stamp), equal bytes
    assert SumNumbers(workspace_directory=any_workspace).complete()


def test_a_gokart_written_upstream_rewritten_makes_the_reader_stale(workspace: str) -> None:
    assert gokart.build(SumProduced(workspace_directory=workspace), reset_register=False) == 6
    upstream = Produce(workspace_directory=workspace)
    os.remove(upstream.output().record.manifest)  # as gokart leaves it: no integrity record
    assert gokart.build(SumProduced(workspace_directory=workspace, rerun=True), reset_register=False) == 6
    assert _inputs(SumProduced(workspace_directory=workspace))[0]["commit"] is None

    with open(upstream.output().path(), "wb") as file:  # gokart reruns the upstream with other content
        file.write(pickle.dumps([10, 20]))
    assert not SumProduced(workspace_directory=workspace).complete()
    assert gokart.build(SumProduced(workspace_directory=workspace), reset_register=False) == 30


def test_an_unchanged_input_is_not_read_again_by_the_check(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _drop(workspace, [1, 2, 3] * 1000)
    gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False)
    reads: list[str] = []
    real = raw_content.storage_for

    def counting(path: str) -> object:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(raw_content, "storage_for", counting)  # the only way unrecorded_content opens a file
    for _ in range(3):
        assert SumNumbers(workspace_directory=workspace).complete()
    assert reads == []

    os.utime(RawNumbers(workspace_directory=workspace).output().path())  # touched: hashed once, then not again
    for _ in range(3):
        assert SumNumbers(workspace_directory=workspace).complete()
    assert len(reads) == 1


def test_kart_verify_names_the_reader_of_a_new_data_drop_stale(workspace: str) -> None:
    from kart_core.inspect.verify import verify_workspace

    _drop(workspace, [1, 2, 3])
    gokart.build(SumNumbers(workspace_directory=workspace), reset_register=False)
    assert verify_workspace(workspace).ok
    _drop(workspace, [5])
    problems = verify_workspace(workspace).problems
    assert [(problem.kind, problem.task) for problem in problems] == [
        ("stale", SumNumbers(workspace_directory=workspace).kart_label())
    ]


@pytest.mark.parametrize("correction", ["same content", "other content"])
def test_a_reader_of_an_output_whose_record_was_deleted_follows_the_file(any_workspace: str, correction: str) -> None:
    """A hand correction kept as faq.md says (delete the upstream's manifest): the reader recorded the committed
    output it loaded; with the record gone the file itself tells, so other content makes the reader stale and the same
    content leaves it fresh (attacker at16 G14: every reader stayed fresh with the old value)."""
    assert gokart.build(SumProduced(workspace_directory=any_workspace), reset_register=False) == 6
    upstream = Produce(workspace_directory=any_workspace)
    path = upstream.output().path()
    committed = storage_for(path).read_bytes(path)
    with storage_for(path).atomic_write(path) as file:  # a new file either way
        file.write(committed if correction == "same content" else pickle.dumps([10, 20, 30]))
    manifest = upstream.output().record.manifest
    storage_for(manifest).remove(manifest)

    reader = SumProduced(workspace_directory=any_workspace)
    stale = stale_outputs(flatten(reader.output()))
    if correction == "same content":
        assert stale == [] and reader.complete()
        return
    assert [item.input.key for item in stale] == [upstream.output().record.key]
    assert "its integrity record is gone" in stale[0].describe(reader.kart_label())
    assert not reader.complete()
    assert gokart.build(SumProduced(workspace_directory=any_workspace), reset_register=False) == 60


# --- a raw requirement the run reads without kart's load (attacker at25 F9) -----------------------------------------


class SumNumbersByPath(gokart.TaskOnKart[int]):
    """Reads its raw requirement by path (local disk) or through fsspec's own open (object storage), as gokart code
    reads CSVs with its own options: kart sees no load."""

    def requires(self) -> RawNumbers:
        return RawNumbers(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        path = self.input().path()
        with storage_for(path).open_read(path) as file:
            self.dump(sum(pickle.loads(file.read())))


class SumNumbersInSubprocess(gokart.TaskOnKart[int]):
    """Reads its raw requirement in a child process it starts (kart sees no load in this process)."""

    def requires(self) -> RawNumbers:
        return RawNumbers(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        import subprocess
        import sys

        code = "import pickle, sys; print(sum(pickle.load(open(sys.argv[1], 'rb'))))"
        total = subprocess.run([sys.executable, "-c", code, self.input().path()], capture_output=True, text=True)
        self.dump(int(total.stdout))


@pytest.mark.parametrize("reader", [SumNumbersByPath, SumNumbersInSubprocess])
def test_a_new_drop_of_a_raw_requirement_read_without_kart_makes_the_reader_stale(
    any_workspace: str, reader: type[gokart.TaskOnKart[int]]
) -> None:
    """Before, the reader's manifest recorded no input (the run loaded nothing through kart): it stayed cached with
    the old total. The requirement's raw file is recorded as the run begins (stamp and content hash)."""
    if reader is SumNumbersInSubprocess and "://" in any_workspace:
        pytest.skip("the child reads a local path")
    _drop(any_workspace, [1, 2, 3])
    assert gokart.build(reader(workspace_directory=any_workspace), reset_register=False) == 6
    (recorded,) = _inputs(reader(workspace_directory=any_workspace))
    assert recorded["key"] == "raw/numbers.pkl" and recorded["commit"] is None and recorded["stamp"]
    assert reader(workspace_directory=any_workspace).complete()

    _drop(any_workspace, [1, 2, 3, 5])
    assert not reader(workspace_directory=any_workspace).complete()
    assert gokart.build(reader(workspace_directory=any_workspace), reset_register=False) == 11
    assert reader(workspace_directory=any_workspace).complete()
