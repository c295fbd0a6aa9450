"""KartRunner never hands Kedro stale or damaged data: kart inputs count by content, catalog definitions
count, a damaged or tampered node cache is a miss (the node reruns, or the error names the fix)."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner, TaskOnKartDataset, to_pipeline
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro_test_tasks import journal_lines
from kedro_trust_tasks import Shifted

import kart_core

# --- node functions (module level: the code fingerprint follows them) ---------------------------


def add_up(values: list[int]) -> int:
    return sum(values)


def double(value: int) -> int:
    return 2 * value


def make_rows(n: int) -> list[list[int]]:
    return [[row, row * 10] for row in range(n)]


def first_column(rows: list[list[int]]) -> list[int]:
    return [int(row[0]) for row in rows]


def keep(raw: list[int]) -> list[int]:
    return list(raw)


def clean(values: list[int], minimum: int) -> list[int]:
    return [value for value in values if value >= minimum]


def scale(values: list[int], factor: int) -> list[int]:
    return [value * factor for value in values]


# --- real file datasets with catalog options -----------------------------------------------------


class CsvRows(AbstractDataset[Any, Any]):
    """Rows of ints as delimited text; ``save_args``/``load_args`` take ``sep``, ``load_args`` also ``limit``."""

    def __init__(
        self, filepath: str, save_args: dict[str, Any] | None = None, load_args: dict[str, Any] | None = None
    ) -> None:
        self._filepath = Path(filepath)
        self._save_args = dict(save_args or {})
        self._load_args = dict(load_args or {})

    def load(self) -> Any:
        sep = self._load_args.get("sep", ",")
        rows = [line.split(sep) for line in self._filepath.read_text().splitlines()]
        return rows[: self._load_args["limit"]] if "limit" in self._load_args else rows

    def save(self, data: Any) -> None:
        sep = self._save_args.get("sep", ",")
        self._filepath.write_text("".join(sep.join(map(str, row)) + "\n" for row in data))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "save_args": self._save_args, "load_args": self._load_args}


class JsonFile(AbstractDataset[Any, Any]):
    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def load(self) -> Any:
        return json.loads(self._filepath.read_text())

    def save(self, data: Any) -> None:
        self._filepath.write_text(json.dumps(data))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class PickleFile(JsonFile):
    def load(self) -> Any:
        return pickle.loads(self._filepath.read_bytes())

    def save(self, data: Any) -> None:
        self._filepath.write_bytes(pickle.dumps(data))


def _run(runner: KartRunner, pipeline: Pipeline, catalog: DataCatalog) -> dict[str, str]:
    runner.run(pipeline, catalog)
    return runner.last_run


# --- 1. an input that is a kart output counts by its content -------------------------------------


def _shifted_entry(workspace: str) -> TaskOnKartDataset:
    return TaskOnKartDataset("kedro_trust_tasks.Shifted", {"size": 3}, workspace)


def _delete_outputs(task: kart_core.TaskOnKart[Any]) -> None:
    """What a user does with ``rm``: the output file goes, its manifest stays."""
    Path(task.output().path()).unlink()


def test_a_node_reading_a_catalog_kart_task_reruns_when_the_task_is_rebuilt_with_other_content(
    workspace: str, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline([node(add_up, "shifted", "total", name="add_up")])

    def run() -> tuple[dict[str, str], Any]:
        catalog = DataCatalog({"shifted": _shifted_entry(workspace)})
        statuses = _run(KartRunner(workspace_directory=workspace), pipeline, catalog)
        return statuses, catalog.load("total")

    assert run() == ({"add_up": "ran"}, 0 + 1 + 2)
    assert run() == ({"add_up": "cached"}, 3)
    task = Shifted(size=3, workspace_directory=workspace)
    _delete_outputs(task)
    monkeypatch.setenv("KART_KEDRO_TEST_SHIFT", "10")  # the same unique id, rebuilt with other content
    assert run() == ({"add_up": "ran"}, 10 + 11 + 12)
    assert len(journal_lines(journal)) == 2  # Shifted built twice
    _delete_outputs(task)  # rebuilt with the same content: the node stays cached
    assert run() == ({"add_up": "cached"}, 33)
    assert len(journal_lines(journal)) == 3


def test_kedro_nodes_downstream_of_a_to_pipeline_node_rerun_when_its_output_is_rebuilt_with_other_content(
    workspace: str, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = Shifted(size=3, workspace_directory=workspace)
    pipeline = to_pipeline(task, names={task: "shifted"}) + Pipeline(
        [node(add_up, "shifted", "total", name="add_up"), node(double, "total", "doubled", name="double")]
    )

    def run() -> tuple[dict[str, str], Any]:
        catalog = DataCatalog({"shifted": _shifted_entry(workspace)})
        statuses = _run(KartRunner(workspace_directory=workspace), pipeline, catalog)
        return {name: status for name, status in statuses.items() if not name.startswith("Shifted")}, catalog.load(
            "doubled"
        )

    assert run() == ({"add_up": "ran", "double": "ran"}, 6)
    assert run() == ({"add_up": "cached", "double": "cached"}, 6)
    _delete_outputs(task)
    monkeypatch.setenv("KART_KEDRO_TEST_SHIFT", "5")
    assert run() == ({"add_up": "ran", "double": "ran"}, 2 * (5 + 6 + 7))  # and what is downstream of it


# --- 2. a change of an output's catalog definition is seen --------------------------------------


def _rows_pipeline() -> Pipeline:
    return Pipeline(
        [
            node(make_rows, "params:n", "table", name="make_rows"),
            node(first_column, "table", "column", name="first_column"),
        ]
    )


def _rows_run(workspace: str, table: AbstractDataset[Any, Any]) -> tuple[dict[str, str], Any]:
    catalog = DataCatalog({"params:n": MemoryDataset(3), "table": table})
    statuses = _run(KartRunner(workspace_directory=workspace), _rows_pipeline(), catalog)
    return statuses, catalog.load("column")


def test_a_changed_save_option_rewrites_the_cached_output_through_the_new_definition(
    tmp_path: Path, workspace: str
) -> None:
    path = tmp_path / "table.csv"
    comma = CsvRows(str(path))
    assert _rows_run(workspace, comma) == ({"make_rows": "ran", "first_column": "ran"}, [0, 1, 2])
    assert path.read_text() == "0,0\n1,10\n2,20\n"
    semicolon = CsvRows(str(path), save_args={"sep": ";"}, load_args={"sep": ";"})
    # The node is served from its cache, its output written again with ';'; the reader reads it anew.
    assert _rows_run(workspace, semicolon) == ({"make_rows": "cached", "first_column": "ran"}, [0, 1, 2])
    assert path.read_text() == "0;0\n1;10\n2;20\n"
    written = path.stat().st_mtime_ns
    assert _rows_run(workspace, semicolon) == ({"make_rows": "cached", "first_column": "cached"}, [0, 1, 2])
    assert path.stat().st_mtime_ns == written  # unchanged definition: not written again
    # Back to ',': the cache (not a rerun) writes it again, as plain Kedro would rewrite the file.
    assert _rows_run(workspace, comma) == ({"make_rows": "cached", "first_column": "cached"}, [0, 1, 2])
    assert path.read_text() == "0,0\n1,10\n2,20\n"


def test_a_changed_dataset_type_at_the_same_path_rewrites_the_output_in_the_new_format(
    tmp_path: Path, workspace: str
) -> None:
    path = tmp_path / "table.data"
    assert _rows_run(workspace, JsonFile(str(path))) == ({"make_rows": "ran", "first_column": "ran"}, [0, 1, 2])
    assert json.loads(path.read_text()) == [[0, 0], [1, 10], [2, 20]]
    # JsonFile and PickleFile are project code (this test module): a project dataset class counts by its code in
    # the key of each node writing or reading it (attacker at10 K9), so the producer runs again and writes the
    # new format itself (a library class, e.g. kedro-datasets', is re-saved from the cache instead).
    assert _rows_run(workspace, PickleFile(str(path))) == ({"make_rows": "ran", "first_column": "ran"}, [0, 1, 2])
    assert PickleFile(str(path)).load() == [[0, 0], [1, 10], [2, 20]]  # a pickle now, not the old JSON
    assert _rows_run(workspace, PickleFile(str(path))) == ({"make_rows": "cached", "first_column": "cached"}, [0, 1, 2])


def test_a_changed_load_option_of_an_input_reruns_the_reader_but_does_not_rewrite_the_file(
    tmp_path: Path, workspace: str
) -> None:
    path = tmp_path / "table.csv"
    assert _rows_run(workspace, CsvRows(str(path))) == ({"make_rows": "ran", "first_column": "ran"}, [0, 1, 2])
    written = path.stat().st_mtime_ns
    limited = CsvRows(str(path), load_args={"limit": 2})
    assert _rows_run(workspace, limited) == ({"make_rows": "cached", "first_column": "ran"}, [0, 1])
    assert path.stat().st_mtime_ns == written


# --- 3. and 4. a damaged or tampered node cache is a miss ----------------------------------------


def _cache_file(workspace: str, node_name: str, output: str) -> Path:
    (path,) = Path(workspace, "kedro", "_").glob(f"{node_name}__{output}_*.pkl")
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _tamper_same_size(path: Path, value: Any) -> None:
    data, other = path.read_bytes(), pickle.dumps(value, protocol=4)
    assert len(other) == len(data) and other != data
    path.write_bytes(other)


def _total_pipeline() -> Pipeline:
    return Pipeline([node(add_up, "raw", "total", name="add_up")])


def _total_run(tmp_path: Path, workspace: str) -> tuple[KartRunner, DataCatalog]:
    catalog = DataCatalog({"raw": MemoryDataset([3, 4, 10]), "total": JsonFile(str(tmp_path / "total.json"))})
    runner = KartRunner(workspace_directory=workspace)
    runner.run(_total_pipeline(), catalog)
    return runner, catalog


@pytest.mark.parametrize("damage", ["truncated", "same size, other bytes"])
def test_a_damaged_cache_of_a_persistent_output_is_a_miss_and_the_node_reruns(
    tmp_path: Path, workspace: str, damage: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "0")  # the write-back checks the hash anyway
    _total_run(tmp_path, workspace)
    cache = _cache_file(workspace, "add_up", "total")
    (tmp_path / "total.json").unlink()  # so the cached value would be copied back into the catalog
    if damage == "truncated":
        _truncate(cache)
    else:
        _tamper_same_size(cache, 71)  # pickle of 17 and of 71: the same size
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        runner, catalog = _total_run(tmp_path, workspace)
    assert runner.last_run == {"add_up": "ran"}
    assert runner.last_reasons == {"add_up": "its cached output 'total' was damaged"}
    assert json.loads((tmp_path / "total.json").read_text()) == 17  # never the damaged 71
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "node 'add_up' runs again" in warning and str(cache) in warning
    assert ("bytes were committed" if damage == "truncated" else "content hash") in warning
    assert _total_run(tmp_path, workspace)[0].last_run == {"add_up": "cached"}


def _chain_catalog(factor: int) -> DataCatalog:
    return DataCatalog(
        {"raw": MemoryDataset([3, -1, 4]), "params:minimum": MemoryDataset(0), "params:factor": MemoryDataset(factor)}
    )


def test_a_damaged_memory_output_needed_downstream_reruns_its_node_in_the_same_run(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline(
        [
            node(clean, ["raw", "params:minimum"], "clean_values", name="clean"),
            node(scale, ["clean_values", "params:factor"], "scaled", name="scale"),
        ]
    )
    runner = KartRunner(workspace_directory=workspace)
    runner.run(pipeline, _chain_catalog(2))
    _tamper_same_size(_cache_file(workspace, "clean", "clean_values"), [7, 4])
    catalog = _chain_catalog(3)  # scale must run, so it needs clean's cached output: damaged
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        runner.run(pipeline, catalog)
    assert runner.last_run == {"clean": "ran", "scale": "ran"}
    assert catalog.load("scaled") == [9, 12]
    assert any("node 'clean' runs again" in record.getMessage() for record in caplog.records)


def test_a_damaged_output_whose_node_cannot_run_again_names_kedro_kart_clear(workspace: str) -> None:
    pipeline = Pipeline(
        [
            node(keep, "raw", "kept", name="keep"),
            node(clean, ["kept", "params:minimum"], "clean_values", name="clean"),
            node(scale, ["clean_values", "params:factor"], "scaled", name="scale"),
        ]
    )
    KartRunner(workspace_directory=workspace).run(pipeline, _chain_catalog(2))
    _cache_file(workspace, "keep", "kept").unlink()  # keep runs again; its memory output is freed after clean
    _truncate(_cache_file(workspace, "clean", "clean_values"))
    with pytest.raises(kart_core.errors.AdapterError) as raised:
        KartRunner(workspace_directory=workspace).run(pipeline, _chain_catalog(3))
    message = str(raised.value)
    assert "cached output 'clean_values' of node 'clean'" in message and "is damaged" in message
    assert "input(s) 'kept' are no longer held" in message
    assert "kedro kart clear --node clean --only" in message


# --- 5. a kart output a node reads is checked against its recorded hash, in every process ---------


def _pickled_same_size(path: Path, value: Any) -> None:
    """Overwrite a kart output (a plain pickle, signing off) with another value of the same pickled size."""
    data, other = path.read_bytes(), pickle.dumps(value, protocol=4)
    assert len(other) == len(data) and other != data
    path.write_bytes(other)


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner, KartParallelRunner], ids=lambda c: c.__name__)
def test_a_kart_input_changed_after_its_commit_is_rebuilt_before_a_node_reads_it(
    tmp_path: Path, workspace: str, journal: str, runner_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's key names the input by the hash its manifest records; the bytes it reads must be those
    (checked in the worker process under KartParallelRunner too), so a same-size change is repaired."""
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "0")  # the default: the dataset checks the hash all the same
    task = Shifted(size=3, workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == [0, 1, 2]
    _pickled_same_size(Path(task.output().path()), [0, 1, 5])
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    catalog = catalog_class({"shifted": _shifted_entry(workspace), "total": JsonFile(str(tmp_path / "total.json"))})
    runner = runner_class(workspace_directory=workspace)
    runner.run(Pipeline([node(add_up, "shifted", "total", name="add_up")]), catalog)
    assert runner.last_run == {"add_up": "ran"}
    assert json.loads((tmp_path / "total.json").read_text()) == 3  # never 6, the sum of the changed bytes
    assert task.output().load() == [0, 1, 2]  # rebuilt: the committed content is back
    assert len(journal_lines(journal)) == 2


@pytest.mark.parametrize("runner_class", [KartRunner, KartParallelRunner], ids=lambda c: c.__name__)
def test_with_repairs_off_a_changed_kart_input_is_the_named_error(
    workspace: str, journal: str, runner_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = Shifted(size=3, workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    _pickled_same_size(Path(task.output().path()), [0, 1, 5])
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    catalog = catalog_class({"shifted": _shifted_entry(workspace), "total": MemoryDataset()})
    with pytest.raises(Exception) as info:
        runner_class(workspace_directory=workspace).run(
            Pipeline([node(add_up, "shifted", "total", name="add_up")]), catalog
        )
    chain, seen = [], info.value
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    message = str(info.value)  # Kedro's DatasetError quotes the load's error (a worker's cause stays there)
    assert "is damaged: content hash" in message and task.output().path() in message
    assert "kart verify --delete" in message
    if runner_class is KartRunner:
        damaged = [error for error in chain if isinstance(error, kart_core.errors.DamagedOutputError)]
        assert damaged and damaged[0].kind == "hash"
    assert len(journal_lines(journal)) == 1


# --- 4. a node rebuilt during the run with other content -------------------------------------------


def count_runs() -> int:
    """Not deterministic: 10 times the number of its runs so far (KART_KEDRO_TEST_COUNTER counts them)."""
    path = os.environ["KART_KEDRO_TEST_COUNTER"]
    with open(path, "a") as handle:
        handle.write("x")
    with open(path) as handle:
        return 10 * len(handle.read())


def plus_one(value: int) -> int:
    return value + 1


def times(value: int, factor: int) -> int:
    return value * factor


def _counted_pipeline(served_first: bool) -> Pipeline:
    """count -> plus_one -> plus_two, and count -> times; ``served_first``: plus_one is decided before times."""
    first, second = ("a_plus_one", "b_times") if served_first else ("b_plus_one", "a_times")
    return Pipeline(
        [
            node(count_runs, None, "counted", name="count"),
            node(plus_one, "counted", "result", name=first),
            node(plus_one, "result", "result_2", name="plus_two"),
            node(times, ["counted", "params:factor"], "other", name=second),
        ]
    )


@pytest.mark.parametrize("runner_class", [KartRunner, KartThreadRunner, KartParallelRunner], ids=lambda c: c.__name__)
@pytest.mark.parametrize("served_first", [True, False], ids=["reader-served-before", "reader-decided-after"])
def test_a_node_rebuilt_in_the_run_with_other_content_reruns_the_nodes_built_on_its_old_content(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch, runner_class: type, served_first: bool
) -> None:
    """count is not deterministic. Its cache is damaged; times must run (its factor changed), needs count's
    output and so reruns count (20, was 10). plus_one, whose cache was built from 10, must not be served
    (11): whether it was served before count reran or is decided after, it runs again (21), then plus_two."""
    monkeypatch.setenv("KART_KEDRO_TEST_COUNTER", str(tmp_path / "counter.txt"))
    catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    pipeline = _counted_pipeline(served_first)

    def run(factor: int) -> tuple[Any, Any]:
        catalog = catalog_class({"params:factor": MemoryDataset(factor)})
        runner = runner_class(workspace_directory=workspace)
        runner.run(pipeline, catalog)
        return runner, catalog

    runner, catalog = run(2)
    assert (catalog.load("result_2"), catalog.load("other")) == (12, 20)
    _truncate(_cache_file(workspace, "count", "counted"))
    runner, catalog = run(3)
    assert (catalog.load("result_2"), catalog.load("other")) == (22, 60)
    assert set(runner.last_run.values()) == {"ran"}
    reader = runner.last_reasons["a_plus_one" if served_first else "b_plus_one"]
    # served before count reran: run again; decided after: keyed by count's new content (a new key)
    assert reader == (
        "its input 'counted' was rebuilt in this run with other content"
        if served_first
        else "upstream changed: counted"
    )
    runner, catalog = run(3)
    assert set(runner.last_run.values()) == {"cached"} and catalog.load("result_2") == 22
