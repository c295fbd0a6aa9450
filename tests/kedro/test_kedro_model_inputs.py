"""A model object loaded from the Kedro catalog keys the node by its state and by its class's code.

A fitted model is often callable (``model(x)``: a torch module, a user's scorer). kart refused every
callable input as undigestable, so a node reading one ran uncached on every run with a warning. Now
only code is refused (a function, a bound method, a class, a partial: pickled by name); an object
counts by its pickle (its state), and the project classes and functions that pickle names count by
their code fingerprint, so an edit of the model's ``__call__`` or ``predict`` reruns the node (kart
before counted a non-callable model by its state alone: such an edit was served stale). A local file
holding such a model is loaded on each run (its stamp cannot tell a code edit).
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kart_kedro import KartRunner, KartThreadRunner
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro_datasets.pickle import PickleDataset

MODELS = textwrap.dedent(
    """
    class Scaler:
        def __init__(self, weight):
            self.weight = weight

        def __call__(self, values):
            return [value * self.weight + OFFSET for value in values]

    class Regressor:  # not callable: the node calls its predict()
        def __init__(self, weight):
            self.weight = weight

        def predict(self, values):
            return [value * self.weight + OFFSET for value in values]

    OFFSET = 0
    """
)


def apply(model: Any, values: list[int]) -> list[int]:
    if isinstance(model, dict):
        model = model["model"]
    return model(values) if callable(model) else model.predict(values)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The project's model module (project code: not installed), importable by the pickles."""
    (tmp_path / "kart_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("kart_models", None)
    yield importlib.import_module("kart_models")
    sys.modules.pop("kart_models", None)


def _edit(models: Any, offset: int) -> Any:
    """The module's code edited (OFFSET) and imported again, as in the next process."""
    path = Path(models.__file__)
    path.write_text(MODELS.replace("OFFSET = 0", f"OFFSET = {offset}"))
    importlib.invalidate_caches()
    return importlib.reload(models)


def _run(runner_type: type, catalog: dict[str, Any], workspace: str) -> tuple[str, Any]:
    runner = runner_type(workspace_directory=workspace)
    pipeline = Pipeline([node(apply, ["model", "params:values"], "out", name="apply")])
    full = {"params:values": MemoryDataset([1, 2]), "out": MemoryDataset(), **catalog}
    outputs = runner.run(pipeline, DataCatalog(full))
    value = outputs["out"]
    return runner.last_run["apply"], value.load() if hasattr(value, "load") else value


@pytest.mark.parametrize("runner_type", [KartRunner, KartThreadRunner])
def test_a_callable_model_from_a_pickle_file_is_cached_and_keyed_by_weights_and_code(
    models: Any, tmp_path: Path, workspace: str, runner_type: type, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "model.pkl")
    PickleDataset(filepath=path).save(models.Scaler(2))
    catalog = {"model": PickleDataset(filepath=path)}
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        assert _run(runner_type, catalog, workspace) == ("ran", [2, 4])
        assert _run(runner_type, catalog, workspace) == ("cached", [2, 4])
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []

    PickleDataset(filepath=path).save(models.Scaler(3))  # other weights
    assert _run(runner_type, catalog, workspace) == ("ran", [3, 6])
    assert _run(runner_type, catalog, workspace) == ("cached", [3, 6])

    _edit(models, 100)  # the model's code edited, its file untouched
    assert _run(runner_type, catalog, workspace) == ("ran", [103, 106])
    assert _run(runner_type, catalog, workspace) == ("cached", [103, 106])


@pytest.mark.parametrize("shape", ["regressor", "scaler_in_dict"])
def test_a_model_held_in_memory_reruns_after_an_edit_of_its_method(models: Any, workspace: str, shape: str) -> None:
    """A non-callable model (its predict() runs), and a callable one inside a dict, from a MemoryDataset."""

    def catalog(module: Any) -> dict[str, Any]:
        model = module.Regressor(2) if shape == "regressor" else {"model": module.Scaler(2)}
        return {"model": MemoryDataset(model, copy_mode="assign")}

    assert _run(KartRunner, catalog(models), workspace) == ("ran", [2, 4])
    assert _run(KartRunner, catalog(models), workspace) == ("cached", [2, 4])
    models = _edit(models, 10)
    assert _run(KartRunner, catalog(models), workspace) == ("ran", [12, 14])
    assert _run(KartRunner, catalog(models), workspace) == ("cached", [12, 14])


def test_code_itself_still_runs_the_node_uncached(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    """A function handed in as data is pickled by name: it cannot key the cache."""
    catalog = {"model": MemoryDataset(sorted, copy_mode="assign")}
    with caplog.at_level(logging.WARNING, logger="kart_kedro"):
        assert _run(KartRunner, catalog, workspace) == ("ran uncached", [1, 2])
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert "its input 'model' holds a callable (sorted)" in warning
