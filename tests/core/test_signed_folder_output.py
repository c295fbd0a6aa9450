"""With signing on, a folder at a file output's path is neither served nor committed, and ``kart verify`` sees it
(attacker at15 F1).

Before: a folder planted at the output's path counted as complete and its downstream read it (``1 cached``, the
planted files served), a run that saved a folder by path committed it unsigned and unrecorded (a file changed in
it later was served), and ``kart verify`` counted neither (0 problems). Now a folder there is not the output with
signing on (``exists()`` is False), a run that saves one fails naming ``make_model_target``, and ``kart verify``
reports its files (kind ``unrecorded``; ``--delete`` removes them). Threads and process workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core.inspect.verify import remove_damaged, verify_workspace


class SaveModel(kart_core.TaskOnKart[Any]):
    def output(self) -> Any:
        return self.make_target("models/hf_model.pkl")

    def run(self) -> None:
        folder = self.output().path()
        os.makedirs(folder, exist_ok=True)
        Path(folder, "part0.bin").write_text("good")


class UseModel(kart_core.TaskOnKart[Any]):
    def requires(self) -> Any:
        return SaveModel(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        folder = self.input().path()
        self.dump({name: Path(folder, name).read_text() for name in sorted(os.listdir(folder))})


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_planted_or_saved_folder_is_not_an_output_with_signing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    workspace = str(tmp_path / "ws")
    planted = Path(SaveModel(workspace_directory=workspace).output().path())
    planted.mkdir(parents=True)
    (planted / "EVIL.bin").write_text("planted")
    assert not SaveModel(workspace_directory=workspace).complete()  # before: True, and the planted file was served
    report = verify_workspace(workspace)
    assert [(problem.kind, problem.path) for problem in report.problems] == [("unrecorded", str(planted / "EVIL.bin"))]
    workers = 2 if executor == "process" else 1
    with pytest.raises(kart_core.GokartBuildError, match="make_model_target"):
        kart_core.build(UseModel(workspace_directory=workspace), workers=workers, executor=executor, log_level=50)
    assert sorted(os.listdir(planted)) == ["EVIL.bin"]  # the refused run's folder was not moved in
    assert str(planted / "EVIL.bin") in remove_damaged(verify_workspace(workspace))
    assert not [name for name in os.listdir(planted.parent) if name.startswith(".kart-")]


def test_a_folder_output_still_works_with_signing_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    workspace = str(tmp_path / "ws")
    assert kart_core.build(UseModel(workspace_directory=workspace), log_level=50) == {"part0.bin": "good"}
