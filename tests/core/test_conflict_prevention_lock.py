"""kart_core.conflict_prevention_lock: gokart's lock parameters and wrappers on kart's lock, with a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import luigi
import pytest
from gokart_twin import run_both
from services import Service

import kart_core
from kart_core.conflict_prevention_lock import (
    TaskLockException,
    TaskLockParams,
    make_task_lock_key,
    make_task_lock_params,
    make_task_lock_params_for_run,
    set_lock_scheduler,
    set_task_lock,
    wrap_dump_with_lock,
    wrap_load_with_lock,
    wrap_remove_with_lock,
    wrap_run_with_lock,
)
from kart_core.errors import LockSettingError


def _params(redis: Service, key: str, raise_on_collision: bool = True) -> TaskLockParams:
    return make_task_lock_params(
        file_path=f"/ws/a/{key}.pkl",
        unique_id="u1",
        redis_host=redis.host,
        redis_port=redis.port,
        redis_timeout=30,
        raise_task_lock_exception_on_collision=raise_on_collision,
    )


def test_params_follow_gokarts_recipe() -> None:
    params = make_task_lock_params("resources/model/Train.pkl", "abc")
    assert params == TaskLockParams(None, None, None, "Train_abc", False, False, 10)
    assert make_task_lock_key("x/y.tar.gz", None) == "y.tar_None"
    with pytest.raises(AssertionError, match=r"redis_timeout must be greater than lock_extend_seconds \(10\), not 10"):
        make_task_lock_params("a.pkl", "1", redis_timeout=10)
    with pytest.raises(LockSettingError):
        make_task_lock_params("a.pkl", "1", redis_timeout=5, lock_extend_seconds=5)


class _Task(kart_core.TaskOnKart):
    x = luigi.IntParameter(default=1)


def test_run_params_name_the_class_and_id() -> None:
    task = _Task(redis_host="h", redis_port=1, redis_timeout=99)
    params = make_task_lock_params_for_run(task)
    assert params.redis_key == f"_Task_{task.make_unique_id()}-run"
    assert params.should_task_lock and params.raise_task_lock_exception_on_collision
    assert (params.redis_host, params.redis_port, params.redis_timeout) == ("h", 1, 99)


def test_wrappers_without_redis_are_the_function_itself() -> None:
    params = make_task_lock_params("a.pkl", "1")

    def func() -> int:
        return 1

    assert wrap_dump_with_lock(func, params, exist_check=lambda: True) is func
    assert wrap_load_with_lock(func, params) is func
    assert wrap_remove_with_lock(func, params) is func


def test_a_held_lock_makes_a_colliding_taker_fail(redis_service: Service) -> None:
    params = _params(redis_service, "collide")
    lock = set_task_lock(params)
    assert set_lock_scheduler(lock, params) is lock
    try:
        with pytest.raises(TaskLockException, match=r"Lock already taken by other task: 'collide_u1'"):
            set_task_lock(params)
    finally:
        lock.shutdown()
        lock.release()
    set_task_lock(params).release()  # free again


def test_a_waiting_taker_gets_the_lock_when_it_is_released(redis_service: Service) -> None:
    held = set_task_lock(_params(redis_service, "wait"))
    threading.Timer(0.3, held.release).start()
    started = time.monotonic()
    set_task_lock(_params(redis_service, "wait", raise_on_collision=False)).release()
    assert time.monotonic() - started >= 0.25


def test_dump_is_skipped_when_the_output_appeared_meanwhile(redis_service: Service) -> None:
    written: list[str] = []
    params = _params(redis_service, "dump")
    assert wrap_dump_with_lock(written.append, params, exist_check=lambda: False)("first") is None
    assert wrap_dump_with_lock(written.append, params, exist_check=lambda: True)("second") is None
    assert written == ["first"]


def test_remove_and_run_release_the_lock_when_they_raise(redis_service: Service) -> None:
    params = _params(redis_service, "raise")

    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        wrap_remove_with_lock(fail, params)()
    with pytest.raises(OSError, match="disk gone"):
        wrap_run_with_lock(fail, params)()
    assert wrap_load_with_lock(lambda: "loaded", params)() == "loaded"
    set_task_lock(params).release()


_PARAMS_SCRIPT = """
import json
import luigi
import gokart
from gokart.conflict_prevention_lock.task_lock import make_task_lock_params, make_task_lock_params_for_run

class Train(gokart.TaskOnKart):
    x = luigi.IntParameter(default=1)

task = Train(redis_host="h", redis_port=6, redis_timeout=99)
print(json.dumps({
    "output": list(make_task_lock_params("resources/model/Train.pkl", "abc", redis_host="h", redis_port=6)),
    "no_id": list(make_task_lock_params("a/b.csv", None)),
    "run": list(make_task_lock_params_for_run(task)),
}))
"""


@pytest.mark.slow
def test_params_equal_gokarts(tmp_path: Path) -> None:
    results = run_both(_PARAMS_SCRIPT, tmp_path)
    assert results["kart"] == results["gokart"]


@pytest.mark.slow
def test_kart_and_gokart_exclude_each_other(redis_service: Service, tmp_path: Path) -> None:
    """A gokart process holding a dump lock makes kart's colliding taker fail: one redis key for both."""
    holder = textwrap.dedent(f"""
        import sys, time
        from gokart.conflict_prevention_lock.task_lock import make_task_lock_params, set_task_lock
        params = make_task_lock_params("/ws/a/shared.pkl", "u1", redis_host="{redis_service.host}",
                                       redis_port={redis_service.port}, redis_timeout=30)
        lock = set_task_lock(params)
        print("held", flush=True)
        sys.stdin.readline()
        lock.release()
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", holder], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        with pytest.raises(TaskLockException):
            set_task_lock(_params(redis_service, "shared"))
    finally:
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        process.wait(timeout=60)
    set_task_lock(_params(redis_service, "shared")).release()
