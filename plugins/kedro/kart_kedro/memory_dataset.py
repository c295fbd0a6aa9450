"""Kedro's MemoryDataset for the data a KartRunner run passes between nodes, without Kedro's import per save and load."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from kedro.io import memory_dataset
from kedro.io.core import TCopyMode
from kedro.io.memory_dataset import _copy_with_mode, _infer_copy_mode

__all__ = ["MemoryDataset", "copy_mode_of", "copy_modes_told"]


class MemoryDataset(memory_dataset.MemoryDataset):
    """Kedro's ``MemoryDataset()`` for a name only Kedro's runtime pattern names (``RuntimeDatasets``), telling the copy
    mode of its data (none is set) without the imports Kedro tries each time (``copy_mode_of``). Named as Kedro's:
    Kedro's log lines and descriptions name a dataset by its class.

    Kedro's MemoryDataset without a copy mode infers one on every save and load (``_infer_copy_mode``): it imports
    pandas, numpy and ibis, and an import that fails (ibis is rarely installed) searches every ``sys.path`` entry
    anew: ~35 us each time here, twice per node of a pipeline passing data in memory (its load and its save), a
    tenth of SequentialRunner's whole run of a trivial node. The data, the copies made and the errors are
    Kedro's; a copy mode set on the dataset is used as Kedro uses it.
    """

    def load(self) -> Any:
        if self._copy_mode is not None or not self._exists():  # Kedro's own (its error when nothing was saved)
            return memory_dataset.MemoryDataset.load.__wrapped__(self)  # type: ignore[attr-defined]
        data = self._data
        return _copy_with_mode(data, copy_mode=copy_mode_of(data))

    def save(self, data: Any) -> None:
        if self._copy_mode is not None:
            memory_dataset.MemoryDataset.save.__wrapped__(self, data)  # type: ignore[attr-defined]
            return
        self._data = _copy_with_mode(data, copy_mode=copy_mode_of(data))

    # Kedro's repr, by the type of the data held (None: nothing held): Kedro's load, save and release each build it
    # for a debug line, logged or not (pprint: ~4 us a time here), and it names only this class and that type.
    _reprs: ClassVar[dict[tuple[type, type | None], str]] = {}

    def __repr__(self) -> str:
        key = (type(self), type(self._data) if self._exists() else None)
        found = self._reprs.get(key)
        if found is None:
            found = self._reprs[key] = super().__repr__()
        return found


def copy_mode_of(data: Any) -> TCopyMode:
    """What Kedro 1.7's ``_infer_copy_mode(data)`` returns (``copy``, ``assign`` or ``deepcopy``), without its imports.

    Kedro imports pandas, numpy and ibis to test ``data`` against their classes. Data of a module's class exists
    only once the module is imported, so a module not in ``sys.modules`` (or marked absent there) cannot be the
    one ``data`` comes from: only the modules already imported are asked. One imported but lacking the class (its
    import under way in another thread) leaves the answer to Kedro's own function.
    """
    try:
        if isinstance(data, _loaded("pandas", "DataFrame") + _loaded("numpy", "ndarray")):
            return "copy"
        if type(data).__name__ == "DataFrame" or isinstance(data, _loaded("ibis", "Table")):
            return "assign"
    except _StillImporting:
        return _infer_copy_mode(data)
    return "deepcopy"


class _StillImporting(Exception):
    """A module is imported but lacks the class looked for."""


def _loaded(module_name: str, class_name: str) -> tuple[type, ...]:
    """``(module.class,)`` when the module is imported; ``()`` when it is not (no instance of the class exists).

    Raises:
        _StillImporting: the module is imported but has no such class (yet).
    """
    module = sys.modules.get(module_name)
    if module is None:
        return ()
    found = getattr(module, class_name, None)
    if not isinstance(found, type):
        raise _StillImporting(f"{module_name}.{class_name}")
    return (found,)


@contextlib.contextmanager
def copy_modes_told(datasets: Iterable[Any]) -> Iterator[None]:
    """For the body, give each of Kedro's own MemoryDatasets in ``datasets`` that holds data and has no copy mode the
    one Kedro would infer for that data on every load (``copy_mode_of``); none again afterwards.

    For datasets nothing saves to while the body runs (a run's pipeline inputs: its parameters): their loads copy
    as before, without Kedro's imports per load. Only the copy mode is set, and only on datasets of Kedro's class
    exactly (a subclass may load otherwise); their data, description and recorded arguments stay as they are.
    """
    told = []
    for dataset in datasets:
        if type(dataset) is memory_dataset.MemoryDataset and dataset._copy_mode is None and dataset._exists():
            dataset._copy_mode = copy_mode_of(dataset._data)
            told.append(dataset)
    try:
        yield
    finally:
        for dataset in told:
            dataset._copy_mode = None
