"""dag.test() end to end on real Airflow: the demo pipeline, the shared cache, failures and retries."""

from __future__ import annotations

import datetime
import os
import pickle
from typing import Any

import luigi
import pytest
from af_helpers import cache_files, statuses
from kart_airflow import task_id_for, to_dag
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core
from kart_core.errors import DamagedOutputError, IntegrityError


def _chain_ids(alpha: float) -> dict[str, str]:
    """Task ids of the demo chain of Evaluate(model="ridge", alpha=alpha), by class name."""
    root = Evaluate(model="ridge", alpha=alpha)
    graph = kart_core.place_graph([root])
    return {type(graph.nodes[key]).__name__: place for key, place in graph.places.items()}


def test_demo_pipeline_runs_then_is_cached(run_dag) -> None:
    evaluate = Evaluate(model="ridge")
    first = run_dag(to_dag(evaluate, dag_id="demo_fresh"))
    assert first.state == "success"
    assert statuses(first) == dict.fromkeys(_chain_ids(1.0).values(), "ran")
    assert kart_core.load_output(evaluate)["rmse"] < 0.5
    before = cache_files(evaluate)
    second = run_dag(to_dag(evaluate, dag_id="demo_fresh"))
    assert statuses(second) == dict.fromkeys(_chain_ids(1.0).values(), "cached")
    assert cache_files(evaluate) == before


def test_cache_is_shared_with_kart_build(run_dag) -> None:
    kart_core.build(Evaluate(model="ridge", alpha=1.0))
    built = cache_files(Evaluate(model="ridge", alpha=1.0))

    run = run_dag(to_dag(Evaluate(model="ridge", alpha=1.0), dag_id="cross_scheduler"))
    assert run.state == "success"
    assert statuses(run) == dict.fromkeys(_chain_ids(1.0).values(), "cached")
    assert cache_files(Evaluate(model="ridge", alpha=1.0)) == built

    run = run_dag(to_dag(Evaluate(model="ridge", alpha=2.0), dag_id="cross_scheduler"))
    ids = _chain_ids(2.0)
    assert statuses(run) == {
        ids["LoadData"]: "cached",
        ids["MakeFeatures"]: "cached",
        ids["Train"]: "ran",
        ids["Evaluate"]: "ran",
    }
    assert cache_files(Evaluate(model="ridge", alpha=1.0)) == built  # the old model is untouched

    after_airflow = cache_files(Evaluate(model="ridge", alpha=2.0))
    kart_core.build(Evaluate(model="ridge", alpha=2.0))
    assert cache_files(Evaluate(model="ridge", alpha=2.0)) == after_airflow


def test_failed_task_fails_the_run_with_the_kart_error(run_dag, capfd) -> None:
    bad = Evaluate(model="xgboost")
    bad_train = Train(features=MakeFeatures(data=LoadData()), model="xgboost")
    run = run_dag(to_dag(bad, dag_id="bad_model"))
    assert run.state == "failed"
    states = statuses(run)
    assert (states[task_id_for(bad_train, bad)], states[task_id_for(bad)]) == ("failed", "upstream_failed")
    assert f"{bad_train.kart_label()}: unknown model 'xgboost'" in capfd.readouterr().out
    assert not bad_train.complete()


class FailsOnce(kart_core.TaskOnKart[int]):
    """Fails on its first attempt (it leaves a marker file), succeeds on the next."""

    marker = luigi.Parameter()

    def run(self) -> None:
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError(f"{self.kart_label()}: first attempt fails on purpose")
        self.dump(self.load("upstream") + 1)

    def requires(self) -> dict[str, kart_core.TaskOnKart]:
        return {"upstream": LoadData(n_rows=10)}


class AfterFlaky(kart_core.TaskOnKart[int]):
    flaky = kart_core.TaskInstanceParameter(expected_type=FailsOnce)

    def run(self) -> None:
        self.dump(self.load("flaky") * 2)

    def output(self):
        return self.make_target("flaky/after.json")


def test_a_retry_that_succeeds_leaves_a_complete_cache(run_dag, tmp_path) -> None:
    last = AfterFlaky(flaky=FailsOnce(marker=str(tmp_path / "marker")))
    dag = to_dag(last, dag_id="flaky", operator_args={"retries": 1, "retry_delay": datetime.timedelta(0)})
    run = run_dag(dag)
    assert run.state == "success"
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries[task_id_for(last.flaky, last)] == 2 and tries[task_id_for(last)] == 1
    cache_files(last)  # every output and log is there
    assert all(node.complete() for node in kart_core.walk([last]).nodes.values())


def _run_for_xcom(run_dag, root: Evaluate, dag_id: str, alpha: float) -> tuple[dict[str, str], dict[str, Any]]:
    """Run ``root``'s DAG (it must succeed): its task ids by class name, and each task's XCom value."""
    run = run_dag(to_dag(root, dag_id=dag_id))
    assert run.state == "success"
    return _chain_ids(alpha), {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}


def _overwrite_middle(path: str) -> None:
    """Flip the bytes in the middle of ``path``: a same-size rewrite, found only by a content hash."""
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
        file.seek(0)
        file.write(data)


def test_a_repair_inside_a_task_is_in_its_xcom(run_dag, monkeypatch) -> None:
    """Train must run and finds MakeFeatures' output damaged (same size: the hash check of a load with verify
    on finds it): it rebuilds it, and its XCom says so. The damage is done after MakeFeatures' own Airflow task
    handed its path on (its success callback), which would have found it (at20 K2)."""
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    evaluate = Evaluate(model="ridge", alpha=3.0)
    kart_core.build(evaluate)
    features, model = evaluate.requires()["features"], evaluate.requires()["model"]
    assert type(features) is MakeFeatures and type(model) is Train
    for target in [*luigi.task.flatten(model.output()), *luigi.task.flatten(evaluate.output())]:
        os.remove(target.path())
    damage = {MakeFeatures: {"on_success_callback": lambda context: _overwrite_middle(features.output().path())}}
    run = run_dag(to_dag(evaluate, dag_id="repairing", class_operator_args=damage))
    assert run.state == "success"
    ids = _chain_ids(3.0)
    values = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}
    assert values[ids["Train"]]["status"] == "ran"
    assert values[ids["Train"]]["repaired"] == [kart_core.node_key(features)]
    assert values[ids["MakeFeatures"]] == {  # found cached: intact when its Airflow task checked it
        "status": "cached",
        "path": features.output().path(),
        "unique_id": features.make_unique_id(),
        "repaired": [],
    }
    assert kart_core.load_output(evaluate)["rmse"] < 0.5


def _truncate(path: str) -> None:
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])


def test_a_cached_task_with_a_truncated_output_is_rebuilt_before_its_path_and_asset_event_go_out(run_dag) -> None:
    """at17 low note: the operator handed a truncated output's path to XCom and its asset event as "cached".
    Now its own size check rebuilds it (the root, and a task in the middle whose readers are complete)."""
    evaluate = Evaluate(model="ridge", alpha=4.0)
    kart_core.build(evaluate)
    features = evaluate.requires()["features"]
    _truncate(features.output().path())
    _truncate(luigi.task.flatten(evaluate.output())[0].path())
    ids, values = _run_for_xcom(run_dag, evaluate, "truncated", 4.0)
    assert values[ids["MakeFeatures"]]["status"] == "ran"
    assert values[ids["MakeFeatures"]]["repaired"] == [kart_core.node_key(features)]
    assert values[ids["Train"]] == {**values[ids["Train"]], "status": "cached", "repaired": []}  # same features
    assert values[ids["Evaluate"]]["status"] == "ran"
    assert values[ids["Evaluate"]]["repaired"] == [kart_core.node_key(evaluate)]
    assert kart_core.load_output(evaluate)["rmse"] < 0.5
    assert kart_core.repair_if_damaged(evaluate) == ()  # nothing left to repair


def test_with_repairs_off_a_truncated_cached_output_fails_its_airflow_task(run_dag, monkeypatch) -> None:
    """Repairs off ([TaskOnKart] repair_damaged_outputs = false): the task fails naming the file, rather
    than hand its path on."""
    evaluate = Evaluate(model="ridge", alpha=5.0)
    kart_core.build(evaluate)
    target = luigi.task.flatten(evaluate.output())[0]
    _truncate(target.path())
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(DamagedOutputError, match="bytes were committed, found") as caught:
        kart_core.repair_if_damaged(evaluate)
    assert caught.value.path == target.path() and caught.value.kind == "size"
    run = run_dag(to_dag(evaluate, dag_id="truncated_no_repair"))
    assert run.state == "failed"
    assert statuses(run)[_chain_ids(5.0)["Evaluate"]] == "failed"


class Threshold(kart_core.TaskOnKart[dict]):
    """Dumps ``{"threshold": n}`` (pickled: n is one byte of the file)."""

    n = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.dump({"threshold": self.n})


def _flip_threshold(path: str) -> None:
    """The pickled 3 becomes a 7 in place, the modification time put back (a disk error): the same size."""
    before = os.stat(path)
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        data[data.rindex(b"K\x03") + 1] = 7
        file.seek(0)
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_same_size_change_of_a_cached_output_is_rebuilt_before_its_path_goes_out(run_dag, monkeypatch) -> None:
    """at20 K2: with verify on, a cached output changed in place at its size went to XCom as "cached"; the
    operator's check is a load's now (the content hash with verify on)."""
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    task = Threshold(n=3)
    kart_core.build(task)
    _flip_threshold(task.output().path())
    run = run_dag(to_dag(task, dag_id="same_size_damage"))
    assert run.state == "success"
    (instance,) = run.get_task_instances()
    value = instance.xcom_pull(task_ids=instance.task_id)
    assert value["status"] == "ran" and value["repaired"] == [kart_core.node_key(task)]
    with open(value["path"], "rb") as file:  # what a consumer that is not a kart task reads
        assert pickle.load(file) == {"threshold": 3}


def test_with_signing_on_a_refused_cached_output_fails_its_task_and_is_kept(run_dag, monkeypatch) -> None:
    """at20 K8: the operator's size check rebuilt a signed output cut short, which build() refuses (it may be
    tampering: a person looks first); now its task fails with build()'s refusal and the file stays."""
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    task = Threshold(n=5)
    kart_core.build(task)
    path = task.output().path()
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[:-10])
    run = run_dag(to_dag(task, dag_id="signed_refusal"))
    assert run.state == "failed"
    assert statuses(run) == {task_id_for(task): "failed"}
    with open(path, "rb") as file:
        assert file.read() == data[:-10]  # not rebuilt over
    with pytest.raises(IntegrityError, match="10 bytes short of its commit"):
        kart_core.repair_if_damaged(task)


class StaleUp(kart_core.TaskOnKart[int]):
    """Dumps 10 * ``value``: not part of the id, so a rerun with another value is an edit the id does not cover."""

    value = luigi.IntParameter(default=2, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class StaleNext(kart_core.TaskOnKart[int]):
    """Loads its upstream and adds one."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") + 1)


def test_a_dag_run_after_an_upstream_was_rebuilt_with_other_content_reruns_what_loaded_it(run_dag) -> None:
    """Up -> Mid -> Down ran; Up rebuilt elsewhere (kart build, rerun) with other content. Each Airflow task
    calls run_one in dependency order: Mid finds its input replaced and reruns, then Down finds Mid's."""
    down = StaleNext(up=StaleNext(up=StaleUp()))
    first = run_dag(to_dag(down, dag_id="stale_chain"))
    assert first.state == "success" and kart_core.load_output(down) == 22
    kart_core.build(StaleUp(value=3, rerun=True), reset_register=False)
    run = run_dag(to_dag(StaleNext(up=StaleNext(up=StaleUp())), dag_id="stale_chain"))
    assert run.state == "success"
    assert statuses(run) == {
        task_id_for(StaleUp(), down): "cached",
        task_id_for(down.up, down): "ran",
        task_id_for(down): "ran",
    }
    assert kart_core.load_output(StaleNext(up=StaleNext(up=StaleUp()))) == 32


class StaleByPath(kart_core.TaskOnKart[int]):
    """Requires its upstream and reads its output by path (pickle), never through kart."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        with open(self.input()["up"].path(), "rb") as file:
            self.dump(pickle.load(file) + 5)


def test_a_dag_run_after_a_required_upstream_changed_reruns_a_task_that_read_it_by_path(run_dag) -> None:
    """The input floor through run_one: ByPath's run recorded the commit of the Up it requires though it never loaded
    it through kart; Up rebuilt elsewhere with other content, the next DAG run reruns ByPath (35, not 25)."""
    task = StaleByPath(up=StaleUp())
    first = run_dag(to_dag(task, dag_id="stale_by_path"))
    assert first.state == "success" and kart_core.load_output(task) == 25
    kart_core.build(StaleUp(value=3, rerun=True), reset_register=False)
    run = run_dag(to_dag(StaleByPath(up=StaleUp()), dag_id="stale_by_path"))
    assert run.state == "success"
    assert statuses(run) == {task_id_for(StaleUp(), task): "cached", task_id_for(task): "ran"}
    assert kart_core.load_output(StaleByPath(up=StaleUp())) == 35


class StaleDouble(kart_core.TaskOnKart[int]):
    """Loads its upstream and doubles it."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") * 2)


def test_an_upstream_rerun_inside_the_dag_run_reruns_a_cached_task_that_loaded_it(run_dag) -> None:
    """Down(Up) built; a DAG of [Double(Up(rerun=True)), Down(Up)] reruns Up with other content in the run.
    Down was complete before the run started, but its Airflow task checks itself after Up's (run_one in
    dependency order): its input was replaced, so it reruns (31, not 21)."""
    down = StaleNext(up=StaleUp())
    assert kart_core.build(down, reset_register=False) == 21
    top = StaleDouble(up=StaleUp(value=3, rerun=True))
    run = run_dag(to_dag([top, StaleNext(up=StaleUp())], dag_id="stale_in_run"))
    assert run.state == "success"
    graph = kart_core.place_graph([top, StaleNext(up=StaleUp())])
    by_label = {graph.nodes[key].kart_label(): status for key, status in _by_key(graph, statuses(run)).items()}
    assert by_label == dict.fromkeys([top.kart_label(), StaleUp().kart_label(), down.kart_label()], "ran")
    assert kart_core.load_output(StaleNext(up=StaleUp())) == 31 and kart_core.load_output(top) == 60


def _by_key(graph: Any, found: dict[str, str]) -> dict[str, str]:
    """``statuses`` by node key (``place_graph``'s places are the Airflow task ids)."""
    return {key: found[place] for key, place in graph.places.items()}


def test_rerun_on_the_second_copy_of_a_task_reached_twice_is_kept(run_dag) -> None:
    """Up built (20); a DAG of [Next(Up), Double(Up(value=3, rerun=True))] reaches Up first through Next,
    without rerun. Its one Airflow task is built from the rerun copy, so Up reruns (30), then Next (31)
    and Double (60). The DAG kept the first copy: Up cached, 21 and 40."""
    assert kart_core.build(StaleUp(), reset_register=False) == 20
    roots = [StaleNext(up=StaleUp()), StaleDouble(up=StaleUp(value=3, rerun=True))]
    dag = to_dag(roots, dag_id="rerun_second_copy")
    up = dag.get_task(task_id_for(StaleUp(), roots[0]))
    assert up.kart_settings["rerun"] == "True" and up.kart_settings["value"] == "3"
    run = run_dag(dag)
    assert run.state == "success"
    assert statuses(run)[up.task_id] == "ran"
    assert kart_core.load_output(StaleUp()) == 30
    assert [kart_core.load_output(root) for root in roots] == [31, 60]


def test_a_run_conf_and_dag_params_are_said_to_reach_no_kart_task(register_dag, capfd) -> None:
    """Attacker at17 H6: a DAG's params and a run's conf reached no kart task, silently."""
    task = LoadData(n_rows=7)
    with pytest.warns(UserWarning, match=r"to_dag\('with_params', params=...\): kart tasks take their parameters"):
        dag = to_dag(task, dag_id="with_params", params={"n_rows": 5})
    register_dag(dag)
    run = dag.test(run_conf={"n_rows": 5})
    assert run.state == "success"
    out = capfd.readouterr().out
    assert "this DAG run's conf {'n_rows': 5} is not read by kart tasks" in out
    assert task.complete() and len(task.output().load()) == 7  # the file's value, as documented
    plain = to_dag(LoadData(n_rows=8), dag_id="without_conf")
    register_dag(plain)
    assert plain.test().state == "success"
    assert "is not read by kart tasks" not in capfd.readouterr().out


class NestedTop(kart_core.TaskOnKart[int]):
    """Requires nothing; its run() builds StaleNext(StaleUp()) (a nested build) and adds one."""

    def run(self) -> None:
        self.dump(kart_core.build(StaleNext(up=StaleUp()), reset_register=False) + 1)


def test_a_task_whose_run_built_a_task_now_stale_further_up_reruns_in_a_dag_run(run_dag) -> None:
    """NestedTop's run() builds StaleNext(StaleUp), which is in no DAG. StaleUp rebuilt elsewhere with other content
    makes StaleNext stale, and NestedTop with it (a built input): its Airflow task reruns it, and its nested build
    reruns StaleNext (32, not 22)."""
    first = run_dag(to_dag(NestedTop(), dag_id="nested_stale"))
    assert first.state == "success" and kart_core.load_output(NestedTop()) == 22
    kart_core.build(StaleUp(value=3, rerun=True), reset_register=False)
    run = run_dag(to_dag(NestedTop(), dag_id="nested_stale"))
    assert run.state == "success"
    assert statuses(run) == {task_id_for(NestedTop()): "ran"}
    assert kart_core.load_output(NestedTop()) == 32


def test_a_task_run_alone_while_its_upstream_is_stale_says_so(run_dag, capfd) -> None:
    """Attacker at23 A2: Up -> Mid -> Down ran; Up rebuilt with other content (Mid stale, Down's own input unchanged);
    only Down's Airflow task runs (cleared alone, or a DAG holding part of the graph): it warns that it is built on
    the stale Mid and says to clear Mid with its downstream tasks; then a whole DAG run brings both up to date."""
    down = StaleNext(up=StaleNext(up=StaleUp()))
    assert run_dag(to_dag(down, dag_id="stale_alone")).state == "success"
    kart_core.build(StaleUp(value=4, rerun=True), reset_register=False)
    dag = to_dag(StaleNext(up=StaleNext(up=StaleUp())), dag_id="stale_alone")
    alone = dag.partial_subset(task_ids=[task_id_for(down)], include_upstream=False, include_downstream=False)
    capfd.readouterr()
    run = run_dag(alone)
    out = " ".join(capfd.readouterr().out.split())  # the task log, its lines joined
    assert run.state == "success" and statuses(run) == {task_id_for(down): "cached"}
    assert f"{down.kart_label()} is built on (or about to read) {down.up.kart_label()}, stale: an upstream" in out
    assert "Clear it with its downstream tasks" in out
    run = run_dag(to_dag(StaleNext(up=StaleNext(up=StaleUp())), dag_id="stale_alone"))
    assert kart_core.load_output(StaleNext(up=StaleNext(up=StaleUp()))) == 42
