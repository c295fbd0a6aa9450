"""The content digest of a Kedro dataset's loaded data, looking through lazy partition loaders.

Kedro's ``PartitionedDataset`` (kedro_datasets.partitions) loads as ``{partition id: load function}``:
the data is read only when the node calls a loader. The loaders' pickles name files, not their
contents, so kart calls each loader here, in sorted partition order, digests what it returns and
drops it before the next one (one partition in memory at a time). A node reading the partitions
then loads them again itself: correctness costs one extra read of each partition, on the runs
where a partition file changed (pipeline_run reuses a local folder's digest while its files' stamps
stay the same).

Anything whose content cannot be digested (a LazyFrame, a generator, another callable, an open
file: ``kart_core.errors.UndigestableError``), and a partition whose loader raises (a corrupt file the
node may skip), is left to the caller, which runs the node uncached.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import kart_core

__all__ = ["data_digest"]


def data_digest(value: Any, code: set[Any] | None = None) -> str:
    """md5 hex of ``value``'s content; a mapping of partition loaders by what each loader returns.

    Args:
        value: what a Kedro dataset's ``load()`` returned.
        code: filled with the classes and functions the pickled parts name (``kart_core.content_digest``).

    Raises:
        kart_core.errors.UndigestableError: ``value`` (or a partition a loader returned) holds data
            kart cannot digest, or a partition loader raised; ``path`` names the partition (``['a.csv']()``)
            and the place in it.
    """
    if not _is_partitions(value):
        return kart_core.content_digest(value, code)
    parts = []
    for key in sorted(value, key=str):
        try:
            parts.append([key, kart_core.content_digest(_load_partition(value[key], key), code)])
        except kart_core.errors.UndigestableError as exc:
            exc.path.insert(0, f"[{key!r}]()")
            raise
    return kart_core.content_digest(["kedro partitions", parts])


def _load_partition(loader: Any, key: Any) -> Any:
    """What a partition loader returns.

    Raises:
        kart_core.errors.UndigestableError: the loader raised (a corrupt or unreadable file). A node may skip
            such a partition itself (``try: parts[k]() except ...``), as it does under SequentialRunner; kart
            cannot tell its content, so the node runs uncached (kart before 2026-12-01 18:00 UTC let the
            loader's error stop the run before the node).
    """
    try:
        return loader()
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        cause = (lines[-1] if lines else "")[:200]
        raise kart_core.errors.UndigestableError(
            f"a partition that fails to load ({type(exc).__name__}: {cause})"
        ) from exc


def _is_partitions(value: Any) -> bool:
    """Whether ``value`` is the shape PartitionedDataset loads: a non-empty mapping of callables taking no arguments."""
    return isinstance(value, Mapping) and bool(value) and all(_is_loader(item) for item in value.values())


def _is_loader(item: Any) -> bool:
    if not callable(item) or isinstance(item, type):
        return False
    try:
        signature = inspect.signature(item)
    except (TypeError, ValueError):  # some builtins have no signature: not a loader kart can call safely
        return False
    return all(_optional(parameter) for parameter in signature.parameters.values())


def _optional(parameter: inspect.Parameter) -> bool:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return parameter.default is not inspect.Parameter.empty or parameter.kind in kinds
