"""RuntimeDatasets builds the dataset Kedro's ``get(name, fallback_to_runtime_pattern=True)`` builds (a bare
MemoryDataset as kart_kedro's: Kedro's, with the copy mode told without Kedro's imports, test_kedro_memory_dataset)."""

from __future__ import annotations

from typing import Any

import pytest
from kart_kedro import memory_dataset
from kart_kedro.runtime_dataset import RuntimeDatasets
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.io.core import Version


class VersionedMemory(MemoryDataset):
    """A memory dataset whose class asks to be versioned: Kedro passes it a Version."""

    versioned = True

    def __init__(self, version: Version | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version


def _kedro_built(catalog: DataCatalog, name: str) -> Any:
    return catalog.get(name, fallback_to_runtime_pattern=True)


def _same(ours: Any, kedros: Any) -> None:
    """The same dataset; a bare MemoryDataset as kart_kedro's subclass, named as Kedro's (in Kedro's log lines)."""
    assert type(ours) is (memory_dataset.MemoryDataset if type(kedros) is MemoryDataset else type(kedros))
    assert type(ours).__name__ == type(kedros).__name__
    assert {**ours._init_config(), "type": None} == {**kedros._init_config(), "type": None}
    assert ours._describe() == kedros._describe()


def test_default_runtime_pattern_builds_kedros_memory_dataset() -> None:
    catalog, reference = DataCatalog({"params:x": MemoryDataset(1)}), DataCatalog()
    datasets = RuntimeDatasets(catalog)
    for name in ("a", "b.c", "d@pandas"):
        datasets.create(name)
        _same(catalog.get(name), _kedro_built(reference, name))
    assert catalog.get("a") is catalog["a"]  # registered in the catalog, as Kedro's get does
    catalog.save("a", [1, 2])
    assert catalog.load("a") == [1, 2]
    assert sorted(catalog.keys()) == ["a", "b.c", "d@pandas", "params:x"]


def test_declared_dataset_is_left_alone() -> None:
    declared = MemoryDataset([7])
    catalog = DataCatalog({"a": declared})
    RuntimeDatasets(catalog).create("a")
    assert catalog.get("a") is declared
    assert catalog.load("a") == [7]


def _catalog(runtime: dict[str, Any], config: dict[str, Any] | None = None) -> DataCatalog:
    return DataCatalog(config_resolver=CatalogConfigResolver(config=config, default_runtime_patterns=runtime))


@pytest.mark.parametrize(
    "runtime",
    [
        {"{default}": {"type": "kedro.io.MemoryDataset", "copy_mode": "assign"}},  # arguments
        {"{default}": {"type": "test_kedro_runtime_dataset.VersionedMemory"}},  # a versioned class
        {"{default}": {"type": "MemoryDataset", "metadata": {"for": "{default}"}}},  # a placeholder
    ],
)
def test_other_runtime_patterns_are_built_by_kedro(runtime: dict[str, Any]) -> None:
    catalog, reference = _catalog(runtime), _catalog(runtime)
    RuntimeDatasets(catalog).create("out")
    built, expected = catalog.get("out"), _kedro_built(reference, "out")
    assert type(built) is type(expected)
    assert built._describe() == expected._describe()
    assert getattr(built, "metadata", None) == getattr(expected, "metadata", None)
    if isinstance(built, VersionedMemory):
        assert isinstance(built.version, Version)  # Kedro's from_config passed the version


def test_short_type_name_resolves_as_kedro_resolves_it() -> None:
    catalog, reference = (
        _catalog({"{default}": {"type": "MemoryDataset"}}),
        _catalog({"{default}": {"type": "MemoryDataset"}}),
    )
    RuntimeDatasets(catalog).create("x")
    _same(catalog.get("x"), _kedro_built(reference, "x"))


def test_dataset_pattern_in_the_catalog_is_built_by_kedro() -> None:
    config = {"{name}_kept": {"type": "kedro.io.MemoryDataset", "copy_mode": "deepcopy"}}
    catalog = _catalog({"{default}": {"type": "kedro.io.MemoryDataset"}}, config)
    RuntimeDatasets(catalog).create("x_kept")
    assert catalog.get("x_kept")._copy_mode == "deepcopy"


def test_unknown_type_raises_kedros_error() -> None:
    catalog = _catalog({"{default}": {"type": "no_such_package.NoDataset"}})
    with pytest.raises(DatasetError, match="no_such_package"):
        RuntimeDatasets(catalog).create("x")


def test_bare_memory_datasets_are_separate_objects() -> None:
    """Each one is a new dataset (built from one made once per run): data and Kedro's argument record apart."""
    catalog = DataCatalog()
    datasets = RuntimeDatasets(catalog)
    datasets.create("a")
    datasets.create("b")
    first, second = catalog["a"], catalog["b"]
    assert first is not second and type(first) is memory_dataset.MemoryDataset
    assert getattr(first, "_init_args") is not getattr(second, "_init_args")  # noqa: B009 (Kedro sets it, mypy does not know)
    catalog.save("a", [1])
    assert catalog.load("a") == [1]
    with pytest.raises(DatasetError, match="has not been saved yet"):
        catalog.load("b")
    _same(second, _kedro_built(DataCatalog(), "b"))


class OtherMemory(MemoryDataset):
    """A bare runtime-pattern class other than MemoryDataset."""


def test_a_runtime_pattern_other_than_kedros_default_is_resolved_by_kedro() -> None:
    """Only Kedro's own runtime pattern resolves every name to MemoryDataset without asking the resolver."""
    runtime = {"{default}": {"type": "test_kedro_runtime_dataset.OtherMemory"}}  # one pattern: Kedro's choice is fixed
    catalog, reference = _catalog(runtime), _catalog(runtime)
    datasets = RuntimeDatasets(catalog)
    for name in ("x", "y"):
        datasets.create(name)
        _same(catalog[name], _kedro_built(reference, name))
        assert type(catalog[name]) is OtherMemory
