"""kart_core.manifest: the run record is the manifest's last key, and a check that needs only the integrity
record (completeness, lineage, content names) parses the bytes before it (``Manifest.from_bytes(run=False)``).

Manifests written before 2026-12-01 (every key sorted, ``run`` before ``task``) read the same as before.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.manifest import Entry, Input, Manifest, read_unverified
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class MrRecorded(kart_core.TaskOnKart[list]):
    """Keeps its run record in its manifest, as a Kedro node run does."""

    n = luigi.IntParameter()
    kart_run_record_in_manifest = True

    def run(self) -> None:
        self.dump([self.n])


def _built(workspace: str) -> tuple[str, bytes]:
    task = MrRecorded(n=3, workspace_directory=workspace)
    kart_core.build(task, reset_register=False)
    path = log_task_path(task, MANIFEST)
    return path, Path(path).read_bytes()


def test_the_run_record_is_written_last_and_a_check_reads_the_manifest_without_it(workspace: str) -> None:
    path, data = _built(workspace)
    whole = Manifest.from_bytes(data)
    assert whole.run is not None and "luigi==" in whole.run["task_log"]["module_versions"]
    keys = list(json.loads(data))
    assert keys[-1] == "run" and keys[:-1] == sorted(keys[:-1])
    quick = read_unverified(storage_for(path), path, run=False)
    assert quick == dataclasses.replace(whole, run=None)
    assert read_unverified(storage_for(path), path) == whole


def test_a_manifest_written_before_with_sorted_keys_reads_whole_either_way(workspace: str) -> None:
    path, data = _built(workspace)
    sorted_bytes = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()  # kart before
    assert sorted_bytes.index(b'"run"') < sorted_bytes.index(b'"task"')
    Path(path).write_bytes(sorted_bytes)
    whole = Manifest.from_bytes(data)
    assert read_unverified(storage_for(path), path, run=False) == whole
    assert Manifest.from_bytes(sorted_bytes, run=False) == whole


@pytest.mark.parametrize("writer", ["now", "before"])
def test_a_manifest_cut_short_never_reads_as_another_integrity_record(workspace: str, writer: str) -> None:
    """Every prefix of the bytes either fails to parse or, without its run record, names what the whole does."""
    _, data = _built(workspace)
    if writer == "before":
        data = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    expected = dataclasses.replace(Manifest.from_bytes(data), run=None)
    read = []
    for end in range(len(data) + 1):
        try:
            quick = Manifest.from_bytes(data[:end], run=False)
        except (ValueError, KeyError, TypeError):
            continue
        assert dataclasses.replace(quick, run=None) == expected
        read.append(end)
    assert read[-1] == len(data)  # the whole manifest reads


def test_a_parsed_manifest_is_the_one_its_constructors_build_on_either_parse_path() -> None:
    """from_bytes builds Entry and Manifest without their generated __init__ (one attribute update each): the
    objects are equal, field for field, to the constructed ones, with every key a manifest can hold."""
    entry = Entry(size=36, digest="xxh3_128:ab", commit="c" * 32, sealed=True, owner="pkg.module.Class")
    legacy = Entry(size=2, digest="xxh3_128:cd", commit=None, sealed=False)  # kart before owners were recorded
    upstream = Input(task="Up[1234abcd]", manifest="log/manifest/Up_x.json", key="up.pkl", commit="d" * 32, digest="e")
    manifest = Manifest(
        task="Down[5678abcd]",
        commit="f" * 32,
        outputs={"down/a.pkl": entry, "down/b.pkl": legacy},
        run={"task_params": {"n": "3"}, "task_log": {"module_versions": "a==1"}},
        pending=True,
        inputs=(upstream,),
        logs="0" * 32,
    )
    data = manifest.to_bytes()
    whole, quick = Manifest.from_bytes(data), Manifest.from_bytes(data, run=False)
    assert whole == manifest and vars(whole) == vars(manifest)
    assert quick == dataclasses.replace(manifest, run=None) and quick.run is None
    assert _fields(whole.outputs["down/a.pkl"]) == _fields(entry) and _fields(quick.outputs["down/b.pkl"]) == _fields(
        legacy
    )
    assert [_fields(item) for item in whole.inputs] == [_fields(upstream)]
    assert Manifest.from_bytes(b" " + data, run=False) == manifest  # not as kart writes it: parsed whole


def _fields(value: Any) -> dict[str, tuple[type, object]]:
    """Each field of a dataclass object with slots (``Entry``, ``Input``) by name, with its value's type."""
    return {
        field.name: (type(getattr(value, field.name)), getattr(value, field.name))
        for field in dataclasses.fields(value)
    }
