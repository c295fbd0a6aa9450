"""A by-path writer killed while integrity records were off keeps its task incomplete once records are on again.

Its ``.kart-writing`` marker sits beside a partial file that has no record: before (attacker at9 J4) a build with
records on took that file as complete and served it ("1 cached"), while ``kart verify`` said the task was incomplete.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_inspect_writing import Partial, where  # noqa: F401 - where: a fixture

import kart_core
from kart_core.storage import storage_for
from kart_core.target_config import RECORD_ENVIRONMENT_VARIABLE


def test_a_partial_file_of_a_writer_killed_with_records_off_is_not_complete_with_records_on(
    where: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "false")
    with pytest.raises(kart_core.GokartBuildError, match="WorkerDiedError"):
        kart_core.build(Partial(die=True, workspace_directory=where), workers=2, executor="process", log_level=40)
    monkeypatch.setenv(RECORD_ENVIRONMENT_VARIABLE, "true")
    task = Partial(workspace_directory=where)
    path = task.output().path()
    assert not storage_for(path).exists(path)  # since 2026-12-02 the run wrote a private file beside it
    with storage_for(path).atomic_write(path) as file:  # as a kart before 2026-12-02 left it: the partial file there
        file.write(b"half")
    assert not task.complete()
    assert kart_core.build(Partial(workspace_directory=where), log_level=40) == ["whole"]
    assert Partial(workspace_directory=where).complete()


def test_the_check_does_not_stop_a_complete_task_with_records_on(tmp_path: Path) -> None:
    task = Partial(workspace_directory=str(tmp_path / "ws"))
    assert kart_core.build(task, log_level=40) == ["whole"]
    assert Partial(workspace_directory=str(tmp_path / "ws")).complete()
