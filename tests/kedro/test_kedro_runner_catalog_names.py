"""kart_kedro.runner._in_catalog: the pipeline's names a catalog holds or matches, as Kedro's ``in`` tells them."""

from __future__ import annotations

from typing import Any

import pytest
from kart_kedro.runner import _in_catalog
from kedro.io import DataCatalog, MemoryDataset

NAMES = {"held", "other", "space.int_table", "params:x", "raw@pandas"}


class _Listed(DataCatalog):
    """A catalog that says it holds every name starting with "other" (its own ``__contains__``)."""

    def __contains__(self, dataset_name: str) -> bool:
        return dataset_name.startswith("other") or super().__contains__(dataset_name)


CATALOGS: dict[str, Any] = {
    "no patterns": lambda: DataCatalog({"held": MemoryDataset(1), "params:x": MemoryDataset(2)}),
    "dataset pattern": lambda: DataCatalog.from_config(
        {"{space}.int_{name}": {"type": "MemoryDataset"}, "held": {"type": "MemoryDataset"}}
    ),
    "catch-all pattern": lambda: DataCatalog.from_config({"{anything}": {"type": "MemoryDataset"}}),
    "own __contains__": lambda: _Listed({"held": MemoryDataset(1)}),
    "empty": lambda: DataCatalog(),
}


@pytest.mark.parametrize("kind", sorted(CATALOGS))
def test_the_names_are_those_kedro_finds_in_the_catalog(kind: str) -> None:
    catalog = CATALOGS[kind]()
    assert _in_catalog(NAMES, catalog) == {name for name in NAMES if name in catalog}


def test_a_pattern_matches_names_the_catalog_does_not_hold() -> None:
    catalog = CATALOGS["dataset pattern"]()
    assert _in_catalog(NAMES, catalog) == {"held", "space.int_table"}
    assert _in_catalog(NAMES, CATALOGS["own __contains__"]()) == {"held", "other"}
