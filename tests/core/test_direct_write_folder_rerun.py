"""A folder output written by path (a saved model's folder, several files under the output's path) and rerun.

Before: ``rerun=True`` on such a task failed with ``IsADirectoryError`` as the walk checked it (``complete()``
armed the rerun and deleted the record-less output with a file removal); ``TargetOnKart.remove()`` failed the same
way. Now the old folder stays until the rerun moves its new one into place (the old one moved aside, then
deleted), and a rerun that fails or is killed leaves the old folder. Threads and process workers; records on and off.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.target_config import RECORD_ENVIRONMENT_VARIABLE


class Saved(kart_core.TaskOnKart[Any]):
    """Saves ``parts`` files into a folder at its output's path; ``how``: "fail" raises, "die" kills its process
    after the first file."""

    parts = luigi.IntParameter(default=1, significant=False)
    how = luigi.Parameter(default="", significant=False)

    def output(self) -> Any:
        return self.make_target("saved/model.pkl")

    def run(self) -> None:
        folder = self.output().path()
        os.makedirs(folder)
        for part in range(int(self.parts)):
            Path(folder, f"part{part}.bin").write_text(str(part))
            if self.how == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "fail":
                raise RuntimeError("half way")


def _parts(task: Saved) -> list[str]:
    return sorted(os.listdir(task.output().path()))


@pytest.mark.parametrize("records", ["true", "false"])
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_folder_output_is_rerun_and_a_failed_or_killed_rerun_keeps_the_old_folder(
    tmp_path: Path, executor: str, records: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, records)
    workspace = str(tmp_path / "ws")
    workers = 2 if executor == "process" else 1

    def build(**params: Any) -> None:
        kart_core.build(
            Saved(workspace_directory=workspace, **params),
            workers=workers,
            executor=executor,
            return_value=False,
            log_level=50,
        )

    build()
    task = Saved(workspace_directory=workspace)
    assert _parts(task) == ["part0.bin"]
    build(parts=2, rerun=True)  # before: IsADirectoryError from complete()
    assert _parts(task) == ["part0.bin", "part1.bin"]
    with pytest.raises(kart_core.GokartBuildError, match="half way"):
        build(parts=3, rerun=True, how="fail")
    assert _parts(task) == ["part0.bin", "part1.bin"]
    if executor == "process":
        with pytest.raises(kart_core.GokartBuildError, match="WorkerDiedError"):
            build(parts=3, rerun=True, how="die")
        assert not Saved(workspace_directory=workspace).complete()  # the killed writer's marker
        assert _parts(task) == ["part0.bin", "part1.bin"]
    build(parts=3, rerun=True)
    assert _parts(task) == ["part0.bin", "part1.bin", "part2.bin"]
    assert Saved(workspace_directory=workspace).complete()
    left = os.listdir(os.path.dirname(task.output().path()))
    # No marker, no old folder moved aside; only the killed run's private folder (``kart gc`` sweeps it).
    assert not [name for name in left if name.startswith(".") and not name.startswith(".kart-took-")]
    assert len([name for name in left if name.startswith(".kart-took-")]) == (executor == "process")


def test_remove_deletes_a_folder_output(tmp_path: Path) -> None:
    task = Saved(workspace_directory=str(tmp_path / "ws"))
    kart_core.build(task, return_value=False, log_level=50)
    task.output().remove()  # before: IsADirectoryError
    assert not os.path.exists(task.output().path())
    assert not task.complete()
