"""A Kedro project moved or copied to another place keeps KartRunner's cache, and never trusts it blindly.

Real ``kedro run --runner kart_kedro.KartRunner`` subprocesses on a copy of examples/kedro whose
kart workspace is inside the project (``data/kart``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from kart_kedro import KartRunner
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro_project import POSITIVE_VALUES_SUM, copy_ran_project, report, run_kedro, statuses

pytestmark = pytest.mark.slow

NODES = ("clean", "count", "scale", "summarize")
RACY_SECONDS = 2.1  # NodeRecords.RACY_NS and a little: a digest of files changed just before is not reused


def kart(project: Path) -> dict[str, str]:
    """``kedro run --runner kart_kedro.KartRunner --pipeline nodes``; what it said about each node."""
    return statuses(run_kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes"))


def raw_digest_record(project: Path) -> tuple:
    """What the runner recorded for the raw input ``raw_numbers``: (config, stamp key, newest ns, recorded ns, digest)."""
    records = project / "data" / "kart" / "kedro" / "kart_kedro_demo" / ".kart" / "input_digests.pkl"
    return tuple(pickle.loads(records.read_bytes())["raw_numbers"])


def settle(path: Path) -> None:
    """Wait until ``path`` last changed more than the racy window ago, so a digest recorded now is reused."""
    changed = max(os.stat(path).st_mtime_ns, os.stat(path).st_ctime_ns) / 1e9
    time.sleep(max(0.0, changed + RACY_SECONDS - time.time()))


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) and put the modification time back, as a careful hand edit would."""
    assert len(old) == len(new)
    before = os.stat(path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_moved_project_is_cached_without_rereading_its_raw_inputs_and_an_edit_after_the_move_reruns(
    nodes_first_run: Path, tmp_path: Path
) -> None:
    project = copy_ran_project(nodes_first_run, tmp_path / "alice" / "project")
    raw = project / "data" / "01_raw" / "numbers.csv"
    settle(raw)
    assert kart(project) == dict.fromkeys(NODES, "cached")  # a copy: new inodes, so numbers.csv is read once
    recorded = raw_digest_record(project)

    # Moved as a whole (a renamed folder, another parent): same files, another absolute path.
    inode = os.stat(raw).st_ino
    (tmp_path / "ci" / "builds").mkdir(parents=True)
    moved = Path(shutil.move(project, tmp_path / "ci" / "builds" / "project"))
    raw = moved / "data" / "01_raw" / "numbers.csv"
    assert os.stat(raw).st_ino == inode and not project.exists()
    assert kart(moved) == dict.fromkeys(NODES, "cached")
    # The recorded digest was reused: numbers.csv was not read again (its stamp holds no absolute path).
    assert raw_digest_record(moved) == recorded

    # A copy of it elsewhere whose numbers.csv has other content with the same size and mtime reruns.
    clone = copy_ran_project(moved, tmp_path / "bob" / "project")
    same_size_edit(clone / "data" / "01_raw" / "numbers.csv", "a,3\n", "a,5\n")
    ran = kart(clone)
    assert ran["clean"] == "ran" and ran["summarize"] == "ran"
    assert report(clone, "summary")["total"] == 2.0 * (POSITIVE_VALUES_SUM + 2)

    # An edit after the move that keeps size and mtime reruns too (its status-change time moved).
    same_size_edit(raw, "c,10\n", "c,12\n")
    ran = kart(moved)
    assert ran["clean"] == "ran" and ran["summarize"] == "ran"
    assert report(moved, "summary")["total"] == 2.0 * (POSITIVE_VALUES_SUM + 2)
    assert raw_digest_record(moved)[4] != recorded[4]


class JsonFile(AbstractDataset[Any, Any]):
    """A JSON file whose definition names its path, as Kedro's file datasets do."""

    def __init__(self, filepath: str, indent: int = 0) -> None:
        self.filepath, self.indent = Path(filepath), indent

    def load(self) -> Any:
        return json.loads(self.filepath.read_text())

    def save(self, data: Any) -> None:
        self.filepath.parent.mkdir(parents=True, exist_ok=True)
        self.filepath.write_text(json.dumps(data, indent=self.indent or None))

    def _exists(self) -> bool:
        return self.filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self.filepath), "save_args": {"indent": self.indent}}


CALLS: list[str] = []


def doubled(raw: list[int]) -> list[int]:
    CALLS.append("doubled")
    return [2 * value for value in raw]


def summed(values: list[int]) -> int:
    CALLS.append("summed")
    return sum(values)


class Wrapped(AbstractDataset[Any, Any]):
    """A dataset configured with a nested dataset definition, which its ``_describe()`` echoes (as wrappers
    built from a catalog entry do): ``{type: Wrapped, dataset: {filepath: data/x.json, indent: 2}}``, whose
    nested ``filepath`` Kedro makes absolute."""

    def __init__(self, dataset: dict[str, Any]) -> None:
        self.config = dict(dataset)
        self.inner = JsonFile(**self.config)

    def load(self) -> Any:
        return self.inner.load()

    def save(self, data: Any) -> None:
        self.inner.save(data)

    def _exists(self) -> bool:
        return self.inner.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self.config}


def test_a_moved_project_with_a_nested_dataset_definition_between_its_nodes_stays_cached(tmp_path: Path) -> None:
    # A definition that named the project's place (a nested filepath) made the node reading it rerun
    # after every move or clone: a persistent input's catalog definition is part of its reader's key.
    pipeline = Pipeline([node(doubled, "raw", "scaled", name="double"), node(summed, "scaled", "total", name="sum")])

    def run(project: Path, indent: int = 2) -> list[str]:
        scaled = {"filepath": str(project / "data" / "scaled.json"), "indent": indent}
        catalog = DataCatalog(
            {
                "raw": MemoryDataset([1, 2, 3]),
                "scaled": Wrapped(dataset=scaled),
                "total": JsonFile(str(project / "data" / "total.json")),
            }
        )
        CALLS.clear()
        KartRunner(workspace_directory=str(tmp_path / "shared-cache")).run(pipeline, catalog)
        assert json.loads((project / "data" / "total.json").read_text()) == 12
        return sorted(CALLS)

    first = tmp_path / "alice" / "project"
    assert run(first) == ["doubled", "summed"]
    assert run(first) == []
    (tmp_path / "ci").mkdir()
    moved = Path(shutil.move(first, tmp_path / "ci" / "project"))
    assert run(moved) == []
    clone = Path(shutil.copytree(moved, tmp_path / "bob" / "project"))
    assert run(clone) == []
    # What the nested definition says besides the path still counts: another indent is another file.
    assert run(clone, indent=4) == ["summed"]
