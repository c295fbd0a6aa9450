"""Two ``kart_core.build()`` calls in threads of one process over graphs that share tasks.

luigi's instance cache hands both builds the same task objects (``T() is T()``), so anything a build
keeps on a task object, or finds through it, is shared: a notebook running two builds, a web service
answering two requests, an Airflow or Kedro worker running builds in threads. Each build must see
what another process would see: committed outputs only, and its own ``rerun``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import GokartBuildError
from kart_core.graph import node_key
from kart_core.orchestrate import orchestrate


def _wait_for(path: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


class ThrSlow(kart_core.TaskOnKart[str]):
    """Dumps its output, says so (file ``dumped``), then waits for file ``go``; ``fail`` raises after that."""

    signals = luigi.Parameter(significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def run(self) -> None:
        self.dump("T output")
        Path(self.signals, "dumped").touch()
        _wait_for(Path(self.signals, "go"))
        if self.fail:
            raise RuntimeError("ThrSlow fails after its dump")


class ThrReader(kart_core.TaskOnKart[str]):
    """Loads ThrSlow's output; says it started (file ``reader``)."""

    signals = luigi.Parameter(significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> Any:
        return ThrSlow(signals=self.signals, fail=self.fail)

    def run(self) -> None:
        Path(self.signals, "reader").touch()
        self.dump("reader saw " + self.load())


def _in_thread(function: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def call() -> None:
        try:
            out["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            out["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    ("fail", "workers", "executor"),
    [(False, 1, "thread"), (True, 1, "thread"), (False, 2, "thread"), (True, 2, "process")],
)
def test_a_build_never_takes_another_builds_staged_output_as_complete(
    workspace: str, tmp_path: Path, fail: bool, workers: int, executor: str
) -> None:
    """Build A runs ThrSlow, which has dumped (staged) and not committed; build B, in a thread started then
    (a request's thread), needs it. B must wait for that run (or run it itself) and load only a committed
    output: with ``fail``, A's run commits nothing, so B reports ThrSlow's own failure.

    Before, B's walk joined A's run through the shared task object (a thread started after that run began
    counts as one the run started), found the staged file, counted ThrSlow as cached and ran ThrReader, which
    failed with MissingOutputError (or, had A committed in between, loaded an output B never checked).
    """
    signals = tmp_path / "signals"
    signals.mkdir()
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    slow = ThrSlow(signals=str(signals), fail=fail)
    thread_a, out_a = _in_thread(kart_core.build, slow)
    _wait_for(signals / "dumped")
    thread_b, out_b = _in_thread(
        kart_core.build, ThrReader(signals=str(signals), fail=fail), workers=workers, executor=executor
    )
    # B's walk is quick: on the old code its reader started (or B finished) well within this.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and thread_b.is_alive() and not (signals / "reader").exists():
        time.sleep(0.01)
    (signals / "go").touch()
    thread_a.join(60)
    thread_b.join(60)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    if not fail:
        assert out_a == {"value": "T output"}
        assert out_b == {"value": "reader saw T output"}
        return
    for out in (out_a, out_b):
        error = out["error"]
        assert isinstance(error, GokartBuildError)
        assert "RuntimeError: ThrSlow fails after its dump" in str(error)
        assert "MissingOutputError" not in str(error)
        assert list(error.raised_exceptions) == [slow.make_unique_id()]
    assert not (signals / "reader").exists()


class ThrSource(kart_core.TaskOnKart[int]):
    """Dumps the value in file ``value`` of ``signals`` (a rerun with another value replaces what was loaded)."""

    signals = luigi.Parameter(significant=False)

    def run(self) -> None:
        self.dump(int(Path(self.signals, "value").read_text()))


class ThrStale(kart_core.TaskOnKart[int]):
    """Loads ThrSource. Its ``complete()`` (luigi lets a task override it) pauses in the threads named
    ``pause_before`` / ``pause_after`` until their files appear, saying so in ``<name>.before`` / ``.after``."""

    signals = luigi.Parameter(significant=False)

    def requires(self) -> Any:
        return ThrSource(signals=self.signals)

    def run(self) -> None:
        self.dump(self.load() * 10)

    def complete(self) -> bool:
        name, signals = threading.current_thread().name, Path(self.signals)
        if name == "pause_before" and not (signals / f"{name}.before").exists():
            (signals / f"{name}.before").touch()
            _wait_for(signals / f"{name}.go")
        done = super().complete()
        if name == "pause_after" and not (signals / f"{name}.after").exists():
            (signals / f"{name}.after").touch()
            _wait_for(signals / f"{name}.go")
        return done


def test_a_builds_stale_task_stays_stale_for_it_while_another_build_checks_it(workspace: str, tmp_path: Path) -> None:
    """Build B's walk finds ThrStale stale (ThrSource was rerun with another value since ThrStale loaded it);
    build A, in another thread, starts checking the same task object meanwhile. B's result still names ThrStale
    stale, and B runs it on the new value.

    Before, the walk's findings were kept on the shared task object: A's walk re-armed it (``kart_stale``
    emptied) between B's ``complete()`` and B reading what it found, so B's summary lost the stale task.
    """
    signals = tmp_path / "signals"
    signals.mkdir()
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    (signals / "value").write_text("1")
    stale = ThrStale(signals=str(signals))
    assert kart_core.build(stale) == 10
    (signals / "value").write_text("2")
    assert kart_core.build(ThrSource(signals=str(signals), rerun=True)) == 2
    out_b: dict[str, Any] = {}
    thread_b = threading.Thread(target=lambda: out_b.update(result=orchestrate([stale])), name="pause_after")
    thread_b.start()
    _wait_for(signals / "pause_after.after")  # B's walk found it stale, and holds
    out_a: dict[str, Any] = {}
    thread_a = threading.Thread(target=lambda: out_a.update(result=orchestrate([stale])), name="pause_before")
    thread_a.start()
    _wait_for(signals / "pause_before.before")  # A's walk re-armed it for A, and holds
    (signals / "pause_after.go").touch()
    thread_b.join(60)
    (signals / "pause_before.go").touch()
    thread_a.join(60)
    key = node_key(stale)
    assert out_b["result"].stale == [key]
    assert out_b["result"].ran == [key]
    assert out_a["result"].cached == [key]
    assert stale.output().load() == 20


@pytest.mark.parametrize(
    ("fail", "workers", "factory"),
    [(False, 1, False), (True, 1, False), (False, 2, False), (True, 2, False), (False, 2, True), (True, 2, True)],
)
def test_luigi_build_never_takes_another_builds_staged_output_as_complete(
    workspace: str, tmp_path: Path, fail: bool, workers: int, factory: bool
) -> None:
    """As above, with B a ``luigi.build([...], workers=N)`` (luigi's own worker, or kart's through gokart's
    ``WorkerSchedulerFactory``) in a thread started while A's run of ThrSlow has dumped and not committed.

    Before, luigi's worker asked ThrSlow.complete() from that thread, which joined A's run, found the staged
    file and counted ThrSlow done: ThrReader ran at once (workers=1) or failed in its process (workers=2).
    """
    signals = tmp_path / "signals"
    signals.mkdir()
    config = luigi.configuration.get_config()
    config.set("TaskOnKart", "workspace_directory", workspace)
    slow = ThrSlow(signals=str(signals), fail=fail)
    thread_a, out_a = _in_thread(kart_core.build, slow)
    _wait_for(signals / "dumped")
    # luigi's worker installs a signal handler unless told not to: luigi.build runs in the main thread only.
    # Set after A started: kart_core.build warns that [gokart_worker] keys mean nothing to its executor.
    config.set("gokart_worker" if factory else "worker", "no_install_shutdown_handler", "true")
    reader = ThrReader(signals=str(signals), fail=fail)
    factories = {"worker_scheduler_factory": kart_core.WorkerSchedulerFactory()} if factory else {}
    thread_b, out_b = _in_thread(
        luigi.build, [reader], local_scheduler=True, workers=workers, detailed_summary=True, **factories
    )
    # On the old code B's reader started, or B ended, well within this.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and thread_b.is_alive() and not (signals / "reader").exists():
        time.sleep(0.01)
    assert not (signals / "reader").exists() and thread_b.is_alive()
    (signals / "go").touch()
    thread_a.join(60)
    thread_b.join(120)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    summary = out_b["value"].summary_text
    if not fail:
        assert out_b["value"].status == luigi.LuigiStatusCode.SUCCESS, summary
        assert reader.output().load() == "reader saw T output"
        return
    assert out_b["value"].status == luigi.LuigiStatusCode.FAILED, summary
    assert "Scheduled 2 tasks of which:\n* 1 failed:\n    - 1 ThrSlow(...)\n* 1 were left pending" in summary
    assert "had failed dependencies:\n        - 1 ThrReader(...)" in summary
    assert not (signals / "reader").exists()
