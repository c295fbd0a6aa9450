"""Two outputs of one task that name one file (attacker at24 F3): the run is refused before it starts.

Both were committed as that file, so a load of the first output returned what run() dumped for the second, with no
word; gokart writes both to the file too. Another task's file is ``test_output_claimed`` (at25 F3).
"""

from __future__ import annotations

import os
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, OutputTypeError


class SpTwo(kart_core.TaskOnKart[Any]):
    """``shape`` says how output() is built; its two outputs always name one file."""

    shape = luigi.Parameter()

    def output(self) -> Any:
        first = self.make_target("same.pkl", use_unique_id=False)
        if self.shape == "dict":
            return {"a": first, "b": self.make_target("same.pkl", use_unique_id=False)}
        if self.shape == "list":
            return [first, self.make_target("same.pkl", use_unique_id=False)]
        # Another spelling of the same file, and a nested dict.
        return {"a": first, "more": {"b": self.make_target("sub/../same.pkl", use_unique_id=False)}}

    def run(self) -> None:
        for position, target in enumerate(kart_core.structure.flatten(self.output())):
            self.dump(f"value {position}", target)


class SpReads(kart_core.TaskOnKart[Any]):
    shape = luigi.Parameter()

    def requires(self) -> SpTwo:
        return SpTwo(shape=self.shape, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load())


@pytest.mark.parametrize("shape", ["dict", "list", "spelled apart"])
def test_two_outputs_naming_one_file_are_refused_before_the_run(any_workspace: str, shape: str) -> None:
    reads = SpReads(shape=shape, workspace_directory=any_workspace)
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(reads, reset_register=False)
    ((failure,),) = [errors for errors in raised.value.raised_exceptions.values()]
    assert isinstance(failure, OutputTypeError)
    assert "names the file" in str(failure) and "same.pkl" in str(failure) and "twice" in str(failure)
    assert not SpTwo(shape=shape, workspace_directory=any_workspace).complete()  # nothing was committed


def test_distinct_outputs_still_run(workspace: str) -> None:
    class SpApart(kart_core.TaskOnKart[Any]):
        def output(self) -> Any:
            return {"a": self.make_target("a.pkl"), "b": self.make_target("b.pkl")}

        def run(self) -> None:
            self.dump("A", "a")
            self.dump("B", "b")

    assert kart_core.build(SpApart(workspace_directory=workspace), reset_register=False) == {"a": "A", "b": "B"}


class SpLinked(kart_core.TaskOnKart[Any]):
    """Its second output reaches the first's file through a symlinked folder of the workspace."""

    def output(self) -> Any:
        return {"a": self.make_target("same.pkl", use_unique_id=False), "b": self.make_target("alias/same.pkl")}

    def run(self) -> None:
        self.dump("A", "a")
        self.dump("B", "b")


def test_two_outputs_naming_one_file_through_a_symlink_are_refused(workspace: str) -> None:
    """The path rule is the lock's (``lock.canonical_location``): symlinks resolved, as the file system sees them."""
    task = SpLinked(workspace_directory=workspace)
    os.makedirs(workspace)
    os.symlink(".", os.path.join(workspace, "alias"))
    b_path = task.output()["b"].path()
    assert os.path.basename(b_path) != "same.pkl"  # with its unique id: another file, allowed
    with pytest.raises(GokartBuildError, match=r"OutputTypeError: .*names the file .*same\.pkl.* twice"):
        kart_core.build(SpLinkedSame(workspace_directory=workspace), reset_register=False)
    assert kart_core.build(task, reset_register=False) == {"a": "A", "b": "B"}


class SpLinkedSame(SpLinked):
    def output(self) -> Any:
        return {
            "a": self.make_target("same.pkl", use_unique_id=False),
            "b": self.make_target("alias/same.pkl", use_unique_id=False),
        }
