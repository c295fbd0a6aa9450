"""A workspace the command cannot use: one line naming it and the fix, exit 1, never kart's traceback."""

from __future__ import annotations

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
        "unknown scheme": ("nosuchscheme://bucket/x", "No storage for 'nosuchscheme://'"),
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


def test_a_storage_library_error_exits_1_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fragments = ("the workspace's storage failed: NoCredentialsError: Unable to locate credentials", "credentials")
    # in the graph walk: the workspace's, not the task's code (exit 50 with a traceback before)
    one_line_error(["tree", f"{M}.WsNoCredentials"], 1, "kart tree:", *fragments)

    def no_credentials(*_args: object, **_kwargs: object) -> None:
        raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr("kart_core.cli.run_rows", no_credentials)  # a traceback and exit 1 before
    one_line_error(["runs", "-w", "s3://bucket/x"], 1, "kart runs:", *fragments)

    class Unreachable:
        def exists(self, path: str) -> bool:
            raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr("kart_core.inspect.cmdline.storage_for", lambda _path: Unreachable())
    one_line_error(["run", f"{M}.WsUp", "-w", "s3://bucket/x"], 1, "kart run:", *fragments)  # 50 or 40 before
