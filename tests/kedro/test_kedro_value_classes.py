"""A node reaching a method through a value reruns when that method is edited (attacker at19 J1).

Each node calls a method of a project class it does not name: through a module-level instance of a ``dict``
subclass, a ``typing.NamedTuple``, a ``collections.namedtuple`` subclass or an ``int`` subclass
(``proj_helpers.CFG.scale(values)``); through an ``Enum`` member held as a default argument
(``mode=Mode.STRICT``), a module constant or a class attribute; through a project object in a numpy object array
or a pandas Series; through a function in a ``WeakValueDictionary``. kart before counted such a value by its
builtin content only and kept the node cached with the old method's result. Each run is its own process (a real
edit between runs) of a real KartRunner, on project modules written to a temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from kedro_project import run_script_json

HELPERS = textwrap.dedent(
    """
    import collections
    import enum
    import weakref
    from typing import NamedTuple

    import numpy as np
    import pandas as pd


    class Cfg(dict):
        def scale(self, values):
            return [v * self["w"] + 0 for v in values]  # dict


    class Weights(NamedTuple):
        w: int

        def scale(self, values):
            return [v * self.w + 0 for v in values]  # namedtuple


    class Pair(collections.namedtuple("Pair", "w")):
        def scale(self, values):
            return [v * self.w + 0 for v in values]  # collections


    class Level(int):
        def scale(self, values):
            return [v * int(self) + 0 for v in values]  # int


    class Mode(enum.Enum):
        STRICT = "strict"

        def apply(self, values):
            return [v * 2 + 0 for v in values]  # enum


    class Op:
        def go(self, values):
            return [v * 2 + 0 for v in values]  # object


    def double(values):
        return [v * 2 + 0 for v in values]  # weak


    CFG = Cfg(w=2)
    WEIGHTS = Weights(2)
    PAIR = Pair(2)
    LEVEL = Level(2)
    DEFAULT_MODE = Mode.STRICT
    OPS = np.array([Op(), None], dtype=object)
    SERIES = pd.Series([Op()])
    FUNCS = weakref.WeakValueDictionary(double=double)
    """
)

NODES = textwrap.dedent(
    """
    import proj_helpers
    from proj_helpers import Mode


    class Settings:
        MODE = Mode.STRICT


    def by_dict(values):
        return proj_helpers.CFG.scale(values)


    def by_namedtuple(values):
        return proj_helpers.WEIGHTS.scale(values)


    def by_collections_namedtuple(values):
        return proj_helpers.PAIR.scale(values)


    def by_int(values):
        return proj_helpers.LEVEL.scale(values)


    def by_enum_default(values, mode=Mode.STRICT):
        return mode.apply(values)


    def by_enum_constant(values):
        return proj_helpers.DEFAULT_MODE.apply(values)


    def by_enum_attribute(values):
        return Settings.MODE.apply(values)


    def by_object_array(values):
        return proj_helpers.OPS[0].go(values)


    def by_series(values):
        return proj_helpers.SERIES[0].go(values)


    def by_weak_registry(values):
        return proj_helpers.FUNCS["double"](values)
    """
)

NODE_NAMES = (
    "by_dict",
    "by_namedtuple",
    "by_collections_namedtuple",
    "by_int",
    "by_enum_default",
    "by_enum_constant",
    "by_enum_attribute",
    "by_object_array",
    "by_series",
    "by_weak_registry",
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1] + "/src")
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kart_kedro import KartRunner
    import proj_nodes

    root, names = sys.argv[1], sys.argv[2].split(",")
    pipeline = Pipeline([node(getattr(proj_nodes, name), "params:values", name, name=name) for name in names])
    entries = {"params:values": MemoryDataset([1, 2]), **{name: MemoryDataset() for name in names}}
    runner = KartRunner(workspace_directory=root + "/ws")
    found = runner.run(pipeline, DataCatalog(entries))
    values = {name: found[name].load() if hasattr(found[name], "load") else found[name] for name in names}
    print(json.dumps([runner.last_run, values]))
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder: ``src/proj_helpers.py``, ``src/proj_nodes.py`` and the run script."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "proj_helpers.py").write_text(HELPERS)
    (tmp_path / "src" / "proj_nodes.py").write_text(NODES)
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _run(project: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """One KartRunner run of every node in a new process: (statuses by node, values by node)."""
    statuses, values = run_script_json(project, ",".join(NODE_NAMES))
    return statuses, values


def _edit(project: Path, *markers: str) -> None:
    """``+ 0`` -> ``+ 100`` on the helper lines marked ``# marker``."""
    path = project / "src" / "proj_helpers.py"
    text = path.read_text()
    for marker in markers:
        line = next(line for line in text.splitlines() if line.endswith(f"# {marker}"))
        text = text.replace(line, line.replace("+ 0 for", "+ 100 for"))
    path.write_text(text)


def test_an_edit_of_a_method_reached_through_a_value_reruns_the_node(project: Path) -> None:
    old, new = [2, 4], [102, 104]
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "ran"), dict.fromkeys(NODE_NAMES, old))
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "cached"), dict.fromkeys(NODE_NAMES, old))

    # One class edited: only the node reaching an instance of it reruns (the value's class counts, not its module).
    _edit(project, "dict")
    statuses, values = _run(project)
    assert statuses == {**dict.fromkeys(NODE_NAMES, "cached"), "by_dict": "ran"}  # kart before: by_dict cached
    assert values == {**dict.fromkeys(NODE_NAMES, old), "by_dict": new}

    _edit(project, "namedtuple", "collections", "int", "enum", "object", "weak")
    statuses, values = _run(project)
    assert statuses == {**dict.fromkeys(NODE_NAMES, "ran"), "by_dict": "cached"}  # kart before: all cached
    assert values == dict.fromkeys(NODE_NAMES, new)
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "cached"), dict.fromkeys(NODE_NAMES, new))
