"""kart_core.safe_pickle and the run-log readers: listing a workspace never runs code from a planted pickle."""

from __future__ import annotations

import datetime
import decimal
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import dill
import luigi
import numpy as np
import pytest
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import cli
from kart_core.runlog import load_log_value, read_log_safely
from kart_core.safe_pickle import loads_plain_data


class _Planted:
    """Unpickling calls os.mkdir(path): the proof that code from the file ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


PLAIN = {
    "file_path": ["resources/a_0123.pkl"],
    "accuracy": np.float64(0.91),
    "epochs": np.int64(3),
    "when": datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.timezone.utc),
    "span": datetime.timedelta(seconds=5),
    "tags": {"a", "b"},
    "frozen": frozenset({1}),
    "ordered": OrderedDict(x=1),
    "raw": b"\x00\x01",
    "price": decimal.Decimal("1.10"),
    "nested": [{"k": (1, 2.5, None, True)}],
}


@pytest.mark.parametrize("protocol", [0, 2, 4, pickle.HIGHEST_PROTOCOL])
def test_plain_data_round_trips_in_every_protocol(protocol: int) -> None:
    assert loads_plain_data(pickle.dumps(PLAIN, protocol=protocol)) == PLAIN


def test_dill_pickles_of_plain_data_load_too() -> None:
    assert loads_plain_data(dill.dumps(PLAIN)) == PLAIN


@pytest.mark.parametrize("dumps", [pickle.dumps, dill.dumps])
def test_a_pickle_that_calls_a_function_is_refused_before_it_runs(tmp_path: Path, dumps: object) -> None:
    proof = tmp_path / "ran"
    data = dumps({"task_log": _Planted(str(proof))})  # type: ignore[operator]
    with pytest.raises(pickle.UnpicklingError, match="os.mkdir|posix.mkdir"):
        loads_plain_data(data)
    assert not proof.exists()


class SafeLog(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.task_log["accuracy"] = np.float64(0.5)
        self.dump(self.n)


def _plant(workspace: str, proof: Path) -> Path:
    task = SafeLog(n=1, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    log = Path(workspace, "log", "task_log", f"SafeLog_{task.make_unique_id()}.pkl")
    assert log.exists()
    log.write_bytes(pickle.dumps({"file_path": [], "x": _Planted(str(proof))}))
    return log


def test_kart_runs_does_not_run_a_planted_run_log(workspace: str, tmp_path: Path) -> None:
    proof = tmp_path / "ran"
    log = _plant(workspace, proof)
    result = CliRunner().invoke(cli, ["runs", "-w", workspace, "--format", "json"])
    assert result.exit_code == 0 and "SafeLog" in result.output
    assert not proof.exists()
    warning = f"warning: skipping unreadable run log {log}: UnpicklingError: it names posix.mkdir"
    assert warning in result.output.replace("os.mkdir", "posix.mkdir")
    assert read_log_safely(str(log), "default", dict) == "default" and not proof.exists()


def test_a_genuine_log_reads_as_before(workspace: str) -> None:
    task = SafeLog(n=2, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    log = Path(workspace, "log", "task_log", f"SafeLog_{task.make_unique_id()}.pkl")
    value = load_log_value(str(log))
    assert value["accuracy"] == 0.5 and value["file_path"] == [task.output().path()]
    assert SafeLog.restore(task.make_unique_id(), workspace) == task  # task_params through the same reader


def test_with_signing_logs_are_verified_then_loaded_in_full(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a secret")
    proof = tmp_path / "ran"
    log = _plant(workspace, proof)  # the planted file carries no valid signature
    assert read_log_safely(str(log), "default", dict) == "default" and not proof.exists()
    good = SafeLog(n=3, workspace_directory=workspace)
    gokart.build(good, reset_register=False)
    assert good.get_task_log()["accuracy"] == 0.5


@pytest.mark.slow
def test_gokart_s_own_run_logs_read_as_plain_data(tmp_path: Path) -> None:
    """Logs written by gokart 1.12.2 (in its own process) load through the plain-data reader."""
    script = (
        "import gokart, luigi\n"
        "class G(gokart.TaskOnKart):\n"
        "    n = luigi.IntParameter()\n"
        "    def run(self):\n"
        "        self.task_log['score'] = 0.25\n"
        "        self.dump(self.n)\n"
        f"gokart.build(G(n=4, workspace_directory={str(tmp_path / 'ws')!r}), log_level=40)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, capture_output=True)
    logs = {path.parent.name: path for path in (tmp_path / "ws" / "log").rglob("G_*.pkl")}
    assert load_log_value(str(logs["task_params"])) == {"n": "4"}
    assert load_log_value(str(logs["task_log"]))["score"] == 0.25
    assert isinstance(load_log_value(str(logs["processing_time"])), float)
