"""The input floor (kart_core.transaction): each requirement's content hash is the string its run in this process
kept (no second copy per requirement); once the inputs of the task's own manifest are built from
the floor (``Transaction.inputs_for``), the floor is let go and a second ask (a first commit whose claim another
writer won, then settled as a replacing commit) gets the same inputs, the floor's among them.

Real builds on local disk; the transaction is the real one, driven by hand as a commit drives it.
"""

from __future__ import annotations

import luigi

import kart_core
from kart_core import transaction
from kart_core.structure import flatten
from kart_core.task_memo import memo_of


class FloorUp(kart_core.TaskOnKart[int]):
    """One of the requirements."""

    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class FloorDown(kart_core.TaskOnKart[int]):
    """Requires three FloorUp tasks, listed out of their manifests' order."""

    def requires(self) -> list[FloorUp]:
        return [FloorUp(i=i, workspace_directory=self.workspace_directory) for i in (2, 0, 1)]

    def run(self) -> None:
        self.dump(0)


def test_the_floor_goes_once_the_own_manifest_has_its_inputs_and_a_second_ask_gets_the_same(workspace: str) -> None:
    down = FloorDown(workspace_directory=workspace)
    for up in down.requires():
        kart_core.build(up, reset_register=False)
    running = transaction.Transaction(task=down, label=down.kart_label())
    running.note_required()
    assert running.required is not None and len(running.required) == 3
    # Each hash is the string the requirement's own run kept (its memo): the floor holds no second copy.
    kept = [digest for up in down.requires() for digest in (memo_of(up).committed or {}).values()]
    assert len(kept) == 3
    assert all(any(digest is mine for mine in kept) for _, _, digest in running.required.values())
    (record,) = [target.record for target in flatten(down.kart_outputs())]
    inputs = running.inputs_for(record)
    # Sorted by manifest path, each the requirement's output as committed: what the manifest records.
    assert [item.required for item in inputs] == [True] * 3
    assert [item.manifest for item in inputs] == sorted(item.manifest for item in inputs)
    assert {item.task for item in inputs} == {up.kart_label() for up in down.requires()}
    assert running.required == {} and running.required_stamps is None  # let go, still noted
    running.note_required()  # noted already: not read again
    assert running.required == {}
    assert running.inputs_for(record) is inputs
    assert running.inputs_beside(record, None) == inputs


def test_a_manifest_not_the_tasks_own_gets_no_floor(workspace: str) -> None:
    down = FloorDown(workspace_directory=workspace)
    for up in down.requires():
        kart_core.build(up, reset_register=False)
    running = transaction.Transaction(task=down, label=down.kart_label())
    running.note_required()
    (other,) = [target.record for target in flatten(down.requires()[0].kart_outputs())]
    assert running.inputs_for(other) == ()
    assert running.required is not None and len(running.required) == 3  # kept for the task's own manifest
