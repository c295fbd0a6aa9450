"""A whole graph's completeness on object storage costs one listing per directory, not one request per output."""

from __future__ import annotations

import uuid
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.storage import listing_scope, storage_for


class LsLeaf(kart_core.TaskOnKart[int]):
    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class LsRoot(kart_core.TaskOnKart[int]):
    width = luigi.IntParameter()

    def requires(self):
        return [LsLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(self.width)]

    def run(self) -> None:
        self.dump(sum(self.load()))


class Calls:
    """Counts calls to the file system's exists() and ls()."""

    def __init__(self, fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exists = self.ls = 0
        real_exists, real_ls = fs.exists, fs.ls

        def exists(path: str, **kwargs: Any) -> bool:
            self.exists += 1
            return bool(real_exists(path, **kwargs))

        def ls(path: str, *args: Any, **kwargs: Any) -> Any:
            self.ls += 1
            return real_ls(path, *args, **kwargs)

        monkeypatch.setattr(fs, "exists", exists)
        monkeypatch.setattr(fs, "ls", ls)


def test_listing_scope_answers_from_one_listing() -> None:
    workspace = f"memory://kart-listing-{uuid.uuid4().hex}"
    storage = storage_for(workspace + "/a.txt")
    for name in ("a.txt", "b.txt"):
        with storage.atomic_write(f"{workspace}/dir/{name}") as file:
            file.write(b"x")
    with listing_scope():
        assert storage.exists(f"{workspace}/dir/a.txt") and storage.exists(f"{workspace}/dir/b.txt")
        assert not storage.exists(f"{workspace}/dir/c.txt")
        assert not storage.exists(f"{workspace}/missing/c.txt")
    assert not storage.exists(f"{workspace}/dir/c.txt")


def test_rebuilding_a_wide_graph_lists_instead_of_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = f"memory://kart-listing-{uuid.uuid4().hex}"
    root = LsRoot(width=40, workspace_directory=workspace)
    assert kart_core.build(root) == sum(range(40))
    root.output().remove()
    calls = Calls(storage_for(workspace + "/x")._fs, monkeypatch)  # type: ignore[attr-defined]
    assert kart_core.build(LsRoot(width=40, workspace_directory=workspace)) == sum(range(40))
    # 40 leaves checked from one listing; only the root is probed (before and after its run).
    assert calls.ls <= 2
    assert calls.exists <= 6
