"""Messages the `kart` command passes on: a task name said once, a run log called a run log."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import cli
from kart_core.errors import IntegrityError
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY

M = __name__


class MsgTask(gokart.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


@pytest.mark.parametrize("command", ["run", "tree", "why"])
def test_an_unknown_class_names_the_task_once(command: str) -> None:
    result = CliRunner().invoke(cli, [command, f"{M}.Nope"])
    assert result.exit_code == 4
    line = result.stderr.strip()
    assert f"'{M}.Nope': '{M}' has no attribute 'Nope'. Its task classes: MsgCycle, MsgCycleBack, " in line
    assert ", MsgTask." in line
    assert line.count(f"'{M}.Nope'") == 1


def test_a_misspelt_task_or_module_gets_the_close_names(tmp_path: Path) -> None:
    # It said only "has no attribute 'Gret'. Check the name and PYTHONPATH." (new-user pass, tutorial's greetings.py).
    (tmp_path / "msg_greetings.py").write_text(
        "import kart_core as gokart\nfrom kart_core import TaskOnKart\n\n\n"
        "class Greet(gokart.TaskOnKart):\n    def run(self):\n        self.dump('hi')\n"
    )
    said = [
        CliRunner().invoke(cli, ["run", name]).stderr.strip() for name in ("msg_greetings.Gret", "msg_greeting.Greet")
    ]
    assert said == [
        "kart run: 'msg_greetings.Gret': 'msg_greetings' has no attribute 'Gret'. Did you mean 'msg_greetings.Greet'?",
        "kart run: 'msg_greeting.Greet': cannot import module 'msg_greeting'. Did you mean 'msg_greetings.Greet'? Modules are "
        "found in the current directory and on PYTHONPATH.",
    ]
    nothing = CliRunner().invoke(cli, ["tree", "msg_greetings.Nothing"]).stderr.strip()
    assert nothing.startswith(
        "kart tree: 'msg_greetings.Nothing': 'msg_greetings' has no attribute 'Nothing'. Its task classes: Greet. (see "
    )
    assert CliRunner().invoke(cli, ["run", "msg_greetings.Greet"]).exit_code == 0


def test_a_refused_run_log_is_called_a_run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    task = MsgTask(workspace_directory=str(tmp_path / "ws"))
    gokart.build(task, return_value=False)
    log = task.kart_log_target("task_log")
    Path(log.path()).write_bytes(pickle.dumps({"file_path": ["planted"]}))  # not signed by kart
    with pytest.raises(IntegrityError, match=r"Refusing to load the task_log run log of MsgTask\[") as refused:
        log.load()
    assert "the output" not in str(refused.value)
    result = CliRunner().invoke(cli, ["runs", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0
    assert "Refusing to load the run log from" in result.stderr and "the output" not in result.stderr


@pytest.mark.parametrize(
    ("source", "what", "line"),
    [
        ("import kart_core\n\n\nclass X(kart_core.TaskOnKart):\n    def run(self)\n", "SyntaxError: expected ':'", 5),
        ("import kart_core\nraise RuntimeError('no data\\nfolder')\n", "RuntimeError: no data folder", 2),
    ],
)
@pytest.mark.parametrize("command", ["run", "tree", "why"])
def test_a_module_that_cannot_be_imported_is_named_with_its_file_and_line(
    tmp_path: Path, command: str, source: str, what: str, line: int
) -> None:
    # Named per case: a module whose import failed is not kept in sys.modules, but a passing one would be.
    module = f"kart_msg_broken_{command}_{line}"
    (tmp_path / f"{module}.py").write_text(source)
    result = CliRunner().invoke(cli, [command, f"{module}.X", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.stderr
    assert (
        f"kart {command}: '{module}.X': importing '{module}' failed: {what} ({tmp_path / module}.py, line {line}). "
        f"Fix the module; `python -c 'import {module}'` shows the whole traceback." in result.stderr
    )


class MsgCycle(gokart.TaskOnKart[int]):
    def requires(self) -> gokart.TaskOnKart[int]:
        return MsgCycleBack()

    def run(self) -> None:
        self.dump(1)


class MsgCycleBack(gokart.TaskOnKart[int]):
    def requires(self) -> gokart.TaskOnKart[int]:
        return MsgCycle()

    def run(self) -> None:
        self.dump(1)


class MsgEscapes(gokart.TaskOnKart[int]):
    def output(self) -> gokart.TaskOnKart[int]:
        return self.make_target("../../escaped.pkl")

    def run(self) -> None:
        self.dump(1)


class MsgRaises(gokart.TaskOnKart[int]):
    def requires(self) -> gokart.TaskOnKart[int]:
        raise ValueError("the user's own requires() failed")


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("MsgCycle", "TaskDefinitionError: MsgCycle depends on itself through requires(); remove the cycle."),
        ("MsgEscapes", "WorkspacePathError: MsgEscapes: output path '../../escaped.pkl' leaves the workspace"),
    ],
)
def test_a_definition_error_of_kart_is_its_message_without_a_traceback(tmp_path: Path, task: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["run", f"{M}.{task}", "-w", str(tmp_path / "ws"), "--no-progress"])
    assert result.exit_code == 50, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_users_own_code_raising_keeps_its_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", f"{M}.MsgRaises", "-w", str(tmp_path / "ws"), "--no-progress"])
    assert result.exit_code == 50, result.output
    assert "Traceback" in result.stderr and "ValueError: the user's own requires() failed" in result.stderr


@pytest.mark.parametrize("command", ["tree", "why"])
def test_a_definition_error_in_tree_and_why_is_one_line_with_run_s_code(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, [command, f"{M}.MsgCycle", "-w", str(tmp_path)])
    assert result.exit_code == 50, result.output
    assert result.stderr == f"kart {command}: MsgCycle depends on itself through requires(); remove the cycle.\n"
