"""Two task classes naming one output file are refused, never handed each other's value (attacker at25 F3).

A task's ``make_target`` may name any path: another task's default output (``relpath(other.output().path())``), or
one fixed path two classes write (``make_target("models/latest.pkl", use_unique_id=False)``). Before, the second
task's commit moved its file over the first's committed output (the first then served it as "a new version written
outside kart"), or the second counted the first's file as its own complete output. A path shared by the parameter
sets of one class stays allowed (gokart's "latest" idiom).
"""

from __future__ import annotations

import os
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, OutputTypeError


class ClaimA(kart_core.TaskOnKart[dict[str, str]]):
    def run(self) -> None:
        self.dump({"v": "A"})


class ClaimsAsPath(kart_core.TaskOnKart[dict[str, str]]):
    """Names ClaimA's default output file as its own."""

    def output(self) -> Any:
        owner = ClaimA(workspace_directory=self.workspace_directory)
        relative = os.path.relpath(owner.output().path(), owner.workspace_directory)
        if "://" in self.workspace_directory:
            relative = owner.output().path()[len(owner.workspace_directory) + 1 :]
        return self.make_target(relative, use_unique_id=False)

    def run(self) -> None:
        self.dump({"v": "B"})


class LatestX(kart_core.TaskOnKart[str]):
    def output(self) -> Any:
        return self.make_target("models/latest.pkl", use_unique_id=False)

    def run(self) -> None:
        self.dump("X")


class LatestY(kart_core.TaskOnKart[str]):
    def output(self) -> Any:
        return self.make_target("models/latest.pkl", use_unique_id=False)

    def run(self) -> None:
        self.dump("Y")


class LatestOfOne(kart_core.TaskOnKart[int]):
    p = luigi.IntParameter()

    def output(self) -> Any:
        return self.make_target("models/one.pkl", use_unique_id=False)

    def run(self) -> None:
        self.dump(self.p)


def test_a_rerun_over_another_classes_committed_output_is_refused(any_workspace: str) -> None:
    """The rerun would have moved its file over ClaimA's, whose readers then got {"v": "B"}."""
    assert kart_core.build(ClaimA(workspace_directory=any_workspace), reset_register=False) == {"v": "A"}
    with pytest.raises(GokartBuildError, match=r"is ClaimA\[[0-9a-f]{8}\]'s committed output") as raised:
        kart_core.build(ClaimsAsPath(workspace_directory=any_workspace, rerun=True), reset_register=False)
    assert "OutputTypeError" in str(raised.value) and "a path of its own" in str(raised.value)
    assert kart_core.build(ClaimA(workspace_directory=any_workspace), reset_register=False) == {"v": "A"}


def test_the_owner_of_the_path_is_refused_when_the_other_class_committed_it_first(any_workspace: str) -> None:
    """ClaimsAsPath builds first: ClaimA then found "its" file complete and returned {"v": "B"}."""
    assert kart_core.build(ClaimsAsPath(workspace_directory=any_workspace), reset_register=False) == {"v": "B"}
    with pytest.raises(OutputTypeError, match=r"is ClaimsAsPath\[[0-9a-f]{8}\]'s committed output"):
        ClaimA(workspace_directory=any_workspace).complete()


def test_two_classes_writing_one_fixed_path_are_refused(tmp_path: Any) -> None:
    workspace = str(tmp_path / "ws")
    assert kart_core.build(LatestX(workspace_directory=workspace), reset_register=False) == "X"
    with pytest.raises(OutputTypeError, match=r"'models/latest.pkl' is LatestX\[[0-9a-f]{8}\]'s committed output"):
        LatestY(workspace_directory=workspace).complete()
    with pytest.raises(GokartBuildError, match="LatestX"):
        kart_core.build(LatestY(workspace_directory=workspace, rerun=True), reset_register=False)
    assert LatestX(workspace_directory=workspace).output().load() == "X"


def test_one_class_sharing_a_path_across_parameter_sets_is_allowed(tmp_path: Any) -> None:
    """gokart's idiom: every parameter set shares the file; the latest run's value is there."""
    workspace = str(tmp_path / "ws")
    assert kart_core.build(LatestOfOne(p=1, workspace_directory=workspace), reset_register=False) == 1
    assert LatestOfOne(p=2, workspace_directory=workspace).complete() is True
    assert kart_core.build(LatestOfOne(p=2, workspace_directory=workspace, rerun=True), reset_register=False) == 2
