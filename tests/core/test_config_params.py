"""inherits_config_params: a luigi.Config's values become defaults of a task's parameters."""

from __future__ import annotations

from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.config_params import inherits_config_params


class CpSettings(luigi.Config):
    threshold = luigi.FloatParameter(default=0.5)
    label = luigi.Parameter(default="base")
    only_in_config = luigi.IntParameter(default=3)


@inherits_config_params(CpSettings)
class CpScore(gokart.TaskOnKart[dict]):
    threshold = luigi.FloatParameter()
    label = luigi.Parameter(default="task-default")

    def run(self) -> None:
        self.dump({"threshold": self.threshold, "label": self.label})


@inherits_config_params(CpSettings, parameter_alias={"label": "title"})
class CpAliased(gokart.TaskOnKart[str]):
    title = luigi.Parameter()

    def run(self) -> None:
        self.dump(self.title)


def test_config_values_fill_the_task(workspace: str) -> None:
    task = CpScore(workspace_directory=workspace)
    assert (task.threshold, task.label) == (0.5, "base")
    assert gokart.build(task) == {"threshold": 0.5, "label": "base"}


def test_explicit_values_win(workspace: str) -> None:
    task = CpScore(threshold=0.9, label="mine", workspace_directory=workspace)
    assert (task.threshold, task.label) == (0.9, "mine")


def test_the_decorated_class_keeps_its_name_and_module() -> None:
    assert CpScore.__name__ == "CpScore" and CpScore.get_task_family() == "CpScore"
    assert CpScore.__module__ == __name__
    assert issubclass(CpScore, gokart.TaskOnKart)


def test_config_file_values_flow_through(tmp_path: Path, workspace: str) -> None:
    (tmp_path / "settings.ini").write_text("[CpSettings]\nthreshold = 0.125\nlabel = from-file\n")
    gokart.add_config(str(tmp_path / "settings.ini"))
    task = CpScore(workspace_directory=workspace)
    assert (task.threshold, task.label) == (0.125, "from-file")


def test_inherited_values_are_part_of_the_unique_id(tmp_path: Path, workspace: str) -> None:
    default_id = CpScore(workspace_directory=workspace).make_unique_id()
    assert default_id == CpScore(threshold=0.5, label="base", workspace_directory=workspace).make_unique_id()
    (tmp_path / "settings.ini").write_text("[CpSettings]\nthreshold = 0.75\n")
    gokart.add_config(str(tmp_path / "settings.ini"))
    assert CpScore(workspace_directory=workspace).make_unique_id() != default_id


def test_alias_maps_a_config_name_to_a_task_parameter(workspace: str) -> None:
    task = CpAliased(workspace_directory=workspace)
    assert task.title == "base" and "label" not in task.param_kwargs
    assert gokart.build(task) == "base"


def test_missing_required_parameter_still_reported(workspace: str) -> None:
    @inherits_config_params(CpSettings)
    class CpNeedsMore(gokart.TaskOnKart[int]):
        threshold = luigi.FloatParameter()
        extra = luigi.IntParameter()

    with pytest.raises(luigi.parameter.MissingParameterException, match="extra"):
        CpNeedsMore(workspace_directory=workspace)
