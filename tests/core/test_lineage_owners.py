"""kart_core.lineage when one manifest holds several owners: same-named task classes of two modules with equal
parameters share ``log/manifest/{Class}_{id}.json`` (gokart's unique id does not cover the module), each with its
own outputs in it (attacker N1). What a task loaded is checked against its upstream's current entry for the key it
loaded, and a commit of one owner neither drops the other owner's recorded inputs nor passes for an input of
another. Real builds, local disk.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from same_name import lineage_a, lineage_b

import kart_core as gokart
from kart_core.lineage import stale_outputs, stale_verdict
from kart_core.manifest import Input
from kart_core.structure import flatten


def _inputs(task: gokart.TaskOnKart[object]) -> list[dict[str, object]]:
    record = task.output().record
    with open(record.manifest, "rb") as file:
        return json.loads(file.read()).get("inputs", [])  # type: ignore[no-any-return]


def test_another_owner_s_commit_keeps_what_the_first_owner_loaded(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lineage_a.VALUE, "1")
    reader = lineage_a.SnReader(workspace_directory=workspace)
    assert gokart.build(reader, reset_register=False) == 101
    other = lineage_b.SnReader(workspace_directory=workspace)
    assert reader.output().record.manifest == other.output().record.manifest  # one manifest, two owners
    assert gokart.build(other, reset_register=False) == 1  # commits the shared manifest, loading nothing

    monkeypatch.setenv(lineage_a.VALUE, "2")
    gokart.build(lineage_a.SnSource(workspace_directory=workspace, rerun=True), reset_register=False)
    assert [item.input.key for item in stale_outputs(flatten(reader.output()))] == [
        lineage_a.SnSource(workspace_directory=workspace).output().record.key
    ]
    assert stale_outputs(flatten(other.output())) == []
    assert not lineage_a.SnReader(workspace_directory=workspace).complete()
    assert lineage_b.SnReader(workspace_directory=workspace).complete()  # it loaded nothing: not stale
    assert gokart.build(lineage_a.SnReader(workspace_directory=workspace), reset_register=False) == 102


class OnB(gokart.TaskOnKart[int]):
    """Loads module b's SnReader (whose manifest module a's SnReader shares)."""

    def requires(self) -> lineage_b.SnReader:
        return lineage_b.SnReader(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1000)


class OnA(gokart.TaskOnKart[int]):
    """Loads module a's SnReader."""

    def requires(self) -> lineage_a.SnReader:
        return lineage_a.SnReader(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1000)


def test_a_downstream_is_judged_by_the_inputs_of_the_owner_it_loaded(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transitively: the shared manifest's stale owner makes its own readers stale, not the other owner's."""
    monkeypatch.setenv(lineage_a.VALUE, "1")
    gokart.build([OnA(workspace_directory=workspace), OnB(workspace_directory=workspace)], reset_register=False)
    monkeypatch.setenv(lineage_a.VALUE, "2")
    gokart.build(lineage_a.SnSource(workspace_directory=workspace, rerun=True), reset_register=False)

    assert stale_verdict(flatten(OnA(workspace_directory=workspace).output())) is not None
    assert stale_verdict(flatten(OnB(workspace_directory=workspace).output())) is None
    assert OnB(workspace_directory=workspace).complete()
    assert gokart.build(OnA(workspace_directory=workspace), reset_register=False) == 1102


def test_an_input_without_a_reader_counts_for_every_owner_and_keeps_its_bytes() -> None:
    older = Input(task="Up[12345678]", manifest="log/manifest/Up_x.json", key="up.pkl", commit="c", digest="d")
    assert "reader" not in older.to_json() and Input.from_json(older.to_json()) == older
    assert older.read_by("pkg.a.Down") and older.read_by(None)
    mine = dataclasses.replace(older, reader="pkg.a.Down")
    assert Input.from_json(mine.to_json()) == mine
    assert mine.read_by("pkg.a.Down") and not mine.read_by("pkg.b.Down") and mine.read_by(None)
