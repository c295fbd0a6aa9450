"""Creating the datasets a catalog's runtime pattern names, with each dataset type resolved once per run.

Kedro's ``DataCatalog.get(name, fallback_to_runtime_pattern=True)`` builds a dataset that only the
runtime pattern names (``{"{default}": {"type": "kedro.io.MemoryDataset"}}``) through
``AbstractDataset.from_config``, which resolves the type string anew for every dataset: it tries
each of Kedro's package prefixes and their ``__all__``, so every dataset costs several imports
that fail and search ``sys.path`` (a third of a millisecond and more, about as much as a trivial
node's run). ``RuntimeDatasets`` resolves each type string once and builds the dataset with the
class itself, only when the pattern's resolved config is the bare ``{"type": ...}`` of a class that
is not versioned: exactly the case where ``from_config`` calls the class with no arguments. Any
other config (arguments, versioning, a validator) and any dataset the catalog declares or matches
by a dataset pattern goes through Kedro's own ``get``.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import parse_dataset_definition

__all__ = ["RuntimeDatasets"]

_NOT_BARE = object()  # the type resolved to a class that from_config would call with arguments


class RuntimeDatasets:
    """Creates a run's datasets in one catalog, as ``catalog.get(name, fallback_to_runtime_pattern=True)`` does."""

    def __init__(self, catalog: Any) -> None:
        """Args:
        catalog: the run's Kedro catalog (a DataCatalog or a subclass).
        """
        self.catalog = catalog
        self._classes: dict[str, Any] = {}  # type string -> class, or _NOT_BARE

    def create(self, name: str) -> None:
        """Make sure the catalog holds a dataset named ``name`` (created from its runtime pattern if needed).

        Raises:
            DatasetError: as Kedro's ``get`` (a type that cannot be resolved or built).
        """
        catalog = self.catalog
        if name in catalog:  # declared, or matched by a dataset or catch-all pattern: Kedro builds it
            catalog.get(name, fallback_to_runtime_pattern=True)
            return
        resolver = getattr(catalog, "config_resolver", None)  # a catalog of another kind: Kedro's get only
        kind = self._bare_class(resolver.resolve_pattern(name)) if resolver is not None else None
        try:
            dataset = kind() if kind is not None else None
        except Exception:  # Kedro's get raises its own error naming the dataset
            dataset = None
        if dataset is None:
            catalog.get(name, fallback_to_runtime_pattern=True)
            return
        catalog[name] = dataset

    def _bare_class(self, config: Any) -> Any:
        """The class ``from_config`` would call without arguments for ``config``; None when it is not that simple."""
        if not isinstance(config, dict) or set(config) != {"type"} or not isinstance(config["type"], str):
            return None
        type_name = config["type"]
        found = self._classes.get(type_name)
        if found is None:
            try:
                kind, arguments = parse_dataset_definition({"type": type_name})
            except Exception:  # Kedro's get raises its own error for this config
                kind, arguments = None, None
            found = self._classes[type_name] = kind if kind is not None and not arguments else _NOT_BARE
        return None if found is _NOT_BARE else found
