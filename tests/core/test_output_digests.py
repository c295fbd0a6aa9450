"""kart_core.output_digests: a task's outputs named by content, from the manifest (or the bytes without one)."""

from __future__ import annotations

from pathlib import Path

import luigi

import kart_core
from kart_core.integrity import DEFAULT_ALGORITHM
from kart_core.workspace import MANIFEST, log_task_path


class Pair(kart_core.TaskOnKart[dict]):
    """Two outputs whose content follows ``value`` (not a parameter: the id stays the same)."""

    value = 1

    def output(self):
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.txt")}

    def run(self) -> None:
        self.dump(self.value, "a")
        self.dump([str(self.value)], "b")


def test_outputs_are_named_by_the_content_hash_their_manifest_records(workspace: str) -> None:
    task = Pair(workspace_directory=workspace)
    assert kart_core.output_digests(task) == {str(target.path()): "" for target in task.output().values()}  # missing
    kart_core.build(task, reset_register=False, return_value=False)
    first = kart_core.output_digests(task)
    assert list(first) == [str(task.output()["a"].path()), str(task.output()["b"].path())]
    assert all(value.startswith(f"{DEFAULT_ALGORITHM}:") for value in first.values())
    for target in task.output().values():  # rebuilt with the same content: the same names
        Path(target.path()).unlink()
    kart_core.build(task, reset_register=False, return_value=False)
    assert kart_core.output_digests(task) == first
    for target in task.output().values():  # the same unique id, rebuilt with other content
        Path(target.path()).unlink()
    Pair.value = 2
    try:
        kart_core.build(task, reset_register=False, return_value=False)
    finally:
        Pair.value = 1
    second = kart_core.output_digests(task)
    assert all(second[path] != first[path] for path in first)


def test_an_output_without_a_manifest_is_named_by_its_bytes(workspace: str) -> None:
    task = Pair(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    Path(log_task_path(task, MANIFEST)).unlink()  # as gokart leaves it
    read = kart_core.output_digests(task)
    assert all(value.startswith("read:") for value in read.values())
    Path(task.output()["b"].path()).write_text("other\n")
    assert kart_core.output_digests(task)[str(task.output()["b"].path())] != read[str(task.output()["b"].path())]


def test_a_luigi_task_is_named_by_its_output_bytes(tmp_path: Path) -> None:
    class Plain(luigi.Task):
        def output(self):
            return luigi.LocalTarget(str(tmp_path / "plain.txt"))

    (tmp_path / "plain.txt").write_text("x")
    assert list(kart_core.output_digests(Plain()).values())[0].startswith("read:")
