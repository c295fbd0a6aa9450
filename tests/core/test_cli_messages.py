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
    assert f"'{M}.Nope': '{M}' has no attribute 'Nope'. Check the name and PYTHONPATH." in line
    assert line.count(f"'{M}.Nope'") == 1


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
