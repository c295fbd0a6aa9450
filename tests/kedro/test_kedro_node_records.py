"""kart_kedro.node_records: KartRunner's own record files, and how messages about them name them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from kart_kedro.node_records import NodeRecords
from kart_kedro.output_state import FileStamp

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
