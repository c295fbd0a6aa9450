"""TaskOnKartDataset: catalog config, load/exists/save/describe, and one cache shared with kart_core.build."""

from __future__ import annotations

import datetime
import inspect
import json
import pickle
from pathlib import Path

import pytest
from kart_kedro import KartReceipt, TaskOnKartDataset, TaskReceiptDataset
from kart_kedro.dataset import JSONPreview
from kart_kedro.receipt_dataset import receipt_for
from kedro.io import DataCatalog, DatasetError
from kedro_test_tasks import Doubled, Numbers, Total, journal_lines

import kart_core
from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.storage import storage_for

TOTAL_CONFIG = {
    "task": "kedro_test_tasks.Total",
    "params": {
        "doubled": {
            "task": "kedro_test_tasks.Doubled",
            "params": {
                "factor": 3,
                "source": {"task": "kedro_test_tasks.Numbers", "params": {"size": 3, "day": datetime.date(2024, 2, 1)}},
            },
        }
    },
}


def _total_task(workspace: str) -> Total:
    numbers = Numbers(size=3, day=datetime.date(2024, 2, 1), workspace_directory=workspace)
    return Total(
        doubled=Doubled(source=numbers, factor=3, workspace_directory=workspace), workspace_directory=workspace
    )


def test_load_builds_the_task_and_its_upstreams_once(workspace: str, journal: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert not dataset.exists()
    assert dataset.load() == (1 + 2 + 3) * 3
    assert dataset.exists()
    assert TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace).load() == 18
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == ["Doubled", "Numbers", "Total"]


def test_catalog_config_builds_the_same_task_as_python(workspace: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert dataset.task.make_unique_id() == _total_task(workspace).make_unique_id()


def test_a_task_built_by_kart_core_loads_through_the_catalog_without_rerunning(workspace: str, journal: str) -> None:
    assert kart_core.build(_total_task(workspace)) == 18
    runs = journal_lines(journal)
    catalog = DataCatalog.from_config(
        {"total": {"type": "kart_kedro.TaskOnKartDataset", **TOTAL_CONFIG, "workspace_directory": workspace}}
    )
    assert catalog.load("total") == 18
    assert journal_lines(journal) == runs


def test_an_output_built_through_the_catalog_is_cached_for_kart_core(workspace: str, journal: str) -> None:
    catalog = DataCatalog.from_config(
        {"total": {"type": "kart_kedro.TaskOnKartDataset", **TOTAL_CONFIG, "workspace_directory": workspace}}
    )
    assert catalog.load("total") == 18
    runs = journal_lines(journal)
    assert kart_core.build(_total_task(workspace)) == 18
    assert journal_lines(journal) == runs


def test_string_values_are_parsed_and_missing_params_take_defaults(workspace: str) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": "2", "day": "2024-03-05"}, workspace)
    assert dataset.task.size == 2 and dataset.task.start == 1
    assert dataset.task.day == datetime.date(2024, 3, 5)
    assert dataset.load() == [1, 2]


def test_a_list_of_tasks_is_a_list_of_mappings(workspace: str) -> None:
    parts = [{"task": "kedro_test_tasks.Numbers", "params": {"size": 2, "start": start}} for start in (1, 10)]
    dataset = TaskOnKartDataset("kedro_test_tasks.Combine", {"parts": parts}, workspace)
    assert dataset.load() == [1, 2, 10, 11]


def test_a_receipt_from_another_workspace_names_both_places(workspace: str, tmp_path: Path) -> None:
    # The pipeline's task wrote to ./resources while the entry reads data/kart: the same unique id (the
    # workspace is not in it), so the receipt matched and the message only said "not complete" (NU).
    elsewhere = Numbers(size=2, workspace_directory=str(tmp_path / "resources"))
    kart_core.build(elsewhere, reset_register=False)
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 2}, workspace)
    with pytest.raises(
        DatasetError, match=r"wrote the task's output to .*resources.* but this catalog entry reads"
    ) as raised:
        dataset.save(receipt_for(elsewhere, "ran"))
    assert workspace in str(raised.value) and "one workspace_directory" in str(raised.value)


def test_save_is_refused_with_the_reason(workspace: str) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 2}, workspace)
    with pytest.raises(DatasetError, match=r"Numbers\[[0-9a-f]{8}\]\) is read-only: .*kedro_test_tasks.Numbers"):
        dataset.save([1, 2])


def test_save_accepts_only_the_receipt_of_its_own_completed_task(workspace: str) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 2}, workspace)
    receipt = KartReceipt(node_key=kart_core.node_key(dataset.task), label="Numbers", status="ran")
    with pytest.raises(DatasetError, match=r"Numbers\[[0-9a-f]{8}\]\) got a receipt but the task is not complete: "):
        dataset.save(receipt)  # not built yet
    dataset.load()
    dataset.save(receipt)
    other = receipt_for(Numbers(size=3, workspace_directory=workspace), "ran")
    with pytest.raises(DatasetError, match=r"They differ in parameter 'size': '2' in the catalog, '3' in the pipeline"):
        dataset.save(other)


def test_a_mismatch_names_the_nested_parameter_that_differs(workspace: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    pipeline_task = Total(
        doubled=Doubled(source=Numbers(size=4, day=datetime.date(2024, 2, 1), workspace_directory=workspace), factor=3),
        workspace_directory=workspace,
    )
    with pytest.raises(DatasetError) as raised:
        dataset.save(receipt_for(pipeline_task, "ran"))
    message = str(raised.value)
    assert f"the pipeline's task {pipeline_task.kart_label()} is not this entry's task" in message
    assert "They differ in parameter 'doubled.source.size': '3' in the catalog, '4' in the pipeline" in message
    entry = dataset.task
    doubled = entry.param_kwargs["doubled"]
    numbers = doubled.param_kwargs["source"]
    assert (
        f"{entry.kart_label()}(doubled={doubled.kart_label()}(source={numbers.kart_label()}"
        "(size=3, start=1, day=2024-02-01), factor=3))"
    ) in message


def test_describe_shows_class_parameters_and_unique_id(workspace: str) -> None:
    dataset = TaskOnKartDataset("kedro_test_tasks.Numbers", {"size": 2}, workspace)
    text = str(dataset)
    assert "kedro_test_tasks.Numbers" in text
    assert "'size': '2'" in text
    assert dataset.task.make_unique_id() in text


def test_nested_task_parameters_read_as_tasks_not_hex_ids(workspace: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    doubled = dataset.task.param_kwargs["doubled"]
    readable = f"{dataset.task.kart_label()}(doubled={doubled.kart_label()}(source=Numbers["  # kart_core.task_text
    assert readable in str(dataset) and "425a68" not in str(dataset)
    source = dataset._describe()["params"]["doubled"]["params"]["source"]  # nested {task, params}, as in the YAML
    assert source == {"task": "kedro_test_tasks.Numbers", "params": {"size": "3", "start": "1", "day": "2024-02-01"}}


def test_kedro_viz_reads_class_parameters_unique_id_and_path(workspace: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    task = dataset.task
    # kedro-viz names the preview renderer after preview()'s return annotation and reads "filepath" from _describe().
    assert inspect.signature(dataset.preview).return_annotation in ("JSONPreview", JSONPreview)
    preview = dataset.preview()
    assert preview["task"] == "kedro_test_tasks.Total"
    assert preview["unique_id"] == task.make_unique_id()
    doubled = task.param_kwargs["doubled"]
    assert preview["label"].startswith(f"{task.kart_label()}(doubled={doubled.kart_label()}(")
    assert preview["params"]["doubled"]["params"]["factor"] == "3"
    assert preview["outputs"] == [str(task.output().path())] and preview["complete"] is False
    json.dumps(preview)  # kedro-viz sends it as JSON
    assert dataset._describe()["filepath"] == str(task.output().path())
    dataset.load()
    assert dataset.preview()["complete"] is True
    receipt_dataset = TaskReceiptDataset(task)
    assert receipt_dataset.preview()["unique_id"] == task.make_unique_id()
    assert receipt_dataset._describe()["filepath"] == str(task.output().path())


def test_the_dataset_pickles_with_its_task(workspace: str) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.task.make_unique_id() == dataset.task.make_unique_id()
    assert copy.load() == 18


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"task": "kedro_test_tasks.Missing"},
            r"task 'kedro_test_tasks.Missing': module 'kedro_test_tasks' has no class 'Missing'. "
            r"Its TaskOnKart classes: Combine, Doubled, Numbers, Total",
        ),
        (
            {"task": "kedro_test_tasks.Numbrs"},
            r"has no class 'Numbrs' \(did you mean 'Numbers'\?\). Its TaskOnKart classes",
        ),
        (
            {"task": "kedro_test_taks.Numbers"},
            r"there is no module 'kedro_test_taks' \(did you mean 'kedro_test_tasks'",
        ),
        (
            {"task": "kart_kedro.datset.TaskOnKartDataset"},
            r"module 'kart_kedro' has no submodule 'datset' \(did you mean 'kart_kedro.dataset'( or [^)]*)?\?\)",
        ),
        ({"task": "Numbers"}, r"not a dotted path"),
        ({"task": "kedro_test_tasks.NotATask"}, r"not a subclass of kart_core.TaskOnKart"),
        (
            {"task": "kedro_test_tasks.Numbers", "params": {"sise": 2}},
            r"no parameter 'sise' \(did you mean 'size'\?\). Its own parameters: day, size, start",
        ),
        ({"task": "kedro_test_tasks.Numbers", "params": {"size": "two"}}, r"parameter 'size' cannot parse 'two'"),
        (
            {"task": "kedro_test_tasks.Numbers", "params": {"size": 7.5}},
            r"parameter 'size' is an IntParameter and takes an int; got float 7.5",
        ),
        (
            {"task": "kedro_test_tasks.Numbers", "params": {"size": True}},
            r"parameter 'size' is an IntParameter and takes an int; got bool True",
        ),
        (
            {"task": "kedro_test_tasks.Numbers", "params": {"size": [1, 2]}},
            r"parameter 'size' is an IntParameter and takes an int; got list \[1, 2\]",
        ),
        (
            {"task": "kedro_test_tasks.Numbers", "params": {"day": 20240101}},
            r"parameter 'day' is a DateParameter and takes a date \(2024-01-01\); got int 20240101",
        ),
        ({"task": "kedro_test_tasks.Doubled", "params": {"source": 3}}, r"parameter 'source' is a task; write it as"),
        ({"task": "kedro_test_tasks.Doubled"}, r"Doubled.*source"),
    ],
)
def test_bad_config_is_a_dataset_error_naming_the_entry(entry: dict, message: str) -> None:
    catalog = DataCatalog.from_config({"my_entry": {"type": "kart_kedro.TaskOnKartDataset", **entry}})
    with pytest.raises(DatasetError, match=message) as raised:
        catalog.get("my_entry")
    assert "my_entry" in str(raised.value)


def test_an_fsspec_workspace_works_like_a_local_one(journal: str) -> None:
    workspace = "memory://kart_kedro_dataset_test/ws"
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert dataset.load() == 18
    assert dataset.exists()
    assert str(dataset.task.output().path()).startswith(workspace)
    assert TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace).load() == 18
    assert len(journal_lines(journal)) == 3


def _truncate(path: str) -> None:
    """Cut a committed output short, as a writer outside kart would."""
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])


def test_a_damaged_output_is_rebuilt_when_the_dataset_loads_it(workspace: str, journal: str) -> None:
    """The same rule as kart_core.build()'s root: the task runs again (its upstreams stay cached), then loads."""
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert dataset.load() == 18
    _truncate(dataset.task.output().path())
    assert TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace).load() == 18
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == ["Doubled", "Numbers", "Total", "Total"]


def test_a_damaged_output_with_repairs_off_is_the_named_error(
    workspace: str, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert dataset.load() == 18
    _truncate(dataset.task.output().path())
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(DatasetError) as info:  # Kedro wraps the load's error
        dataset.load()
    assert isinstance(info.value.__cause__, DamagedOutputError)
    assert "kart verify --delete" in str(info.value.__cause__)
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == ["Doubled", "Numbers", "Total"]


def test_signing_turned_on_over_an_unsigned_cache_is_the_named_refusal(
    workspace: str, journal: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is rebuilt (a refusal may be tampering); the error names the task and `kart verify --delete`.
    A dataset whose task must still be built, over a refused upstream, fails naming that upstream."""
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    dataset = TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace)
    assert dataset.load() == 18
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    with pytest.raises(DatasetError) as info:  # Kedro wraps the load's error
        TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace).load()
    assert isinstance(info.value.__cause__, IntegrityError)
    assert f"manifest of {dataset.task.kart_label()}" in str(info.value) and "`kart verify --delete`" in str(info.value)
    storage_for(dataset.task.output().path()).remove(dataset.task.output().path())
    with pytest.raises(DatasetError) as info:
        TaskOnKartDataset(**TOTAL_CONFIG, workspace_directory=workspace).load()
    assert f"manifest of {dataset.task.doubled.kart_label()}" in str(info.value)
    assert "kart build: 0 ran, 0 cached, 2 failed, 0 not run" in capsys.readouterr().err  # the refused upstream too
    # Total's run() began (and failed loading its input); nothing refused was rebuilt
    assert sorted(line.split("[")[0] for line in journal_lines(journal)) == ["Doubled", "Numbers", "Total", "Total"]


def test_a_missing_external_input_is_named_and_the_rest_is_built(workspace: str, tmp_path: Path) -> None:
    """kart's build() returns None for a missing external input, as gokart's (attacker at14 N4): the dataset still
    fails naming the input, after building what does not need it; once the file is there, it loads."""
    raw = tmp_path / "drop" / "rows.txt"
    config = {
        "task": "kedro_missing_input_tasks.NeedsRawInput",
        "params": {"path": str(raw), "numbers": {"task": "kedro_test_tasks.Numbers", "params": {"size": 2}}},
    }
    dataset = TaskOnKartDataset(**config, workspace_directory=workspace)
    with pytest.raises(DatasetError, match=r"could not be built: RawInput\(.*rows\.txt.*\) is missing"):
        dataset.load()
    assert Numbers(size=2, workspace_directory=workspace).complete()  # built beside the missing input
    raw.parent.mkdir()
    raw.write_text("a\nb\nc\n")
    assert TaskOnKartDataset(**config, workspace_directory=workspace).load() == 3 + 1 + 2


def _levels(workspace: str) -> DataCatalog:
    return DataCatalog.from_config(
        {
            name: {
                "type": "kart_kedro.TaskOnKartDataset",
                "task": f"kedro_lineage_tasks.{task}",
                "workspace_directory": workspace,
            }
            for name, task in (("plus", "LevelPlus"), ("times", "LevelTimes"))
        }
    )


def test_an_entry_built_on_an_upstream_stale_further_up_is_built_again_first(workspace: str, journal: str) -> None:
    """Attacker at23 A1: Level <- LevelPlus <- LevelTimes built (1100); Level rerun with other content: LevelPlus is
    stale, LevelTimes's own input unchanged. Its entry's load gives what build() gives (2100), not the 1100 built on
    the old Level."""
    from kedro_lineage_tasks import Level, LevelTimes

    assert kart_core.build(LevelTimes(workspace_directory=workspace)) == 1100
    kart_core.build(Level(value=2, rerun=True, workspace_directory=workspace))
    assert kart_core.stale_upstreams(LevelTimes(workspace_directory=workspace)) == [
        LevelTimes(workspace_directory=workspace).requires().kart_label()
    ]
    assert _levels(workspace).load("times") == 2100
    assert [line.split("[")[0] for line in journal_lines(journal)][-2:] == ["LevelPlus", "LevelTimes"]
    assert kart_core.stale_upstreams(LevelTimes(workspace_directory=workspace)) == []
    runs = journal_lines(journal)
    assert _levels(workspace).load("times") == 2100 and journal_lines(journal) == runs  # current: no build


@pytest.mark.parametrize("order", [["times", "plus"], ["plus", "times"]])
def test_a_node_reading_two_entries_of_one_lineage_gets_one_lineage_in_any_order(
    workspace: str, order: list[str]
) -> None:
    """A node given the model and the features it was trained on gets matching values whatever its inputs' order."""
    from kedro.pipeline import Pipeline, node
    from kedro.runner import SequentialRunner
    from kedro_lineage_tasks import Level, LevelTimes

    kart_core.build(LevelTimes(workspace_directory=workspace))
    kart_core.build(Level(value=3, rerun=True, workspace_directory=workspace))
    catalog = _levels(workspace)

    def report(*values: int) -> dict[str, int]:
        return dict(zip(order, values, strict=True))

    pipeline = Pipeline([node(report, order, "report", name="report")])
    SequentialRunner().run(pipeline, catalog)
    assert catalog.load("report") == {"plus": 31, "times": 3100}
