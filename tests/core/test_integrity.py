"""The integrity record: a damaged output is a named LoadError, not a silent short result (issue 12 #4).

Each format is truncated after its task committed it, on local disk and on the real S3-compatible
server: the load names the task, the unique id, the path, the committed and the found size, and
the fix. ``build()`` loads its root's output to return it: with repairs on (the default) a damaged
root is rebuilt first, with repairs off its load refuses. A same-size change is caught when verify is on. Outputs without a record (gokart's) load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pandas as pd
import pytest

import kart_core
from kart_core.errors import DamagedOutputError
from kart_core.inspect.verify import verify_workspace
from kart_core.integrity import DEFAULT_ALGORITHM, available, digest_bytes, digest_stream, new_hasher
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path

FORMATS = [".csv", ".tsv", ".txt", ".json", ".ndjson", ".gz", ".parquet", ".pkl"]


class Written(kart_core.TaskOnKart[Any]):
    """Writes a value suited to the extension."""

    extension = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target(f"formats/data{self.extension}")

    def run(self) -> None:
        if self.extension in (".txt", ".gz"):
            self.dump([f"line {i}" for i in range(200)])
        elif self.extension == ".pkl":
            self.dump({"rows": list(range(2000))})
        else:
            self.dump(pd.DataFrame({"a": range(200), "b": [f"text {i}" for i in range(200)]}))


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _rewrite(path: str, change: Any) -> tuple[int, int]:
    """Rewrite the file at ``path`` with ``change(bytes)`` (as a writer outside kart would); return sizes."""
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    changed = change(data)
    with storage.atomic_write(path) as file:
        file.write(changed)
    return len(data), len(changed)


@pytest.mark.parametrize("extension", FORMATS)
def test_a_truncated_output_is_a_named_load_error(
    any_workspace: str, extension: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = Written(extension=extension, workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    path = task.output().path()
    committed, found = _rewrite(path, lambda data: data[: len(data) * 2 // 3])
    with pytest.raises(DamagedOutputError) as info:
        task.output().load()
    message = str(info.value)
    assert task.kart_label() in message and task.make_unique_id() in message and path in message
    assert f"{committed} bytes were committed, found {found} bytes" in message
    assert "rerun=True" in message
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(DamagedOutputError, match="kart verify --delete"):  # repairs off: build()'s load refuses too
        kart_core.build(task, reset_register=False)
    assert kart_core.build(task.clone(rerun=True), reset_register=False) is not None  # the fix works
    monkeypatch.delenv("KART_REPAIR_DAMAGED")
    _rewrite(path, lambda data: data[: len(data) // 2])
    assert kart_core.build(task, reset_register=False) is not None  # repairs on (default): rebuilt, then loaded
    assert verify_workspace(any_workspace).ok  # the rebuild's commit replaced the file and its record


@pytest.mark.parametrize("extension", [".csv", ".parquet"])
def test_a_same_size_change_is_caught_when_verify_is_on(
    any_workspace: str, extension: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = Written(extension=extension, workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    flip = len("a,b\n") + 1 if extension == ".csv" else 10
    _rewrite(task.output().path(), lambda data: data[:flip] + bytes([data[flip] ^ 1]) + data[flip + 1 :])
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    with pytest.raises(DamagedOutputError, match="content hash .* was committed, found"):
        task.output().load()


def test_an_output_without_a_record_loads_unchecked(workspace: str) -> None:
    """gokart writes no manifest: its outputs (here: the record removed) load as before."""
    task = Written(extension=".csv", workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    Path(log_task_path(task, MANIFEST)).unlink()
    _rewrite(task.output().path(), lambda data: data[: len(data) // 2])
    assert 0 < len(task.output().load()) < 200


def test_supplementary_logs_off_means_no_record(workspace: str) -> None:
    task = Written(extension=".pkl", workspace_directory=workspace, should_dump_supplementary_log_files=False)
    kart_core.build(task, reset_register=False, return_value=False)
    assert not (Path(workspace) / "log").exists()


def test_hashes_name_their_algorithm_and_fall_back_to_blake2b() -> None:
    assert DEFAULT_ALGORITHM == "xxh3_128"  # xxhash is a dependency (pyproject)
    assert available("blake2b_128") and not available("md5")
    hasher = new_hasher("blake2b_128")
    hasher.update(b"kart")
    assert digest_bytes(b"kart", "blake2b_128") == hasher.hexdigest() and len(hasher.hexdigest()) == 32


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])
def test_digest_stream_with_a_known_length_reads_exactly_that_many_bytes(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with open(tmp_path / "data", "w+b") as file:
        file.write(data + b"after")
        file.seek(0)
        assert digest_stream(file, length=size) == (size, digest_bytes(data))
        assert file.read() == b"after"  # not read: the caller said where the bytes end
        file.seek(0)
        assert digest_stream(file) == (size + 5, digest_bytes(data + b"after"))
