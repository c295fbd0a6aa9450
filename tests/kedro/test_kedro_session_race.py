"""Two KartRunner sessions of one project at once, with other parameters, writing one persistent dataset.

``one(params:p) -> o_out`` (a persistent JSON file) ``-> readone(o_out, params:v) -> o_report``. Docs/kedro.md
("Several sessions at once") lets sessions sharing a workspace run together (two environments, a notebook and a
CLI run). The interleavings attacker at17 found (H7, H8) are forced here, not hoped for: a dataset whose load or
save is held at a gate (a file the test creates) until the other session is done.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kedro.io import (
    AbstractDataset,
    AbstractVersionedDataset,
    DataCatalog,
    MemoryDataset,
    SharedMemoryDataCatalog,
    Version,
)
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset
from node_journal import ran, record
from runner_choice import make_runner


def _gate(gate: str | None, what: str) -> None:
    """Hold here when the test armed ``{gate}/hold-{what}``: take it (once, whichever process comes first), say so
    (``at-{what}``) and wait until the test creates ``go-{what}``."""
    if gate is None:
        return
    try:
        os.rename(os.path.join(gate, f"hold-{what}"), os.path.join(gate, f"at-{what}"))
    except FileNotFoundError:
        return
    _wait_for(Path(gate) / f"go-{what}")


def _wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


class GatedJson(AbstractDataset[Any, Any]):
    """A JSON file whose load can be held at a gate (before it reads) and whose save (after it wrote the file)."""

    def __init__(self, filepath: str, gate: str | None = None) -> None:
        self._filepath, self._gate = Path(filepath), gate

    def load(self) -> Any:
        _gate(self._gate, "load")
        return json.loads(self._filepath.read_text())

    def save(self, data: Any) -> None:
        self._filepath.write_text(json.dumps(data, sort_keys=True))
        _gate(self._gate, "save")

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class GatedVersionedJson(AbstractVersionedDataset[Any, Any]):
    """``GatedJson`` with Kedro versioning: each save a new version folder."""

    def __init__(self, filepath: str, gate: str | None = None, version: Version | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)
        self._gate = gate

    def load(self) -> Any:
        _gate(self._gate, "load")
        return json.loads(Path(self._get_load_path()).read_text())

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, sort_keys=True))
        _gate(self._gate, "save")

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except Exception:  # no version saved yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def one(p: int) -> dict[str, int]:
    record("one")
    return {"p": p}


def readone(o: dict[str, int], v: int) -> dict[str, int]:
    record("readone")
    return {"o_seen": o["p"], "v": v}


PIPELINE = Pipeline(
    [node(one, "params:p", "o_out", name="one"), node(readone, ["o_out", "params:v"], "o_report", name="readone")]
)


class Project:
    """The datasets' files, the gate folder and the workspace of one test."""

    def __init__(self, tmp_path: Path, versioned: bool) -> None:
        self.root, self.versioned = tmp_path, versioned
        self.gate = tmp_path / "gate"
        self.gate.mkdir()

    def catalog(self, runner_class: type, p: int, v: int) -> Any:
        kind = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
        path, gate = str(self.root / "o_out.json"), str(self.gate)
        o_out = GatedVersionedJson(path, gate, Version(None, None)) if self.versioned else GatedJson(path, gate)
        return kind(
            {
                "o_out": o_out,
                "o_report": JSONDataset(filepath=str(self.root / "o_report.json")),
                "params:p": MemoryDataset(p),
                "params:v": MemoryDataset(v),
            }
        )

    def run(self, p: int, v: int, runner_class: type = KartRunner) -> dict[str, int]:
        """One session; ``o_report`` after it."""
        make_runner(runner_class, str(self.root / "ws")).run(PIPELINE, self.catalog(runner_class, p, v))
        return self.report()

    def report(self) -> dict[str, int]:
        return json.loads((self.root / "o_report.json").read_text())

    def out(self) -> dict[str, int]:
        catalog = self.catalog(KartRunner, 0, 0)
        return catalog.get("o_out").load()

    def arm(self, what: str) -> None:
        (self.gate / f"hold-{what}").touch()

    def at(self, what: str) -> None:
        _wait_for(self.gate / f"at-{what}")

    def go(self, what: str) -> None:
        (self.gate / f"go-{what}").touch()


def _in_thread(target: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # re-raised by the test after join
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors


@pytest.mark.parametrize(
    ("runner_class", "versioned"),
    [(KartRunner, False), (KartThreadRunner, False), (KartParallelRunner, False), (KartRunner, True)],
)
def test_a_reader_whose_persistent_input_another_session_rewrites_while_it_runs_is_not_cached(
    runner_class: type, versioned: bool, tmp_path: Path, journal: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Session C (p=1, a new v) serves ``one`` and runs ``readone``, whose load is held; session D (p=2) serves
    ``one`` (writing o_out back to p=2) meanwhile; C's load then reads p=2's bytes. C's result must not be cached
    under "o_out holds p=1's content": kart before served {"o_seen": 2} for every later p=1 run (attacker at17 H8)."""
    project = Project(tmp_path, versioned)
    assert project.run(1, 1) == {"o_seen": 1, "v": 1} and ran() == ["one", "readone"]
    assert project.run(2, 1) == {"o_seen": 2, "v": 1} and ran() == ["one", "readone"]
    project.arm("load")
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        thread, errors = _in_thread(lambda: project.run(1, 2, runner_class))  # C
        project.at("load")  # C served one (o_out holds p=1) and its readone is about to read o_out
        assert project.run(2, 1) == {"o_seen": 2, "v": 1}  # D: one and readone served, o_out written back to p=2
        assert ran() == [] and project.out() == {"p": 2}
        project.go("load")
        thread.join()
    assert not errors, errors
    warned = [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    if versioned:  # Kedro's dataset keeps the latest version it resolved: C reads the one it served, p=1's
        assert ran() == ["readone"] and project.report() == {"o_seen": 1, "v": 2}
    else:
        assert ran() == ["readone"] and project.report() == {"o_seen": 2, "v": 2}  # C's outputs stand
        assert len(warned) == 1 and "'readone'" in warned[0] and "'o_out'" in warned[0], warned
    # E, alone: one serves p=1 back; readone computes from it (kart before: served {"o_seen": 2, "v": 2}).
    assert project.run(1, 2) == {"o_seen": 1, "v": 2} and ran() == (["readone"] if warned else [])
    assert project.run(1, 2) == {"o_seen": 1, "v": 2} and ran() == []  # cached once nothing raced
    assert project.run(2, 1) == {"o_seen": 2, "v": 1} and ran() == []


ONE = Pipeline([node(one, "params:p", "o_out", name="one")])


def _in_location_lock(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside ``kart_core.hold_location_locks`` now: waiting there for a lock another session
    holds (kart's file lock polls ``flock`` without blocking, so ``/proc/locks`` shows no waiter)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "hold_location_locks":
            return True
        frame = frame.f_back
    return False


def _until(condition: Any, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the other session neither finished nor waited for the lock")
        time.sleep(0.005)


def _interleaved(project: Project, first: Any, second: Any) -> None:
    """``first`` (a session) in a thread, held at o_out's save gate right after it wrote the file; then ``second``
    in another thread, until it is done or waits for a location lock (``first`` holds o_out's); then ``first``
    goes on."""
    project.arm("save")
    thread, errors = _in_thread(first)
    project.at("save")
    other, other_errors = _in_thread(second)
    _until(lambda: not other.is_alive() or _in_location_lock(other))
    project.go("save")
    thread.join()
    other.join()
    assert not errors and not other_errors, (errors, other_errors)


@pytest.fixture
def _lock_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own lock folder (worker processes inherit it): its waiters are its sessions only."""
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))


@pytest.mark.usefixtures("_lock_folder")
@pytest.mark.parametrize(
    ("runner_class", "versioned"),
    [(KartRunner, False), (KartThreadRunner, False), (KartParallelRunner, False), (KartRunner, True)],
)
def test_a_node_records_the_state_of_what_it_saved_not_another_sessions_save(
    runner_class: type, versioned: bool, tmp_path: Path, journal: str
) -> None:
    """Session A (p=1) runs ``one`` and is held right after its save wrote o_out; session B (p=2) runs ``one`` too.
    B's save must not land before A's state read: kart before recorded B's file under A's key, and every later
    p=1 run served the p=2 file as "cached" without writing (attacker at17 H7)."""
    project = Project(tmp_path, versioned)

    def session(p: int, runner: type = KartRunner) -> Any:
        return lambda: make_runner(runner, str(tmp_path / "ws")).run(ONE, project.catalog(runner, p, 0))

    _interleaved(project, session(1, runner_class), session(2))
    assert sorted(ran()) == ["one", "one"]
    assert project.out() == {"p": 2}  # B saved last
    session(1)()  # C, alone: o_out holds B's file, which kart wrote for p=2: p=1's cached result replaces it
    assert project.out() == {"p": 1}  # kart before: "cached", o_out left at {"p": 2}
    # C serves one, unless A's and B's ends of run raced on the runner's shared record of what kart wrote
    # (.kart/written.pkl, read-modify-write): then it counts as empty, B's file as written outside kart, and C reruns.
    assert ran() in ([], ["one"])
    session(2)()
    assert project.out() == {"p": 2} and ran() == []
    session(1)()
    assert project.out() == {"p": 1} and ran() == []


@pytest.mark.usefixtures("_lock_folder")
@pytest.mark.parametrize("versioned", [False, True])
def test_a_cached_node_records_the_state_of_what_it_wrote_back_not_another_sessions_save(
    versioned: bool, tmp_path: Path, journal: str
) -> None:
    """Session A (p=1) serves ``one`` and writes its cached result back, held right after the write; session B
    (p=2) serves ``one`` too, writing p=2's back. B's write must not land before A's state read of its write-back
    (the states A records for p=1's run)."""
    project = Project(tmp_path, versioned)

    def session(p: int) -> Any:
        return lambda: make_runner(KartRunner, str(tmp_path / "ws")).run(ONE, project.catalog(KartRunner, p, 0))

    session(1)()
    session(2)()
    assert ran() == ["one", "one"] and project.out() == {"p": 2}
    _interleaved(project, session(1), session(2))
    assert ran() == [] and project.out() == {"p": 2}  # both served; B wrote last
    session(1)()
    assert project.out() == {"p": 1} and ran() == []
