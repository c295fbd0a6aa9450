"""A process pool shared by the tasks of a build: each task's work in it counts for that task's run (attacker at20 K10).

A module-level ``ProcessPoolExecutor`` (fork) forks its worker lazily, at the first ``submit``: inside the first task's
``run()``. The worker keeps a copy of that run's context, and the later tasks' jobs run in it: their ``self.load()``,
``self.input().load()`` and nested ``build()`` were credited to the first task's run (over by then: dropped with a
warning naming the wrong task), so after the later task's requirement reran, it was served with the old value. The same
with a pool whose worker exists before the build (fork, spawn, forkserver) for a job that carries no task or target.
Real process pools and builds on local disk; the upstream's value is read from a file, so a worker started before the
value changes reads the new one.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.storage import storage_for

# The pool the tasks of this module hand their work to, as a module-level pool of a user's task module would be; set
# by each test (``_shared_pool``) and shut down after it.
POOL: dict[str, Any] = {}


def _value_file(workspace: str) -> Path:
    return Path(workspace).parent / "value"


class Inner(gokart.TaskOnKart[int]):
    k = luigi.IntParameter()

    def run(self) -> None:
        self.dump(int(_value_file(self.workspace_directory).read_text()) + self.k)


def _build_inner(k: int, workspace: str) -> Any:
    return gokart.build(Inner(k=k, workspace_directory=workspace), reset_register=False)


def _load_task(task: gokart.TaskOnKart[Any]) -> Any:
    return task.load()


def _load_target(target: gokart.TargetOnKart) -> Any:
    return target.load()


class Outer(gokart.TaskOnKart[int]):
    """Hands its work to the shared pool: a nested build of Inner(k) (a job carrying only numbers and a path), or a
    load of its requirement Inner(k) through the task or its input target."""

    k = luigi.IntParameter()
    how = luigi.Parameter()
    # No seeding: on threads, runs that seed the shared generators take turns (one at a time), which workers=2 needs not.
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)

    def requires(self) -> Any:
        return [] if self.how == "build()" else Inner(k=self.k, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        pool = POOL["pool"]
        if "barrier" in POOL:  # both runs of a workers=2 build are under way before either hands out its job
            POOL["barrier"].wait(timeout=60)
        if self.how == "build()":
            value = pool.submit(_build_inner, self.k, self.workspace_directory).result()
        elif self.how == "self.load()":
            value = pool.submit(_load_task, self).result()
        else:
            value = pool.submit(_load_target, self.input()).result()
        if "barrier" in POOL:  # neither run is over while the other's job runs
            POOL["barrier"].wait(timeout=60)
        self.dump(10 * value)


class Both(gokart.TaskOnKart[list]):
    how = luigi.Parameter()

    def requires(self) -> list[Outer]:
        return [Outer(k=k, how=self.how, workspace_directory=self.workspace_directory) for k in (100, 200)]

    def run(self) -> None:
        self.dump(self.load())


def _inputs(task: gokart.TaskOnKart[Any]) -> list[tuple[str, bool]]:
    record = task.output().record
    document = json.loads(storage_for(record.manifest).read_bytes(record.manifest))
    return sorted((item["task"], item.get("built", False)) for item in document.get("inputs", []))


def _shared_pool(context: str, warm: bool) -> concurrent.futures.ProcessPoolExecutor:
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(context))
    if warm:  # its worker exists before any run
        assert pool.submit(int, "1").result() == 1
    POOL["pool"] = pool
    return pool


@pytest.fixture
def shared() -> Any:
    yield POOL
    pool = POOL.pop("pool", None)
    POOL.clear()
    if pool is not None:
        pool.shutdown()


def _rerun_inners(workspace: str, value: int) -> None:
    _value_file(workspace).write_text(str(value))
    reruns = [Inner(k=k, workspace_directory=workspace, rerun=True) for k in (100, 200)]
    assert gokart.build(reruns, reset_register=False) == [value + 100, value + 200]


def _check_both(tmp_path: Path, how: str, workers: int = 1) -> list[Outer]:
    """Build Both (Outer(100), Outer(200) through the pool), rerun both Inners with another value, build again."""
    workspace = str(tmp_path / "ws")
    _value_file(workspace).write_text("1")
    executor = {"executor": "thread"} if workers > 1 else {}
    assert gokart.build(
        Both(how=how, workspace_directory=workspace), reset_register=False, workers=workers, **executor
    ) == [1010, 2010]
    outers = [Outer(k=k, how=how, workspace_directory=workspace) for k in (100, 200)]
    _rerun_inners(workspace, 5)
    assert [outer.complete() for outer in outers] == [False, False]
    POOL.pop("barrier", None)
    assert gokart.build(Both(how=how, workspace_directory=workspace), reset_register=False) == [1050, 2050]
    return outers


@pytest.mark.parametrize("how", ["build()", "self.load()", "self.input().load()"])
def test_a_pool_forked_during_the_first_task_s_run_counts_each_task_s_work_for_its_own_run(
    tmp_path: Path, shared: Any, how: str
) -> None:
    """The worker is forked by Outer(100)'s submit; Outer(200)'s job in it (a nested build, or a load of its own
    requirement) is recorded in Outer(200)'s manifest, not sent to Outer(100)'s ended run. Before: after the Inners
    reran, the second build returned [1050, 2010] (Outer(200) served with the old value)."""
    _shared_pool("fork", warm=False)
    outers = _check_both(tmp_path, how)
    workspace = str(tmp_path / "ws")
    for outer, k in zip(outers, (100, 200), strict=True):  # each records its own Inner, and only that one
        assert _inputs(outer) == [(Inner(k=k, workspace_directory=workspace).kart_label(), how == "build()")]


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_a_pool_started_before_the_build_counts_a_nested_build_for_the_run_that_handed_it_out(
    tmp_path: Path, shared: Any, context: str
) -> None:
    """A job that carries no task or target (a nested build of Inner(k) from numbers) in a worker that existed before
    any run: its roots count for the one run of the parent whose run() executes (before: for none, so Outer was served
    stale after Inner reran, silently)."""
    _shared_pool(context, warm=True)
    outers = _check_both(tmp_path, "build()")
    workspace = str(tmp_path / "ws")
    for outer, k in zip(outers, (100, 200), strict=True):
        assert _inputs(outer) == [(Inner(k=k, workspace_directory=workspace).kart_label(), True)]


def test_two_runs_under_way_that_share_a_pool_each_record_what_either_handed_it(tmp_path: Path, shared: Any) -> None:
    """workers=2 threads, both Outer runs executing while their jobs run in the one shared worker: kart cannot tell
    which run handed it which job, so each job's nested build counts for both runs (each reruns when either Inner
    changes; neither is served stale), and the worker warns, naming both tasks."""
    _shared_pool("fork", warm=False)
    # The worker, forked during the build, logs through this handler (its copy of the process's loggers).
    log = tmp_path / "worker.log"
    handler = logging.FileHandler(log)
    logger = logging.getLogger("kart_core.child_loads")
    logger.addHandler(handler)
    workspace = str(tmp_path / "ws")
    _value_file(workspace).write_text("1")
    try:
        for expected in ([1010, 2010], [1050, 2050]):
            POOL["barrier"] = threading.Barrier(2)
            both = Both(how="build()", workspace_directory=workspace)
            assert gokart.build(both, reset_register=False, workers=2, executor="thread") == expected
            outers = [Outer(k=k, how="build()", workspace_directory=workspace) for k in (100, 200)]
            inners = sorted(Inner(k=k, workspace_directory=workspace).kart_label() for k in (100, 200))
            for outer in outers:
                assert _inputs(outer) == [(label, True) for label in inners]
            _rerun_inners(workspace, 5)
    finally:
        logger.removeHandler(handler)
        handler.close()
    labels = sorted(outer.kart_label() for outer in outers)
    warned = [line for line in log.read_text().splitlines() if "kart cannot tell which of them" in line]
    assert warned, log.read_text()
    assert all(labels[0] in line and labels[1] in line for line in warned)


class Mid(gokart.TaskOnKart[int]):
    """Loads its requirement Inner(k) in the shared pool (a job carrying only numbers and a path: a nested build)."""

    k = luigi.IntParameter()

    def run(self) -> None:
        self.dump(10 * POOL["pool"].submit(_build_inner, self.k, self.workspace_directory).result())


class Top(gokart.TaskOnKart[int]):
    """Forks the shared pool's worker (its first job), then builds Mid inside its run(): Mid's job runs in that worker,
    whose context is a copy of Top's run."""

    def run(self) -> None:
        assert POOL["pool"].submit(int, "1").result() == 1
        self.dump(1 + gokart.build(Mid(k=100, workspace_directory=self.workspace_directory), reset_register=False))


def test_a_job_of_a_run_nested_in_the_run_that_forked_the_worker_counts_for_the_nested_run(
    tmp_path: Path, shared: Any
) -> None:
    """Top's run forked the worker; Mid, built inside Top's run(), hands the worker its job: Mid records Inner (Top is
    blocked in its nested build, so only the innermost run can hand out work), and Top records Mid as built. Before:
    Inner was credited to Top alone, Mid recorded nothing, and after Inner reran Top's new run found Mid cached: 1011
    (the old value) instead of 1051."""
    _shared_pool("fork", warm=False)
    workspace = str(tmp_path / "ws")
    _value_file(workspace).write_text("1")
    top = Top(workspace_directory=workspace)
    assert gokart.build(top, reset_register=False) == 1011
    mid = Mid(k=100, workspace_directory=workspace)
    assert _inputs(mid) == [(Inner(k=100, workspace_directory=workspace).kart_label(), True)]
    assert _inputs(top) == [(mid.kart_label(), True)]
    _rerun_inners(workspace, 5)
    assert not mid.complete()
    assert gokart.build(Top(workspace_directory=workspace), reset_register=False) == 1051


_IN_A_KART_WORKER = """
import sys
from pathlib import Path
import kart_core as gokart
from kart_core import child_loads
from tests.core import test_child_loads_shared_pool as case
child_loads.kart_worker()  # as claim_slot marks a worker of kart's own process pool
case._shared_pool("fork", warm=False)
workspace = sys.argv[1]
case._value_file(workspace).write_text("1")
first = gokart.build(case.Both(how="build()", workspace_directory=workspace), reset_register=False)
case._rerun_inners(workspace, 5)
print(first, gokart.build(case.Both(how="build()", workspace_directory=workspace), reset_register=False))
case.POOL["pool"].shutdown()
"""


def test_a_pool_of_a_task_run_in_a_worker_of_kart_s_pool_counts_for_its_runs(tmp_path: Path) -> None:
    """kart's own pool workers send no loads to the building process's runs; a pool that a task running in such a
    worker uses is no such worker: its jobs count for the runs of the kart worker (before, a pool worker forked from a
    kart worker inherited the mark and found no run: Outer(200) served stale, [1050, 2010])."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    found = subprocess.run(
        [sys.executable, "-c", _IN_A_KART_WORKER, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split("\n")[-2] == "[1010, 2010] [1050, 2050]", found.stdout + found.stderr
