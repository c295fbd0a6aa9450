"""Loads of a run's inputs made outside the run's context count as its inputs (attacker at16 G2).

A thread that ``run()`` starts does not inherit the run's context, and a worker of a process pool made before the
build holds no copy of it: ``self.input()`` loaded there (``pool.map(lambda t: t.load(), self.input().values())``,
the common way to load inputs in parallel) was recorded nowhere, so after the upstream was rerun with other content
the downstream was served its old value. Now such a load counts for the one running task of the process that
requires the target (``kart_core.transaction.off_context``); a target pickled during the run carries the run's relay
to the process that loads it. Where kart cannot tell which run a load belongs to (two running siblings of one
upstream, both under way when the thread starts; a target no running task requires) it records it for none and warns
each run that may have started the thread. Real threads and processes, local disk and moto's S3.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.storage import storage_for

_VALUE = "KART_TEST_OFF_CONTEXT_UPVAL"
POOLS: dict[str, Any] = {}  # made before the build (a notebook's or a server's long-lived pool)
BARRIER = {"both running": threading.Barrier(2)}


class OcUp(gokart.TaskOnKart[int]):
    part = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(int(os.environ[_VALUE]) * self.part)


class OcOther(gokart.TaskOnKart[int]):
    """Required by no running task: its loads in a thread cannot be told to belong to any run."""

    def run(self) -> None:
        self.dump(1)


def _load(target: gokart.TargetOnKart) -> Any:
    return target.load()


def _pool_map(task: OcDown) -> int:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return sum(pool.map(lambda target: target.load(), task.input().values()))


def _thread(task: OcDown) -> int:
    got: list[int] = []
    threads = [threading.Thread(target=lambda t=t: got.append(t.load())) for t in task.input().values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(got)


def _requires_output(task: OcDown) -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return sum(pool.submit(lambda: [up.output().load() for up in task.requires().values()]).result())


def _thread_pool_made_before(task: OcDown) -> int:
    return sum(POOLS["thread"].map(_load, task.input().values()))


def _fork_pool_made_before(task: OcDown) -> int:
    return sum(POOLS["fork"].map(_load, list(task.input().values())))


def _spawn_pool(task: OcDown) -> int:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(_load, list(task.input().values())))


_HOWS = {
    "thread pool map of self.input()": _pool_map,
    "threading.Thread per input": _thread,
    "thread pool, requires().output()": _requires_output,
    "thread pool made before the build": _thread_pool_made_before,
    "fork pool made before the build": _fork_pool_made_before,
    "spawn ProcessPoolExecutor, self.input()": _spawn_pool,
}
_BEFORE = {"thread pool made before the build", "fork pool made before the build"}


class OcDown(gokart.TaskOnKart[int]):
    how = luigi.Parameter()
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)  # seeded runs take turns

    def requires(self) -> dict[str, OcUp]:
        return {
            "one": OcUp(workspace_directory=self.workspace_directory),
            "two": OcUp(part=2, workspace_directory=self.workspace_directory),
        }

    def run(self) -> None:
        self.dump(_HOWS[self.how](self))


@pytest.fixture
def pools_made_before() -> Iterator[None]:
    with (
        concurrent.futures.ThreadPoolExecutor(2) as threads,
        multiprocessing.get_context("fork").Pool(1) as forked,
    ):
        threads.submit(int).result()  # its worker is running before the build
        POOLS.update(thread=threads, fork=forked)
        yield
        POOLS.clear()


def _inputs(task: gokart.TaskOnKart[Any]) -> list[tuple[str, str]]:
    record = task.output().record
    document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    return sorted((item["task"], item["commit"]) for item in document.get("inputs", []))


def _commits(workspace: str) -> list[tuple[str, str]]:
    found = []
    for part in (1, 2):
        record = OcUp(part=part, workspace_directory=workspace).output().record
        document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
        found.append((record.task, document["outputs"][record.key]["commit"]))
    return sorted(found)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
@pytest.mark.parametrize("how", list(_HOWS))
def test_inputs_loaded_outside_the_run_s_context_make_the_task_stale(
    any_workspace: str, how: str, workers: int, executor: str, monkeypatch: pytest.MonkeyPatch, pools_made_before: None
) -> None:
    if how in _BEFORE and executor == "process":
        pytest.skip("a pool made in the test process does not work in a forked worker process")
    monkeypatch.setenv(_VALUE, "5")
    down = OcDown(how=how, workspace_directory=any_workspace)
    assert gokart.build([down], workers=workers, executor=executor, reset_register=False) == [15]
    assert _inputs(down) == _commits(any_workspace)  # both loads recorded, with the commits they read

    monkeypatch.setenv(_VALUE, "7")
    gokart.build(OcUp(workspace_directory=any_workspace, rerun=True), reset_register=False)
    again = OcDown(how=how, workspace_directory=any_workspace)
    assert not again.complete()
    assert gokart.build([again], workers=workers, executor=executor, reset_register=False) == [7 + 10]
    assert _inputs(again) == _commits(any_workspace)


class OcSingle(gokart.TaskOnKart[int]):
    """A downstream of one upstream of its own, loading it in a thread its run() starts once both runs are under way."""

    part = luigi.IntParameter()
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)

    def requires(self) -> OcUp:
        return OcUp(part=self.part, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        BARRIER["both running"].wait(timeout=30)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            self.dump(pool.submit(_load, self.input()).result())


class OcSibling(gokart.TaskOnKart[int]):
    """One of two downstreams of the same upstream, loading it in a thread started once both runs are under way:
    through ``self.input()`` (a view naming its reader) or through ``self.requires().output()`` (no reader named)."""

    tag = luigi.Parameter()
    via = luigi.Parameter()
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)

    def requires(self) -> OcUp:
        return OcUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        BARRIER["both running"].wait(timeout=30)
        target = self.input() if self.via == "input" else self.requires().output()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            value = pool.submit(_load, target).result()
            pool.submit(_load, OcOther(workspace_directory=self.workspace_directory).output()).result()
        BARRIER["both loaded"].wait(timeout=30)  # neither run is over while the other's thread loads
        self.dump(value)


def _siblings(workspace: str, via: str, caplog: pytest.LogCaptureFixture) -> tuple[list[OcSibling], list[str]]:
    """Build two OcSibling with workers=2 threads, both runs under way before either loads; return them and what
    kart warned about loads it recorded for no run."""
    BARRIER["both running"] = threading.Barrier(2)
    BARRIER["both loaded"] = threading.Barrier(2)
    gokart.build(OcOther(workspace_directory=workspace), reset_register=False)
    siblings = [OcSibling(tag=tag, via=via, workspace_directory=workspace) for tag in ("a", "b")]
    with caplog.at_level(logging.WARNING, logger="kart_core.transaction"):
        assert gokart.build(siblings, workers=2, executor="thread", reset_register=False) == [5, 5]
    warned = [record.getMessage() for record in caplog.records if "recorded as no run's input" in record.getMessage()]
    return siblings, warned


def test_two_running_siblings_each_get_the_load_of_what_their_input_handed_out(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """self.input() in a run hands out targets that name the run: each sibling records its own thread's load of
    the shared upstream. The load of a target no running task requires (OcOther) is warned, once per run."""
    monkeypatch.setenv(_VALUE, "5")
    siblings, warned = _siblings(str(tmp_path / "ws"), "input", caplog)
    record = OcUp(workspace_directory=str(tmp_path / "ws")).output().record
    manifest = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    up = (record.task, manifest["outputs"][record.key]["commit"])
    assert [_inputs(sibling) for sibling in siblings] == [[up], [up]]
    assert sorted(message.split(":")[0] for message in warned) == sorted(sibling.kart_label() for sibling in siblings)
    for message in warned:
        assert "OcOther" in message and "no running task requires OcOther" in message


def test_a_load_kart_cannot_attribute_is_warned_and_recorded_for_no_run(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two running siblings of one upstream, both under way when their threads load it through a target no input()
    handed out: neither run records the load (not the other's), and each run is warned once, with the way out. Each
    records the upstream it requires as it was when its run began (the input floor, ``"required": true``), so a
    rerun of it with other content still makes both stale."""
    monkeypatch.setenv(_VALUE, "5")
    siblings, warned = _siblings(str(tmp_path / "ws"), "requires", caplog)
    assert sorted(message.split(":")[0] for message in warned) == sorted(sibling.kart_label() for sibling in siblings)
    for message in warned:
        assert "OcUp" in message and "all require" in message and "self.load()" in message
    for sibling in siblings:
        record = sibling.output().record
        document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
        assert [(item["task"].split("[")[0], item.get("required")) for item in document["inputs"]] == [("OcUp", True)]


class OcKeepsView(gokart.TaskOnKart[int]):
    """Keeps the first run's ``self.input()`` in a cache its class holds and loads it in a thread of every run."""

    name = luigi.Parameter()
    cache: dict[str, Any] = {}  # noqa: RUF012 - the cache under test: shared by the runs on purpose

    def requires(self) -> OcUp:
        return OcUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        target = self.cache.setdefault(self.workspace_directory, self.input())
        found: list[int] = []
        thread = threading.Thread(target=lambda: found.append(target.load()))
        thread.start()
        thread.join()
        self.dump(found[0] * 10)


def test_a_view_kept_past_its_run_counts_for_the_run_that_loads_it(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker at18 I13: a target input() handed out to run A, kept in a cache and loaded in a thread of run B after A
    ended, counted for A's ended run, so for nobody: B stayed fresh with the old value after its upstream reran."""
    monkeypatch.setenv(_VALUE, "1")
    first, second = (OcKeepsView(name=name, workspace_directory=workspace) for name in ("a", "b"))
    assert gokart.build([first, second], reset_register=False) == [10, 10]
    assert [task for task, _ in _inputs(second)] == [
        f"OcUp[{OcUp(workspace_directory=workspace).make_unique_id()[:8]}]"
    ]
    monkeypatch.setenv(_VALUE, "2")
    gokart.build(OcUp(workspace_directory=workspace, rerun=True), reset_register=False)
    assert gokart.build(OcKeepsView(name="b", workspace_directory=workspace), reset_register=False) == 20


class OcLoadsOther(gokart.TaskOnKart[int]):
    """Requires nothing; loads OcOther's output (no running task requires it) in a worker of a pool made before."""

    def run(self) -> None:
        other = OcOther(workspace_directory=self.workspace_directory)
        self.dump(POOLS["thread"].submit(_load, other.output()).result() + 1)


def test_a_load_nobody_requires_in_a_worker_of_a_pool_made_before_the_run_is_warned(
    tmp_path: Any, pools_made_before: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A target no running task requires, loaded in a worker alive before the run began: recorded for no run, as in
    a thread run() starts, and now warned as there (before: silently, the worker being an outsider of every run)."""
    workspace = str(tmp_path / "ws")
    gokart.build(OcOther(workspace_directory=workspace), reset_register=False)
    task = OcLoadsOther(workspace_directory=workspace)
    with caplog.at_level(logging.WARNING, logger="kart_core.transaction"):
        assert gokart.build(task, reset_register=False) == 2
    warned = [record.getMessage() for record in caplog.records if "recorded as no run's input" in record.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(task.kart_label())
    assert "no running task requires OcOther" in warned[0]
    assert _inputs(task) == []
