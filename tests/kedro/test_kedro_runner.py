"""KartRunner: Kedro nodes skipped when code, parameters and inputs are unchanged; reruns exactly what changed."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from kart_kedro import CODE_VERSION_TAG, NO_CACHE_TAG, KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.node_cache import KedroNodeRun, cached_runs
from kart_kedro.node_records import OUTPUT_STATES
from kart_kedro.output_state import dataset_config
from kedro.io import AbstractDataset, DataCatalog, DatasetError, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

import kart_core

RUNNERS = [KartRunner, KartThreadRunner, KartParallelRunner]


@pytest.fixture(params=RUNNERS, ids=lambda cls: cls.__name__)
def runner_class(request: pytest.FixtureRequest, journal: str) -> type:
    """Each kart runner in turn (the node functions journal their calls, across processes too)."""
    return request.param


class JsonFile(AbstractDataset[Any, Any]):
    """A persistent dataset: a JSON file."""

    def __init__(self, filepath: str) -> None:
        self.filepath = Path(filepath)

    def load(self) -> Any:
        return json.loads(self.filepath.read_text())

    def save(self, data: Any) -> None:
        self.filepath.write_text(json.dumps(data))

    def _exists(self) -> bool:
        return self.filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self.filepath)}


def _record(name: str) -> None:
    with open(os.environ["KART_KEDRO_TEST_JOURNAL"], "a") as handle:
        handle.write(f"{name}\n")


def clean(raw: list[int], minimum: int) -> list[int]:
    _record("clean")
    return [value for value in raw if value >= minimum]


def scale(values: list[int], factor: int) -> list[int]:
    _record("scale")
    return [value * factor for value in values]


def total(values: list[int]) -> int:
    _record("total")
    return sum(values)


def count(values: list[int]) -> int:
    _record("count")
    return len(values)


def _pipeline() -> Pipeline:
    return Pipeline(
        [
            node(clean, ["raw", "params:minimum"], "clean_values", name="clean"),
            node(scale, ["clean_values", "params:factor"], "scaled", name="scale"),
            node(total, "scaled", "total", name="total"),
            node(count, "clean_values", "count", name="count"),
        ]
    )


def _catalog(
    tmp_path: Path, runner_class: type = KartRunner, factor: int = 2, minimum: int = 0, raw: list[int] | None = None
) -> Any:
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    return catalog_class(
        {
            "raw": MemoryDataset([3, -1, 4, 10] if raw is None else raw),
            "params:factor": MemoryDataset(factor),
            "params:minimum": MemoryDataset(minimum),
            "total": JsonFile(str(tmp_path / "total.json")),
        }
    )


def _run(
    tmp_path: Path, workspace: str, runner_class: type = KartRunner, runner: Any = None, **catalog_args: Any
) -> tuple[list[str], Any]:
    """Run the pipeline; return the node functions that were called (sorted) and the catalog."""
    path = Path(os.environ["KART_KEDRO_TEST_JOURNAL"])
    path.write_text("")
    catalog = _catalog(tmp_path, runner_class, **catalog_args)
    runner = runner or _runner(runner_class, workspace)
    runner.run(_pipeline(), catalog)
    return sorted(path.read_text().split()), catalog


def _runner(runner_class: type, workspace: str) -> Any:
    if runner_class is KartRunner:
        return KartRunner(workspace_directory=workspace)
    return runner_class(max_workers=2, workspace_directory=workspace)


def test_a_second_run_runs_no_node_and_returns_the_same_outputs(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    ran, catalog = _run(tmp_path, workspace, runner_class)
    assert ran == ["clean", "count", "scale", "total"]
    assert catalog.load("total") == 34
    (tmp_path / "total.json").unlink()
    runner = _runner(runner_class, workspace)
    ran, catalog = _run(tmp_path, workspace, runner_class, runner)
    assert ran == []
    assert set(runner.last_run.values()) == {"cached"}
    assert catalog.load("total") == 34  # a persistent output is written back from the cache
    assert catalog.load("count") == 3  # a memory pipeline output is handed over too


def test_a_parameter_change_reruns_exactly_the_affected_nodes(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    _run(tmp_path, workspace, runner_class)
    runner = _runner(runner_class, workspace)
    ran, catalog = _run(tmp_path, workspace, runner_class, runner, factor=3)
    assert ran == ["scale", "total"]
    assert catalog.load("total") == 51
    assert runner.last_reasons == {"scale": "parameters changed: params:factor", "total": "upstream changed: scaled"}
    ran, catalog = _run(tmp_path, workspace, runner_class, factor=2)  # back to an earlier value: cached again
    assert ran == []
    assert json.loads((tmp_path / "total.json").read_text()) == 34


def test_an_input_data_change_reruns_the_node_and_its_dependants(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    _run(tmp_path, workspace, runner_class)
    ran, catalog = _run(tmp_path, workspace, runner_class, raw=[3, -1, 4, 11])
    assert ran == ["clean", "count", "scale", "total"]
    assert catalog.load("total") == 36


def test_data_written_outside_kart_makes_the_node_rerun_instead_of_being_overwritten(
    tmp_path: Path, workspace: str, runner_class: type
) -> None:
    _run(tmp_path, workspace, runner_class)
    (tmp_path / "total.json").write_text("1000")  # someone else's newer result
    runner = _runner(runner_class, workspace)
    ran, _ = _run(tmp_path, workspace, runner_class, runner)
    assert ran == ["total"]
    assert runner.last_reasons == {"total": "output 'total' holds data written outside kart"}
    assert json.loads((tmp_path / "total.json").read_text()) == 34  # recomputed, not copied from the cache


def test_an_unchanged_persistent_output_is_not_written_again(tmp_path: Path, workspace: str, journal: str) -> None:
    _run(tmp_path, workspace)
    before = (tmp_path / "total.json").stat().st_mtime_ns
    (tmp_path / "total.json").write_text("34")  # the same content, a newer file: still kart's result
    touched = (tmp_path / "total.json").stat().st_mtime_ns
    ran, _ = _run(tmp_path, workspace)
    assert ran == [] and touched >= before
    assert (tmp_path / "total.json").stat().st_mtime_ns == touched


def _file_md5(content: bytes) -> str:
    """What output_state.py records for a single file: md5 of its relative name ("") + NUL + its bytes."""
    return hashlib.md5(b"\0" + content).hexdigest()


def _total_run(workspace: str) -> Any:
    (run,) = [run for run in cached_runs(workspace) if run.task.node_name == "total"]
    return run


def test_a_node_run_keeps_its_output_states_in_its_task_log_and_kart_s_contents_in_one_file(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    _run(tmp_path, workspace)
    data = (tmp_path / "total.json").read_bytes()
    stat = (tmp_path / "total.json").stat()
    task_log = _total_run(workspace).task.get_task_log()
    config = dataset_config(JsonFile(str(tmp_path / "total.json")))  # the catalog definition that wrote it
    assert task_log[OUTPUT_STATES] == {
        # the last item: md5 of the file's one relative name "" (its listing, output_state since 6b8024a)
        "total": (
            _file_md5(data),
            len(data),
            stat.st_mtime_ns,
            config,
            stat.st_ctime_ns,
            "",
            hashlib.md5(b"").hexdigest(),
        )
    }
    records = Path(workspace, "kedro", "_")
    assert sorted(p.name for p in (records / ".kart").iterdir()) == ["code_names.pkl", "last_runs.pkl", "written.pkl"]
    assert list(records.rglob("states_*.pkl")) == []  # no file per node run besides its output and run logs
    assert pickle.loads((records / ".kart" / "written.pkl").read_bytes()) == {"total": [_file_md5(data)]}


def test_output_states_and_written_markers_of_an_older_kart_are_still_honoured(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    _run(tmp_path, workspace)  # total.json: 34
    first = _total_run(workspace).task
    _run(tmp_path, workspace, factor=3)  # total.json: 51
    # The layout of kart before 2026-11-30: a states file per node run, a marker file per content.
    states = first.get_task_log()[OUTPUT_STATES]
    first.states_target().dump(states)
    assert first.states_path() == first.states_target().path()  # what a cached check looks for
    manifest = Path(first.kart_log_target("manifest", ".json").path())
    document = json.loads(manifest.read_text())
    del document["run"]["task_log"][OUTPUT_STATES]  # no states in the run's own record
    manifest.write_text(json.dumps(document))
    records = Path(workspace, "kedro", "_", ".kart")
    (records / "written.pkl").unlink()
    for content in (b"34", b"51"):
        marker = records / "written" / "total" / f"{_file_md5(content)}.pkl"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(pickle.dumps(True))
    ran, _ = _run(tmp_path, workspace)  # back to factor 2: 51 was kart's, so the cached 34 replaces it
    assert ran == []
    assert json.loads((tmp_path / "total.json").read_text()) == 34


def test_a_task_log_file_of_an_older_kart_wins_over_the_run_record_read_with_the_check(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    """A served node's output states come from the run record its completeness check read, unless a task log
    file of kart before 2026-11-30 is there (read_run_log's order): that one still holds them."""
    _run(tmp_path, workspace)
    task = _total_run(workspace).task
    states = task.get_task_log()[OUTPUT_STATES]
    manifest = Path(task.kart_log_target("manifest", ".json").path())
    document = json.loads(manifest.read_text())
    del document["run"]["task_log"][OUTPUT_STATES]  # the run record names no state: only the file does
    manifest.write_text(json.dumps(document))
    task_log = Path(kart_core.workspace.log_task_path(task, kart_core.workspace.TASK_LOG))
    task_log.parent.mkdir(parents=True, exist_ok=True)
    task_log.write_bytes(pickle.dumps({OUTPUT_STATES: states}))
    written = (tmp_path / "total.json").stat().st_mtime_ns
    ran, _ = _run(tmp_path, workspace)
    assert ran == []
    # Its state was known (the file's): served as it is. Without it the output counts as unknown and is
    # written again from the cache (kart's own content, written.pkl), with a new modification time.
    assert (tmp_path / "total.json").stat().st_mtime_ns == written
    task_log.unlink()
    ran, _ = _run(tmp_path, workspace)
    assert ran == [] and (tmp_path / "total.json").stat().st_mtime_ns != written


def test_memory_datasets_created_in_the_run_are_released_after_their_last_reader(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    """PipelineRun tells which datasets the catalog holds without Kedro's pattern matching: those declared when
    the run started and those it created; a created one is still released once every reader is done."""
    _, catalog = _run(tmp_path, workspace)
    assert catalog.load("count") == 3  # a pipeline output: kept
    for name in ("clean_values", "scaled"):  # created from the runtime pattern, read by nodes that ran: released
        with pytest.raises(DatasetError, match="has not been saved yet"):
            catalog.load(name)
    _, catalog = _run(tmp_path, workspace)  # all cached: never created, nothing to release
    assert "scaled" not in catalog and catalog.load("count") == 3


def test_a_node_whose_records_were_lost_reruns_instead_of_serving_over_its_output(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    _run(tmp_path, workspace)
    # A node's output with neither its run record (the manifest) nor the run's written markers.
    Path(_total_run(workspace).task.kart_log_target("manifest", ".json").path()).unlink()
    Path(workspace, "kedro", "_", ".kart", "written.pkl").unlink()
    runner = KartRunner(workspace_directory=workspace)
    ran, _ = _run(tmp_path, workspace, runner=runner)
    assert ran == ["total"]
    assert runner.last_reasons == {"total": "output 'total' holds data written outside kart"}
    ran, _ = _run(tmp_path, workspace)
    assert ran == []


def test_only_missing_outputs_keeps_a_stale_result_that_kart_runner_fixes(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    _run(tmp_path, workspace, runner=SequentialRunner())
    SequentialRunner().run(_pipeline(), _catalog(tmp_path, factor=3), only_missing_outputs=True)
    assert json.loads((tmp_path / "total.json").read_text()) == 34  # Kedro skipped it: stale
    _run(tmp_path, workspace, factor=3)
    assert json.loads((tmp_path / "total.json").read_text()) == 51


def test_kart_runners_refuse_only_missing_outputs(tmp_path: Path, workspace: str, runner_class: type) -> None:
    with pytest.raises(ValueError, match=r"does not take --only-missing-outputs(.|\n)*stale results"):
        _runner(runner_class, workspace).run(_pipeline(), _catalog(tmp_path, runner_class), only_missing_outputs=True)


def test_a_code_change_reruns_that_node(tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "kart_kedro_changing_code.py"
    module.write_text("def inc(values):\n    return [v + 1 for v in values]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    changing = importlib.import_module("kart_kedro_changing_code")

    def run() -> dict[str, str]:
        runner = KartRunner(workspace_directory=workspace)
        catalog = DataCatalog({"raw": MemoryDataset([1, 2])})
        runner.run(Pipeline([node(changing.inc, "raw", "out", name="inc")]), catalog)
        assert catalog.load("out") == [changing.inc([1])[0], changing.inc([2])[0]]
        return runner.last_run

    assert run() == {"inc": "ran"}
    assert run() == {"inc": "cached"}
    module.write_text("def inc(values):\n    return [v + 2 for v in values]\n")
    # Same size within the same second: Python's .pyc check (mtime, size) would keep the old bytecode.
    os.utime(module, (module.stat().st_atime, module.stat().st_mtime + 5))
    importlib.reload(changing)
    assert run() == {"inc": "ran"}
    sys.modules.pop("kart_kedro_changing_code", None)


def test_a_code_version_tag_pins_the_code(tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "kart_kedro_pinned_code.py"
    module.write_text("def inc(values):\n    return [v + 1 for v in values]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pinned = importlib.import_module("kart_kedro_pinned_code")

    def run(tag: str) -> tuple[dict[str, str], list[int]]:
        runner = KartRunner(workspace_directory=workspace)
        catalog = DataCatalog({"raw": MemoryDataset([1, 2])})
        runner.run(Pipeline([node(pinned.inc, "raw", "out", name="inc", tags=[f"{CODE_VERSION_TAG}{tag}"])]), catalog)
        return runner.last_run, catalog.load("out")

    assert run("1") == ({"inc": "ran"}, [2, 3])
    module.write_text("def inc(values):\n    return [v + 2 for v in values]\n")
    # Same size within the same second: Python's .pyc check (mtime, size) would keep the old bytecode.
    os.utime(module, (module.stat().st_atime, module.stat().st_mtime + 5))
    importlib.reload(pinned)
    assert run("1") == ({"inc": "cached"}, [2, 3])  # pinned: the edit is not seen, as asked
    assert run("2") == ({"inc": "ran"}, [3, 4])
    sys.modules.pop("kart_kedro_pinned_code", None)


def test_nodes_tagged_no_cache_and_generator_nodes_always_run(tmp_path: Path, workspace: str, journal: str) -> None:
    def stream(raw: list[int]) -> Any:
        yield from ([value] for value in raw)

    pipeline = Pipeline(
        [node(count, "raw", "n", name="count", tags=[NO_CACHE_TAG]), node(stream, "raw", "streamed", name="stream")]
    )
    for _ in range(2):
        Path(journal).write_text("")
        runner = KartRunner(workspace_directory=workspace)
        runner.run(pipeline, DataCatalog({"raw": MemoryDataset([1, 2])}))
        assert Path(journal).read_text().split() == ["count"]
        assert runner.last_run == {"count": "ran uncached", "stream": "ran uncached"}


def test_a_workspace_with_a_folder_per_node_reruns_once_then_is_cached(
    tmp_path: Path, workspace: str, journal: str
) -> None:
    _run(tmp_path, workspace)
    # The layout of kart before 2026-11-30 23:30 UTC: kedro/{project}/{node}/{dataset}_{uid}.pkl, named so
    # in the manifest too.
    for path in Path(workspace, "log", "manifest").glob("KedroNodeRun_*.json"):
        document = json.loads(path.read_text())
        moved = {}
        for key, entry in document["outputs"].items():
            folder, name = key.rsplit("/", 1)
            node_name, output = name.split("__", 1)
            moved[f"{folder}/{node_name}/{output}"] = entry
            Path(workspace, folder, node_name).mkdir(exist_ok=True)
            Path(workspace, key).rename(Path(workspace, folder, node_name, output))
        document["outputs"] = moved
        path.write_text(json.dumps(document))
    runner = KartRunner(workspace_directory=workspace)
    ran, catalog = _run(tmp_path, workspace, runner=runner)
    assert ran == ["clean", "count", "scale", "total"]
    assert set(runner.last_reasons.values()) == {"its cache was cleared"}
    assert catalog.load("total") == 34 and json.loads((tmp_path / "total.json").read_text()) == 34
    ran, catalog = _run(tmp_path, workspace)
    assert ran == []
    assert catalog.load("total") == 34


def test_node_outputs_and_run_logs_have_gokart_style_paths(tmp_path: Path, workspace: str, journal: str) -> None:
    runner = KartRunner(workspace_directory=workspace)
    runner.run(_pipeline(), _catalog(tmp_path))
    outputs = sorted(
        p.relative_to(workspace).as_posix() for p in Path(workspace, "kedro").rglob("*.pkl") if ".kart" not in p.parts
    )
    assert [p.rsplit("_", 1)[0] for p in outputs] == [
        "kedro/_/clean__clean_values",
        "kedro/_/count__count",
        "kedro/_/scale__scaled",
        "kedro/_/total__total",
    ]
    unique_ids = {p.rsplit("_", 1)[1][: -len(".pkl")] for p in outputs}
    folder = Path(workspace, "log", "manifest")
    logged = {p.name[len("KedroNodeRun_") : -len(".json")] for p in folder.glob("KedroNodeRun_*")}
    assert logged == unique_ids
    # The run record lives in the manifest (kart_core.runlog): no run log files; seed, module versions
    # and run time in its task log.
    assert sorted(p.name for p in Path(workspace, "log").iterdir()) == ["manifest"]
    for path in folder.glob("KedroNodeRun_*"):
        run_record = json.loads(path.read_text())["run"]
        assert run_record["task_params"]["node_name"] in {"clean", "count", "scale", "total"}
    assert {run.unique_id for run in cached_runs(workspace)} == unique_ids
    for run in cached_runs(workspace):
        task_log = run.task.get_task_log()
        assert task_log["random_seed"]["seed"] == int(run.unique_id, 16) % (2**32 - 1)
        assert "kedro==" in task_log["module_versions"]
        assert isinstance(run.processing_time, float) and run.processing_time == task_log["processing_time"]


def test_an_output_that_cannot_be_cached_fails_with_a_clear_error(workspace: str) -> None:
    def make_iterator(raw: list[int]) -> Any:
        return (value for value in raw)  # a generator object: no pickler can write it

    with pytest.raises(
        RuntimeError, match=r"output 'values' of Kedro node 'make_iterator' cannot be cached(.|\n)*kart_no_cache"
    ):
        KartRunner(workspace_directory=workspace).run(
            Pipeline([node(make_iterator, "raw", "values", name="make_iterator")]),
            DataCatalog({"raw": MemoryDataset([1]), "values": MemoryDataset(copy_mode="assign")}),
        )


def test_a_node_run_cannot_be_built_outside_kart_runner(workspace: str) -> None:
    task = KedroNodeRun(node_name="scale", code="c", parameters="p", data="d", workspace_directory=workspace)
    with pytest.raises(kart_core.GokartBuildError, match=r"KedroNodeRun\[[0-9a-f]{8}\] caches the Kedro node 'scale'"):
        kart_core.build(task)


def test_an_edit_in_a_helper_module_a_task_calls_makes_the_node_that_uses_the_task_rerun(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same transitive fingerprint as the Airflow skew check: node -> task class -> helper module.
    package = tmp_path / "kedrohelpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    helpers = package / "scaling.py"
    helpers.write_text("def scale(x):\n    return 2 * x\n")
    (package / "tasks.py").write_text(
        "import kart_core\nfrom kedrohelpers import scaling\n\n\n"
        "class Scaled(kart_core.TaskOnKart):\n"
        "    @staticmethod\n    def transform(values):\n        return [scaling.scale(v) for v in values]\n\n"
        "    def run(self):\n        self.dump(self.transform([1]))\n\n\n"
        "def scaled_node(values):\n    return Scaled.transform(values)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    tasks = importlib.import_module("kedrohelpers.tasks")

    def run() -> tuple[dict[str, str], Any]:
        runner = KartRunner(workspace_directory=workspace)
        catalog = DataCatalog({"raw": MemoryDataset([1, 2])})
        runner.run(Pipeline([node(tasks.scaled_node, "raw", "out", name="scaled")]), catalog)
        return runner.last_run, catalog.load("out")

    try:
        assert run() == ({"scaled": "ran"}, [2, 4])
        assert run() == ({"scaled": "cached"}, [2, 4])
        helpers.write_text("def scale(x):\n    return 3 * x\n")
        importlib.reload(sys.modules["kedrohelpers.scaling"])
        assert run() == ({"scaled": "ran"}, [3, 6])
    finally:
        for name in [n for n in sys.modules if n.startswith("kedrohelpers")]:
            del sys.modules[name]


def _notes(values: list[int]) -> None:
    _record("notes")


def test_a_node_without_outputs_runs_again_on_the_second_run(
    tmp_path: Path, workspace: str, journal: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It exists for its side effect, which a node served from the cache would not do: it runs every time, with
    one warning, while the other nodes are cached (before 2026-12-02 it was cached silently; earlier still, the
    second run failed, ValueError from zip)."""
    pipeline = Pipeline([*_pipeline().nodes, node(_notes, "scaled", None, name="notes")])
    for expected in (["clean", "count", "notes", "scale", "total"], ["notes"]):
        Path(journal).write_text("")
        runner = KartRunner(workspace_directory=workspace)
        runner.run(pipeline, _catalog(tmp_path))
        assert sorted(Path(journal).read_text().split()) == expected
    assert runner.last_run["notes"] == "ran uncached"
    assert "kart: node 'notes' runs without the cache: it has no outputs" in caplog.text


def test_a_first_run_keys_readers_by_what_their_upstream_just_committed_without_reading_it(
    tmp_path: Path, workspace: str, runner_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content hashes come from the upstream node's own commit (kart_core.committed_digests), not a read of
    its manifest; they are the ones the manifest holds, so the second run (keyed from the manifests) is cached."""
    with monkeypatch.context() as patched:
        patched.setattr(kart_core, "output_digests", lambda task: pytest.fail("read an upstream's manifest again"))
        ran, _ = _run(tmp_path, workspace, runner_class)
    assert ran == ["clean", "count", "scale", "total"]
    runner = _runner(runner_class, workspace)
    ran, catalog = _run(tmp_path, workspace, runner_class, runner)
    assert ran == []
    assert set(runner.last_run.values()) == {"cached"}
    assert catalog.load("total") == 34


def _two(value: int) -> tuple[int, int]:
    return value + 1, value + 100


def _pair(first: int, second: int) -> list[int]:
    return [first, second]


def _pair_reversed(first: int, second: int) -> list[int]:
    return [second, first]


@pytest.mark.parametrize(
    ("first", "second"),
    [("x y", "x_y"), ("a:b", "a+b"), ("n" * 125 + "_a", "n" * 125 + "_b")],
    ids=["space-underscore", "colon-plus", "long"],
)
def test_two_outputs_whose_safe_names_collide_are_cached_apart(workspace: str, first: str, second: str) -> None:
    # attacker at4 B7: both outputs went to one file (the second dump replaced the first), and since the
    # runner zips output names with committed digests, every run failed with a bare zip ValueError
    def run(reader: Any) -> Any:
        pipeline = Pipeline([node(_two, "raw", [first, second], name="two"), node(reader, [first, second], "out")])
        catalog = DataCatalog({"raw": MemoryDataset(1), "out": MemoryDataset()})
        return KartRunner(workspace_directory=workspace).run(pipeline, catalog)["out"].load()

    assert run(_pair) == [2, 101]
    files = sorted(path.name for path in Path(workspace, "kedro").rglob("two__*.pkl"))
    assert len(files) == 2 and all(len(name.encode()) <= 255 for name in files)
    assert run(_pair) == [2, 101]  # cached
    assert run(_pair_reversed) == [101, 2]  # a new reader of `two`'s cached outputs: each under its own name
