"""``kart verify --delete`` and a shared path (``make_target(..., use_unique_id=False)``) whose file no longer matches
a record of it: another run may have written the good file there (a side file a later run rewrote, which no record
names since 994f1a0), so the file stays and is still reported (attacker at16 G3)."""

from __future__ import annotations

import json

import luigi

import kart_core as gokart
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.integrity import DEFAULT_ALGORITHM, digest_bytes
from kart_core.storage import storage_for

SHARED = "shared/lookup.pkl"


class SharedSideWriter(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=1)

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("side/writer.pkl")

    def run(self) -> None:
        self.dump(f"lookup from {self.n}", self.make_target(SHARED, use_unique_id=False))
        self.dump(self.n)


def _record_side_file_as_an_older_kart_did(task: SharedSideWriter) -> None:
    """Add the side file to the task's record, as kart before 994f1a0 recorded it (true when written)."""
    shared = task.make_target(SHARED, use_unique_id=False).path()
    data = storage_for(shared).read_bytes(shared)
    record = task.output().record
    document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    entry = dict(document["outputs"][record.key])
    entry.update(size=len(data), digest=f"{DEFAULT_ALGORITHM}:{digest_bytes(data)}")
    document["outputs"][SHARED] = entry
    with storage_for(record.manifest).atomic_write(record.manifest) as file:
        file.write(json.dumps(document).encode())


def test_delete_keeps_a_shared_file_a_later_run_rewrote(any_workspace: str) -> None:
    first = SharedSideWriter(n=1, workspace_directory=any_workspace)
    gokart.build(first, reset_register=False)
    _record_side_file_as_an_older_kart_did(first)
    assert verify_workspace(any_workspace).ok
    gokart.build(SharedSideWriter(n=2, workspace_directory=any_workspace), reset_register=False)

    report = verify_workspace(any_workspace)
    assert [(p.kind, p.path.rsplit("/", 2)[-2:]) for p in report.problems] == [("hash", ["shared", "lookup.pkl"])]
    assert remove_damaged(report) == []
    shared = gokart.TaskOnKart(workspace_directory=any_workspace).make_target(SHARED, use_unique_id=False)
    assert shared.load() == "lookup from 2"


def test_delete_still_removes_a_damaged_output_named_by_its_task(workspace: str) -> None:
    task = SharedSideWriter(n=3, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    path = task.output().path()
    data = storage_for(path).read_bytes(path)
    with storage_for(path).atomic_write(path) as file:
        file.write(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other content

    report = verify_workspace(workspace)
    assert [p.path for p in report.problems if p.kind in ("size", "hash")] == [path]
    assert remove_damaged(report) == [path]
    assert not task.complete()
