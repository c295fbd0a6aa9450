"""``kart_core.storage.conditional.replace_if``: a marker's rewrite never re-creates a removed file nor overwrites
another process's: on local disk (``renameat2`` exchange, and the fallback without it), on the S3 server
(``If-Match``), on the GCS emulator (read-compare-write)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from kart_core.storage import conditional, storage_for


@pytest.fixture(params=["local", "local-no-exchange", "s3", "gs"])
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param.startswith("local"):
        if request.param == "local-no-exchange":  # a file system without RENAME_EXCHANGE (NFS)
            monkeypatch.setattr(conditional, "_renameat2", None)
        return str(tmp_path / "m" / "x.committing")
    bucket = request.getfixturevalue("s3_bucket" if request.param == "s3" else "gcs_bucket")
    return f"{request.param}://{bucket}/m/x.committing"


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _get(path: str) -> bytes | None:
    storage = storage_for(path)
    getattr(storage, "file_system", None) and storage.file_system.invalidate_cache()  # type: ignore[attr-defined]
    try:
        with storage.open_read(path) as file:
            return file.read()
    except FileNotFoundError:
        return None


def test_it_replaces_the_file_it_read(place: str) -> None:
    _put(place, b"beat 1")
    assert conditional.replace_if(storage_for(place), place, b"beat 1", b"beat 2")
    assert _get(place) == b"beat 2"


def test_a_removed_file_is_not_re_created(place: str) -> None:
    """Before (a plain atomic write after the read): the marker another process removed came back."""
    _put(place, b"beat 1")
    storage_for(place).remove(place)
    assert not conditional.replace_if(storage_for(place), place, b"beat 1", b"beat 2")
    assert _get(place) is None


def test_a_file_another_process_replaced_is_left_as_it_is(place: str) -> None:
    _put(place, b"beat 1")
    _put(place, b"the other host's")
    assert not conditional.replace_if(storage_for(place), place, b"beat 1", b"beat 2")
    assert _get(place) == b"the other host's"


def test_local_leaves_no_temporary_file(tmp_path: Path) -> None:
    place = str(tmp_path / "x.committing")
    _put(place, b"one")
    assert conditional.replace_if(storage_for(place), place, b"one", b"two")
    _put(place, b"other")
    assert not conditional.replace_if(storage_for(place), place, b"one", b"three")
    Path(place).unlink()
    assert not conditional.replace_if(storage_for(place), place, b"other", b"four")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _read_until(path: str, stop: Any, counts: Any) -> None:
    """The owner: read its marker in a loop; count the reads and those that were not its own bytes."""
    reads = wrong = 0
    while not stop.is_set():
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            data = b"<gone>"
        reads += 1
        wrong += data != b"T's marker"
    counts.put((reads, wrong))


def test_a_failing_local_rewrite_never_shows_its_bytes_to_a_reader(tmp_path: Path) -> None:
    """Attacker at12 A7: the exchange came first and the compare after, so for ~0.15 ms per failing rewrite the
    owner's marker was displaced (27 % of the owner's reads during a burst saw the loser's bytes)."""
    place = str(tmp_path / "x.kart-writing")
    _put(place, b"T's marker")
    context = multiprocessing.get_context("fork")
    stop, counts = context.Event(), context.Queue()
    owner = context.Process(target=_read_until, args=(place, stop, counts))
    owner.start()
    try:
        time.sleep(0.05)
        storage = storage_for(place)
        for _ in range(1000):
            assert not conditional.replace_if(storage, place, b"A's marker as A read it", b"A's rewrite")
    finally:
        stop.set()
        reads, wrong = counts.get(timeout=30)
        owner.join(timeout=30)
    assert reads > 100
    assert wrong == 0
    assert Path(place).read_bytes() == b"T's marker"
