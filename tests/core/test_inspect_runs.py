"""kart_core.inspect.runs: the runs table read back from real run logs, locally and on S3."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import luigi
import pandas as pd
import pytest

import kart_core as gokart
from kart_core.inspect import runs
from kart_core.inspect.cmdline import set_workspace
from kart_core.inspect.runs import format_size, format_table, run_rows
from kart_core.workspace import MANIFEST, log_task_path, parse_log_name


class RnLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)
    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        self.dump(list(range(self.n)))


class RnBoth(gokart.TaskOnKart[Any]):
    n = luigi.IntParameter(default=3)
    fail = luigi.BoolParameter(default=False)

    def requires(self) -> RnLoad:
        return RnLoad(n=self.n, workspace_directory=self.workspace_directory)

    def output(self) -> dict[str, Any]:
        return {"csv": self.make_target("both/table.csv"), "txt": self.make_target("both/note.txt")}

    def run(self) -> None:
        if self.fail:
            raise RuntimeError("failing on purpose")
        self.dump(pd.DataFrame({"x": self.load()}), "csv")
        self.dump(["done"], "txt")


def test_runs_table_has_one_row_per_run_with_sizes_and_times(workspace: str) -> None:
    gokart.build(RnBoth(n=4, workspace_directory=workspace), reset_register=False)
    gokart.build(RnLoad(n=5, tag="b", workspace_directory=workspace), reset_register=False)
    table = runs(workspace)
    assert list(table.columns) == [
        "class",
        "unique_id",
        "params",
        "raw_params",
        "processing_time",
        "finished_at",
        "output_size",
        "status",
        "outputs",
    ]
    assert sorted(table["class"]) == ["RnBoth", "RnLoad", "RnLoad"]
    both = table[table["class"] == "RnBoth"].iloc[0]
    task = RnBoth(n=4, workspace_directory=workspace)
    assert both["unique_id"] == task.make_unique_id()
    assert both["params"] == both["raw_params"] == {"n": "4", "fail": "False"}
    paths = [t.path() for t in task.output().values()]
    assert sorted(both["outputs"]) == sorted(paths)
    assert both["output_size"] == sum(os.path.getsize(p) for p in paths)
    assert both["status"] == "complete" and both["processing_time"] > 0
    assert isinstance(both["finished_at"], pd.Timestamp)
    assert table["finished_at"].is_monotonic_increasing


def test_runs_filters_by_class_and_parameter(workspace: str) -> None:
    for n, label in [(1, "a"), (2, "a"), (2, "b")]:
        gokart.build(RnLoad(n=n, tag=label, workspace_directory=workspace), reset_register=False)
    assert len(runs(workspace, task_class="RnLoad")) == 3
    assert len(runs(workspace, task_class=f"{__name__}.RnLoad", params={"n": 2})) == 2
    only = runs(workspace, params={"n": 2, "tag": "b"})
    assert list(only["unique_id"]) == [RnLoad(n=2, tag="b", workspace_directory=workspace).make_unique_id()]
    assert runs(workspace, task_class="Nope").empty


def test_runs_expand_params_adds_one_column_per_parameter(workspace: str) -> None:
    gokart.build(RnLoad(n=7, tag="z", workspace_directory=workspace), reset_register=False)
    table = runs(workspace, expand_params=True)
    assert table.loc[0, "param.n"] == "7" and table.loc[0, "param.tag"] == "z"


def test_status_shows_deleted_outputs_and_failed_runs(workspace: str) -> None:
    gokart.build(RnLoad(n=1, workspace_directory=workspace), reset_register=False)
    os.remove(RnLoad(n=1, workspace_directory=workspace).output().path())
    with pytest.raises(gokart.GokartBuildError):
        gokart.build(RnBoth(n=2, fail=True, workspace_directory=workspace), reset_register=False)
    table = runs(workspace).set_index("unique_id")
    assert table.loc[RnLoad(n=1, workspace_directory=workspace).make_unique_id(), "status"] == "outputs missing"
    failed = table.loc[RnBoth(n=2, fail=True, workspace_directory=workspace).make_unique_id()]
    assert failed["status"] == "unfinished" and pd.isna(failed["finished_at"]) and pd.isna(failed["output_size"])


def test_runs_finds_outputs_recorded_relative_to_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default workspace "./resources/" is recorded relative to the builder's directory.
    gokart.build(RnLoad(n=3), reset_register=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    table = runs(str(tmp_path / "resources"))
    assert table.loc[0, "outputs"][0].startswith("./resources/")
    assert table.loc[0, "status"] == "complete" and table.loc[0, "output_size"] > 0


def test_runs_defaults_to_the_configured_workspace(tmp_path: Path) -> None:
    gokart.build(RnLoad(n=2, workspace_directory=str(tmp_path / "configured")), reset_register=False)
    assert runs().empty  # ./resources/ is empty
    set_workspace(str(tmp_path / "configured"))
    assert len(runs()) == 1


def test_runs_on_s3(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    gokart.build(RnBoth(n=3, workspace_directory=workspace), reset_register=False)
    table = runs(workspace)
    assert sorted(table["class"]) == ["RnBoth", "RnLoad"]
    assert (table["status"] == "complete").all() and (table["output_size"] > 0).all()
    assert all(path.startswith(f"s3://{s3_bucket}/") for paths in table["outputs"] for path in paths)


def test_helpers() -> None:
    assert parse_log_name("My_Task_" + "a" * 32 + ".pkl") == ("My_Task", "a" * 32)
    assert parse_log_name("notes.txt") is None
    assert [format_size(v) for v in (None, 512, 1536, 5 * 1024**2)] == ["-", "512 B", "1.5 KB", "5.0 MB"]
    assert format_table(pd.DataFrame()) == "No runs found."


# --- damage: a present output whose size is not its integrity record's --------------------------


def _truncate(path: str, size: int = 3) -> None:
    with open(path, "r+b") as file:
        file.truncate(size)


def test_a_truncated_output_is_a_damaged_output_not_complete(workspace: str) -> None:
    both = RnBoth(n=3, workspace_directory=workspace)
    gokart.build(both, reset_register=False)
    _truncate(both.output()["csv"].path())
    table = runs(workspace).set_index("class")
    assert table.loc["RnBoth", "status"] == "damaged output"
    assert table.loc["RnBoth", "output_size"] == 3 + os.path.getsize(both.output()["txt"].path())
    assert table.loc["RnLoad", "status"] == "complete"
    os.remove(both.output()["csv"].path())  # gone is not damaged
    assert runs(workspace).set_index("class").loc["RnBoth", "status"] == "outputs missing"


def test_a_run_whose_manifest_cannot_be_read_is_a_damaged_output(workspace: str) -> None:
    both = RnBoth(n=3, workspace_directory=workspace)
    gokart.build(both, reset_register=False)
    manifest = both.output()["csv"].record.manifest
    with open(manifest, "wb") as file:
        file.write(b"\x00not json")
    table = runs(workspace).set_index("class")
    assert table.loc["RnBoth", "status"] == "damaged output"
    assert table.loc["RnLoad", "status"] == "complete"


def test_a_damaged_output_on_s3(s3_bucket: str) -> None:
    import fsspec

    from kart_core.storage.remote import s3_options

    workspace = f"s3://{s3_bucket}/resources"
    load = RnLoad(n=5, workspace_directory=workspace)
    gokart.build(load, reset_register=False)
    fs = fsspec.filesystem("s3", **s3_options())
    fs.pipe(load.output().path(), b"short")
    assert list(runs(workspace)["status"]) == ["damaged output"]


class RnRecorded(gokart.TaskOnKart[list]):
    """Keeps its run record in its manifest, as a Kedro node run does."""

    n = luigi.IntParameter()
    kart_run_record_in_manifest = True

    def run(self) -> None:
        self.dump([self.n])


def test_a_run_record_in_a_manifest_finishes_when_it_says_not_when_the_manifest_was_written(workspace: str) -> None:
    # The manifest is written again after the run (a load recording a new version of an output): its file time
    # is not the run's. A record without the time (written before kart recorded it) has no known finish time.
    started = datetime.now()
    gokart.build(RnRecorded(n=1, workspace_directory=workspace), reset_register=False)
    gokart.build(RnRecorded(n=2, workspace_directory=workspace), reset_register=False)
    first, second = (log_task_path(RnRecorded(n=n, workspace_directory=workspace), MANIFEST) for n in (1, 2))
    built = json.loads(Path(first).read_text())["run"]["task_log"]["kart_built_at"]
    later = time.time() + 3600
    os.utime(first, (later, later))
    rows = run_rows(workspace)
    assert [row["params"]["n"] for row in rows] == ["1", "2"]
    assert (
        rows[0]["finished_at"] == datetime.fromtimestamp(built) and started <= rows[0]["finished_at"] <= datetime.now()
    )
    document = json.loads(Path(second).read_text())
    del document["run"]["task_log"]["kart_built_at"]
    Path(second).write_text(json.dumps(document))
    rows = run_rows(workspace)
    assert [(row["params"]["n"], row["finished_at"]) for row in rows] == [
        ("1", datetime.fromtimestamp(built)),
        ("2", None),
    ]
    assert format_table(rows).splitlines()[2].split()[4:7] == ["-", str(rows[1]["output_size"]), "B"]
