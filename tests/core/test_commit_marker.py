"""A commit that replaces a task's outputs is seen whole or not at all (kart_core.commit_marker).

Real processes on local disk and on the moto S3 server, with and without signing, for a task with
two outputs (``Pair``: bias must equal -weight) and one with one output: a rerun paused between its
renames (the window a slow object copy opens) is waited for by a reader in this process; a rerun
SIGKILLed between its renames leaves the task incomplete (it runs again) and its outputs damaged
for a direct load, never a mix of two runs. Two processes racing on one task keep one run's outputs
and that run's task log and processing time.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core.commit_marker import MARKER_SUFFIX, Marker, read_marker, settled
from kart_core.errors import DamagedOutputError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path

TASKS = textwrap.dedent(
    """
    import os, random, time
    import luigi
    import kart_core

    class Pair(kart_core.TaskOnKart):
        def output(self):
            return {"weight": self.make_target("m/weight.pkl"), "bias": self.make_target("m/bias.pkl")}

        def run(self):
            weight = random.Random().random()  # unseeded: each run differs, in size too rarely
            self.dump(weight, "weight")
            self.dump(-weight, "bias")

    class One(kart_core.TaskOnKart):
        def output(self):
            return self.make_target("m/one.pkl")

        def run(self):
            self.dump(random.Random().random())

    class Sum(kart_core.TaskOnKart):
        model = kart_core.TaskInstanceParameter()

        def run(self):
            model = self.load("model")
            self.dump(model["weight"] + model["bias"])

    class Race(kart_core.TaskOnKart):
        barrier = luigi.Parameter(significant=False)

        def run(self):
            value = random.Random().random()
            self.task_log["value"] = value
            self.task_log["pid"] = os.getpid()
            # Both runs are inside run() before either commits.
            open(os.path.join(self.barrier, f"started_{os.getpid()}"), "w").close()
            while len([n for n in os.listdir(self.barrier) if n.startswith("started_")]) < 2:
                time.sleep(0.01)
            if not os.path.exists(os.path.join(self.barrier, f"first_{os.getpid()}")):
                # The second waits until the first committed.
                while not self.output().exists() or not os.path.exists(os.path.join(self.barrier, "committed")):
                    time.sleep(0.01)
            self.dump({"value": value, "pid": os.getpid()})

    class RaceRecorded(Race):
        kart_run_record_in_manifest = True  # a Kedro node run's way: the run record inside the manifest
    """
)

# A rerun whose storage pauses (or kills its process) just before the last output's rename: the manifest
# and the other outputs are new, that one is old.
WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    import kart_core, marker_tasks
    from kart_core.storage import local, remote

    mode, workspace, go, task_name = sys.argv[1:5]
    task = getattr(marker_tasks, task_name)(workspace_directory=workspace, rerun=True)
    outputs = 2 if task_name == "Pair" else 1
    backend = remote.FsspecStorage if "://" in workspace else local.LocalStorage
    original = backend.commit
    calls = []

    def commit(self, staged, path):
        calls.append(path)
        if len(calls) == outputs:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            print("paused", flush=True)
            while not os.path.exists(go):
                time.sleep(0.01)
        return original(self, staged, path)

    backend.commit = commit
    kart_core.build(task)
    print("committed", flush=True)
    """
)

RACER = textwrap.dedent(
    """
    import os, sys
    import kart_core, marker_tasks
    workspace, barrier, first, name = sys.argv[1:5]
    if first == "1":
        open(os.path.join(barrier, f"first_{os.getpid()}"), "w").close()
    kart_core.build(getattr(marker_tasks, name)(workspace_directory=workspace, barrier=barrier))
    if first == "1":
        open(os.path.join(barrier, "committed"), "w").close()
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The task module, importable here and in the writer processes."""
    (tmp_path / "marker_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    import importlib

    sys.modules.pop("marker_tasks", None)
    return importlib.import_module("marker_tasks")


def _writer(tmp_path: Path, mode: str, workspace: str, task: str) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / f"go_{task}"
    process = subprocess.Popen(
        [sys.executable, str(script), mode, workspace, str(go), task],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    return process, go


def _wait_for_pause(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while (line := process.stdout.readline().strip()) != b"paused":
        assert time.monotonic() < deadline and process.poll() is None, (line, process.stderr and process.stderr.read())


def _marker(task: Any) -> str:
    return log_task_path(task, MANIFEST).removesuffix(MANIFEST.extension) + MARKER_SUFFIX


@pytest.mark.slow
def test_a_reader_during_a_rerun_of_two_outputs_waits_for_the_commit(
    tasks: Any, any_workspace: str, signing: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The wait is part of the load: its attempt stands (a second one could meet the next commit; CI did)."""
    kart_core.build(tasks.Pair(workspace_directory=any_workspace))
    writer, go = _writer(tmp_path, "pause", any_workspace, "Pair")
    _wait_for_pause(writer)  # the manifest and the weight are new, the bias is old
    pair = tasks.Pair(workspace_directory=any_workspace)
    assert storage_for(any_workspace).exists(_marker(pair))
    release = threading.Timer(1.0, go.touch)  # the reader below runs in the window, then the commit ends
    release.start()
    with caplog.at_level(logging.INFO, logger="kart_core.commit_marker"):
        loaded = kart_core.load_output(pair)  # meets the pending manifest: waits inside the load
    assert [r.getMessage() for r in caplog.records if "again" in r.getMessage()] == []
    total = kart_core.build(tasks.Sum(model=pair, workspace_directory=any_workspace))
    assert writer.wait(timeout=120) == 0
    release.join()
    assert loaded["bias"] == -loaded["weight"]
    assert total == 0.0  # weight and bias of one run
    assert not storage_for(any_workspace).exists(_marker(pair))
    new = kart_core.load_output(pair)
    assert new["bias"] == -new["weight"]


@pytest.mark.slow
def test_a_reader_of_one_output_during_its_rerun_gets_the_new_output(
    tasks: Any, any_workspace: str, signing: bool, tmp_path: Path
) -> None:
    """With signing on, the old file under the new manifest was refused as "an older version copied back"."""
    one = tasks.One(workspace_directory=any_workspace)
    old = kart_core.build(one)
    writer, go = _writer(tmp_path, "pause", any_workspace, "One")
    _wait_for_pause(writer)  # the manifest is new, the output is old
    release = threading.Timer(1.0, go.touch)
    release.start()
    seen = kart_core.build(tasks.One(workspace_directory=any_workspace))
    assert writer.wait(timeout=120) == 0
    release.join()
    assert seen != old and seen == kart_core.load_output(tasks.One(workspace_directory=any_workspace))


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["Pair", "One"])
def test_a_rerun_killed_between_its_renames_is_never_complete(
    tasks: Any, any_workspace: str, signing: bool, tmp_path: Path, task_name: str
) -> None:
    task = getattr(tasks, task_name)(workspace_directory=any_workspace)
    kart_core.build(task)
    writer, _ = _writer(tmp_path, "kill", any_workspace, task_name)
    assert writer.wait(timeout=120) == -signal.SIGKILL
    again = getattr(tasks, task_name)(workspace_directory=any_workspace)
    storage = storage_for(any_workspace)
    marker = read_marker(storage, _marker(again))  # signed with signing on: not refused
    assert marker is not None and marker.pid == writer.pid
    with pytest.raises(DamagedOutputError, match="may be from two runs") as raised:
        kart_core.load_output(again)  # a direct load, as a downstream that checked complete() just before
    assert raised.value.kind == "commit" and raised.value.commit == marker.commit
    assert raised.value.path == log_task_path(again, MANIFEST)
    assert not again.complete()  # so the next build runs it again
    if task_name == "Pair":
        assert kart_core.build(tasks.Sum(model=again, workspace_directory=any_workspace)) == 0.0
    else:
        kart_core.build(again)
    assert not storage.exists(_marker(again))
    assert getattr(tasks, task_name)(workspace_directory=any_workspace).complete()


@pytest.mark.slow
def test_kart_verify_reports_an_interrupted_commit_and_delete_clears_it(
    tasks: Any, workspace: str, tmp_path: Path
) -> None:
    pair = tasks.Pair(workspace_directory=workspace)
    kart_core.build(pair)
    writer, _ = _writer(tmp_path, "kill", workspace, "Pair")
    assert writer.wait(timeout=120) == -signal.SIGKILL
    # Sizes only: the new weight and the old bias have the committed sizes; the marker tells.
    (problem,) = verify_workspace(workspace, hashes=False).problems
    report = verify_workspace(workspace)
    assert problem in report.problems  # with hashes, the old bias's hash mismatch is found besides
    assert not report.ok and problem.kind == "commit" and problem.path == log_task_path(pair, MANIFEST)
    assert problem.task == pair.kart_label() and "may be from two runs" in problem.detail
    deleted = remove_damaged(report)
    assert set(deleted) == {pair.output()["weight"].path(), pair.output()["bias"].path(), _marker(pair), problem.path}
    assert verify_workspace(workspace).ok
    assert (
        kart_core.build(tasks.Sum(model=tasks.Pair(workspace_directory=workspace), workspace_directory=workspace))
        == 0.0
    )


@pytest.mark.slow
def test_a_damaged_commit_found_at_load_is_repaired_by_the_downstream(
    tasks: Any, workspace: str, tmp_path: Path
) -> None:
    """The downstream's run loads the half-replaced pair (its complete() looked before the kill): the pair is rebuilt."""
    pair = tasks.Pair(workspace_directory=workspace)
    kart_core.build(pair)
    writer, _ = _writer(tmp_path, "kill", workspace, "Pair")
    assert writer.wait(timeout=120) == -signal.SIGKILL
    assert kart_core.run_one(tasks.Sum(model=tasks.Pair(workspace_directory=workspace), workspace_directory=workspace))
    assert kart_core.load_output(tasks.Sum(model=pair, workspace_directory=workspace)) == 0.0
    assert not os.path.exists(_marker(pair))


def test_a_marker_whose_commit_never_wrote_the_manifest_is_removed(tasks: Any, workspace: str) -> None:
    """A committer killed after its marker and before its manifest moved nothing: the outputs are one run's."""
    pair = tasks.Pair(workspace_directory=workspace)
    before = kart_core.build(pair)
    record = pair.output()["weight"].record
    with open(_marker(pair), "wb") as file:
        file.write(Marker("0" * 32, "", 1, time.time()).to_bytes())
    assert settled(record)
    assert not os.path.exists(_marker(pair))
    assert tasks.Pair(workspace_directory=workspace).complete()
    assert kart_core.load_output(tasks.Pair(workspace_directory=workspace)) == before


@pytest.mark.slow
def test_two_racing_processes_keep_one_runs_outputs_and_run_logs(
    tasks: Any, any_workspace: str, tmp_path: Path
) -> None:
    """The first committer wins; the second discards its staging, its task log and processing time with it."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), any_workspace, str(barrier), first, "Race"],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for first in ("1", "0")
    ]
    for racer in racers:
        assert racer.wait(timeout=120) == 0, racer.stderr and racer.stderr.read()
    first = racers[0].pid
    race = tasks.Race(workspace_directory=any_workspace, barrier=str(barrier))
    output = kart_core.load_output(race)
    assert output["pid"] == first
    task_log = race.get_task_log()
    assert task_log["pid"] == first and task_log["value"] == output["value"]
    assert isinstance(race.get_processing_time(), float)  # committed with that task log


@pytest.mark.slow
def test_a_racing_run_whose_record_is_in_the_manifest_keeps_the_winners_record(tasks: Any, tmp_path: Path) -> None:
    """kart_run_record_in_manifest (Kedro node runs): the loser writes no run log file and no record."""
    workspace = str(tmp_path / "ws")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), workspace, str(barrier), first, "RaceRecorded"],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for first in ("1", "0")
    ]
    for racer in racers:
        assert racer.wait(timeout=120) == 0, racer.stderr and racer.stderr.read()
    first = racers[0].pid
    race = tasks.RaceRecorded(workspace_directory=workspace, barrier=str(barrier))
    output = kart_core.load_output(race)
    assert output["pid"] == first
    manifest = json.loads(Path(log_task_path(race, MANIFEST)).read_text())
    assert manifest["run"]["task_log"]["pid"] == first
    assert manifest["run"]["task_log"]["value"] == output["value"]
    assert "pending" not in manifest
    logs = sorted(path.parent.name for path in Path(workspace, "log").glob("*/RaceRecorded_*"))
    assert logs == ["manifest"]  # neither racer wrote run log files


def _digests_of_the_bytes(task: Any) -> dict[str, str]:
    """Each output's content hash computed from the file as it is now (after any signature header)."""
    from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
    from kart_core.signing import HEADER_SIZE, is_sealed
    from kart_core.structure import leaves

    named = {}
    for target in leaves(task.output()):
        path = target.path()
        with storage_for(path).open_read(path) as file:
            data = file.read()
        body = data[HEADER_SIZE:] if is_sealed(data) else data
        _, value = digest_stream(io.BytesIO(body))
        named[path] = f"{DEFAULT_ALGORITHM}:{value}"
    return named


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["Pair", "One"])
def test_output_digests_during_a_rerun_wait_for_its_commit(
    tasks: Any, any_workspace: str, signing: bool, tmp_path: Path, task_name: str
) -> None:
    """The rerun is paused between its renames (manifest pending and new, the last output old): output_digests
    waits for it and names what its commit left. Before, it returned at once with the pending manifest's
    names while the last output was still the old run's."""
    task = getattr(tasks, task_name)(workspace_directory=any_workspace)
    kart_core.build(task)
    before = kart_core.output_digests(task)
    writer, go = _writer(tmp_path, "pause", any_workspace, task_name)
    try:
        _wait_for_pause(writer)
        got: dict[str, str] = {}
        reader = threading.Thread(target=lambda: got.update(kart_core.output_digests(task)))
        reader.start()
        reader.join(timeout=1.0)
        assert reader.is_alive() and not got  # waiting for the commit in progress
    finally:
        go.touch()  # never leave the writer paused holding the commit lock (a failed assertion above)
        try:
            writer.wait(timeout=120)
        except subprocess.TimeoutExpired:
            writer.kill()
    reader.join(timeout=120)
    assert writer.returncode == 0
    assert got == _digests_of_the_bytes(task) == kart_core.output_digests(task)
    assert got != before


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["Pair", "One"])
def test_output_digests_refuse_outputs_a_killed_rerun_left_half_replaced(
    tasks: Any, any_workspace: str, tmp_path: Path, task_name: str
) -> None:
    """Before, they named the pending manifest's content, which the files on disk did not hold."""
    task = getattr(tasks, task_name)(workspace_directory=any_workspace)
    kart_core.build(task)
    writer, _ = _writer(tmp_path, "kill", any_workspace, task_name)
    assert writer.wait(timeout=120) == -signal.SIGKILL
    with pytest.raises(DamagedOutputError, match=r"may be from two runs.*rerun=True") as raised:
        kart_core.output_digests(task)
    assert raised.value.kind == "commit" and raised.value.path == log_task_path(task, MANIFEST)
    kart_core.build(task)  # the next build runs it again (the task is incomplete): named again
    assert kart_core.output_digests(task) == _digests_of_the_bytes(task)
