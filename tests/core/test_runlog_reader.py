"""kart_core.runlog_reader: other runs' logs read fast with pickle, through the target when pickle cannot or must not."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import dill
import pytest

from kart_core.runlog_reader import plain_pickle_allowed, read_log_safely


def test_plain_logs_read_as_plain_data_and_code_in_a_log_is_skipped_unsigned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = tmp_path / "Task_1.pkl"
    plain.write_bytes(pickle.dumps({"file_path": ["a.pkl"]}))
    assert read_log_safely(str(plain), None, dict, plain_pickle=True) == {"file_path": ["a.pkl"]}
    dilled = tmp_path / "Task_0.pkl"
    dilled.write_bytes(dill.dumps({"file_path": ["c.pkl"], "score": 0.5}))  # gokart writes its logs with dill
    assert read_log_safely(str(dilled), None, dict, plain_pickle=True) == {"file_path": ["c.pkl"], "score": 0.5}
    lambdas = tmp_path / "Task_2.pkl"
    lambdas.write_bytes(dill.dumps({"file_path": ["b.pkl"], "f": lambda x: x + 1}))  # code: never run unsigned
    with caplog.at_level(logging.WARNING):
        assert read_log_safely(str(lambdas), None, dict, plain_pickle=True) is None
    assert any(f"skipping unreadable run log {lambdas}: UnpicklingError" in r.getMessage() for r in caplog.records)


def test_a_damaged_log_gives_the_default_and_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    damaged = tmp_path / "Task_3.pkl"
    damaged.write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING):
        assert read_log_safely(str(damaged), "default", dict, plain_pickle=True) == "default"
    assert [r.getMessage() for r in caplog.records if str(damaged) in r.getMessage()][0].startswith(
        f"skipping unreadable run log {damaged}"
    )


def test_plain_pickle_only_when_signing_is_surely_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    # luigi is loaded in this process, so its config may hold signing_key: ask the target
    assert plain_pickle_allowed() is False
    monkeypatch.setenv("KART_SIGNING_KEY", "secret")
    assert plain_pickle_allowed() is False
