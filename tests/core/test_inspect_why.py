"""kart_core.inspect.explain: why a task will run, against real cached runs."""

from __future__ import annotations

import os
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect import explain, verify_workspace


class WyLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)
    salt = luigi.Parameter(default="")

    def run(self) -> None:
        self.dump(list(range(self.n)))


class WyTrain(gokart.TaskOnKart[int]):
    epochs = luigi.IntParameter(default=1)
    rate = luigi.FloatParameter(default=0.1)
    n = luigi.IntParameter(default=3)
    boom = luigi.BoolParameter(default=False)
    load_salt = luigi.Parameter(default="", significant=False)  # changes the upstream, not this task's params

    def requires(self) -> WyLoad:
        return WyLoad(n=self.n, salt=self.load_salt, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        if self.boom:
            raise RuntimeError("boom")
        self.dump(sum(self.load()) * self.epochs)


class WyWrap(gokart.TaskOnKart[Any]):
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load(self.source))


def build(task: Any) -> Any:
    return gokart.build(task, reset_register=False)


def test_cached_task_will_not_run(workspace: str) -> None:
    task = WyTrain(workspace_directory=workspace)
    build(task)
    assert explain(task) == [f"{task.kart_label()} is cached: its outputs exist. It will not run."]


def test_never_built_class_says_so_and_explains_upstreams(workspace: str) -> None:
    lines = explain(WyTrain(workspace_directory=workspace))
    assert lines[0].endswith(f"no run of WyTrain is cached in {workspace}.")
    assert lines[1].startswith("  WyLoad[") and "no run of WyLoad" in lines[1]


def test_the_nearest_cached_run_and_the_differing_parameters(workspace: str) -> None:
    near = WyTrain(epochs=2, rate=0.1, workspace_directory=workspace)
    far = WyTrain(epochs=5, rate=0.5, workspace_directory=workspace)
    build(near)
    build(far)
    lines = explain(WyTrain(epochs=2, rate=0.3, workspace_directory=workspace))
    assert f"differs from the nearest cached run WyTrain[{near.make_unique_id()[:8]}]" in lines[0]
    assert lines[1:] == ["  parameter 'rate': now 0.3, cached run 0.1"]  # the upstream is cached: nothing more


def test_same_parameters_with_a_changed_upstream_names_that_upstream(workspace: str) -> None:
    build(WyTrain(n=3, workspace_directory=workspace))
    task = WyTrain(n=3, load_salt="new", workspace_directory=workspace)
    old_load = WyLoad(n=3, salt="", workspace_directory=workspace)
    lines = explain(task)
    assert "same parameters as the cached run WyTrain[" in lines[0]
    old_label = f"WyLoad[{old_load.make_unique_id()[:8]}]"
    assert f"upstream WyLoad differs: now {task.requires().kart_label()}, the cached run used {old_label}" in lines[0]
    assert lines[1].startswith("  WyLoad[") and "nearest cached run" in lines[1]
    assert lines[2] == "    parameter 'salt': now new, cached run \"\""


def test_deleted_outputs_and_unfinished_runs(workspace: str) -> None:
    task = WyTrain(workspace_directory=workspace)
    build(task)
    os.remove(task.output().path())
    assert "it ran before (finished " in explain(task)[0] and task.output().path() in explain(task)[0]
    failing = WyTrain(boom=True, workspace_directory=workspace)
    with pytest.raises(gokart.GokartBuildError):
        build(failing)
    assert explain(failing) == [
        f"{failing.kart_label()} will run: it started before but never finished (it failed or was interrupted)."
    ]


def test_rerun_always_runs(workspace: str) -> None:
    task = WyTrain(rerun=True, workspace_directory=workspace)
    assert "rerun=True" in explain(task)[0]


def test_task_parameters_show_readably(workspace: str) -> None:
    old, new = WyLoad(n=1, workspace_directory=workspace), WyLoad(n=2, workspace_directory=workspace)
    build(WyWrap(source=old, workspace_directory=workspace))
    lines = explain(WyWrap(source=new, workspace_directory=workspace))
    # the cached value is decoded from gokart's bz2 blob; its id is found among the workspace's runs
    assert (
        f"  parameter 'source': now WyLoad[{new.make_unique_id()[:8]}](n=2, salt=\"\"), "
        f'cached run WyLoad[{old.make_unique_id()[:8]}](n=1, salt="")'
    ) in lines


def test_a_damaged_output_is_cached_but_damaged_with_the_fix(workspace: str) -> None:
    task = WyTrain(workspace_directory=workspace)
    build(task)
    path = task.output().path()
    committed = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.truncate(2)
    assert explain(task) == [
        f"{task.kart_label()} is cached but damaged: {path}: {committed} bytes were committed, found 2. "
        "A build that needs only it takes it as cached and loading it fails (DamagedOutputError); a task that "
        "must run and loads it runs it again first (unless repairs are off). "
        "Run `kart verify --delete` (the next build runs its task again), or rerun the task (--rerun)."
    ]


def test_a_damaged_upstream_of_a_task_that_will_run_is_named(workspace: str) -> None:
    """The task runs and loads it: why says the build runs the damaged upstream again first."""
    build(WyTrain(workspace_directory=workspace))
    upstream = WyLoad(n=3, workspace_directory=workspace)
    path = upstream.output().path()
    committed = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.truncate(4)
    task = WyTrain(epochs=2, workspace_directory=workspace)
    lines = explain(task)
    assert lines[0].startswith(f"{task.kart_label()} will run: it differs from the nearest cached run")
    assert lines[-1] == (
        f"  {upstream.kart_label()} is cached but damaged: {path}: {committed} bytes were committed, found 4. "
        f"{task.kart_label()} loads it, so the build runs {upstream.kart_label()} again first (its new output "
        "replaces the damaged one), unless repairs are off ([TaskOnKart] repair_damaged_outputs = false): then "
        "the build fails naming the file."
    )
    rerun = explain(WyTrain(rerun=True, workspace_directory=workspace))
    assert "a rerun that fails keeps them" in rerun[0]
    assert rerun[1].startswith(f"  {upstream.kart_label()} is cached but damaged:")
    assert build(task) == 6  # and the build does what why said
    assert not any("damaged" in line for line in explain(WyTrain(epochs=3, workspace_directory=workspace)))


class WhyInner(gokart.TaskOnKart[int]):
    value = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        self.dump(self.value)


class WhyMid(gokart.TaskOnKart[int]):
    def requires(self) -> WhyInner:
        return WhyInner(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * 2)


class WhyTop(gokart.TaskOnKart[int]):
    """Builds WhyMid in its run() (a nested build), requiring nothing."""

    def run(self) -> None:
        self.dump(gokart.build(WhyMid(workspace_directory=self.workspace_directory), reset_register=False) + 1)


def test_a_task_whose_run_built_a_stale_task_will_run(workspace: str) -> None:
    """WhyTop's run() built WhyMid, stale since WhyInner reran: WhyTop runs (only its run builds WhyMid), and kart
    why says so, not that a build of WhyTop first brings WhyMid up to date (it does not walk WhyMid)."""
    assert build(WhyTop(workspace_directory=workspace)) == 3
    gokart.build(WhyInner(value=2, rerun=True, workspace_directory=workspace), reset_register=False)
    lines = explain(WhyTop(workspace_directory=workspace))
    assert "a build() nested in it" in lines[0] and lines[0].endswith("It will run.")
    assert not any("first brings" in line for line in lines)


def test_kart_verify_says_how_a_task_whose_run_built_a_stale_task_is_brought_up_to_date(workspace: str) -> None:
    """kart verify (no graph) lists WhyTop as stale, saying its run() built WhyMid: a build brings WhyMid up to date
    by running WhyTop again (WhyTop does not require it), not "first", as for a requirement."""
    assert build(WhyTop(workspace_directory=workspace)) == 3
    gokart.build(WhyInner(value=2, rerun=True, workspace_directory=workspace), reset_register=False)
    top = WhyTop(workspace_directory=workspace).kart_label()
    stale = [problem for problem in verify_workspace(workspace).problems if problem.task == top]
    assert [problem.kind for problem in stale] == ["stale"]
    assert "run() built WhyMid[" in stale[0].detail and f"else by running {top} again" in stale[0].detail
