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

Two more shortcuts for the common case, each exact and taken only when it holds. With Kedro's own
runtime pattern (``DEFAULT_RUNTIME_PATTERN``), every name the catalog does not match resolves to the
same ``{"type": "kedro.io.MemoryDataset"}``, so the pattern is not parsed per name (Kedro's
``resolve_pattern`` costs about 0.1 ms per name, half a trivial node's run). And a bare
``MemoryDataset`` is a copy of one built once per run: Kedro's wrapper around every dataset's
``__init__`` inspects the call (``inspect.getcallargs``, another 0.05-0.1 ms) to record arguments that
are the same for every bare MemoryDataset (an empty one, no copy mode, no metadata).

Such a bare MemoryDataset is built as kart_kedro's ``memory_dataset.MemoryDataset``: Kedro's, whose copy mode
(none is set) is told from the data as Kedro's ``_infer_copy_mode`` tells it, without that function's imports.
"""

from __future__ import annotations

from typing import Any

from kedro.io import MemoryDataset
from kedro.io.catalog_config_resolver import DEFAULT_RUNTIME_PATTERN
from kedro.io.core import parse_dataset_definition

from kart_kedro import memory_dataset

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
        self._default_only: bool | None = None  # the resolver has Kedro's runtime pattern and no other
        self._blank: MemoryDataset | None = None  # MemoryDataset(), copied for each bare one

    def create(self, name: str, absent: bool = False) -> None:
        """Make sure the catalog holds a dataset named ``name`` (created from its runtime pattern if needed).

        ``absent``: the caller knows the catalog neither holds ``name`` nor matches it by a dataset or catch-all
        pattern (Kedro's ``name in catalog`` is False), so it is not asked: for a name it does not hold, Kedro's check
        tries both pattern sets (a generator and a set per call; PipelineRun knows the names the catalog held or
        matched when the run started, and the patterns do not change during a run).

        Raises:
            DatasetError: as Kedro's ``get`` (a type that cannot be resolved or built).
        """
        catalog = self.catalog
        if not absent and name in catalog:  # declared, or matched by a dataset or catch-all pattern: Kedro builds it
            catalog.get(name, fallback_to_runtime_pattern=True)
            return
        resolver = getattr(catalog, "config_resolver", None)  # a catalog of another kind: Kedro's get only
        kind = self._bare_class(self._runtime_config(resolver, name)) if resolver is not None else None
        try:
            dataset = self._blank_memory() if kind is MemoryDataset else kind() if kind is not None else None
        except Exception:  # Kedro's get raises its own error naming the dataset
            dataset = None
        if dataset is None:
            catalog.get(name, fallback_to_runtime_pattern=True)
            return
        catalog[name] = dataset

    def _runtime_config(self, resolver: Any, name: str) -> Any:
        """What ``resolver.resolve_pattern(name)`` returns for a name the catalog does not match.

        With only Kedro's default runtime pattern (``{default}``, whose config holds no placeholder)
        that is the pattern's config for every name: copied, not parsed per name. A resolver with other
        runtime patterns (or of another kind, without that attribute) resolves each name itself.
        """
        if self._default_only is None:
            self._default_only = getattr(resolver, "_default_runtime_patterns", None) == DEFAULT_RUNTIME_PATTERN
        if self._default_only:
            return dict(DEFAULT_RUNTIME_PATTERN["{default}"])
        return resolver.resolve_pattern(name)

    def _blank_memory(self) -> MemoryDataset:
        """A new ``MemoryDataset()`` (kart_kedro's, ``memory_dataset``): the state of one built once per run, in a new
        object.

        Its attributes are the empty-data sentinel, no copy mode, no metadata, the ephemeral flag and
        Kedro's record of the constructor's arguments (only read, by ``_init_config``), so a copy of
        them is what the constructor would set.
        """
        if self._blank is None:
            self._blank = MemoryDataset()
        dataset: MemoryDataset = memory_dataset.MemoryDataset.__new__(memory_dataset.MemoryDataset)
        dataset.__dict__.update(self._blank.__dict__)
        dataset._init_args = dict(self._blank._init_args)  # type: ignore[attr-defined]
        return dataset

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
