"""A folder output (objects under the output's key as a prefix) written by path on object storage is refused.

kart hands out a private name for an output's path; on local disk a folder saved there is moved into place as a
whole. Object storage has no such move: the objects would be copied one by one, and a run killed half way would
leave a partial folder at the output's prefix. Before, such a run failed with "finished without writing its
output(s). Call self.dump(...)" and left its objects behind, listed as if they were outputs; a killed one left
them too. Now the run fails with a ``TaskDefinitionError`` that says why and what to do, its objects are removed,
a rerun's old output stays, and a killed run's objects count as temporary (``kart gc`` sweeps them, listings skip
them). moto's S3; threads and process workers.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.storage import storage_for

LEASE = 30.0  # the ``where`` fixture's lease (tests/core/conftest.py)


class SavedRemote(kart_core.TaskOnKart[Any]):
    """Saves ``parts`` objects under its output's path as a prefix; ``how`` "die" kills its process after the first;
    ``how`` "file" writes one object there instead (a zip, say)."""

    parts = luigi.IntParameter(default=2, significant=False)
    how = luigi.Parameter(default="", significant=False)

    def output(self) -> Any:
        return self.make_target("saved/model.txt")

    def run(self) -> None:
        path = self.output().path()
        file_system = storage_for(path).file_system  # type: ignore[attr-defined]
        if self.how == "file":
            file_system.pipe(path, b"one file")
            return
        for part in range(int(self.parts)):
            file_system.pipe(f"{path}/part{part}.bin", str(part).encode())
            if self.how == "die":
                os.kill(os.getpid(), signal.SIGKILL)


def _objects(where: str) -> list[str]:
    file_system = storage_for(where).file_system  # type: ignore[attr-defined]
    file_system.invalidate_cache()
    return sorted(name.rpartition("/ws/")[2] for name in file_system.find(where))


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_folder_saved_by_path_on_object_storage_is_refused_and_removed(s3_bucket: str, executor: str) -> None:
    where = f"s3://{s3_bucket}/ws"
    workers = 2 if executor == "process" else 1
    with pytest.raises(kart_core.GokartBuildError, match="saved a folder at the path of its output") as raised:
        kart_core.build(
            SavedRemote(workspace_directory=where), workers=workers, executor=executor, return_value=False, log_level=50
        )
    assert "Save the folder as one file instead" in str(raised.value)
    assert not [name for name in _objects(where) if name.startswith("saved/")]  # before: the objects stayed
    assert not SavedRemote(workspace_directory=where).complete()

    # A rerun that saves a folder keeps the old one-file output as it was.
    kart_core.build(SavedRemote(how="file", workspace_directory=where), return_value=False, log_level=50)
    with pytest.raises(kart_core.GokartBuildError, match="saved a folder at the path of its output"):
        kart_core.build(
            SavedRemote(rerun=True, workspace_directory=where),
            workers=workers,
            executor=executor,
            return_value=False,
            log_level=50,
        )
    assert [name for name in _objects(where) if name.startswith("saved/")] == [
        f"saved/model_{SavedRemote().make_unique_id()}.txt"
    ]
    assert SavedRemote(workspace_directory=where).complete()
    assert SavedRemote(workspace_directory=where).output().load() == ["one file"]


def test_a_killed_run_s_folder_objects_are_temporary(s3_bucket: str) -> None:
    where = f"s3://{s3_bucket}/ws"
    with pytest.raises(kart_core.GokartBuildError, match="WorkerDiedError"):
        kart_core.build(
            SavedRemote(how="die", workspace_directory=where),
            workers=2,
            executor="process",
            return_value=False,
            log_level=50,
        )
    [left] = [name for name in _objects(where) if name.startswith("saved/")]
    assert left.startswith("saved/.kart-took-") and left.endswith("/part0.bin")
    listed = [entry.relative for entry in storage_for(where).walk(where)]
    assert not [name for name in listed if name.startswith("saved/")]  # before: listed as a file of the workspace
    assert not SavedRemote(workspace_directory=where).complete()
