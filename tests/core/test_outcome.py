"""The labeller, BuildResult's naming, and luigi's exit-code rule."""

from __future__ import annotations

from typing import Any

import luigi
import pytest

import kart_core
from kart_core.outcome import (
    GOKART_RETCODES,
    BuildResult,
    RetCodes,
    exit_code,
    is_external,
    task_label,
    unique_id_or_none,
)


class OcTask(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class OcBrokenRequires(kart_core.TaskOnKart[int]):
    def requires(self) -> Any:
        raise RuntimeError("no upstreams today")


class OcExternal(luigi.ExternalTask):
    name = luigi.Parameter(default="data.csv")

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.name)


def test_a_kart_task_is_named_by_class_and_short_id() -> None:
    task = OcTask()
    uid = task.make_unique_id()
    assert task_label(task) == f"OcTask[{uid[:8]}]" == task.kart_label()
    assert unique_id_or_none(task) == uid


def test_a_luigi_task_is_named_by_its_task_id_and_has_no_unique_id() -> None:
    task = OcExternal(name="in.csv")
    assert task_label(task) == task.task_id and task.task_id.startswith("OcExternal_in_csv_")
    assert unique_id_or_none(task) is None
    assert is_external(task) and not is_external(OcTask())


def test_a_task_whose_id_cannot_be_computed_is_named_by_its_class() -> None:
    task = OcBrokenRequires()
    assert task_label(task) == "OcBrokenRequires"
    assert unique_id_or_none(task) is None


def test_result_labels_and_describes_its_nodes() -> None:
    task, external = OcTask(), OcExternal()
    key = kart_core.node_key(task)
    result = BuildResult(nodes={key: task, external.task_id: external})
    assert result.label(key) == task.kart_label()
    assert result.describe(key) == f"{task.kart_label()} (unique id {task.make_unique_id()})"
    assert result.describe(external.task_id) == external.task_id
    assert result.label("some.Unknown_key") == "some.Unknown_key"


def _result(**outcomes: Any) -> BuildResult:
    task, external = OcTask(), OcExternal()
    nodes: dict[str, Any] = {"root": task, "task": task, "ext": external}
    return BuildResult(roots=["root"], nodes=nodes, **outcomes)


@pytest.mark.parametrize(
    ("outcomes", "gokart_code"),
    [
        ({"ran": ["task", "root"]}, 0),
        ({"cached": ["root"]}, 0),
        ({"ran": ["task"]}, 30),  # nothing failed, but the root is not complete
        ({"failed": {"task": ValueError()}, "not_run": ["root"]}, 40),
        ({"failed": {"ext": ValueError()}, "not_run": ["root"]}, 20),
        ({"failed": {"task": SystemExit(2)}}, 40),
        ({"failed": {"task": KeyboardInterrupt()}}, 40),
        ({"failed": {"root": ValueError()}, "scheduling_failed": {"root"}}, 50),
        ({"failed": {"ext": ValueError(), "task": ValueError()}}, 40),  # the largest code wins
        ({"failed": {"ext": ValueError(), "root": ValueError()}, "scheduling_failed": {"root"}}, 50),
    ],
)
def test_exit_code_is_the_largest_code_among_the_outcomes(outcomes: dict[str, Any], gokart_code: int) -> None:
    assert exit_code(_result(**outcomes), GOKART_RETCODES) == gokart_code


def test_luigi_defaults_make_every_outcome_exit_zero_but_not_run() -> None:
    luigi_defaults = RetCodes()
    assert exit_code(_result(failed={"task": ValueError()}), luigi_defaults) == 0
    assert exit_code(_result(failed={"task": ValueError()}), RetCodes(task_failed=3)) == 3
    assert GOKART_RETCODES == RetCodes(4, 20, 40, 10, 50, 30)


def test_a_repaired_task_leaves_cached_once_and_shows_in_the_summary() -> None:
    result = BuildResult(ran=["down"], cached=["up", "other"], roots=["down"], seconds=0.5)
    assert result.add_repaired("up") is True
    assert result.add_repaired("up") is False  # two downstreams reporting the same rebuild count it once
    assert result.add_repaired("down") is False  # it ran in this build
    assert result.add_repaired("further") is True  # outside the walked graph
    assert (result.repaired, result.cached) == (["up", "further"], ["other"])
    assert result.summary() == "kart build: 1 ran, 2 repaired, 1 cached, 0 failed, 0 not run, in 0.50s"
    assert exit_code(BuildResult(repaired=["root"], roots=["root"]), GOKART_RETCODES) == 0
