"""to_pipeline: a kart graph as a Kedro Pipeline, run by Kedro's own runners through run_one."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import luigi
import pytest
from kart_kedro import KartReceipt, TaskOnKartDataset, TaskReceiptDataset, to_pipeline
from kart_kedro.pipeline import node_label
from kedro.io import DataCatalog, DatasetError, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import ParallelRunner, SequentialRunner, ThreadRunner
from kedro_test_tasks import Combine, Doubled, Numbers, Total, journal_lines

import kart_core


class Source(kart_core.TaskOnKart[int]):
    """Dumps the number in the file ``source`` names (insignificant: a rerun reads it anew)."""

    source = luigi.Parameter(significant=False)

    def run(self) -> None:
        self.dump(int(Path(self.source).read_text()))


class Tenfold(kart_core.TaskOnKart[int]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(10 * self.load("up"))


def _graph(workspace: str) -> Total:
    numbers = Numbers(size=5, workspace_directory=workspace)
    return Total(
        doubled=Doubled(source=numbers, factor=10, workspace_directory=workspace), workspace_directory=workspace
    )


def test_one_node_per_task_with_edges_along_requires(workspace: str) -> None:
    total = _graph(workspace)
    pipeline = to_pipeline(total)
    by_name = {n.name: n for n in pipeline.nodes}
    numbers, doubled = node_label(total.doubled.source), node_label(total.doubled)
    assert [n.name for n in pipeline.nodes] == [numbers, doubled, node_label(total)]
    assert by_name[doubled].inputs == [numbers] and by_name[doubled].outputs == [doubled]
    assert by_name[node_label(total)].inputs == [doubled]
    assert by_name[numbers].inputs == []
    assert numbers == f"Numbers_{total.doubled.source.make_unique_id()[:8]}"


def test_sequential_runner_runs_each_task_once_then_finds_them_cached(workspace: str, journal: str) -> None:
    pipeline = to_pipeline(_graph(workspace))
    result = SequentialRunner().run(pipeline, DataCatalog())
    receipt = next(iter(result.values())).load()
    assert isinstance(receipt, KartReceipt) and receipt.status == "ran"
    assert len(journal_lines(journal)) == 3
    assert kart_core.load_output(_graph(workspace)) == sum(range(1, 6)) * 10
    again = SequentialRunner().run(pipeline, DataCatalog())
    assert next(iter(again.values())).load().status == "cached"
    assert len(journal_lines(journal)) == 3


def test_a_named_output_feeds_a_kedro_node_through_the_catalog(workspace: str) -> None:
    total = _graph(workspace)
    catalog = DataCatalog(
        {
            "doubled": TaskOnKartDataset(
                "kedro_test_tasks.Doubled",
                {"factor": 10, "source": {"task": "kedro_test_tasks.Numbers", "params": {"size": 5}}},
                workspace,
            )
        }
    )
    pipeline = to_pipeline(total, names={total.doubled: "doubled"}) + Pipeline(
        [node(lambda values: max(values), "doubled", "largest", name="largest")]
    )
    result = SequentialRunner().run(pipeline, catalog)
    assert result["largest"].load() == 50


def test_a_list_parameter_graph_and_shared_upstreams(workspace: str) -> None:
    combine = Combine(
        parts=[Numbers(size=2, start=s, workspace_directory=workspace) for s in (1, 5)], workspace_directory=workspace
    )
    pipeline = to_pipeline([combine, Numbers(size=2, start=1, workspace_directory=workspace)], tags=["kart"])
    assert len(pipeline.nodes) == 3
    assert all("kart" in n.tags for n in pipeline.nodes)
    SequentialRunner().run(pipeline, DataCatalog())
    assert kart_core.load_output(combine) == [1, 2, 5, 6]


def test_a_failing_task_fails_the_kedro_run_with_its_label(workspace: str) -> None:
    bad = Doubled(source=Numbers(size=2, workspace_directory=workspace), factor=2, workspace_directory="/proc/kart")
    with pytest.raises(Exception, match=r"Doubled\[[0-9a-f]{8}\]"):
        SequentialRunner().run(to_pipeline(bad), DataCatalog())


@pytest.mark.timeout(120)
def test_parallel_runner_pickles_tasks_and_datasets_and_builds_each_task_once(workspace: str, journal: str) -> None:
    totals = [
        Total(
            doubled=Doubled(
                source=Numbers(size=3, workspace_directory=workspace), factor=f, workspace_directory=workspace
            ),
            workspace_directory=workspace,
        )
        for f in (2, 3)
    ]
    config = {
        "task": "kedro_test_tasks.Total",
        "params": {
            "doubled": {
                "task": "kedro_test_tasks.Doubled",
                "params": {"factor": 2, "source": {"task": "kedro_test_tasks.Numbers", "params": {"size": 3}}},
            }
        },
    }
    catalog = SharedMemoryDataCatalog({"total_2": TaskOnKartDataset(**config, workspace_directory=workspace)})
    pipeline = to_pipeline(totals, names={totals[0]: "total_2"}) + Pipeline(
        [node(_plus_one, "total_2", "answer", name="answer")]
    )
    runner = ParallelRunner(max_workers=2)  # keep it: its manager process holds the shared memory data
    result = runner.run(pipeline, catalog)
    assert result["answer"].load() == 13
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == [
        "Doubled",
        "Doubled",
        "Numbers",
        "Total",
        "Total",
    ]


def _plus_one(value: int) -> int:
    return value + 1


def test_a_rerun_task_below_a_complete_one_reruns_in_every_kedro_run_unlike_build(
    workspace: str, tmp_path: Path
) -> None:
    """docs/kedro.md: every to_pipeline node runs through run_one, so a rerun=True upstream reruns even when
    its downstream is complete, and the downstream reruns from the new content; build() stops at the root."""
    source = tmp_path / "value"
    source.write_text("1")
    first = Tenfold(up=Source(source=str(source), workspace_directory=workspace), workspace_directory=workspace)
    assert kart_core.build(first, reset_register=False) == 10
    luigi.task_register.Register.clear_instance_cache()  # else luigi hands back `first`, whose Source has no rerun
    source.write_text("5")
    up = Source(source=str(source), rerun=True, workspace_directory=workspace)
    root = Tenfold(up=up, workspace_directory=workspace)
    assert root.requires() == {"up": up} and root.up.rerun
    assert kart_core.build(root, reset_register=False) == 10  # the complete root: Source is never visited
    SequentialRunner().run(to_pipeline(root), DataCatalog())
    assert kart_core.load_output(root) == 50
    assert kart_core.load_output(up) == 5


@pytest.mark.parametrize("runner", ["SequentialRunner", "ThreadRunner", "ParallelRunner"])
@pytest.mark.parametrize("hooked", [True, False], ids=["with kart_kedro's hook", "without it"])
def test_a_node_run_without_its_stale_upstream_node_warns(
    workspace: str, tmp_path: Path, hooked: bool, runner: str
) -> None:
    """attacker at24 F6: Down's node run alone (kedro run --nodes) served a result built on a stale upstream as
    "cached" with no word; kart_airflow's operator warns in that case. Source -> A -> Mid -> Down, Source committed
    again: A is stale, Mid complete by its own inputs but built on A. With Mid's and A's nodes in the run nothing is
    said: they run first and bring their tasks up to date, then Down. Under each of Kedro's runners: ParallelRunner
    runs the nodes in worker processes, which get the hook's marks with the pickled node (the warnings are read from a
    file handler the forked workers inherit)."""
    from kart_kedro.hooks import hooks

    source = tmp_path / "value"
    source.write_text("1")
    a = Tenfold(up=Source(source=str(source), workspace_directory=workspace), workspace_directory=workspace)
    mid = Tenfold(up=a, workspace_directory=workspace)
    down = Tenfold(up=mid, workspace_directory=workspace)
    assert kart_core.build(down, reset_register=False) == 1000
    source.write_text("2")
    kart_core.build(Source(source=str(source), rerun=True, workspace_directory=workspace), reset_register=False)
    luigi.task_register.Register.clear_instance_cache()
    pipeline = to_pipeline(down)

    def run(*nodes: Any) -> list[str]:
        part = pipeline.only_nodes(*(node_label(task) for task in nodes))
        catalog = SharedMemoryDataCatalog() if runner == "ParallelRunner" else DataCatalog()
        if hooked:
            hooks.before_pipeline_run(run_params={}, pipeline=part, catalog=catalog)
        else:  # what the hook would declare: each edge as its task's receipt
            for one in part.nodes:
                for name, task in one.func.edges.items():
                    catalog[name] = TaskReceiptDataset(task)
        return _warnings_of(lambda: _RUNNERS[runner]().run(part, catalog), tmp_path / "warnings.log")

    alone = run(down)
    assert len(alone) == 1, alone
    assert alone[0].startswith(f"{down.kart_label()} is built on (or about to read) {mid.kart_label()}")
    assert "not current" in alone[0] and "--to-nodes" in alone[0]
    assert kart_core.load_output(down) == 1000  # warned, not rebuilt: the user chose the nodes
    with pytest.raises(DatasetError, match=rf"{re.escape(a.kart_label())} is stale: .* --from-nodes"):
        run(mid, down)  # A's receipt: A's own input changed, so it is not complete (and not "not built yet")
    assert run(a, mid, down) == []  # each node's upstreams are current when it runs (without the hook it checks)
    assert kart_core.load_output(down) == 2000
    # The hook spares a node whose upstream nodes all run first the lineage walk (n-squared reads on a chain).
    checks = {one.name: not one.func.upstream_runs_first for one in pipeline.nodes}
    expected = {node_label(a): True, node_label(mid): not hooked, node_label(down): not hooked}
    assert {name: checks[name] for name in expected} == expected


_RUNNERS = {"SequentialRunner": SequentialRunner, "ThreadRunner": ThreadRunner, "ParallelRunner": ParallelRunner}


def _warnings_of(call: Any, path: Path) -> list[str]:
    """The messages ``kart_kedro.pipeline`` logs at WARNING or above while ``call()`` runs, from this process and from
    the worker processes it forks (they inherit the file handler; one line per message)."""
    path.unlink(missing_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)r"))  # repr: one line per message
    pipeline_logger = logging.getLogger("kart_kedro.pipeline")
    level = pipeline_logger.level
    pipeline_logger.addHandler(handler)
    pipeline_logger.setLevel(logging.WARNING)
    try:
        call()
    finally:
        pipeline_logger.removeHandler(handler)
        pipeline_logger.setLevel(level)
        handler.close()
    return [ast.literal_eval(line) for line in path.read_text().splitlines()]


def test_to_pipeline_takes_a_generator_of_tasks(workspace: str) -> None:
    # attacker at24 F14: a bare AttributeError ('generator' object has no attribute 'task_id').
    sizes = (2, 3)
    pipeline = to_pipeline(Numbers(size=size, workspace_directory=workspace) for size in sizes)
    assert sorted(n.name for n in pipeline.nodes) == sorted(
        node_label(Numbers(size=size, workspace_directory=workspace)) for size in sizes
    )
