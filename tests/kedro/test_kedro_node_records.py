"""kart_kedro.node_records: KartRunner's own record files, and how messages about them name them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from kart_kedro.node_records import NodeRecords, RunParts
from kart_kedro.output_state import FileStamp, OutputState

import kart_core
from kart_core.errors import IntegrityError
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY


def test_a_forged_record_file_is_refused_naming_the_runners_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "test-secret")
    workspace = tmp_path / "ws"
    forged = workspace / "kedro" / "demo" / ".kart" / "input_digests.pkl"
    forged.parent.mkdir(parents=True)
    forged.write_bytes(pickle.dumps({"raw": ("config", "key", 0, 0, "digest")}))  # not signed by kart

    records = NodeRecords(str(workspace), "demo")
    with pytest.raises(IntegrityError) as refused:
        records.known_input_digest("raw", "config", FileStamp("key", 0))

    message = str(refused.value)
    assert message.startswith(
        f"Refusing to load the KartRunner record file of Kedro project 'demo' from '{forged}': signing is on"
    ), message
    assert "TaskOnKart[" not in message


@pytest.mark.parametrize("record", ["last_runs.pkl", "input_digests.pkl", "code_names.pkl", "written.pkl"])
@pytest.mark.parametrize("damage", ["appended", "truncated", "not a pickle"])
def test_a_damaged_record_file_counts_as_empty_and_is_written_anew(
    tmp_path: Path, record: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A torn or truncated copy of a record (rsync in progress, a disk glitch) is bookkeeping lost, not an error:
    the run goes on as if nothing was recorded and the next write replaces the file (attacker at11 F7: a damaged
    last_runs.pkl failed every `kedro run` that served a node)."""
    workspace = str(tmp_path / "ws")
    records = NodeRecords(workspace, "demo")
    records.note_input_digest("raw", "config", FileStamp("key", 0), "digest")
    records.save_input_digests()
    records.note_code_names("out", "content", ("m:f",))
    records.save_code_names()
    records.mark_written({"out": _state("abc")})
    records.save_written()
    records.save_last_runs({"n1": _parts()})
    path = tmp_path / "ws" / "kedro" / "demo" / ".kart" / record
    data = path.read_bytes()
    if damage == "appended":
        path.write_bytes(data + b"garbage")
    elif damage == "truncated":
        path.write_bytes(data[:-5])
    else:
        path.write_bytes(b"\x00not a pickle at all" + data[20:])

    fresh = NodeRecords(workspace, "demo")
    with caplog.at_level("WARNING", logger="kart_kedro.node_records"):
        assert fresh.last_run("n1") == (None if record == "last_runs.pkl" else _parts())
        seen = fresh.known_input_digest("raw", "config", FileStamp("key", 0))
        assert seen == (None if record == "input_digests.pkl" else "digest")
        assert fresh.known_code_names("out", "content") == (None if record == "code_names.pkl" else ("m:f",))
        assert fresh.written_by_kart("out", _state("abc")) is (record != "written.pkl")
    assert [r.getMessage() for r in caplog.records if record in r.getMessage()], caplog.text

    fresh.save_last_runs({"n2": _parts()})  # written anew: readable again
    assert NodeRecords(workspace, "demo").last_run("n2") == _parts()


def _state(md5: str) -> OutputState:
    return OutputState(md5, 3, 1)


def _parts() -> RunParts:
    return RunParts("uid", {"m.f": "c0de"}, {"params:n": "p1"}, {"raw": "d1"}, {"mid": "u1"})


class _RunsCode:
    """A pickle that runs code when unpickled in full: it touches the file it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _plant(path: Path, marker: Path) -> None:
    """Replace the record at ``path`` by a pickle that runs code, padded to the same size, times kept (a size check
    alone passes it)."""
    before = path.stat()
    planted = pickle.dumps(_RunsCode(marker))
    assert len(planted) <= before.st_size, (len(planted), before.st_size)
    path.write_bytes(planted + b"\0" * (before.st_size - len(planted)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("record", ["last_runs.pkl", "input_digests.pkl", "code_names.pkl", "written.pkl"])
def test_a_planted_record_runs_no_code_and_counts_as_empty(
    tmp_path: Path, record: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The records are kart's plain bookkeeping, read by every run and by `kedro kart list`: a pickle planted in a
    shared workspace is refused (plain data only), not run (attacker at15 F8: `kedro kart list` ran it)."""
    workspace = str(tmp_path / "ws")
    records = NodeRecords(workspace, "demo")
    records.note_input_digest("raw", "config-" + "x" * 200, FileStamp("key", 0), "digest")
    records.save_input_digests()
    records.note_code_names("out", "content", ("m:f",) * 40)
    records.save_code_names()
    records.mark_written({"out": _state("a" * 200)})
    records.save_written()
    records.save_last_runs({"n1": _parts()})
    marker = tmp_path / "code-ran"
    _plant(tmp_path / "ws" / "kedro" / "demo" / ".kart" / record, marker)
    for manifest in (tmp_path / "ws" / "log" / "manifest").glob("TaskOnKart_*.json"):
        manifest.unlink()  # no integrity record to catch the plant: only the reader stands in the way

    fresh = NodeRecords(workspace, "demo")
    with caplog.at_level("WARNING", logger="kart_kedro.node_records"):
        assert fresh.last_run("n1") == (None if record == "last_runs.pkl" else _parts())
        seen = fresh.known_input_digest("raw", "config-" + "x" * 200, FileStamp("key", 0))
        assert seen == (None if record == "input_digests.pkl" else "digest")
        names = fresh.known_code_names("out", "content")
        assert names == (None if record == "code_names.pkl" else ("m:f",) * 40)
        assert fresh.written_by_kart("out", _state("a" * 200)) is (record != "written.pkl")
    assert not marker.exists()
    refused = [r.getMessage() for r in caplog.records if r.name == "kart_kedro.node_records"]
    assert len(refused) == 1 and record in refused[0], caplog.text
    assert "UnpicklingError: it names io.open" in refused[0], refused[0]


def test_records_still_read_back_as_written() -> None:
    """What the runner writes (dicts of tuples, lists, sets, strings, ints) is plain data: nothing is lost."""
    value = {"a": ("x", "y", 1, 2, "z"), "b": ["m"], "c": {"s"}, "d": {"k": 1.5, "n": None}}
    assert kart_core.loads_plain_data(pickle.dumps(value, protocol=5)) == value
