"""kart_kedro's MemoryDataset (the data a KartRunner run passes between nodes) copies as Kedro's, with the copy mode
told as Kedro's ``_infer_copy_mode`` tells it, without its imports."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from kart_kedro import memory_dataset
from kart_kedro.memory_dataset import copy_mode_of
from kart_kedro.runtime_dataset import RuntimeDatasets
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.io.memory_dataset import _infer_copy_mode


class DataFrame:
    """A DataFrame of no known library (Kedro assigns any class of that name)."""


class _Table:
    """Stands for ibis' Table in a stand-in ``ibis`` module."""


def _values() -> list[Any]:
    import numpy as np
    import pandas as pd

    return [[1, [2]], {"a": {"b": 1}}, 3, "text", None, pd.DataFrame({"a": [1]}), np.arange(3), DataFrame(), _Table()]


@pytest.mark.parametrize("ibis", ["missing", "absent", "stand-in"])
def test_copy_mode_is_kedros(ibis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``copy_mode_of`` answers as Kedro's ``_infer_copy_mode`` for plain data, pandas, numpy, any DataFrame and an
    ibis Table, whether ibis is not installed, marked absent or imported (a stand-in module: Kedro imports it too)."""
    import types

    if ibis == "missing":
        monkeypatch.delitem(sys.modules, "ibis", raising=False)
    elif ibis == "absent":
        monkeypatch.setitem(sys.modules, "ibis", None)
    else:
        module = types.ModuleType("ibis")
        module.Table = _Table  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "ibis", module)
    modes = [(copy_mode_of(value), _infer_copy_mode(value)) for value in _values()]
    assert [ours for ours, _ in modes] == [kedros for _, kedros in modes]
    assert modes[-1][0] == ("assign" if ibis == "stand-in" else "deepcopy")
    assert [ours for ours, _ in modes[:-1]] == ["deepcopy"] * 5 + ["copy", "copy", "assign"]


def test_copy_mode_of_a_module_still_importing_is_kedros(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module imported but without its class yet (its import under way): Kedro's own function answers."""
    import types

    monkeypatch.setitem(sys.modules, "ibis", types.ModuleType("ibis"))  # no Table: Kedro's isinstance fails on it
    with pytest.raises(AttributeError):
        copy_mode_of(_Table())


def test_runtime_memory_dataset_copies_as_kedro_and_imports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved and loaded data are copies made as Kedro's MemoryDataset makes them (a nested list deep-copied both
    ways), with no import tried; a copy mode set on the dataset is Kedro's to use."""
    import builtins

    catalog = DataCatalog()
    RuntimeDatasets(catalog).create("x")
    tried: list[str] = []
    real_import = builtins.__import__

    def watching(name: str, *args: Any, **kwargs: Any) -> Any:
        tried.append(name)
        return real_import(name, *args, **kwargs)

    value = [1, [2]]
    monkeypatch.setattr(builtins, "__import__", watching)
    catalog.save("x", value)
    value[1].append(3)
    loaded = catalog.load("x")
    loaded[1].append(4)
    monkeypatch.undo()
    assert catalog.load("x") == [1, [2]] and loaded == [1, [2, 4]]
    assert not [name for name in tried if name in ("pandas", "numpy", "ibis")], tried
    assigned = memory_dataset.MemoryDataset.__new__(memory_dataset.MemoryDataset)
    assigned.__dict__.update(MemoryDataset(copy_mode="assign").__dict__)
    assigned.save(value)
    assert assigned.load() is value
    with pytest.raises(DatasetError, match="has not been saved yet"):
        catalog.release("x") or catalog.load("x")


def test_copy_modes_told_for_the_body_only() -> None:
    """Kedro's own MemoryDatasets holding data get the copy mode Kedro infers, for the body only; an empty one, one
    with a copy mode and a subclass are left as they are."""
    import numpy as np

    plain, frame, empty = MemoryDataset([1, [2]]), MemoryDataset(np.arange(3)), MemoryDataset()
    assigned, subclass = (
        MemoryDataset([1], copy_mode="assign"),
        memory_dataset.MemoryDataset.__new__(memory_dataset.MemoryDataset),
    )
    subclass.__dict__.update(MemoryDataset([3]).__dict__)
    every = [plain, frame, empty, assigned, subclass]
    with pytest.raises(RuntimeError, match="in the body"), memory_dataset.copy_modes_told(every):
        assert [dataset._copy_mode for dataset in every] == ["deepcopy", "copy", None, "assign", None]
        loaded = plain.load()
        loaded[1].append(3)
        assert plain.load() == [1, [2]]  # still a deep copy per load
        raise RuntimeError("in the body")
    assert [dataset._copy_mode for dataset in every] == [None, None, None, "assign", None]


def test_kart_runner_loads_parameters_without_kedros_imports(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KartRunner run infers no copy mode per load (Kedro's ``_infer_copy_mode``, which tries its imports): not for
    the parameters, not for the data passed between nodes; each node still gets its own copy of a parameter."""
    from kart_kedro import KartRunner
    from kedro.io import memory_dataset as kedros
    from kedro.pipeline import Pipeline, node

    def grow(values: list[int]) -> list[int]:
        values.append(len(values))  # a node that changes its input in place: the next load is a fresh copy
        return values

    parameter = MemoryDataset([0])
    catalog = DataCatalog({"params:start": parameter})
    calls: list[Any] = []
    infer = kedros._infer_copy_mode
    monkeypatch.setattr(kedros, "_infer_copy_mode", lambda data: calls.append(data) or infer(data))
    pipeline = Pipeline(
        [
            node(grow, "params:start", "a", name="first"),
            node(grow, "params:start", "b", name="second"),
            node(grow, "a", "c", name="third"),
        ]
    )
    result = KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
    assert {name: dataset.load() for name, dataset in result.items()} == {"b": [0, 1], "c": [0, 1, 2]}
    assert calls == [] and parameter._copy_mode is None and parameter.load() == [0]


def test_repr_is_kedros_for_each_data_type() -> None:
    """Kedro's repr (in its debug lines and errors), kept per type of data held: it follows what is saved and
    released, and names kart's class where Kedro's names its own."""
    import numpy as np

    catalog = DataCatalog()
    RuntimeDatasets(catalog).create("x")
    ours, kedros = catalog["x"], MemoryDataset()

    def same() -> None:
        assert repr(ours) == repr(kedros).replace("kedro.io.memory_dataset.", "kart_kedro.memory_dataset.")
        assert str(ours) == repr(ours)

    same()
    for value in ([1], {"a": 1}, np.arange(2), [2], DataFrame()):
        ours.save(value)
        kedros.save(value)
        same()
    ours.release()
    kedros.release()
    same()
    assert repr(ours) == "kart_kedro.memory_dataset.MemoryDataset()"
