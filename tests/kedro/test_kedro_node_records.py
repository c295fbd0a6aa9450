"""kart_kedro.node_records: KartRunner's own record files, and how messages about them name them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from kart_kedro.node_records import NodeRecords, RunParts
from kart_kedro.output_state import FileStamp, OutputState

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
