"""A task with many requirements (issue 15: a fan-in of 100,000): its manifest records each requirement's output as an
input (the input floor, ``Transaction.note_required``, which keeps one small record per requirement), encoded a chunk
at a time (``manifest._with_inputs``). The bytes stay what kart wrote before (older readers parse them), and one
recommitted requirement among many still makes the task stale.

Real builds on local disk.
"""

from __future__ import annotations

import json
from typing import Any

import luigi

import kart_core
from kart_core.manifest import _INPUT_CHUNK, FORMAT, Entry, Input, Manifest
from kart_core.orchestrate import orchestrate
from kart_core.workspace import MANIFEST, log_task_path

WIDTH = _INPUT_CHUNK + 37  # more inputs than one chunk: the spliced encoding is used


class ManyLeaf(kart_core.TaskOnKart[int]):
    """Dumps ``i`` times ``scale`` (``scale`` not part of the id: a rerun with another one is other content)."""

    i = luigi.IntParameter()
    scale = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        self.dump(self.i * self.scale)


class ManyRoot(kart_core.TaskOnKart[int]):
    """Requires ``width`` leaves and reads none of them through kart: each is recorded as a required input."""

    width = luigi.IntParameter()

    def requires(self) -> list[ManyLeaf]:
        return [ManyLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(self.width)]

    def run(self) -> None:
        self.dump(self.width)


def _inputs(count: int) -> tuple[Input, ...]:
    """``count`` inputs of every shape ``Input.to_json`` writes (null commit, stamp, built, required, no reader)."""
    return tuple(
        Input(
            task=f"Up[{i:08x}]",
            manifest=f"log/manifest/Up_{i:032x}.json",
            key=f"pkg/Up_{i:032x}.pkl",
            commit=None if i % 7 == 0 else f"{i:032x}",
            digest=f"xxh3_128:{i:032x}",
            reader="" if i % 3 == 0 else "pkg.mod.Down",
            stamp=(i + 1, 10**18 + i) if i % 7 == 0 else None,
            built=i % 11 == 0,
            required=i % 2 == 0,
        )
        for i in range(count)
    )


def test_a_manifest_with_many_inputs_is_encoded_as_before_and_round_trips() -> None:
    """The bytes are json's for the whole document (what an older kart wrote and reads), with a non-ASCII input among
    them (json's escapes) and a run record after; parsed back, every input is there in order."""
    inputs = (*_inputs(2 * _INPUT_CHUNK + 5), Input("Ü[1]", "log/manifest/Ü_1.json", "k", "c" * 32, "xxh3_128:0"))
    manifest = Manifest(
        task="Down[12345678]",
        commit="c" * 32,
        outputs={"pkg/Down.pkl": Entry(size=3, digest="xxh3_128:1", commit="c" * 32, sealed=False, owner="pkg.Down")},
        run={"task_params": {"a": "1"}},
        pending=True,
        inputs=inputs,
        logs="d" * 32,
    )
    data = manifest.to_bytes()
    document = {
        "format": FORMAT,
        "task": manifest.task,
        "commit": manifest.commit,
        "outputs": {key: entry.to_json() for key, entry in manifest.outputs.items()},
        "pending": True,
        "inputs": [item.to_json() for item in inputs],
        "logs": manifest.logs,
        "requirements": True,
    }
    whole = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    run = json.dumps(manifest.run, sort_keys=True, separators=(",", ":")).encode()
    assert data == whole[:-1] + b',"run":' + run + b"}"
    for run_too in (True, False):
        parsed = Manifest.from_bytes(data, run=run_too)
        assert parsed.inputs == inputs and parsed.outputs == manifest.outputs and parsed.pending
    assert json.loads(data)["inputs"][-1]["task"] == "Ü[1]"


def test_one_recommitted_requirement_among_many_makes_the_task_stale(workspace: str) -> None:
    """The root records each of its requirements (none loaded); a rerun of one leaf with the same bytes keeps it
    cached, with other content (the last leaf, then one in the first chunk) makes it run again, once."""
    ws = workspace
    root = ManyRoot(width=WIDTH, workspace_directory=ws)
    assert kart_core.build(root, reset_register=False) == WIDTH
    with open(log_task_path(root, MANIFEST), "rb") as file:
        recorded = json.loads(file.read())["inputs"]
    assert len(recorded) == WIDTH and all(item["required"] is True for item in recorded)
    assert {item["task"] for item in recorded} == {
        ManyLeaf(i=i, workspace_directory=ws).kart_label() for i in range(WIDTH)
    }
    assert not orchestrate([ManyRoot(width=WIDTH, workspace_directory=ws)], load_roots=True).ran

    def rerun(i: int, scale: int) -> Any:
        return kart_core.build(ManyLeaf(i=i, scale=scale, rerun=True, workspace_directory=ws), reset_register=False)

    rerun(WIDTH - 1, 1)  # a new commit of the same bytes
    assert not orchestrate([ManyRoot(width=WIDTH, workspace_directory=ws)], load_roots=True).ran
    for i in (WIDTH - 1, 3):
        rerun(i, 5)
        result = orchestrate([ManyRoot(width=WIDTH, workspace_directory=ws)], load_roots=True)
        assert len(result.ran) == 1 and result.stale == result.ran
        assert not orchestrate([ManyRoot(width=WIDTH, workspace_directory=ws)], load_roots=True).ran


def test_a_large_manifest_is_parsed_each_time_and_not_kept_for_the_process() -> None:
    """The parse cache keeps small manifests (a cached graph's second check); one of thousands of inputs (30 MB at
    100,000) would stay in memory for the life of a long-lived worker, so it is parsed again instead."""
    from kart_core import manifest as manifest_module

    small = Manifest(task="Up[1]", commit="a" * 32, inputs=_inputs(3)).to_bytes()
    large = Manifest(task="Down[1]", commit="b" * 32, inputs=_inputs(400)).to_bytes()
    assert len(small) <= manifest_module._PARSED_MAX_BYTES < len(large)
    assert Manifest.from_bytes(small, run=False) is Manifest.from_bytes(small, run=False)
    first, second = Manifest.from_bytes(large, run=False), Manifest.from_bytes(large, run=False)
    assert first is not second and first.inputs == second.inputs and len(first.inputs) == 400
    assert large not in manifest_module._PARSED
