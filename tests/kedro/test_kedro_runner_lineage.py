"""KartRunner: a node is cached only while each input holds the content it was built from (AT4's stale result).

A node's key holds the content hash of each input a cached node of the run produced, not that node
run's unique id: an upstream node run that runs again under the same id (its cache deleted or
damaged, its output written outside kart) and returns other content reruns its readers; the same
content keeps them cached. A pinned load version (``--load-versions``) counts by its content.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner, TaskOnKartDataset
from kedro.io import AbstractVersionedDataset, DataCatalog, MemoryDataset, SharedMemoryDataCatalog, Version
from kedro.pipeline import Pipeline, node
from kedro_trust_tasks import Shifted
from test_kedro_runner import JsonFile

RUNNERS = [KartRunner, KartThreadRunner, KartParallelRunner]


@pytest.fixture(params=RUNNERS, ids=lambda cls: cls.__name__)
def runner_class(request: pytest.FixtureRequest, journal: str) -> type:
    """Each kart runner in turn (the node functions journal their calls, across processes too)."""
    return request.param


def _record(name: str) -> None:
    with open(os.environ["KART_KEDRO_TEST_JOURNAL"], "a") as handle:
        handle.write(f"{name}\n")


def gen() -> str:
    """Nondeterministic: a new token on every call (AT4's node)."""
    _record("gen")
    return uuid.uuid4().hex


def same() -> str:
    """Deterministic: the same token on every call."""
    _record("same")
    return "fixed"


def use(token: str) -> dict[str, str]:
    _record("use")
    return {"seen": token}


def upper(token: str) -> str:
    _record("upper")
    return token.upper()


def length(token: str) -> int:
    _record("length")
    return len(token)


def twice(value: Any) -> list[Any]:
    _record("twice")
    return [value, value]


def scaled(k: int) -> dict[str, int]:
    _record("scaled")
    return {"v": k}


def seen(x: dict[str, int]) -> dict[str, int]:
    _record("seen")
    return {"seen": x["v"]}


class Scaler:
    """A node callable's instance state: ``factor``."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def apply(self, k: int) -> int:
        return k * self.factor

    def __call__(self, k: int) -> int:
        return k * self.factor


def times(factor: int, k: int) -> int:
    return k * factor


def _catalog(runner_class: type, entries: dict[str, Any]) -> Any:
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    return catalog_class(entries)


def _runner(runner_class: type, workspace: str) -> Any:
    if runner_class is KartRunner:
        return KartRunner(workspace_directory=workspace)
    return runner_class(max_workers=2, workspace_directory=workspace)


def _run(runner_class: type, workspace: str, pipeline: Pipeline, entries: dict[str, Any]) -> tuple[Any, list[str]]:
    """Run ``pipeline``; return the runner (its last_run, last_reasons) and the node functions called (sorted)."""
    journal = Path(os.environ["KART_KEDRO_TEST_JOURNAL"])
    journal.write_text("")
    runner = _runner(runner_class, workspace)
    runner.run(pipeline, _catalog(runner_class, entries))
    return runner, sorted(journal.read_text().split())


def _cache_file(workspace: str, node_name: str, output: str) -> Path:
    (path,) = Path(workspace, "kedro", "_").glob(f"{node_name}__{output}_*.pkl")
    return path


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


# --- AT4's repro: gen -> use, gen runs again under the same key with a new token ----------------------


def _gen_use(tmp_path: Path) -> tuple[Pipeline, dict[str, Any]]:
    pipeline = Pipeline([node(gen, None, "gen_out", name="gen"), node(use, "gen_out", "final", name="use")])
    entries = {"gen_out": JsonFile(str(tmp_path / "gen_out.json")), "final": JsonFile(str(tmp_path / "final.json"))}
    return pipeline, entries


def _delete_cache(tmp_path: Path, workspace: str) -> None:
    _cache_file(workspace, "gen", "gen_out").unlink()


def _damage_cache(tmp_path: Path, workspace: str) -> None:
    cache = _cache_file(workspace, "gen", "gen_out")
    cache.write_bytes(cache.read_bytes()[:10])
    (tmp_path / "gen_out.json").unlink()  # so the cached value must be loaded to be written back


def _write_outside_kart(tmp_path: Path, workspace: str) -> None:
    (tmp_path / "gen_out.json").write_text(json.dumps("written by a plain kedro run"))


@pytest.mark.parametrize(
    "change",
    [_delete_cache, _damage_cache, _write_outside_kart],
    ids=["cache deleted", "cache damaged", "output written outside kart"],
)
def test_a_reader_reruns_when_its_upstream_runs_again_with_other_content(
    tmp_path: Path, workspace: str, runner_class: type, change: Any
) -> None:
    pipeline, entries = _gen_use(tmp_path)
    _, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == ["gen", "use"]
    first = _read(tmp_path / "gen_out.json")
    change(tmp_path, workspace)
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == ["gen", "use"]  # the old code served use: final kept the old token forever
    token = _read(tmp_path / "gen_out.json")
    assert token != first
    assert _read(tmp_path / "final.json") == {"seen": token}
    assert runner.last_reasons["use"] == "upstream changed: gen_out"
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == [] and set(runner.last_run.values()) == {"cached"}
    assert _read(tmp_path / "final.json") == {"seen": token}


def test_an_upstream_that_runs_again_with_the_same_content_keeps_its_reader_cached(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    pipeline = Pipeline([node(same, None, "token", name="same"), node(use, "token", "final", name="use")])
    entries = {"final": JsonFile(str(tmp_path / "final.json"))}
    _run(runner_class, workspace, pipeline, entries)
    _cache_file(workspace, "same", "token").unlink()
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == ["same"]
    assert runner.last_run == {"same": "ran", "use": "cached"}
    assert _read(tmp_path / "final.json") == {"seen": "fixed"}


# --- two levels: A (nondeterministic) -> B -> C -------------------------------------------------------


@pytest.mark.parametrize(("middle", "reruns_last"), [(upper, True), (length, False)], ids=["upper", "length"])
def test_a_new_content_two_levels_up_reruns_what_it_reaches(
    tmp_path: Path, workspace: str, runner_class: type, middle: Any, reruns_last: bool
) -> None:
    pipeline = Pipeline(
        [
            node(gen, None, "a", name="gen"),
            node(middle, "a", "b", name="middle"),
            node(twice, "b", "c", name="twice"),
        ]
    )
    entries = {"c": JsonFile(str(tmp_path / "c.json"))}
    _run(runner_class, workspace, pipeline, entries)
    before = _read(tmp_path / "c.json")
    _cache_file(workspace, "gen", "a").unlink()  # a memory output: only the kart cache held it
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    # middle's input changed: it runs; twice runs only if what middle returned changed (upper: yes, len: no)
    assert ran == sorted([middle.__name__, "gen", *(["twice"] if reruns_last else [])])
    after = _read(tmp_path / "c.json")
    if reruns_last:
        assert after != before and after[0] == after[1] and after[0].isupper()
        assert runner.last_reasons["twice"] == "upstream changed: b"
    else:
        assert after == before == [32, 32]
        assert runner.last_run["twice"] == "cached"


def test_a_damaged_memory_output_that_runs_again_keys_its_reader_by_the_new_content(
    workspace: str, journal: str
) -> None:
    """The reader was keyed before its input was loaded; the rerun's other content makes a new key."""
    pipeline = Pipeline([node(gen, None, "a", name="gen"), node(seen_twice, ["a", "params:n"], "b", name="reader")])

    def run(n: int) -> tuple[Any, list[str], Any]:
        catalog = DataCatalog({"params:n": MemoryDataset(n)})
        Path(journal).write_text("")
        runner = KartRunner(workspace_directory=workspace)
        runner.run(pipeline, catalog)
        return runner, sorted(Path(journal).read_text().split()), catalog.load("b")

    run(1)
    cache = _cache_file(workspace, "gen", "a")
    cache.write_bytes(cache.read_bytes()[:10])
    runner, ran, first = run(2)  # reader must run, so gen's cached output is loaded: damaged, gen runs again
    assert ran == ["gen", "reader"]
    runner, ran, again = run(2)
    assert ran == [] and again == first  # the reader's run was cached under the content it read


def seen_twice(token: str, n: int) -> list[str]:
    _record("reader")
    return [token] * n


# --- a kart task read through the catalog, two levels down ---------------------------------------------


def test_a_kart_task_rebuilt_with_other_content_reruns_the_nodes_two_levels_down(
    tmp_path: Path, workspace: str, runner_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline([node(sum, "shifted", "total", name="add_up"), node(twice, "total", "c", name="twice")])

    def run() -> tuple[Any, Any]:
        entries: dict[str, Any] = {
            "shifted": TaskOnKartDataset("kedro_trust_tasks.Shifted", {"size": 3}, workspace),
            "c": JsonFile(str(tmp_path / "c.json")),
        }
        runner, _ = _run(runner_class, workspace, pipeline, entries)
        return runner.last_run, _read(tmp_path / "c.json")

    assert run() == ({"add_up": "ran", "twice": "ran"}, [3, 3])
    Path(Shifted(size=3, workspace_directory=workspace).output().path()).unlink()
    monkeypatch.setenv("KART_KEDRO_TEST_SHIFT", "10")  # the same unique id, rebuilt with other content
    assert run() == ({"add_up": "ran", "twice": "ran"}, [33, 33])
    assert run() == ({"add_up": "cached", "twice": "cached"}, [33, 33])


# --- --load-versions ------------------------------------------------------------------------------------


class VersionedJson(AbstractVersionedDataset[Any, Any]):
    """A JSON file with Kedro versioning: each save is a new version folder."""

    def __init__(self, filepath: str, version: Version | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)

    def load(self) -> Any:
        return json.loads(Path(self._get_load_path()).read_text())

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except Exception:  # no version saved yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def test_a_pinned_load_version_is_what_the_reader_is_built_from(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    pipeline = Pipeline([node(scaled, "params:k", "gen_out", name="gen"), node(seen, "gen_out", "final", name="use")])

    def run(k: int, load_version: str | None = None) -> tuple[Any, list[str]]:
        entries = {
            "params:k": MemoryDataset(k),
            "gen_out": VersionedJson(str(tmp_path / "gen_out.json"), Version(load_version, None)),
            "final": JsonFile(str(tmp_path / "final.json")),
        }
        return _run(runner_class, workspace, pipeline, entries)

    run(1)
    (v1,) = [path.name for path in (tmp_path / "gen_out.json").iterdir()]
    time.sleep(0.01)  # Kedro's version timestamps have millisecond resolution
    run(5)
    assert _read(tmp_path / "final.json") == {"seen": 5}
    runner, ran = run(5, v1)  # kedro run --params k=5 --load-versions gen_out:<v1>
    assert "seen" in ran and runner.last_run["use"] == "ran"
    assert runner.last_reasons["use"] == "input changed: gen_out"  # named once, though it moved out of upstream
    assert _read(tmp_path / "final.json") == {"seen": 1}  # the old code served {"seen": 5} as "cached"
    runner, ran = run(5, v1)
    assert runner.last_run["use"] == "cached" and _read(tmp_path / "final.json") == {"seen": 1}
    runner, ran = run(5)  # unpinned again: the latest version (the reader's run on it is cached)
    assert _read(tmp_path / "final.json") == {"seen": 5}
    assert runner.last_run["use"] == "cached"


# --- why a node whose callable's bound state changed reruns ----------------------------------------


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda factor: Scaler(factor).apply,
            "the state of the instance bound to test_kedro_runner_lineage.Scaler.apply",
        ),
        (Scaler, "the state of the callable test_kedro_runner_lineage.Scaler instance"),
        (
            lambda factor: functools.partial(times, factor),
            "the arguments of functools.partial(test_kedro_runner_lineage.times)",
        ),
    ],
    ids=["bound method", "callable instance", "partial"],
)
def test_a_changed_bound_state_is_named_as_the_reason(workspace: str, make: Any, said: str) -> None:
    def run(factor: int) -> KartRunner:
        pipeline = Pipeline([node(make(factor), "params:k", "out", name="scale")])
        runner = KartRunner(workspace_directory=workspace)
        runner.run(pipeline, DataCatalog({"params:k": MemoryDataset(3)}))
        return runner

    run(2)
    runner = run(3)
    assert runner.last_run == {"scale": "ran"}
    assert runner.last_reasons == {"scale": f"code changed: {said}"}  # was "node definition changed (...)"


def test_a_writing_marker_beside_a_cached_output_reruns_its_node(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    """A ``.kart-writing`` marker beside a node run's complete output (a by-path writer killed while integrity
    records were off: attacker J4) keeps the node incomplete under every KartRunner: it runs again, its commit
    removes the marker, and the next run serves it."""
    pipeline, entries = _gen_use(tmp_path)
    _, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == ["gen", "use"]
    cache = _cache_file(workspace, "gen", "gen_out")
    marker = cache.with_name(f".{cache.name}.kart-writing")
    marker.write_text("")
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == ["gen", "use"] and runner.last_run == {"gen": "ran", "use": "ran"}
    assert not marker.exists()
    runner, ran = _run(runner_class, workspace, pipeline, entries)
    assert ran == [] and set(runner.last_run.values()) == {"cached"}
