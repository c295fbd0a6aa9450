"""A node reading a model another node returned reruns when the model class's code is edited (attacker at6 D4).

``train`` returns ``Regressor(2)``, ``predict`` calls ``model.predict(values)``: a method found at run
time, not named in ``predict``'s code. After an edit of ``Regressor.predict``, ``train`` reruns (its code
names the class) and returns a model whose pickle is byte-identical; kart before keyed ``predict`` by
those bytes and its own code only, and served the old code's predictions. Now the project classes an
upstream value's pickle names count by their code. Each run is its own process (a real edit between
runs), on real project modules written to a temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from kedro_project import run_script_json

MODELS = textwrap.dedent(
    """
    class Regressor:  # not callable: predict() runs
        def __init__(self, weight):
            self.weight = weight

        def predict(self, values):
            return [value * self.weight + 0 for value in values]

    class Scaler:  # callable: model(values) runs
        def __init__(self, weight):
            self.weight = weight

        def __call__(self, values):
            return [value * self.weight + 0 for value in values]

    class Unrelated:
        def size(self):
            return 1
    """
)

NODES = textwrap.dedent(
    """
    from proj_models import Regressor, Scaler

    def train(values):
        return Regressor(2)

    def train_callable(values):
        return Scaler(2)

    def predict(model, values):
        return model(values) if callable(model) else model.predict(values)

    import kart_core

    class TrainTask(kart_core.TaskOnKart):
        def run(self):
            self.dump(Regressor(2))
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1] + "/src")
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pickle import PickleDataset
    from kart_kedro import KartRunner
    import proj_nodes

    root, shape = sys.argv[1], sys.argv[2]
    train = proj_nodes.train_callable if shape == "callable" else proj_nodes.train
    pipeline = Pipeline([node(train, "params:values", "model", name="train"),
                         node(proj_nodes.predict, ["model", "params:values"], "predictions", name="predict")])
    entries = {"params:values": MemoryDataset([1, 2]), "predictions": MemoryDataset()}
    if shape == "kart":  # the model is a kart task's output, read through the catalog
        from kart_kedro import TaskOnKartDataset
        entries["model"] = TaskOnKartDataset(task="proj_nodes.TrainTask", workspace_directory=root + "/ws")
        pipeline = Pipeline([node(proj_nodes.predict, ["model", "params:values"], "predictions", name="predict")])
    if shape == "pickle":
        entries["model"] = PickleDataset(filepath=root + "/data/model.pkl")
    runner = KartRunner(workspace_directory=root + "/ws")
    value = runner.run(pipeline, DataCatalog(entries))["predictions"]
    print(json.dumps([runner.last_run, value.load() if hasattr(value, "load") else value]))
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder: ``src/proj_models.py``, ``src/proj_nodes.py`` and the run script."""
    (tmp_path / "src").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "src" / "proj_models.py").write_text(MODELS)
    (tmp_path / "src" / "proj_nodes.py").write_text(NODES)
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _run(project: Path, shape: str) -> tuple[dict[str, str], list[int]]:
    """One KartRunner run in a new process: (statuses by node, the predictions)."""
    statuses, predictions = run_script_json(project, shape)
    return statuses, predictions


def _edit(project: Path, old: str, new: str) -> None:
    path = project / "src" / "proj_models.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("shape", ["memory", "pickle", "callable"])
def test_an_edit_of_the_model_class_reruns_its_reader(project: Path, shape: str) -> None:
    """Through a MemoryDataset, a PickleDataset, and with a callable model (``__call__`` edited)."""
    assert _run(project, shape) == ({"train": "ran", "predict": "ran"}, [2, 4])
    assert _run(project, shape) == ({"train": "cached", "predict": "cached"}, [2, 4])
    method = "__call__" if shape == "callable" else "predict"
    _edit(
        project,
        f"def {method}(self, values):\n        return [value * self.weight + 0",
        f"def {method}(self, values):\n        return [value * self.weight + 100",
    )
    assert _run(project, shape) == (
        {"train": "ran", "predict": "ran"},
        [102, 104],
    )  # kart before: predict cached, [2, 4]
    assert _run(project, shape) == ({"train": "cached", "predict": "cached"}, [102, 104])


def test_an_edit_of_an_unrelated_class_or_a_comment_keeps_the_reader_cached(project: Path) -> None:
    assert _run(project, "memory") == ({"train": "ran", "predict": "ran"}, [2, 4])
    _edit(project, "return 1", "return 2")  # Unrelated.size: not named by the model's pickle
    _edit(project, "# not callable: predict() runs", "# a comment edited")
    # train's fingerprint covers the module it imports from; predict's key holds Regressor's code only
    statuses, predictions = _run(project, "memory")
    assert statuses["predict"] == "cached" and predictions == [2, 4]
    assert _run(project, "memory") == ({"train": "cached", "predict": "cached"}, [2, 4])


def test_an_edit_of_the_class_of_a_kart_task_s_model_reruns_its_reader(project: Path) -> None:
    """A TaskOnKartDataset holding a model: the task stays built (its id holds no code, as gokart's), the node
    reading it reruns with the new code, as a plain ``kedro run`` loading the same model computes."""
    assert _run(project, "kart") == ({"predict": "ran"}, [2, 4])
    assert _run(project, "kart") == ({"predict": "cached"}, [2, 4])
    old = "def predict(self, values):\n        return [value * self.weight + 0"
    _edit(project, old, old.replace("+ 0", "+ 100"))
    assert _run(project, "kart") == ({"predict": "ran"}, [102, 104])  # kart before: cached, [2, 4]
    assert _run(project, "kart") == ({"predict": "cached"}, [102, 104])
