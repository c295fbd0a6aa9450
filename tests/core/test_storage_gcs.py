"""gs:// workspaces against a real GCS emulator (gcp-storage-emulator on 127.0.0.1) through gcsfs.

A pipeline builds on ``gs://bucket/ws`` with gokart's run logs, a second build is all cached,
``kart runs`` lists the runs, and a damaged or staged (never committed) object is not taken
as a complete output.
"""

from __future__ import annotations

import json
import re
from typing import Any

import luigi
import pandas as pd
import pytest
from click.testing import CliRunner

import kart_core
from kart_core.cli import cli
from kart_core.errors import DamagedOutputError
from kart_core.storage import storage_for
from kart_core.storage.remote import FIRST_READ_BYTES

pytestmark = pytest.mark.slow  # each test starts (once per session) and talks to the emulator process


class GcsLoad(kart_core.TaskOnKart[pd.DataFrame]):
    n = luigi.IntParameter(default=50)

    def run(self) -> None:
        self.dump(pd.DataFrame({"x": range(self.n), "y": [i * i for i in range(self.n)]}))


class GcsSum(kart_core.TaskOnKart[dict]):
    n = luigi.IntParameter(default=50)

    def requires(self) -> GcsLoad:
        return GcsLoad(n=self.n, workspace_directory=self.workspace_directory)

    def output(self) -> Any:
        return self.make_target("sums/total.pkl")

    def run(self) -> None:
        frame = self.load_data_frame(required_columns={"x", "y"})
        self.dump({"rows": len(frame), "y": int(frame.y.sum())})


def _built_and_cached(workspace: str) -> dict[str, Any]:
    return dict(kart_core.build(GcsSum(workspace_directory=workspace), reset_register=False))


def test_a_pipeline_builds_on_gcs_and_the_second_build_is_cached(
    gcs_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    assert _built_and_cached(workspace) == {"rows": 50, "y": sum(i * i for i in range(50))}
    storage = storage_for(workspace)
    expected = sorted(f"{task}_{task_id(workspace, task)}" for task in ("GcsLoad", "GcsSum"))
    for kind in ("task_params", "random_seed", "processing_time", "task_log", "module_versions", "manifest"):
        names = sorted(name.rpartition(".")[0] for name in storage.list_dir(f"{workspace}/log/{kind}"))
        assert names == expected, kind
    top = GcsSum(workspace_directory=workspace)
    stamps = [t.last_modification_time() for t in (top.output(), top.requires().output())]
    capsys.readouterr()
    assert _built_and_cached(workspace)["rows"] == 50
    assert "kart build: 0 ran, 1 cached, 0 failed, 0 not run" in capsys.readouterr().err
    assert kart_core.run_one(GcsSum(workspace_directory=workspace)) == kart_core.RunStatus.CACHED
    assert [t.last_modification_time() for t in (top.output(), top.requires().output())] == stamps


def task_id(workspace: str, name: str) -> str:
    task = GcsSum(workspace_directory=workspace)
    return task.make_unique_id() if name == "GcsSum" else task.requires().make_unique_id()


def test_kart_runs_lists_the_runs_of_a_gcs_workspace(gcs_bucket: str) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    _built_and_cached(workspace)
    kart_core.build(GcsLoad(n=7, workspace_directory=workspace), reset_register=False)
    result = CliRunner().invoke(cli, ["runs", "-w", workspace, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted((row["class"], row["status"]) for row in rows) == [
        ("GcsLoad", "complete"),
        ("GcsLoad", "complete"),
        ("GcsSum", "complete"),
    ]
    assert sorted(row["params"]["n"] for row in rows if row["class"] == "GcsLoad") == ["50", "7"]
    assert all(row["output_size"] > 0 for row in rows)
    table = CliRunner().invoke(cli, ["runs", "-w", workspace, "--class", "GcsSum"])
    assert table.exit_code == 0 and GcsSum(workspace_directory=workspace).make_unique_id() in table.stdout


def test_a_truncated_object_is_not_taken_as_the_output(
    gcs_bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    _built_and_cached(workspace)
    load = GcsLoad(workspace_directory=workspace)
    path = load.output().path()
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    with storage.atomic_write(path) as file:  # another writer leaves two thirds of the object
        file.write(data[: len(data) * 2 // 3])
    with pytest.raises(DamagedOutputError, match=rf"{re.escape(load.kart_label())}.*{len(data)} bytes were committed"):
        load.output().load()
    downstream = GcsSum(n=50, rerun=True, workspace_directory=workspace)
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(
        kart_core.GokartBuildError, match=rf"DamagedOutputError: The output of {re.escape(load.kart_label())}"
    ):
        kart_core.build(downstream, reset_register=False)  # repairs off: GcsSum refuses its damaged input
    monkeypatch.delenv("KART_REPAIR_DAMAGED")
    with caplog.at_level("WARNING", logger="kart_core.runner"):
        value = kart_core.build(downstream, reset_register=False)  # repairs on: GcsLoad is rebuilt first
    assert value == {"rows": 50, "y": sum(i * i for i in range(50))}
    assert any(f"{len(data)} bytes were committed" in record.getMessage() for record in caplog.records)
    assert load.output().load().shape == (50, 2)  # whole again, and its record agrees


def test_a_staged_object_is_not_a_complete_output(gcs_bucket: str) -> None:
    """A run killed between staging its output and committing it leaves only the staged object."""
    workspace = f"gs://{gcs_bucket}/ws"
    load = GcsLoad(n=3, workspace_directory=workspace)
    spool = storage_for(workspace).spool(load.output().path())
    spool.file.write(b"half of a pickle")
    staged = spool.stage()
    assert storage_for(staged).exists(staged) and staged != load.output().path()
    assert not load.complete()
    result = CliRunner().invoke(cli, ["runs", "-w", workspace, "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert kart_core.run_one(load) == kart_core.RunStatus.RAN and len(load.output().load()) == 3


def test_an_emulator_gets_the_json_api_file_system_and_no_bucket_layout_warnings(
    gcs_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """gcsfs's default class asks a gRPC API no emulator serves before each operation, and warns each time."""
    from gcsfs.core import GCSFileSystem

    workspace = f"gs://{gcs_bucket}/ws"
    assert type(storage_for(workspace).file_system) is GCSFileSystem
    with caplog.at_level("WARNING"):
        assert _built_and_cached(workspace)["rows"] == 50
    assert not [record.getMessage() for record in caplog.records if record.name.startswith("gcsfs")]


def test_existence_is_asked_of_the_store_not_of_a_listing_made_before(gcs_bucket: str) -> None:
    """Another process's delete or write after a listing is seen: gcsfs's listing cache is not consulted."""
    from gcsfs.core import GCSFileSystem

    workspace = f"gs://{gcs_bucket}/fresh"
    storage = storage_for(workspace)
    kept, added = f"{workspace}/a/kept.bin", f"{workspace}/a/added.bin"
    with storage.atomic_write(kept) as file:
        file.write(b"x")
    assert list(storage.list_dir(f"{workspace}/a")) == ["kept.bin"]  # fills gcsfs's listing cache
    other = GCSFileSystem(skip_instance_cache=True, token="anon")  # another process's client
    other.rm_file(kept.removeprefix("gs://"))
    other.pipe_file(added.removeprefix("gs://"), b"y")
    assert not storage.exists(kept)
    assert storage.exists(added)
    grown = f"{workspace}/a/grown.bin"
    with storage.atomic_write(grown) as file:
        file.write(b"short")
    assert "grown.bin" in set(storage.list_dir(f"{workspace}/a"))
    other.pipe_file(grown.removeprefix("gs://"), b"a longer version")  # replaced after the listing
    assert storage.read_bytes(grown) == b"a longer version"
    large = f"{workspace}/a/large.bin"  # beyond the first ranged read (FIRST_READ_BYTES): read on in ranges
    with storage.atomic_write(large) as file:
        file.write(b"a" * (FIRST_READ_BYTES + 10))
    assert "large.bin" in set(storage.list_dir(f"{workspace}/a"))
    other.pipe_file(large.removeprefix("gs://"), b"b" * (FIRST_READ_BYTES + 1000))
    assert storage.read_bytes(large) == b"b" * (FIRST_READ_BYTES + 1000)
