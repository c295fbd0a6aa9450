"""to_dag / KartTaskGroup: ids, names, edges, operator arguments, assets, no Jinja, parse speed."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import luigi
import pytest
from af_helpers import EXAMPLES, statuses
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization
from kart_airflow import KartTaskGroup, KartTaskOperator, display_name_for, task_id_for, task_ids, to_dag
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core
from kart_core.places import MAX_PLACE_LENGTH


class Layered(kart_core.TaskOnKart[int]):
    """Node ``index`` of ``layer`` in a graph ``width`` wide; each depends on two nodes of the layer below."""

    layer = luigi.IntParameter()
    index = luigi.IntParameter()
    width = luigi.IntParameter(default=50)

    def requires(self) -> list[kart_core.TaskOnKart]:
        if self.layer == 0:
            return []
        below = {self.index, (self.index + 1) % self.width}
        return [Layered(layer=self.layer - 1, index=i, width=self.width) for i in sorted(below)]


def layered_roots(n_tasks: int, width: int = 50) -> list[Layered]:
    """The top layer of a layered graph of ``n_tasks`` tasks."""
    return [Layered(layer=n_tasks // width - 1, index=i, width=width) for i in range(width)]


def test_task_ids_name_places_so_a_changed_value_keeps_every_id() -> None:
    def dag_for(alpha: float):
        return to_dag([Evaluate(model="linear"), Evaluate(model="ridge", alpha=alpha)], dag_id="places")

    first, second = dag_for(0.5), dag_for(2.0)
    assert (
        sorted(first.task_ids)
        == sorted(second.task_ids)
        == [
            "Evaluate",
            "Evaluate_2",
            "LoadData__Evaluate.features.data",
            "MakeFeatures__Evaluate.features",
            "Train__Evaluate.model",
            "Train__Evaluate_2.model",
        ]
    )
    for task_id in ("Evaluate_2", "Train__Evaluate_2.model"):  # the unique id is in the display name
        names = first.get_task(task_id).task_display_name, second.get_task(task_id).task_display_name
        assert names[0] != names[1] and re.match(r"\w+\[[0-9a-f]{8}\]\(", names[0])
    assert first.get_task("Evaluate").task_display_name == second.get_task("Evaluate").task_display_name
    ridge = Evaluate(model="ridge", alpha=2.0)
    (outlet,) = second.get_task("Evaluate_2").outlets
    assert outlet.extra["kart_unique_id"] == ridge.make_unique_id()
    assert outlet.extra["kart_code"] == kart_core.code_fingerprint(Evaluate)


def test_long_places_are_compacted_and_stay_valid() -> None:
    long_name = type("Ä" + "Long" * 100, (kart_core.TaskOnKart,), {"__module__": __name__})()
    long_id = task_id_for(long_name)  # a root's label too long for 40 characters: compacted with a hash
    assert len(long_id) == MAX_PLACE_LENGTH and re.fullmatch(r"_(Long){7}---[a-z2-7]{8}", long_id, re.ASCII)
    deep = layered_roots(200, width=1)[0]  # 200 layers: places 200 steps deep
    ids = task_ids(deep)
    assert len(set(ids.values())) == 200 and max(len(i) for i in ids.values()) == MAX_PLACE_LENGTH
    assert all(re.fullmatch(r"[\w.-]+", i, re.ASCII) for i in ids.values())
    # The root and the 12 places below it (Layered__Layered and 12 steps of ".0") fit in 40 characters.
    assert ids[kart_core.node_key(deep)] == "Layered" and sum("--" not in i for i in ids.values()) == 13


def test_display_name_shows_class_and_parameters() -> None:
    features = MakeFeatures(data=LoadData(n_rows=10))
    train = Train(features=features, model="ridge", alpha=0.5)
    load = features.data
    assert display_name_for(train) == (
        f"{train.kart_label()}(features={features.kart_label()}(data={load.kart_label()}, test_fraction=0.25), "
        "model=ridge, alpha=0.5)"
    )


def test_one_airflow_task_per_unique_id_with_the_kart_edges() -> None:
    roots = [Evaluate(model="linear"), Evaluate(model="ridge"), Evaluate(model="linear")]
    dag = to_dag(roots, dag_id="shared")
    graph = kart_core.walk(roots)
    ids = task_ids(roots)
    assert sorted(dag.task_ids) == sorted(ids.values()) and len(dag.task_ids) == 6
    for key, deps in graph.upstream.items():
        assert dag.get_task(ids[key]).upstream_task_ids == {ids[dep] for dep in deps}
        inlets = {inlet.uri for inlet in dag.get_task(ids[key]).inlets} - {"x-kart-record://shared/"}
        assert inlets == {outlet.uri for dep in deps for outlet in dag.get_task(ids[dep]).outlets}
    assert dag.get_task(ids[graph.order[0]]).downstream_task_ids == {ids[graph.order[1]]}
    assert dag.fileloc == __file__


def test_bulk_edges_serialize_like_airflow_set_upstream() -> None:
    roots = layered_roots(200, width=10)
    fast = to_dag(roots, dag_id="layered")

    def slow_inlets(task_id: str) -> list[object]:
        return [inlet for inlet in fast.get_task(task_id).inlets if not str(inlet.uri).startswith("x-kart-record")]

    with DAG(dag_id="layered") as slow:
        graph = kart_core.place_graph(roots)
        operators = {
            key: KartTaskOperator.from_task(
                graph.nodes[key], task_id=graph.places[key], upstream=[graph.nodes[d] for d in graph.upstream[key]]
            )
            for key in graph.order
        }
        for key, deps in graph.upstream.items():
            operators[key].set_upstream([operators[dep] for dep in deps])
        # The DAG's record of every task (what workers check), an inlet of the first task.
        first = graph.places[graph.order[0]]
        operators[graph.order[0]].inlets.extend(i for i in fast.get_task(first).inlets if i not in slow_inlets(first))
    slow.fileloc = fast.fileloc
    assert DagSerialization.to_dict(fast) == DagSerialization.to_dict(slow)


class FastTrain(Train):
    pass


def test_operator_arguments_for_all_tasks_and_per_class() -> None:
    roots = [Evaluate(model="ridge"), FastTrain(features=MakeFeatures(data=LoadData()), model="mean")]
    dag = to_dag(
        roots,
        dag_id="args",
        operator_args={"retries": 3, "pool": "kart"},
        class_operator_args={
            Train: {"pool": "gpu"},
            "FastTrain": {"retries": 0},
            "mlpipeline.tasks.LoadData": {"queue": "io"},
        },
    )
    by_class = {task.kart_class.rsplit(".", 1)[1]: task for task in dag.tasks}
    assert (by_class["Train"].pool, by_class["Train"].retries) == ("gpu", 3)
    assert (by_class["FastTrain"].pool, by_class["FastTrain"].retries) == ("gpu", 0)
    assert (by_class["LoadData"].queue, by_class["Evaluate"].pool) == ("io", "kart")
    with pytest.raises(ValueError, match="do not pass task_id"):
        to_dag(roots, dag_id="args", operator_args={"task_id": "x"})


@pytest.mark.parametrize(
    ("key", "suggested"),
    [("Trian", "'Train'"), ("mlpipeline.task.Train", "'mlpipeline.tasks.Train'"), ("mlpipeline.tasks.Trainer", "")],
)
def test_a_class_operator_args_key_naming_no_task_class_is_refused(key: str, suggested: str) -> None:
    # A misspelt or moved class name left the class's pool and retries silently unapplied (attacker at7 E5).
    with pytest.raises(
        kart_core.errors.SettingValueError, match=rf"key '{re.escape(key)}' names no task class.*"
    ) as raised:
        to_dag(Evaluate(model="ridge"), dag_id="args", class_operator_args={key: {"pool": "gpu"}})
    assert suggested in str(raised.value) and "The graph's classes:" in str(raised.value)
    listed = str(raised.value).split("The graph's classes: ")[1]
    assert "mlpipeline.tasks.Evaluate" in listed and not {"object", "TaskOnKart", "Task", "Generic"} & set(
        listed.rstrip(".").split(", ")
    )  # the graph's own classes, not their bases (NU)


def test_a_class_operator_args_key_for_a_class_of_another_dag_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One dict shared by several DAG files: a class known to the process but not in this graph, or an
    # import path into a module this DAG file does not import, is not a typo.
    (tmp_path / "other_dag_tasks.py").write_text(
        "import kart_core\n\n\nclass OtherDagReport(kart_core.TaskOnKart):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    dag = to_dag(
        LoadData(),
        dag_id="args",
        class_operator_args={"FastTrain": {"retries": 0}, Train: {"pool": "gpu"}, "other_dag_tasks.OtherDagReport": {}},
    )
    assert [task.pool for task in dag.tasks] == ["default_pool"]


def test_a_misspelt_class_in_a_module_not_imported_yet_is_refused_with_that_modules_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check accepted any name in a module that exists but was not imported yet (attacker at8): its
    # arguments silently never applied. Now the module's source is read and the name looked up.
    (tmp_path / "report_dag_tasks.py").write_text(
        "import kart_core\n\n\nclass MonthlyReport(kart_core.TaskOnKart):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "report_dag_tasks", raising=False)
    with pytest.raises(kart_core.errors.SettingValueError) as raised:
        to_dag(LoadData(), dag_id="args", class_operator_args={"report_dag_tasks.MonthlyReprot": {"pool": "gpu"}})
    message = str(raised.value)
    assert message.startswith("kart_airflow: class_operator_args key 'report_dag_tasks.MonthlyReprot' names no task")
    assert "Did you mean 'report_dag_tasks.MonthlyReport'?" in message
    assert "report_dag_tasks" not in sys.modules  # read, not imported


def test_another_dag_files_module_is_read_not_run_while_this_dag_file_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Attacker at11 F4: importing the key's module ran its code inside this DAG file's parse, and a to_dag
    # there made Airflow 3 file that module's DAG under this file too (one DAG claimed by two files).
    ran = tmp_path / "ran"
    (tmp_path / "report_dag.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(ran)!r}).write_text('imported')\n"
        "try:\n    from kart_core import TaskOnKart as Base\nexcept ImportError:\n    Base = object\n"
        "class MonthlyReport(Base):\n    pass\n"
        "if True:\n    WeeklyReport = MonthlyReport\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "report_dag", raising=False)
    args = {"report_dag.MonthlyReport": {"pool": "gpu"}, "report_dag.WeeklyReport": {}, "report_dag.Base": {}}
    dag = to_dag(LoadData(), dag_id="args", class_operator_args=args)
    assert [task.pool for task in dag.tasks] == ["default_pool"]
    assert not ran.exists() and "report_dag" not in sys.modules


@pytest.mark.parametrize(
    "source",
    ["from kart_core import *\n", "def __getattr__(name):\n    return type(name, (), {})\n"],
    ids=["star-import", "module-getattr"],
)
def test_a_class_operator_args_key_whose_module_names_cannot_be_read_is_accepted_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, source: str
) -> None:
    (tmp_path / "opaque_dag_tasks.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opaque_dag_tasks", raising=False)
    with caplog.at_level(logging.WARNING, logger="kart_airflow.graph"):
        dag = to_dag(LoadData(), dag_id="args", class_operator_args={"opaque_dag_tasks.Report": {"pool": "gpu"}})
    assert [task.pool for task in dag.tasks] == ["default_pool"]
    assert (
        "class_operator_args key 'opaque_dag_tasks.Report' could not be checked: the names of module "
        "'opaque_dag_tasks' cannot be read from its source"
    ) in caplog.text


def test_outputs_are_assets_with_the_output_uri(tmp_path: Path) -> None:
    evaluate = Evaluate(model="mean")
    dag = to_dag(evaluate, dag_id="assets")
    (outlet,) = dag.get_task(task_id_for(evaluate)).outlets
    assert outlet.uri == f"x-kart://workspace/mlpipeline/tasks/Evaluate_{evaluate.make_unique_id()}.pkl"
    remote = Evaluate(model="mean", workspace_directory="s3://bucket/ws")
    (outlet,) = to_dag(remote, dag_id="remote").get_task(task_id_for(remote)).outlets
    assert outlet.uri == remote.output().path() and outlet.uri.startswith("s3://bucket/ws/")


@pytest.mark.parametrize("path", ["ws/a b/Train_1.pkl", "/srv/ws/ü%#?x.pkl", "plain/x.csv"])
def test_local_output_uris_are_what_pathlib_gives(path: str) -> None:
    from kart_airflow.outputs import output_uri

    assert output_uri(path) == Path(os.path.abspath(path)).as_uri()
    assert output_uri("gs://b/" + path) == "gs://b/" + path


class Greeting(kart_core.TaskOnKart[str]):
    template = luigi.Parameter()

    def run(self) -> None:
        self.dump(self.template)


def test_a_template_in_a_parameter_is_refused_at_parse_naming_the_task_and_parameter() -> None:
    # Airflow never renders a kart parameter: the unique id would hash the text, every run the same task.
    greeting = Greeting(template="run of {{ ds }} for {{ dag.dag_id }}")
    with pytest.raises(
        kart_core.errors.TaskDefinitionError,
        match=rf"Greeting\[{greeting.make_unique_id()[:8]}\]: parameter template='run of {{{{ ds }}}} for "
        r".*is an Airflow template.*Dates and partitions",
    ):
        to_dag(greeting, dag_id="jinja")
    with pytest.raises(kart_core.errors.TaskDefinitionError, match=r"parameter template='{{ ds }}'"):
        to_dag([Greeting(template="plain"), Greeting(template="{{ ds }}")], dag_id="jinja")


class Configured(kart_core.TaskOnKart[str]):
    cfg = luigi.DictParameter(default={})
    days = luigi.ListParameter(default=[])

    def run(self) -> None:
        self.dump("done")


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"cfg": {"day": "{{ ds }}"}}, "cfg['day']"),
        ({"cfg": {"{{ ds }}": 1}}, "cfg key '{{ ds }}'"),
        ({"days": [["2024-01-01", "{{ ds }}"]]}, "days[0][1]"),
        ({"days": [{"d": "{% if true %}x{% endif %}"}]}, "days[0]['d']"),
    ],
)
def test_a_template_nested_in_a_dict_or_list_parameter_is_refused_naming_where(values: dict, where: str) -> None:
    # Only a str or a top-level list item was checked: a run config dict went through and every
    # daily run after the first was served day 1's output (attacker at7 E4).
    with pytest.raises(kart_core.errors.TaskDefinitionError, match=rf"holds at {re.escape(where)} an Airflow template"):
        to_dag(Configured(**values), dag_id="jinja_nested")


class Dated(kart_core.TaskOnKart[str]):
    source = luigi.PathParameter()

    def run(self) -> None:
        self.dump(str(self.source))


def test_a_template_in_a_value_of_another_type_is_refused_by_its_string_form() -> None:
    # A Path is neither a str nor a container: the walk missed it, the unique id covered the literal text (at8 H2).
    with pytest.raises(kart_core.errors.TaskDefinitionError, match=r"parameter source=.*is an Airflow template"):
        to_dag(Dated(source=Path("/data/{{ ds }}/in.csv")), dag_id="jinja_path")


def test_literal_templates_lets_a_task_keep_its_own_template() -> None:
    # A prompt or SQL template the task renders itself is not an Airflow template: hashed as written.
    prompt = Configured(cfg={"prompt": "Answer: {{ question }}"})
    dag = to_dag(prompt, dag_id="prompt", literal_templates=True)
    assert [task.kart_unique_id for task in dag.tasks] == [prompt.make_unique_id()]
    with pytest.raises(kart_core.errors.TaskDefinitionError, match=r"pass literal_templates=True"):
        to_dag(prompt, dag_id="prompt")


def test_cached_runs_emit_labelled_asset_events(run_dag) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    greeting = Greeting(template="run of { ds } for the jinja DAG")
    run_dag(to_dag(greeting, dag_id="jinja"))
    assert kart_core.load_output(greeting) == "run of { ds } for the jinja DAG"
    assert statuses(run_dag(to_dag(greeting, dag_id="jinja"))) == {task_id_for(greeting): "cached"}
    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_dag_id == "jinja").order_by(AssetEvent.id).all()
    assert [event.extra.get("kart_status") for event in events] == ["ran", "cached"]


def test_cached_runs_can_leave_out_asset_events(run_dag) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    quiet = Greeting(template="quiet when cached")
    for _ in range(2):
        run = run_dag(to_dag(quiet, dag_id="quiet", emit_cached_asset_events=False))
    assert statuses(run) == {"Greeting": "cached"}
    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_dag_id == "quiet").all()
    assert [event.extra.get("kart_status") for event in events] == ["ran"]


def test_task_group_inside_an_existing_dag(run_dag) -> None:
    with DAG(dag_id="embedded_test") as dag:
        start, done = EmptyOperator(task_id="start"), EmptyOperator(task_id="done")
        group = KartTaskGroup(Evaluate(model="mean"), group_id="models", operator_args={"retries": 2})
        start >> group >> done
    load = task_id_for(LoadData(), Evaluate(model="mean"))
    assert dag.get_task("start").downstream_task_ids == {f"models.{load}"}
    assert dag.get_task("done").upstream_task_ids == {f"models.{task_id_for(Evaluate(model='mean'))}"}
    assert {t.retries for t in group.kart_operators.values()} == {2}
    run = run_dag(dag)
    assert run.state == "success" and kart_core.load_output(Evaluate(model="mean"))["model"] == "mean"


def test_two_thousand_tasks_become_one_dag_with_every_edge() -> None:
    # Speed is measured by bench/airflow_parse.py (docs/benchmarks.md), never asserted in a test.
    roots = layered_roots(2000)
    dag = to_dag(roots, dag_id="big")
    graph = kart_core.walk(roots)
    assert len(dag.tasks) == len(graph) == 2000
    edges = sum(len(task.upstream_task_ids) for task in dag.tasks)
    assert edges == sum(len(set(deps)) for deps in graph.upstream.values())


_SERIALIZE = """
import json, runpy, sys
from airflow.serialization.serialized_objects import DagSerialization
dag = runpy.run_path(sys.argv[1])["dag"]
print(json.dumps(DagSerialization.to_dict(dag), sort_keys=True))
"""


def test_parsing_is_deterministic_across_processes_and_hash_seeds(airflow_db: str) -> None:
    dag_file = str(EXAMPLES / "airflow" / "dags" / "train.py")

    def serialized(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _SERIALIZE, dag_file], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    # The two processes (each imports Airflow: ~4 s of CPU) at the same time, not one after the other.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(serialized, ("0", "12345")))
    assert outputs[0] == outputs[1]
    assert len(json.loads(outputs[0])["dag"]["tasks"]) == 6


class Unbuildable(kart_core.TaskOnKart[int]):
    region = luigi.Parameter()

    def requires(self) -> kart_core.TaskOnKart:
        return {"eu": Greeting(template="eu")}[self.region]


def test_an_exception_from_requires_at_parse_names_the_task_and_keeps_its_type() -> None:
    # A DAG file's import error is this traceback: in a graph of hundreds of tasks it must say which one raised.
    with pytest.raises(KeyError, match="us") as raised:
        to_dag([Greeting(template="plain"), Unbuildable(region="us")], dag_id="unbuildable")
    assert raised.value.__notes__ == [
        "kart: raised by requires() of Unbuildable(region=us); fix it, or the parameters that reach it."
    ]


class _PlainLuigi(luigi.Task):
    def run(self) -> None:
        pass


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (Evaluate, "got the task class mlpipeline.tasks.Evaluate: call it, to_dag(Evaluate(...), ...)"),
        (_PlainLuigi(), "a plain luigi.Task: it has no kart cache"),
        ([Evaluate(model="ridge"), _PlainLuigi()], "a plain luigi.Task"),
        (5, "(one, or a list of them), got int: 5."),
        ([None], "got NoneType: None."),
    ],
)
def test_to_dag_given_no_kart_task_names_it_and_the_fix(given: object, named: str) -> None:
    """Attacker at26 G7: a task class alone, or a plain luigi task, said "'KartRegister' object is not iterable"."""
    with pytest.raises(TypeError) as raised:
        to_dag(given, dag_id="not_tasks")
    assert "kart_airflow takes TaskOnKart tasks" in str(raised.value) and named in str(raised.value)
