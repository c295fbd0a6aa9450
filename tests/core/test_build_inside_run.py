"""A build inside a task's run(): the value build() returns is what the run was built from, as a self.load() would be
(kart_core.transaction.loads_noted_by): after the inner task is rerun with other content, the outer one is stale."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.storage import storage_for

SOURCE = {"value": 5}  # what BirInner dumps; a forked worker process sees the value set before the build


class BirInner(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(SOURCE["value"])


class BirOuter(kart_core.TaskOnKart[int]):
    """Decides in run() what to compute: builds BirInner there and doubles what build() returns."""

    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        inner = BirInner(workspace_directory=self.workspace_directory)
        self.dump(kart_core.build(inner, reset_register=False) * 2)


class BirLoader(kart_core.TaskOnKart[int]):
    """The same through self.load() of an upstream: the behaviour the nested build must match."""

    def requires(self) -> BirInner:
        return BirInner(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * 2)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_outer_task_is_stale_once_the_task_its_run_built_is_rerun_with_other_content(
    any_workspace: str, workers: int, executor: str
) -> None:
    SOURCE["value"] = 5
    roots = [BirOuter(workspace_directory=any_workspace), BirLoader(workspace_directory=any_workspace)]
    assert kart_core.build(roots, workers=workers, executor=executor) == [10, 10]

    SOURCE["value"] = 10
    kart_core.build(BirInner(workspace_directory=any_workspace, rerun=True), reset_register=False)
    assert not roots[0].complete() and not roots[1].complete()
    assert kart_core.build(roots, workers=workers, executor=executor) == [20, 20]
    assert kart_core.build(roots, workers=workers, executor=executor) == [20, 20]  # and cached from then on


def test_a_build_outside_any_run_notes_nothing() -> None:
    """The roots a top-level build loads belong to no run: nothing to note them in (and nothing raised)."""
    assert kart_core.transaction.reader() is None


class BirMid(kart_core.TaskOnKart[int]):
    """Requires BirInner; built by BirTop's run() only, so no build of BirTop walks it."""

    tag = luigi.Parameter(default="a")

    def requires(self) -> BirInner:
        return BirInner(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * (2 if self.tag == "a" else 3))


class BirTop(kart_core.TaskOnKart[int]):
    """Builds BirMid (or BirMid a and b, a list) in its run() and adds one: BirMid is not among what it requires."""

    tags = luigi.Parameter(default="a")

    def run(self) -> None:
        mids = [BirMid(tag=tag, workspace_directory=self.workspace_directory) for tag in self.tags]
        values = kart_core.build(mids if len(mids) > 1 else mids[0], reset_register=False)
        self.dump((sum(values) if len(mids) > 1 else values) + 1)


def _built_inputs(task: kart_core.TaskOnKart[Any]) -> list[tuple[str, bool]]:
    record = task.output().record
    document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    return [(item["task"], item.get("built", False)) for item in document.get("inputs", [])]


@pytest.mark.parametrize(("tags", "first", "then"), [("a", 11, 21), ("ab", 26, 51)])
def test_a_task_whose_run_built_a_task_now_stale_further_up_runs_again(
    workspace: str, tags: str, first: int, then: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Top's run() builds Mid, which requires Inner. After Inner reran with other content, Mid is stale, and nothing
    but Top's run builds it: Top was served its old value (11, not 21) with a warning that a build of Top brings Mid
    up to date (nothing did). Now Top records Mid as built, is stale itself, and its rerun's nested build reruns Mid."""
    SOURCE["value"] = 5
    assert kart_core.build(BirTop(tags=tags, workspace_directory=workspace), reset_register=False) == first
    mids = [BirMid(tag=tag, workspace_directory=workspace) for tag in tags]
    assert _built_inputs(BirTop(tags=tags, workspace_directory=workspace)) == [(m.kart_label(), True) for m in mids]

    SOURCE["value"] = 10
    kart_core.build(BirInner(workspace_directory=workspace, rerun=True), reset_register=False)
    caplog.set_level(logging.WARNING)
    assert not BirTop(tags=tags, workspace_directory=workspace).complete()
    assert f"run() built {mids[0].kart_label()} (a build() nested in it)" in caplog.text
    caplog.clear()
    assert kart_core.build(BirTop(tags=tags, workspace_directory=workspace), reset_register=False) == then
    assert "brings" not in caplog.text  # no root is left built on stale content
    assert BirTop(tags=tags, workspace_directory=workspace).complete()
    assert kart_core.build(BirTop(tags=tags, workspace_directory=workspace), reset_register=False) == then


def test_a_task_whose_run_built_a_task_whose_input_was_rewritten_runs_again(workspace: str) -> None:
    """The same when Mid's input is rewritten on storage outside kart (not committed again): Mid is stale, so Top."""
    SOURCE["value"] = 5
    assert kart_core.build(BirTop(workspace_directory=workspace), reset_register=False) == 11
    path = BirInner(workspace_directory=workspace).output().path()
    time.sleep(0.01)
    with open(path, "wb") as file:
        pickle.dump(7, file)
    os.utime(path, None)
    assert not BirMid(workspace_directory=workspace).complete()
    assert not BirTop(workspace_directory=workspace).complete()
    top = kart_core.build(BirTop(workspace_directory=workspace), reset_register=False)
    assert top == kart_core.build(BirMid(workspace_directory=workspace), reset_register=False) + 1
    assert top != 11


def test_a_task_loading_a_task_it_requires_records_no_built_input(workspace: str) -> None:
    """A plain load (self.load() of a requirement) is not a built input: its upstream's build brings it up to date."""
    SOURCE["value"] = 5
    loader = BirLoader(workspace_directory=workspace)
    assert kart_core.build(loader, reset_register=False) == 10
    assert _built_inputs(loader) == [(BirInner(workspace_directory=workspace).kart_label(), False)]


RUNS: list[str] = []  # BirRequiredTop's runs, in this process


class BirSign(kart_core.TaskOnKart[bool]):
    """Requires BirInner; its output is the same for 5 and 10 (whether BirInner's is positive)."""

    def requires(self) -> BirInner:
        return BirInner(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() > 0)


class BirRequiredTop(kart_core.TaskOnKart[int]):
    """Requires BirSign and builds it in run() too: a build of it reaches BirSign, so its staleness is BirSign's."""

    def requires(self) -> BirSign:
        return BirSign(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        RUNS.append(self.kart_label())
        self.dump(int(kart_core.build(self.requires(), reset_register=False)))


def test_a_built_input_the_task_also_requires_reruns_it_only_if_what_it_loaded_changed(workspace: str) -> None:
    """BirSign is stale after BirInner reran, but the build of BirRequiredTop reaches it (a requirement): BirSign runs
    again with the same content, and BirRequiredTop, whose input did not change, stays cached, as for a plain load."""
    SOURCE["value"] = 5
    RUNS.clear()
    assert kart_core.build(BirRequiredTop(workspace_directory=workspace), reset_register=False) == 1
    SOURCE["value"] = 10
    kart_core.build(BirInner(workspace_directory=workspace, rerun=True), reset_register=False)
    assert not BirSign(workspace_directory=workspace).complete()
    assert kart_core.build(BirRequiredTop(workspace_directory=workspace), reset_register=False) == 1
    assert len(RUNS) == 1
    assert BirRequiredTop(workspace_directory=workspace).complete()
