"""kart_core.utils: flatten / map_flattenable_items on nested structures, add_config on real config files."""

from __future__ import annotations

import sys
from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.utils import (
    FlattenableItems,
    add_config,
    flatten,
    get_dataframe_type_from_task,
    load_dill_with_pandas_backward_compatibility,
    map_flattenable_items,
)


class UtConfigured(gokart.TaskOnKart[int]):
    rate = luigi.FloatParameter()
    name = luigi.Parameter(default="unset")

    def run(self) -> None:
        self.dump(0)


def test_flatten_keeps_order_and_drops_none() -> None:
    assert flatten({"a": "foo", "b": ["bar", ("baz", None)], "c": None}) == ["foo", "bar", "baz"]
    assert flatten(None) == []
    assert flatten(42) == [42]
    assert flatten("text") == ["text"]
    assert flatten([[], {}, ()]) == []


def test_flatten_of_a_task_graph_shape(workspace: str) -> None:
    tasks = [UtConfigured(rate=float(i), workspace_directory=workspace) for i in range(3)]
    assert flatten({"x": tasks[0], "y": [tasks[1], {"z": tasks[2]}]}) == tasks


def test_flatten_deeper_than_the_recursion_limit() -> None:
    nested: list = ["leaf"]
    for _ in range(sys.getrecursionlimit() * 3):
        nested = [nested]
    assert flatten(nested) == ["leaf"]


def test_map_keeps_the_shape() -> None:
    mapped = map_flattenable_items(lambda x: x * 2, {"a": [1, (2, 3)], "b": 4, "s": "ab"})
    assert mapped == {"a": [2, (4, 6)], "b": 8, "s": "abab"}
    assert isinstance(mapped["a"][1], tuple)
    assert map_flattenable_items(str, 5) == "5"


def test_flattenable_items_is_usable_as_a_runtime_annotation() -> None:
    alias = FlattenableItems[int]
    assert int in alias.__args__


def test_add_config_sets_task_parameters(tmp_path: Path, workspace: str) -> None:
    config = tmp_path / "param.ini"
    config.write_text("[UtConfigured]\nrate = 0.25\nname = from-file\n")
    add_config(str(config))
    task = UtConfigured(workspace_directory=workspace)
    assert (task.rate, task.name) == (0.25, "from-file")
    assert gokart.build(_Echo(source=task, workspace_directory=workspace)) == ("from-file", 0.25)


def test_add_config_later_file_overrides_earlier(tmp_path: Path, workspace: str) -> None:
    (tmp_path / "base.ini").write_text("[UtConfigured]\nrate = 1.0\nname = base\n")
    (tmp_path / "local.ini").write_text("[UtConfigured]\nname = local\n")
    gokart.add_config(str(tmp_path / "base.ini"))
    gokart.add_config(str(tmp_path / "local.ini"))
    task = UtConfigured(workspace_directory=workspace)
    assert (task.rate, task.name) == (1.0, "local")


def test_add_config_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no config file at '.*nowhere\.ini'"):
        add_config(str(tmp_path / "nowhere.ini"))


class _Echo(gokart.TaskOnKart[tuple]):
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        self.dump((self.source.name, self.source.rate))


def test_dataframe_type_from_the_type_argument() -> None:
    import polars as pl

    class UtPolars(gokart.TaskOnKart[pl.DataFrame]):
        pass

    class UtLazy(gokart.TaskOnKart[pl.LazyFrame]):
        pass

    assert get_dataframe_type_from_task(UtConfigured) == "pandas"
    assert get_dataframe_type_from_task(UtPolars()) == "polars"
    assert get_dataframe_type_from_task(UtLazy) == "polars-lazy"


def test_load_pickles_written_by_dill_and_pandas(tmp_path: Path) -> None:
    import io

    import dill
    import pandas as pd

    square = load_dill_with_pandas_backward_compatibility(io.BytesIO(dill.dumps(lambda v: v * v)))
    assert square(3) == 9
    frame = pd.DataFrame({"a": [1, 2]})
    frame.to_pickle(tmp_path / "frame.pkl")
    with open(tmp_path / "frame.pkl", "rb") as file:
        assert load_dill_with_pandas_backward_compatibility(file).equals(frame)


def test_a_toml_config_without_luigi_s_toml_parser_is_refused_not_ignored(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kart_core.cli import cli
    from kart_core.errors import ConfigFormatError

    config = tmp_path / "kart.toml"
    config.write_text('[TaskOnKart]\nworkspace_directory = "./from-toml"\n')
    with pytest.raises(ConfigFormatError, match="LUIGI_CONFIG_PARSER=toml"):
        add_config(str(config))
    assert isinstance(ConfigFormatError("x"), ValueError)
    result = CliRunner().invoke(cli, ["--config", str(config), "runs"])
    assert result.exit_code == 4 and "LUIGI_CONFIG_PARSER=toml" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_a_toml_config_is_read_with_luigi_s_toml_parser(tmp_path: Path) -> None:
    import os
    import subprocess

    config = tmp_path / "kart.toml"
    config.write_text('[TaskOnKart]\nworkspace_directory = "./from-toml"\n')
    script = "import kart_core as g; g.add_config('kart.toml'); print(g.TaskOnKart().workspace_directory)"
    environment = {**os.environ, "LUIGI_CONFIG_PARSER": "toml"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "./from-toml"
