"""Rebuilding a kart task at run time from its import path and parameters (no Airflow needed)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from kart_airflow.naming import import_path_of
from kart_airflow.rebuild import rebuild_task, resolve_class
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core


def test_task_instance_parameters_round_trip() -> None:
    train = Train(features=MakeFeatures(data=LoadData(n_rows=50, seed=3)), model="ridge", alpha=0.1)
    params = train.to_str_params(only_significant=True)
    rebuilt = rebuild_task(import_path_of(train), params, {}, train.make_unique_id())
    assert type(rebuilt) is Train and rebuilt.make_unique_id() == train.make_unique_id()
    assert rebuilt.features.data.n_rows == 50


def test_explicit_settings_such_as_the_workspace_are_kept(tmp_path: Path) -> None:
    task = Evaluate(model="mean", workspace_directory=str(tmp_path / "elsewhere"))
    rebuilt = rebuild_task(
        import_path_of(task),
        task.to_str_params(only_significant=True),
        {"workspace_directory": str(tmp_path / "elsewhere")},
        task.make_unique_id(),
    )
    assert rebuilt.output().path().startswith(str(tmp_path / "elsewhere"))


def test_changed_parameters_are_refused_with_a_clear_error() -> None:
    task = Evaluate(model="ridge")
    params = {**task.to_str_params(only_significant=True), "alpha": "3.0"}
    with pytest.raises(
        kart_core.StaleTaskError,
        # the stored parameters and the rebuilt task, readable (kart_core.display)
        match=rf"Evaluate\[{task.make_unique_id()[:8]}\].*\(model=ridge, alpha=3\.0, .*\), the task now is "
        rf"Evaluate\[.{{8}}\]\(model=ridge, alpha=3\.0, n_rows=400, seed=0\).*changed since the DAG was parsed",
    ):
        rebuild_task(import_path_of(task), params, {}, task.make_unique_id())


def test_changed_task_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "kart_changing_tasks.py"
    source = """
        import luigi
        import kart_core

        class Changing(kart_core.TaskOnKart):
            size = luigi.IntParameter(default=1)
    """
    module.write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    changing = importlib.import_module("kart_changing_tasks")
    task = changing.Changing()
    expected = task.make_unique_id()
    module.write_text(textwrap.dedent(source) + "    scale = luigi.IntParameter(default=2)\n")
    importlib.reload(changing)
    try:
        with pytest.raises(kart_core.StaleTaskError, match=r"Changing\[.{8}\].*task code or parameters changed"):
            rebuild_task("kart_changing_tasks.Changing", task.to_str_params(only_significant=True), {}, expected)
    finally:
        sys.modules.pop("kart_changing_tasks", None)


def test_a_missing_class_names_the_import_path() -> None:
    with pytest.raises(kart_core.StaleTaskError, match=r"'mlpipeline\.tasks\.Gone'.*renamed or removed"):
        resolve_class("mlpipeline.tasks.Gone")
    assert resolve_class("mlpipeline.tasks.Train") is Train
