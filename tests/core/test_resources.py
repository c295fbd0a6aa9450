"""luigi's resource rule for kart's executor (kart_core.resources); twin runs against gokart: test_run_luigi_options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError, TaskDefinitionError
from kart_core.resources import ResourceLimits


class RsTwoGpus(kart_core.TaskOnKart[int]):
    resources = {"gpu": 2}

    def run(self) -> None:
        self.dump(2)


def _nodes(**needs: dict[str, int]) -> dict[str, Any]:
    return {key: type("T", (), {"process_resources": lambda self, n=need: n})() for key, need in needs.items()}


def test_an_unnamed_resource_has_one_and_a_named_one_its_amount() -> None:
    limits = ResourceLimits(_nodes(a={"gpu": 1}, b={"gpu": 1}, c={}, d={"mem": 3}), capacity={"mem": 4})
    assert limits.fits("a", []) and not limits.fits("b", ["a"])
    assert limits.fits("c", ["a", "b"])  # holds nothing
    assert limits.fits("d", ["a"]) and not limits.fits("d", ["d"])  # 3 + 3 > 4
    assert limits.last_fitting(["b", "c"], ["a"]) == 1 and limits.last_fitting(["b"], ["a"]) is None


def test_a_task_needing_more_than_there_is_fails_naming_the_resource(tmp_path: Path) -> None:
    with pytest.raises(GokartBuildError) as raised:
        kart_core.build(RsTwoGpus(workspace_directory=str(tmp_path)), reset_register=False)
    cause = raised.value.__cause__
    assert isinstance(cause, TaskDefinitionError)
    assert "RsTwoGpus[" in str(cause) and "'gpu'" in str(cause) and "[resources] gpu = 2" in str(cause)


def test_the_config_amount_lets_it_run(tmp_path: Path) -> None:
    config = luigi.configuration.get_config()
    assert not config.has_section("resources")
    config.add_section("resources")
    config.set("resources", "gpu", "2")
    try:
        assert kart_core.build(RsTwoGpus(workspace_directory=str(tmp_path)), reset_register=False) == 2
    finally:
        config.remove_section("resources")


def test_tasks_without_resources_share_one_empty_answer_asked_once_each() -> None:
    asked: list[str] = []

    class Asked:
        def __init__(self, name: str, needs: dict[str, int] | None) -> None:
            self.name, self.answer = name, needs

        def process_resources(self) -> dict[str, int] | None:
            asked.append(self.name)
            return self.answer

    limits = ResourceLimits({"a": Asked("a", {}), "b": Asked("b", None), "c": Asked("c", {"gpu": 1})})
    empty = limits.needs("a")
    assert dict(empty) == {} and limits.needs("b") is empty  # no dict of its own per task without resources
    with pytest.raises(TypeError):
        empty["gpu"] = 1  # type: ignore[index]  # read-only: one answer shared by every such task
    assert limits.needs("c") == {"gpu": 1}
    assert limits.fits("a", ["c"]) and limits.refusal("a") is None and limits.refusal("b") is None
    assert limits.needs("a") is empty and limits.needs("c") == {"gpu": 1}
    assert asked == ["a", "b", "c"]  # each task asked once
