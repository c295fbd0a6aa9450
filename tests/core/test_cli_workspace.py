"""A workspace the command cannot use: one line naming it and the fix, exit 1, never kart's traceback."""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import cli
from kart_core.errors import DumpError
from kart_core.target import make_target

M = __name__


class WsUp(gokart.TaskOnKart[int]):
    i = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(self.i)


class WsDown(gokart.TaskOnKart[int]):
    def requires(self) -> WsUp:
        return WsUp()

    def run(self) -> None:
        self.dump(self.load() + 1)


def one_line_error(args: list[str], code: int, *fragments: str) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _unusable(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Workspaces no task can write into, each with what the error line must say."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return {
        "under a missing root": ("/proc/nonexistent-kart/x", "No such file or directory"),
        "a file": (str(a_file), "File exists"),
        "under a file": (str(a_file / "ws"), "Not a directory"),
        "unknown scheme": ("nosuchscheme://bucket/x", "the scheme 'nosuchscheme://' is unknown"),
    }


@pytest.mark.parametrize("case", ["under a missing root", "a file", "under a file", "unknown scheme"])
@pytest.mark.parametrize("task", ["WsUp", "WsDown"])
def test_run_with_an_unusable_workspace_exits_1_with_one_line(tmp_path: Path, case: str, task: str) -> None:
    workspace, reason = _unusable(tmp_path)[case]
    line = one_line_error(["run", f"{M}.{task}", "-w", workspace], 1, "kart run:", workspace.split("://")[0], reason)
    assert "a task failed" not in line and "format" not in line


def test_run_with_a_read_only_workspace_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ro"
    workspace.mkdir()
    monkeypatch.setattr("os.access", lambda *_args, **_kw: False)  # as a non-root user sees a 0o555 folder
    one_line_error(["run", f"{M}.WsUp", "-w", str(workspace)], 1, "kart run:", "Cannot write into", str(workspace))


def test_run_creates_a_missing_local_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "new" / "ws"
    assert CliRunner().invoke(cli, ["run", f"{M}.WsDown", "-w", str(workspace)]).exit_code == 0
    assert WsDown(workspace_directory=str(workspace)).output().load() == 2


@pytest.mark.parametrize("command", [["tree", f"{M}.WsDown"], ["why", f"{M}.WsDown"], ["runs"], ["verify"]])
def test_other_commands_with_an_unknown_scheme_exit_1_with_one_line(command: list[str]) -> None:
    one_line_error([*command, "-w", "nosuchscheme://bucket/x"], 1, "nosuchscheme://")


def test_a_dump_into_a_missing_folder_names_the_folder_not_the_format(tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "a-file" / "out.pkl"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DumpError, match="workspace folder exists or can be created") as raised:
        target.dump([1])
    assert "format of the extension" not in str(raised.value)


class NoCredentialsError(Exception):
    """Stands for botocore's: a storage library's error that is no OSError."""


NoCredentialsError.__module__ = "botocore.exceptions"


class WsNoCredentials(gokart.TaskOnKart[int]):
    def complete(self) -> bool:
        raise NoCredentialsError("Unable to locate credentials")


def test_a_storage_library_error_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fragments = ("the workspace's storage failed: NoCredentialsError: Unable to locate credentials", "credentials")
    # in the graph walk: the workspace's, not the task's code (exit 50 with a traceback before)
    one_line_error(["tree", f"{M}.WsNoCredentials", "-w", str(tmp_path)], 1, "kart tree:", *fragments)

    def no_credentials(*_args: object, **_kwargs: object) -> None:
        raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr("kart_core.cli.run_rows", no_credentials)  # a traceback and exit 1 before
    one_line_error(["runs", "-w", "s3://bucket/x"], 1, "kart runs:", *fragments)

    class Unreachable:
        def exists(self, path: str) -> bool:
            raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr("kart_core.inspect.cmdline.storage_for", lambda _path: Unreachable())
    one_line_error(["run", f"{M}.WsUp", "-w", "s3://bucket/x"], 1, "kart run:", *fragments)  # 50 or 40 before


# --- a missing workspace: inspecting commands say so, they do not show it as empty ------------------

_INSPECTING = {
    "tree": ["tree", f"{M}.WsDown"],
    "why": ["why", f"{M}.WsDown"],
    "report": ["report", f"{M}.WsDown"],
    "runs": ["runs"],
    "gc": ["gc", "--keep", f"{M}.WsDown"],
    "verify": ["verify"],
}


def _inspecting(command: str, tmp_path: Path) -> list[str]:
    args = _INSPECTING[command]
    return [*args, "-o", str(tmp_path / "report.html")] if command == "report" else args


@pytest.mark.parametrize("command", list(_INSPECTING))
@pytest.mark.parametrize("case", ["typo", "under a missing root", "under a file"])
def test_inspecting_a_missing_workspace_exits_1_naming_it(tmp_path: Path, command: str, case: str) -> None:
    (tmp_path / "resources").mkdir()  # the real one; the commands are given a mistyped path
    (tmp_path / "a-file").write_text("x")
    workspace = {
        "typo": tmp_path / "resorces",
        "under a missing root": tmp_path / "unmounted" / "resources",
        "under a file": tmp_path / "a-file" / "resources",
    }[case]
    one_line_error([*_inspecting(command, tmp_path), "-w", str(workspace)], 1, f"kart {command}:", str(workspace))
    assert not workspace.exists() and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("command", list(_INSPECTING))
def test_inspecting_an_existing_empty_workspace_is_fine(tmp_path: Path, command: str) -> None:
    workspace = tmp_path / "empty"
    workspace.mkdir()
    result = CliRunner().invoke(cli, [*_inspecting(command, tmp_path), "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "No workspace" not in result.output


@pytest.mark.parametrize("command", ["tree", "why", "report"])
def test_a_graph_names_the_task_whose_own_workspace_is_missing(tmp_path: Path, command: str) -> None:
    (tmp_path / "ws").mkdir()
    missing = tmp_path / "upstream-ws"
    args = [*_inspecting(command, tmp_path), "-w", str(tmp_path / "ws"), "--up-workspace", str(missing)]
    args = [arg.replace("WsDown", "WsDownOwn") for arg in args]
    one_line_error(args, 1, f"kart {command}:", str(missing), "the workspace of WsUp[")


class WsDownOwn(gokart.TaskOnKart[int]):
    """WsDown whose upstream may live in its own workspace (``--up-workspace``)."""

    up_workspace = luigi.Parameter(default="", significant=False)

    def requires(self) -> WsUp:
        return WsUp(workspace_directory=self.up_workspace) if self.up_workspace else WsUp()

    def run(self) -> None:
        self.dump(self.load() + 1)


@pytest.mark.parametrize("command", list(_INSPECTING))
def test_inspecting_an_s3_workspace_in_a_missing_bucket_exits_1(tmp_path: Path, command: str, s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}-nosuch/resources"
    fragments = (f"kart {command}:", workspace, f"the bucket '{s3_bucket}-nosuch' does not exist")
    one_line_error([*_inspecting(command, tmp_path), "-w", workspace], 1, *fragments)


# What each inspecting command says about a workspace nothing was built in (an empty local folder too).
_EMPTY = {
    "tree": "(PENDING) WsDown[",
    "why": "WsDown[",
    "report": "Wrote ",
    "runs": "No runs found.",
    "gc": "Would delete 0 file(s)",
    "verify": "Checked 0 output(s) of 0 task(s)",
}


@pytest.mark.parametrize("command", list(_INSPECTING))
def test_a_prefix_nothing_was_written_under_is_an_empty_workspace(tmp_path: Path, command: str, s3_bucket: str) -> None:
    """As an empty local folder (the same output there): exit 0 and the command's "nothing here" output
    (exit 1 "No workspace" before)."""
    workspace = f"s3://{s3_bucket}/never-written"
    result = CliRunner().invoke(cli, [*_inspecting(command, tmp_path), "-w", workspace])
    assert result.exit_code == 0, result.output
    assert _EMPTY[command] in result.output, result.output
    assert "No workspace" not in result.output and "Traceback" not in result.output


def test_inspecting_a_built_s3_workspace_is_fine(s3_bucket: str, tmp_path: Path) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    assert CliRunner().invoke(cli, ["run", f"{M}.WsDown", "-w", workspace]).exit_code == 0
    for command in _INSPECTING:
        result = CliRunner().invoke(cli, [*_inspecting(command, tmp_path), "-w", workspace])
        assert result.exit_code == 0, (command, result.output)


# --- kart run checks the workspace of every task it will run -------------------------------------------


def test_run_checks_an_upstream_s_own_workspace_first(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    upstream = tmp_path / "a-file" / "ws"
    args = ["run", f"{M}.WsDownOwn", "-w", str(tmp_path / "ws"), "--up-workspace", str(upstream)]
    one_line_error(args, 1, "kart run:", str(upstream), "the workspace of WsUp[", "Not a directory")
    assert not list((tmp_path / "ws").rglob("*.pkl"))  # nothing ran


def test_run_checks_a_workspace_set_in_the_config_for_one_class(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    upstream = tmp_path / "a-file" / "ws"
    config = tmp_path / "luigi.cfg"
    config.write_text(f"[WsUp]\nworkspace_directory={upstream}\n")
    # -w would set [TaskOnKart], which outranks [WsUp]: the root's workspace comes from KART_WORKSPACE.
    args = ["--config", str(config), "run", f"{M}.WsDownOwn"]
    result = CliRunner(env={"KART_WORKSPACE": str(tmp_path / "ws")}).invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert str(upstream) in result.stderr and "the workspace of WsUp[" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_does_not_ask_a_complete_upstream_s_workspace_to_be_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    WsUp(workspace_directory=str(shared)).output().dump(1)  # built by someone else, only read here
    real_access = os.access
    monkeypatch.setattr(
        "os.access", lambda path, mode, **options: str(path) != str(shared) and real_access(path, mode, **options)
    )
    args = ["run", f"{M}.WsDownOwn", "-w", str(tmp_path / "ws"), "--up-workspace", str(shared)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_run_into_a_missing_bucket_exits_1_before_anything_runs(s3_bucket: str, tmp_path: Path) -> None:
    missing = f"s3://{s3_bucket}-nosuch/ws"
    one_line_error(["run", f"{M}.WsDown", "-w", missing], 1, "kart run:", f"The bucket '{s3_bucket}-nosuch'", missing)
    args = ["run", f"{M}.WsDownOwn", "-w", str(tmp_path / "ws"), "--up-workspace", missing]
    one_line_error(args, 1, "kart run:", f"'{s3_bucket}-nosuch'", "the workspace of WsUp[")
    assert not list((tmp_path / "ws").rglob("*.pkl"))
    assert CliRunner().invoke(cli, ["run", f"{M}.WsUp", "-w", f"s3://{s3_bucket}/fresh"]).exit_code == 0


# --- a workspace URL whose scheme no storage serves -------------------------------------------------------

_SUPPORTED = "Supported: local file paths (or file://), s3://, gs://, memory://"


@pytest.mark.parametrize("command", ["run", "tree", "why"])
def test_an_upstream_with_an_unknown_scheme_is_one_line_naming_it(tmp_path: Path, command: str) -> None:
    (tmp_path / "ws").mkdir()
    args = [command, f"{M}.WsDownOwn", "-w", str(tmp_path / "ws"), "--up-workspace", "foo://x"]
    # kart run: the graph walk met it in the upstream's complete(): a traceback and exit 50 before.
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(f"kart {command}:")]
    for fragment in ("the workspace of WsUp[", "'foo://x'", "'foo://'", _SUPPORTED):
        assert fragment in line, line
    assert "Up_" not in line  # the workspace is named, not the output path the walk asked for
    assert not list((tmp_path / "ws").rglob("*.pkl"))


@pytest.mark.parametrize("command", ["run", "tree", "runs", "verify"])
def test_a_root_workspace_with_an_unknown_scheme_is_one_line_naming_it(tmp_path: Path, command: str) -> None:
    args = [command, f"{M}.WsDown"] if command in ("run", "tree") else [command]
    named = ("the workspace of WsDown[",) if command in ("run", "tree") else ()
    one_line_error([*args, "-w", "foo://x"], 1, f"kart {command}:", *named, "'foo://x'", _SUPPORTED)


def test_build_names_the_task_and_the_url_of_an_unknown_scheme(tmp_path: Path) -> None:
    from kart_core.errors import GokartBuildError, UnknownSchemeError

    task = WsDownOwn(up_workspace="foo://x", workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(GokartBuildError, match=r"WsUp\[\w+\].*No storage for 'foo://x/.*'foo://' is unknown") as caught:
        gokart.build(task)
    assert any(
        isinstance(error, UnknownSchemeError) for errors in caught.value.raised_exceptions.values() for error in errors
    )
