"""Task tree and table: gokart's text format, statuses before/after a build, abbreviation, deep graphs."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import fork_server
import luigi
import pandas as pd
import pytest
from fork_server import GOKART, KART

import kart_core as gokart
from kart_core.tree.task_info import (
    dump_task_info_table,
    dump_task_info_tree,
    make_task_info_as_table,
    make_task_info_as_tree_str,
)
from kart_core.tree.task_info_formatter import RequiredTask, TaskInfo


class TrLoad(gokart.TaskOnKart[list]):
    x = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump([self.x])


class TrFeatures(gokart.TaskOnKart[list]):
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load(self.source) + [10])


class TrReport(gokart.TaskOnKart[int]):
    def requires(self) -> dict[str, Any]:
        load = TrLoad(workspace_directory=self.workspace_directory)
        return {"features": TrFeatures(source=load, workspace_directory=self.workspace_directory), "load": load}

    def run(self) -> None:
        self.dump(sum(self.load("features")) + sum(self.load("load")))


class TrChain(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def requires(self) -> Any:
        return TrChain(n=self.n - 1, workspace_directory=self.workspace_directory) if self.n > 0 else []

    def run(self) -> None:
        self.dump(self.n)


class TrCountingLoad(TrLoad):
    complete_calls = 0

    def complete(self) -> bool:
        type(self).complete_calls += 1
        return super().complete()


class TrPair(gokart.TaskOnKart[int]):
    left = gokart.TaskInstanceParameter()
    right = gokart.TaskInstanceParameter()


def _report(workspace: str) -> TrReport:
    return TrReport(workspace_directory=workspace)


def _ids(report: TrReport) -> tuple[str, str, str]:
    features, load = report.requires()["features"], report.requires()["load"]
    return report.make_unique_id(), features.make_unique_id(), load.make_unique_id()


def test_tree_of_three_tasks_before_and_after_build(workspace: str) -> None:
    report = _report(workspace)
    root_id, feat_id, load_id = _ids(report)

    def expected(status: str) -> str:
        return (
            f"\n└─-({status}) TrReport[{root_id}]\n   |--({status}) TrFeatures[{feat_id}]"
            f"\n   |  └─-({status}) TrLoad[{load_id}]\n   └─-({status}) TrLoad[{load_id}]\n      └─- ..."
        )

    assert make_task_info_as_tree_str(report) == expected("PENDING")
    gokart.build(report)
    assert make_task_info_as_tree_str(report) == expected("COMPLETE")
    assert gokart.make_tree_info(report) == expected("COMPLETE")


def test_a_complete_task_whose_output_is_truncated_is_damaged(workspace: str) -> None:
    report = _report(workspace)
    root_id, feat_id, load_id = _ids(report)
    gokart.build(report)
    with open(report.requires()["features"].output().path(), "r+b") as file:
        file.truncate(1)  # its manifest records the committed size
    assert make_task_info_as_tree_str(report) == (
        f"\n└─-(COMPLETE) TrReport[{root_id}]\n   |--(DAMAGED) TrFeatures[{feat_id}]"
        f"\n   |  └─-(COMPLETE) TrLoad[{load_id}]\n   └─-(COMPLETE) TrLoad[{load_id}]\n      └─- ..."
    )


def test_a_complete_task_whose_manifest_cannot_be_read_is_damaged(workspace: str) -> None:
    from luigi.task import flatten

    from kart_core.damage import UNREADABLE_MANIFEST, size_mismatches

    report = _report(workspace)
    root_id, feat_id, load_id = _ids(report)
    gokart.build(report)
    features = report.requires()["features"]
    manifest = flatten(features.output())[0].record.manifest
    with open(manifest, "w", encoding="utf-8") as file:
        file.write('{"commit": "x')  # cut short
    assert "(DAMAGED) TrFeatures[" in make_task_info_as_tree_str(report)
    # Its reader cannot be judged by a record that cannot be read: stale, so a build runs TrFeatures again first and
    # judges TrReport after (attacker at21 L7, 5ed1999).
    assert "(STALE) TrReport[" in make_task_info_as_tree_str(report)
    (found,) = size_mismatches(flatten(features.output()))
    assert found.path == manifest and found.describe() == f"{manifest}: {UNREADABLE_MANIFEST}"
    os.remove(manifest)  # no record at all is gokart's case: not damage
    assert "(COMPLETE) TrFeatures[" in make_task_info_as_tree_str(report)


def test_without_abbreviation_a_shared_task_is_printed_each_time(workspace: str) -> None:
    report = _report(workspace)
    root_id, feat_id, load_id = _ids(report)
    text = make_task_info_as_tree_str(report, abbr=False)
    assert text == (
        f"\n└─-(PENDING) TrReport[{root_id}]\n   |--(PENDING) TrFeatures[{feat_id}]"
        f"\n   |  └─-(PENDING) TrLoad[{load_id}]\n   └─-(PENDING) TrLoad[{load_id}]"
    )


def test_details_show_params_outputs_time_and_task_log(workspace: str) -> None:
    report = _report(workspace)
    gokart.build(report)
    load = report.requires()["load"]
    lines = make_task_info_as_tree_str(report, details=True).splitlines()
    load_path = load.output().path()
    assert lines[3].startswith(f"   |  └─-(COMPLETE) TrLoad[{load.make_unique_id()}](parameter={{'x': '1'}}, ")
    assert f"output=['{load_path}'], time=" in lines[3]
    seconds = float(lines[3].split("time=")[1].split("s, task_log=")[0])
    assert seconds == pytest.approx(load.get_processing_time())
    assert lines[3].endswith(f"task_log={{'file_path': ['{load_path}']}})")
    assert f"(parameter={{'source': 'TrLoad-{load.make_unique_id()}'}}" in lines[2]
    # The abbreviated repeat has no details.
    assert lines[4] == f"   └─-(COMPLETE) TrLoad[{load.make_unique_id()}]"


def test_ignored_task_names_drop_the_subtree(workspace: str) -> None:
    report = _report(workspace)
    root_id, _, load_id = _ids(report)
    text = make_task_info_as_tree_str(report, ignore_task_names=["TrFeatures"])
    assert text == f"\n└─-(PENDING) TrReport[{root_id}]\n   └─-(PENDING) TrLoad[{load_id}]"


def test_table_has_one_row_per_unique_task(workspace: str) -> None:
    report = _report(workspace)
    root_id, feat_id, load_id = _ids(report)
    gokart.build(report)
    table = make_task_info_as_table(report)
    assert list(table.columns) == [
        "name",
        "unique_id",
        "output_paths",
        "params",
        "processing_time",
        "is_complete",
        "task_log",
        "requires",
    ]
    assert list(table["name"]) == ["TrReport", "TrFeatures", "TrLoad"]
    assert list(table["unique_id"]) == [root_id, feat_id, load_id]
    assert set(table["is_complete"]) == {"COMPLETE"}
    assert table["requires"][0] == {
        "features": RequiredTask("TrFeatures", feat_id),
        "load": RequiredTask("TrLoad", load_id),
    }
    assert table["params"][2] == {"x": "1"}
    assert table["processing_time"][2].endswith("s")


def test_a_shared_upstream_is_checked_once(workspace: str) -> None:
    shared = TrCountingLoad(x=7, workspace_directory=workspace)
    root = TrPair(
        left=shared, right=TrFeatures(source=shared, workspace_directory=workspace), workspace_directory=workspace
    )
    TrCountingLoad.complete_calls = 0
    text = make_task_info_as_tree_str(root)
    assert TrCountingLoad.complete_calls == 1
    assert text.count(f"TrCountingLoad[{shared.make_unique_id()}]") == 2


def test_dump_table_and_tree(workspace: str, tmp_path: Path) -> None:
    report = _report(workspace)
    gokart.build(report)
    uid = report.make_unique_id()
    dump_task_info_table(report, str(tmp_path / "info" / "table.csv"))
    written = pd.read_csv(tmp_path / "info" / f"table_{uid}.csv")
    assert list(written["name"]) == ["TrReport", "TrFeatures", "TrLoad"]
    dump_task_info_tree(report, str(tmp_path / "info" / "tree.pkl"), use_unique_id=False)
    tree = pd.read_pickle(tmp_path / "info" / "tree.pkl")
    assert isinstance(tree, TaskInfo) and tree.name == "TrReport"
    assert [child.name for child in tree.children_task_infos] == ["TrFeatures", "TrLoad"]
    with pytest.raises(ValueError, match=r"tree\.csv.*'\.pkl'"):
        dump_task_info_tree(report, str(tmp_path / "tree.csv"))


def test_a_chain_deeper_than_the_recursion_limit(workspace: str) -> None:
    depth = sys.getrecursionlimit() * 2
    root = TrChain(n=depth - 1, workspace_directory=workspace)
    table = make_task_info_as_table(root)
    assert len(table) == depth and list(table["params"].iloc[[0, -1]]) == [{"n": str(depth - 1)}, {"n": "0"}]
    lines = make_task_info_as_tree_str(root).split("\n")[1:]
    assert len(lines) == depth
    leaf_id = TrChain(n=0, workspace_directory=workspace).make_unique_id()
    assert lines[-1] == " " * 3 * (depth - 1) + f"└─-(PENDING) TrChain[{leaf_id}]"


@pytest.mark.slow
def test_a_chain_of_ten_thousand_tasks(workspace: str) -> None:
    root = TrChain(n=9_999, workspace_directory=workspace)
    lines = make_task_info_as_tree_str(root).split("\n")[1:]
    assert len(lines) == 10_000 and lines[-1].startswith(" " * 3 * 9_999 + "└─-(PENDING) TrChain[")


def test_tree_info_task_writes_to_the_workspace(workspace: str) -> None:
    settings = gokart.tree_info(workspace_directory=workspace)
    assert settings.mode == "" and settings.output().path() == os.path.join(workspace, "tree.txt")


_SIDE_BY_SIDE = textwrap.dedent(
    """
    import json, sys
    import luigi
    if sys.argv[1] == "kart":
        import kart_core as gokart
        from kart_core.tree.task_info import make_task_info_as_table
    else:
        import gokart
        from gokart.tree.task_info import make_task_info_as_table

    class Load(gokart.TaskOnKart):
        x = luigi.IntParameter(default=1)
        def run(self):
            self.dump([self.x])

    class Features(gokart.TaskOnKart):
        source = gokart.TaskInstanceParameter()
        def run(self):
            self.dump(self.load(self.source) + [10])

    class Report(gokart.TaskOnKart):
        def requires(self):
            return {"features": [Features(source=Load()), Features(source=Load(x=2))], "load": Load()}
        def run(self):
            self.dump(1)

    report = Report()
    out = {"before": gokart.make_tree_info(report), "before_details": gokart.make_tree_info(report, details=True)}
    gokart.build(report)
    table = make_task_info_as_table(report)
    out["after"] = gokart.make_tree_info(report)
    out["after_plain"] = gokart.make_tree_info(report, abbr=False)
    out["ignored"] = gokart.make_tree_info(report, ignore_task_names=["Features"])
    out["columns"] = list(table.columns)
    out["rows"] = [[r["name"], r["unique_id"], r["params"], r["is_complete"], repr(r["requires"]), r["output_paths"]]
                   for r in table.to_dict("records")]
    print(json.dumps(out))
    """
)


def _side(impl: str, directory: Path) -> dict[str, Any]:
    directory.mkdir()
    (directory / "pipeline.py").write_text(_SIDE_BY_SIDE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
    done = fork_server.run(["pipeline.py", impl], directory, env, 120, GOKART if impl == "gokart" else KART)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_text_and_table_as_gokart(tmp_path: Path) -> None:
    ours, theirs = _side("kart", tmp_path / "kart"), _side("gokart", tmp_path / "gokart")
    assert ours == theirs
    assert "└─- ..." in ours["after"] and "(COMPLETE) Report[" in ours["after"]
