"""report_data: what the report shows about each task and each class's runs, read from a real workspace."""

from __future__ import annotations

import re
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect.report_data import MAX_RUNS_PER_CLASS, collect, differing


class RdLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=2)
    note = luigi.Parameter(default="plain")

    def run(self) -> None:
        self.dump(list(range(self.n)))


class RdBroken(gokart.TaskOnKart[int]):
    def run(self) -> None:
        raise RuntimeError("broken fails")


class RdTop(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=2)

    def requires(self) -> dict[str, Any]:
        ws = self.workspace_directory
        return {"load": RdLoad(n=self.n, workspace_directory=ws), "broken": RdBroken(workspace_directory=ws)}

    def run(self) -> None:
        self.dump(0)


def _built(workspace: str) -> None:
    for n in (2, 5):
        gokart.build(RdLoad(n=n, workspace_directory=workspace), reset_register=False)
    with pytest.raises(gokart.GokartBuildError):
        gokart.build(RdBroken(workspace_directory=workspace), reset_register=False)


def test_each_task_has_status_params_time_size_finish_and_why(workspace: str) -> None:
    _built(workspace)
    top = RdTop(n=3, workspace_directory=workspace)
    graph, data = collect([top, RdLoad(n=2, workspace_directory=workspace)])
    by_label = {t.label: t for t in data.tasks}
    assert len(data.tasks) == len(graph.order) == 4
    done = by_label[RdLoad(n=2, workspace_directory=workspace).kart_label()]
    assert (done.status, done.root, done.params) == ("complete", True, {"n": "2", "note": "plain"})
    assert done.processing_time is not None and 0 <= done.processing_time < 60
    assert done.output_size is not None and done.output_size > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", done.finished_at or "")
    assert done.reason == []
    pending = by_label[RdLoad(n=3, workspace_directory=workspace).kart_label()]
    assert (pending.status, pending.root, pending.output_size, pending.finished_at) == ("pending", False, None, None)
    assert pending.reason[0].startswith(f"{pending.label} will run: it differs from the nearest cached run RdLoad[")
    assert "parameter 'n': now 3, cached run 5" in pending.reason[1]
    broken = by_label[RdBroken(workspace_directory=workspace).kart_label()]
    assert broken.status == "failed" and "never finished" in broken.reason[0]
    root = by_label[top.kart_label()]
    assert root.root and root.status == "pending" and sorted(root.requires) == sorted([pending.key, broken.key])
    assert root.reason == [f"{root.label} will run: no run of RdTop is cached in {workspace}."]


def test_runs_of_each_class_side_by_side_with_the_differing_parameter(workspace: str) -> None:
    _built(workspace)
    _, data = collect([RdLoad(n=5, workspace_directory=workspace)])
    [load] = data.classes  # only the classes of the graph
    assert load.name == "RdLoad" and load.workspace == workspace and load.hidden == 0
    assert [r.params["n"] for r in load.runs] == ["2", "5"]  # oldest first
    assert load.differs == ["n"]
    assert [r.in_graph for r in load.runs] == [False, True]
    assert all(r.status == "complete" and r.output_size and r.finished_at for r in load.runs)


def test_only_the_newest_runs_of_a_class_are_shown(workspace: str) -> None:
    for n in range(MAX_RUNS_PER_CLASS + 2):
        gokart.build(RdLoad(n=n, workspace_directory=workspace), reset_register=False)
    _, data = collect([RdLoad(n=0, workspace_directory=workspace)])
    [load] = data.classes
    assert len(load.runs) == MAX_RUNS_PER_CLASS and load.hidden == 2
    assert load.runs[-1].params["n"] == str(MAX_RUNS_PER_CLASS + 1)


def test_differing_names_a_parameter_missing_from_some_runs() -> None:
    assert differing([{"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "1"}]) == ["b"]
    assert differing([{"a": "1", "c": "z"}, {"a": "1"}]) == ["c"]
    assert differing([{"a": "1"}]) == []


class RdUses(gokart.TaskOnKart[int]):
    data = gokart.TaskInstanceParameter(expected_type=RdLoad)
    scale = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(len(self.load("data")) * self.scale)


def test_task_valued_parameters_read_as_class_id_and_parameters(workspace: str) -> None:
    """Through kart_core.display: the graph's tasks and the stored runs alike, never gokart's bz2 hex."""
    load = RdLoad(n=4, workspace_directory=workspace)
    for scale in (1, 2):
        gokart.build(RdUses(data=load, scale=scale, workspace_directory=workspace), reset_register=False)
    _, data = collect([RdUses(data=load, scale=3, workspace_directory=workspace)])
    readable = f"RdLoad[{load.make_unique_id()[:8]}](n=4, note=plain)"
    uses = next(t for t in data.tasks if t.name == "RdUses")
    assert uses.params == {"data": readable, "scale": "3"}
    runs = next(c for c in data.classes if c.name == "RdUses")
    assert [r.params for r in runs.runs] == [{"data": readable, "scale": "1"}, {"data": readable, "scale": "2"}]
    assert runs.differs == ["scale"]
