"""kart_core.in_memory: outputs kept as objects in the process, compared with gokart 1.12.2 in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import luigi
import pytest
from gokart_twin import run_both

import kart_core
from kart_core.conflict_prevention_lock.task_lock import make_task_lock_params
from kart_core.errors import GokartBuildError, InMemoryKeyError
from kart_core.in_memory import InMemoryCacheRepository, InMemoryTarget, make_in_memory_target


@pytest.fixture(autouse=True)
def _empty_store() -> Iterator[None]:
    InMemoryCacheRepository().clear()
    yield
    InMemoryCacheRepository().clear()


def _no_lock(key: str = "k") -> object:
    return make_task_lock_params(file_path=key, unique_id=None)


def test_every_repository_instance_sees_one_store() -> None:
    first, second = InMemoryCacheRepository(), InMemoryCacheRepository()
    first.set_value("a", [1, 2])
    assert second.has("a") and second.get_value("a") == [1, 2]
    assert isinstance(second.get_last_modification_time("a"), datetime)
    second.set_value("b", "x")
    assert dict(first.get_gen()) == {"a": [1, 2], "b": "x"}
    assert first.size == 2 and not first.empty()
    first.remove("a")
    assert not second.has("a")
    second.clear()
    assert first.empty() and first.size == 0


def test_missing_key_errors_are_gokarts_builtin_types() -> None:
    repository = InMemoryCacheRepository()
    with pytest.raises(KeyError, match=r"No in-memory output under 'nothing'"):
        repository.get_value("nothing")
    with pytest.raises(AssertionError, match=r"^nothing does not exist"):
        repository.remove("nothing")
    with pytest.raises(InMemoryKeyError):
        repository.get_last_modification_time("nothing")


def test_target_keeps_the_object_itself() -> None:
    target = make_in_memory_target("model", make_task_lock_params(file_path="model.pkl", unique_id="1"))
    assert isinstance(target, InMemoryTarget) and target.path() == "model"
    assert not target.exists()
    value = {"weights": [0.5]}
    target.dump(value)
    assert target.exists() and target.load() is value
    assert isinstance(target.last_modification_time(), datetime)
    target.remove()
    target.remove()  # removing a missing output does nothing, as gokart's target
    assert not target.exists()
    with pytest.raises(ValueError, match=r"^No object\(s\) which id is model are stored before\."):
        target.last_modification_time()
    with pytest.raises(KeyError):
        target.load()


def test_a_redis_lock_is_refused() -> None:
    params = make_task_lock_params(file_path="x.pkl", unique_id="1", redis_host="127.0.0.1", redis_port=1)
    with pytest.raises(ValueError, match=r"^Redis with `InMemoryTarget` is not currently supported"):
        InMemoryTarget("x", params)


class _Numbers(kart_core.TaskOnKart):
    size = luigi.IntParameter()

    def output(self) -> InMemoryTarget:
        return make_in_memory_target(f"numbers_{self.make_unique_id()}", _no_lock())

    def run(self) -> None:
        self.dump(list(range(self.size)))


class _Total(kart_core.TaskOnKart):
    numbers = kart_core.TaskInstanceParameter()
    fail = luigi.BoolParameter(default=False)

    def output(self) -> InMemoryTarget:
        return make_in_memory_target(f"total_{self.make_unique_id()}", _no_lock())

    def run(self) -> None:
        self.dump(sum(self.load("numbers")))
        assert self.output().load() == sum(range(self.numbers.size))  # a staged output loads inside its run
        if self.fail:
            raise RuntimeError("after the dump")


def test_a_pipeline_keeps_its_outputs_in_memory(tmp_path: Path) -> None:
    task = _Total(numbers=_Numbers(size=5), workspace_directory=str(tmp_path))
    assert kart_core.build(task) == 10
    keys = sorted(key for key, _ in InMemoryCacheRepository().get_gen())
    assert keys == sorted([f"numbers_{task.numbers.make_unique_id()}", f"total_{task.make_unique_id()}"])
    outputs = [p for p in tmp_path.rglob("*") if p.is_file() and "/log/" not in str(p.relative_to(tmp_path.parent))]
    assert outputs == []  # only run logs are files
    assert kart_core.build(_Total(numbers=_Numbers(size=5), workspace_directory=str(tmp_path))) == 10  # cached


def test_a_failed_run_keeps_nothing(tmp_path: Path) -> None:
    task = _Total(numbers=_Numbers(size=3), fail=True, workspace_directory=str(tmp_path))
    with pytest.raises(GokartBuildError, match="after the dump"):
        kart_core.build(task)
    assert not task.output().exists()
    assert task.numbers.output().load() == [0, 1, 2]  # the upstream committed


_SCRIPT = """
import json
import luigi
import gokart
from gokart.conflict_prevention_lock.task_lock import make_task_lock_params
from gokart.in_memory import InMemoryCacheRepository, InMemoryTarget, make_in_memory_target

def no_lock(key):
    return make_task_lock_params(file_path=key, unique_id=None)

class Numbers(gokart.TaskOnKart):
    size = luigi.IntParameter()
    def output(self):
        return make_in_memory_target(f"numbers_{self.make_unique_id()}", no_lock("n"))
    def run(self):
        self.dump(list(range(self.size)))

class Total(gokart.TaskOnKart):
    numbers = gokart.TaskInstanceParameter()
    def output(self):
        return make_in_memory_target(f"total_{self.make_unique_id()}", no_lock("t"))
    def run(self):
        self.dump(sum(self.load("numbers")))

def error_of(call):
    try:
        call()
    except Exception as exc:
        return [k for k in ("KeyError", "AssertionError", "ValueError") if isinstance(exc, __builtins__.__dict__[k])]
    return None

task = Total(numbers=Numbers(size=4))
value = gokart.build(task)
repository = InMemoryCacheRepository()
target = make_in_memory_target("missing", no_lock("m"))
print(json.dumps({
    "value": value,
    "keys": sorted(key for key, _ in repository.get_gen()),
    "size": repository.size,
    "path": task.output().path(),
    "exists": task.output().exists(),
    "upstream": task.numbers.output().load(),
    "load_missing": error_of(target.load),
    "remove_missing_key": error_of(lambda: repository.remove("missing")),
    "mtime_missing": error_of(target.last_modification_time),
    "redis": error_of(lambda: InMemoryTarget("r", make_task_lock_params("r", None, redis_host="h", redis_port=1))),
    "lock_fields": list(make_task_lock_params("a/b.pkl", "u")._fields),
}))
"""


@pytest.mark.slow
def test_in_memory_pipeline_matches_gokart(tmp_path: Path) -> None:
    results = run_both(_SCRIPT, tmp_path)
    kart, gokart = results["kart"], results["gokart"]
    # kart's error for a missing key is both a KeyError (gokart's load) and an AssertionError (gokart's remove).
    for call in ("load_missing", "remove_missing_key", "mtime_missing", "redis"):
        assert set(gokart.pop(call)) <= set(kart.pop(call)), call
    assert kart == gokart
    assert kart["value"] == 6
