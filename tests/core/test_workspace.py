"""kart_core.workspace: the layout (paths, log kinds, names), the default workspace, and listing via Storage.walk."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import luigi
import luigi.configuration
import pytest

import kart_core as gokart
from kart_core import workspace as ws
from kart_core.errors import WorkspacePathError
from kart_core.storage import storage_for

UID = "0123456789abcdef0123456789abcdef"


class WsTask(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(self.n)


# --- layout --------------------------------------------------------------------------------


def test_log_kinds_are_gokarts_five_with_their_extensions() -> None:
    assert [(k.name, k.extension) for k in ws.LOG_KINDS] == [
        ("task_params", ".pkl"),
        ("random_seed", ".pkl"),
        ("module_versions", ".txt"),
        ("processing_time", ".pkl"),
        ("task_log", ".pkl"),
    ]
    assert ws.LOG_DIRECTORY == "log" and ws.TEMPORARY_SUFFIX == ".kart-tmp"


def test_default_output_path_is_module_path_and_class() -> None:
    assert ws.default_output_path(WsTask, ".pkl") == f"{__name__.replace('.', '/')}/WsTask.pkl"


def test_workspace_path_joins_like_os_path_join_and_refuses_escapes() -> None:
    assert ws.workspace_path("./resources/", "a/b.csv") == "./resources/a/b.csv"
    assert ws.workspace_path("s3://bucket/ws", "a/b.csv") == "s3://bucket/ws/a/b.csv"
    with pytest.raises(WorkspacePathError, match=r"WsTask: output path '../x.pkl' leaves the workspace './r/'"):
        ws.workspace_path("./r/", "../x.pkl", owner="WsTask")
    for bad in ("/etc/passwd", "..", "a/../../b.pkl"):
        with pytest.raises(WorkspacePathError, match="without '..'"):
            ws.workspace_path("./r/", bad)


def test_with_unique_id_goes_before_the_extension() -> None:
    assert ws.with_unique_id("a/b/Model.pkl", UID) == f"a/b/Model_{UID}.pkl"
    assert ws.with_unique_id("a/table.csv.gz", UID) == f"a/table.csv_{UID}.gz"  # gokart: splitext, last suffix
    assert ws.with_unique_id("a/noext", UID) == f"a/noext_{UID}"
    assert ws.with_unique_id("a/b.pkl", None) == "a/b.pkl"


def test_log_paths() -> None:
    assert ws.log_relative_path(ws.MODULE_VERSIONS, "Load") == "log/module_versions/Load.txt"
    assert ws.log_path("./resources/", ws.TASK_LOG, "Load", UID) == f"./resources/log/task_log/Load_{UID}.pkl"
    task = WsTask(workspace_directory="s3://b/ws")
    assert ws.log_task_path(task, ws.TASK_PARAMS) == f"s3://b/ws/log/task_params/WsTask_{task.make_unique_id()}.pkl"


def test_log_task_path_is_where_the_task_writes_its_logs(workspace: str) -> None:
    task = WsTask(n=7, workspace_directory=workspace)
    gokart.build(task)
    for kind in ws.LOG_KINDS:
        assert os.path.isfile(ws.log_task_path(task, kind)), kind
        assert ws.log_task_path(task, kind) == task.kart_log_target(kind.name, kind.extension).path()


def test_parse_log_names() -> None:
    assert ws.parse_log_name(f"My_Task_{UID}.pkl") == ("My_Task", UID)
    assert ws.parse_log_name(f"Load_{UID}.txt") == ("Load", UID)
    for other in ("notes.txt", f"Load_{UID}", f"Load_{UID.upper()}.pkl", f".Load_{UID}.pkl.x1.kart-tmp"):
        assert ws.parse_log_name(other) is None, other
    assert ws.parse_log_relative(f"log/module_versions/A_{UID}.txt") == (ws.MODULE_VERSIONS, "A", UID)
    assert ws.parse_log_relative(f"log/task_params/A_{UID}.txt") is None  # wrong extension for the kind
    assert ws.parse_log_relative(f"log/other/A_{UID}.pkl") is None
    assert ws.parse_log_relative(f"pkg/A_{UID}.pkl") is None
    assert ws.is_kart_named(f"pkg/A_{UID}.pkl") and ws.is_kart_named(f"pkg/A_{UID}")
    assert not ws.is_kart_named("pkg/notes.txt")


# --- default workspace -----------------------------------------------------------------------


def _set_config(value: str) -> None:
    config = luigi.configuration.get_config()
    if not config.has_section("TaskOnKart"):
        config.add_section("TaskOnKart")
    config.set("TaskOnKart", "workspace_directory", value)


def test_default_workspace_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_WORKSPACE", raising=False)
    assert ws.default_workspace() == "./resources/"
    monkeypatch.setenv("KART_WORKSPACE", "/from/env")
    assert ws.default_workspace() == "/from/env"
    _set_config("/from/config")
    assert ws.default_workspace() == "/from/config"
    assert ws.default_workspace("/explicit") == "/explicit"


def test_kart_workspace_expands_a_leading_tilde_and_refuses_blank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # attacker at3 A9: `~/kx` from a systemd/Docker env list made a folder named "~" in the working directory
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KART_WORKSPACE", "~/kx")
    assert ws.default_workspace() == str(tmp_path / "home" / "kx")
    assert WsTask().workspace_directory == str(tmp_path / "home" / "kx")
    assert gokart.build(WsTask(), reset_register=False) is not None
    assert (tmp_path / "home" / "kx").is_dir() and not (tmp_path / "~").exists()
    monkeypatch.setenv("KART_WORKSPACE", " \t")
    with pytest.raises(gokart.errors.SettingValueError, match=r"^KART_WORKSPACE=.* is only whitespace"):
        ws.default_workspace()
    # attacker at4 B2: spaces around a path and ~ of no user were still folders named so
    for value in ("./ws ", " ./ws"):
        monkeypatch.setenv("KART_WORKSPACE", value)
        with pytest.raises(gokart.errors.SettingValueError, match=r"starts or ends with whitespace"):
            ws.default_workspace()
    monkeypatch.setenv("KART_WORKSPACE", "~nosuchuser-kart/ws")
    with pytest.raises(gokart.errors.SettingValueError, match=r"names a home folder of no user"):
        ws.default_workspace()


def test_task_default_follows_the_same_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KART_WORKSPACE", "/from/env")
    assert WsTask().workspace_directory == ws.default_workspace() == "/from/env"
    _set_config("/from/config")
    assert WsTask().workspace_directory == ws.default_workspace() == "/from/config"
    assert WsTask(workspace_directory="/explicit").workspace_directory == "/explicit"


# --- listing through Storage.walk --------------------------------------------------------------


def _fill(root: str) -> None:
    storage = storage_for(root)
    for relative, data in {"a.pkl": b"1", "sub/b.csv": b"22", "sub/deep/c.txt": b"333"}.items():
        with storage.atomic_write(ws.join_url(root, relative)) as file:
            file.write(data)
    # A temporary file, as a killed writer leaves it.
    with storage.atomic_write(ws.join_url(root, f"sub/.b.csv.x{ws.TEMPORARY_SUFFIX}")) as file:
        file.write(b"partial")


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return f"s3://{request.getfixturevalue('s3_bucket')}/store"


def test_list_files_walks_recursively_with_sizes_and_skips_temporaries(root: str) -> None:
    before = datetime.now() - timedelta(minutes=5)
    _fill(root)
    files = ws.list_files(root)
    assert [(f.relative, f.size) for f in files] == [("a.pkl", 1), ("sub/b.csv", 2), ("sub/deep/c.txt", 3)]
    assert [f.path for f in files] == [ws.join_url(root, f.relative) for f in files]
    assert all(f.mtime is not None and f.mtime > before for f in files)
    with_temporaries = ws.list_files(root, include_temporary=True)
    assert [f.relative for f in with_temporaries if ws.is_temporary(f.relative)] == [
        f"sub/.b.csv.x{ws.TEMPORARY_SUFFIX}"
    ]


def test_list_files_of_a_missing_root_is_empty(root: str) -> None:
    assert ws.list_files(ws.join_url(root, "missing")) == []


def test_local_walk_skips_what_it_cannot_examine(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "d").mkdir(parents=True)
    (root / "d" / "ok.pkl").write_bytes(b"x")
    os.symlink(tmp_path / "nowhere", root / "d" / "dangling.pkl")
    assert [f.relative for f in ws.list_files(str(root))] == ["d/ok.pkl"]


def test_run_logs_group_a_workspace_by_run(workspace: str) -> None:
    task = WsTask(n=2, workspace_directory=workspace)
    gokart.build(task)
    runs = ws.run_logs(ws.list_files(workspace))
    assert list(runs) == [("WsTask", task.make_unique_id())]
    assert set(runs["WsTask", task.make_unique_id()]) == set(ws.KART_LOG_KINDS)
    assert ws.logged_unique_ids(workspace, "WsTask") == [task.make_unique_id()]
    assert ws.logged_unique_ids(workspace, "Other") == []


# --- KART_WORKSPACE is honoured everywhere -----------------------------------------------------


def test_kart_workspace_is_honoured_by_build_runs_gc_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from kart_core.cli import cli

    env_workspace = str(tmp_path / "env-ws")
    monkeypatch.setenv("KART_WORKSPACE", env_workspace)
    kept, stale = WsTask(n=2), WsTask(n=3)
    assert gokart.build(kept) == 2 and gokart.build(stale) == 3
    assert os.path.isfile(kept.output().path()) and kept.output().path().startswith(env_workspace)
    assert not os.path.exists("resources")

    def kart(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    table = kart("runs")
    assert kept.make_unique_id() in table and stale.make_unique_id() in table and "complete" in table
    plan = kart("gc", "--keep", f"{__name__}.WsTask", "--n", "2")
    assert f"from {env_workspace}" in plan
    assert os.path.join(env_workspace, ws.log_relative_path(ws.TASK_LOG, "WsTask", stale.make_unique_id())) in plan
    assert kept.make_unique_id() not in plan
    page = tmp_path / "report.html"
    kart("report", f"{__name__}.WsTask", "--n", "2", "-o", str(page))
    html = page.read_text(encoding="utf-8")
    assert f"WsTask[{kept.make_unique_id()[:8]}]" in html and '"status": "complete"' in html


def test_the_workspace_of_a_run_log_path_local_or_url() -> None:
    assert ws.log_workspace("s3://bucket/ws/log/manifest/Load_1.json", ws.MANIFEST) == "s3://bucket/ws"
    assert ws.log_workspace("/data/ws/log/manifest/Load_1.json", ws.MANIFEST) == "/data/ws"
    assert ws.log_workspace("/data/ws/log/task_log/Load_1.pkl", ws.MANIFEST) is None  # another kind
    assert ws.log_workspace("/data/ws/Load_1.json", ws.MANIFEST) is None
