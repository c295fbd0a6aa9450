"""kart_core.display: one formatter for task-valued parameters, from live tasks and from gokart's stored strings."""

from __future__ import annotations

import json
from typing import Any

import luigi

import kart_core as gokart
from kart_core.display import decode_value, params_text, task_params_text, task_text, value_text
from kart_core.inspect import runs
from kart_core.inspect.runs import format_table


class DpLoad(gokart.TaskOnKart[list]):
    n_rows = luigi.IntParameter(default=400)
    seed = luigi.IntParameter(default=0)
    note = luigi.Parameter(default="", significant=False)

    def run(self) -> None:
        self.dump(list(range(self.n_rows)))


class DpFeatures(gokart.TaskOnKart[list]):
    data = gokart.TaskInstanceParameter(expected_type=DpLoad)
    fraction = luigi.FloatParameter(default=0.25)

    def run(self) -> None:
        self.dump(self.load("data")[:2])


class DpTrain(gokart.TaskOnKart[int]):
    features = gokart.TaskInstanceParameter(expected_type=DpFeatures)
    comment = luigi.Parameter(default="")

    def run(self) -> None:
        self.dump(len(self.load("features")))


class DpMany(gokart.TaskOnKart[int]):
    parts = gokart.ListTaskInstanceParameter(expected_elements_type=DpLoad)

    def run(self) -> None:
        self.dump(len(self.parts))


def short(task: Any) -> str:
    return task.make_unique_id()[:8]


def test_a_live_task_shows_class_short_id_and_its_own_parameters() -> None:
    load = DpLoad(n_rows=400, seed=0, note="not significant")
    assert task_text(load) == f"DpLoad[{short(load)}](n_rows=400, seed=0)"
    train = DpTrain(features=DpFeatures(data=load), comment="x" * 100)
    features = train.features
    # one level of nested parameters, deeper tasks as Class[id]; a long value cut to 40 characters
    assert task_text(train) == (
        f"DpTrain[{short(train)}](features=DpFeatures[{short(features)}](data=DpLoad[{short(load)}], "
        f"fraction=0.25), comment={'x' * 39}…)"
    )
    assert task_params_text(train, max_value=None)["comment"] == "x" * 100


def test_a_stored_value_decodes_to_the_same_text_as_the_live_task() -> None:
    load = DpLoad(n_rows=7)
    raw = DpFeatures(data=load).to_str_params(only_significant=True)
    assert raw["data"].startswith('{"type": "DpLoad", "params": "425a68')  # gokart's bz2 hex blob
    ids = {("DpLoad", (("n_rows", "7"), ("seed", "0"))): load.make_unique_id()}

    def lookup(name: str, params: Any) -> str | None:
        return ids.get((name, tuple(sorted(params.items()))))

    assert params_text(raw, lookup) == f"data=DpLoad[{short(load)}](n_rows=7, seed=0), fraction=0.25"
    assert params_text(raw, lookup) == ", ".join(f"{k}={v}" for k, v in task_params_text(DpFeatures(data=load)).items())
    # without a known id: the class and its parameters, no brackets
    assert value_text(raw["data"]) == "DpLoad(n_rows=7, seed=0)"


def test_deeper_unknown_tasks_lists_and_odd_values() -> None:
    train_raw = DpTrain(features=DpFeatures(data=DpLoad())).to_str_params(only_significant=True)
    assert value_text(train_raw["features"]) == "DpFeatures(data=DpLoad(…), fraction=0.25)"
    many = DpMany(parts=[DpLoad(n_rows=i) for i in range(6)])
    raw = many.to_str_params(only_significant=True)["parts"]
    assert value_text(raw) == (
        "[DpLoad(n_rows=0, seed=0), DpLoad(n_rows=1, seed=0), DpLoad(n_rows=2, seed=0), "
        "DpLoad(n_rows=3, seed=0), … 2 more]"
    )
    assert task_text(many).startswith(f"DpMany[{short(many)}](parts=[DpLoad[{short(many.parts[0])}](n_rows=0")
    assert value_text("") == '""' and value_text(" padded") == '" padded"'
    looks_like = json.dumps({"type": "X", "params": "not hex"})
    assert decode_value(looks_like) == looks_like and value_text("[1, 2]") == "[1, 2]"


def test_runs_show_readable_params_and_keep_the_raw_ones(workspace: str) -> None:
    load = DpLoad(n_rows=5, workspace_directory=workspace)
    train = DpTrain(features=DpFeatures(data=load, workspace_directory=workspace), workspace_directory=workspace)
    gokart.build(train, reset_register=False)
    table = runs(workspace).set_index("class")
    features = table.loc["DpFeatures"]
    assert features["params"] == {"data": f"DpLoad[{short(load)}](n_rows=5, seed=0)", "fraction": "0.25"}
    assert features["raw_params"] == train.features.to_str_params(only_significant=True)
    assert table.loc["DpTrain", "params"]["features"] == (
        f"DpFeatures[{short(train.features)}](data=DpLoad[{short(load)}], fraction=0.25)"
    )
    # the filter takes the stored value or the readable one
    readable = runs(workspace, params={"data": f"DpLoad[{short(load)}](n_rows=5, seed=0)"})
    assert list(readable["class"]) == ["DpFeatures"]
    assert list(runs(workspace, params={"data": features["raw_params"]["data"]})["class"]) == ["DpFeatures"]
    line = next(line for line in format_table(runs(workspace)).splitlines() if line.startswith("DpFeatures"))
    assert f"data=DpLoad[{short(load)}](n_rows=5, seed=0), fraction=0.25" in line and "425a68" not in line
