"""The code of a Kedro dataset's class, as the node keys count it: a project class by its code fingerprint.

A project's own dataset class (``type: my_project.datasets.MyCsv``) is project code like a node's: a
parsing fix in its ``_load`` (a filter, a dtype, a skipped header row) changes what every reader gets, an
edit of its ``_save`` what its producer writes. Its catalog definition (``output_state.dataset_config``:
type name and ``_describe()``) does not change with it. KartRunner therefore keys each node reading or
writing such a dataset by the class's code fingerprint (``kart_core.CodeFingerprinter``, the node code's
notion of project code: ``ModuleClassifier``), and a raw input's recorded digest is reused only under
the same code. kart before 2026-12-02 served every reader the old result after such an edit (attacker
at10 K9).

Library dataset classes (kedro-datasets, kedro's own) do not count in node keys, as before: an
upgrade of them keeps the caches. A raw input's record counts their distribution's version too
(``raw_record_code``), so an upgrade reads each raw input once more and keys its readers by what
the new version loads.
"""

from __future__ import annotations

from typing import Any

import kart_core

__all__ = ["class_digest", "dataset_classes", "project_dataset_code", "raw_record_code"]


def dataset_classes(dataset: Any) -> list[type]:
    """The classes whose code decides what ``dataset`` loads and saves: its own, and a wrapped dataset's
    (a ``PartitionedDataset``'s partition type ``_dataset_type``, a ``CachedDataset``'s ``_dataset``)."""
    found = [type(dataset)]
    partition = getattr(dataset, "_dataset_type", None)
    if isinstance(partition, type):
        found.append(partition)
    wrapped = getattr(dataset, "_dataset", None)
    if wrapped is not None and callable(getattr(wrapped, "_load", None)):
        found.append(type(wrapped))
    return list(dict.fromkeys(found))


def project_dataset_code(
    dataset: Any, fingerprinter: kart_core.CodeFingerprinter, digests: dict[type, str] | None = None
) -> dict[str, str]:
    """``{"module.Class (dataset class)": code digest}`` of the project classes of ``dataset``; empty for library
    datasets.

    Args:
        dataset: a Kedro dataset.
        fingerprinter: the run's fingerprinter (its classifier tells project code; fingerprints are shared).
        digests: the run's code digests by class (``class_digest``), filled as classes are fingerprinted.
    """
    classifier = fingerprinter.classifier
    return {
        f"{kind.__module__}.{kind.__qualname__} (dataset class)": class_digest(kind, fingerprinter, digests)
        for kind in dataset_classes(dataset)
        if classifier.version_of(kind.__module__) is None
    }


def raw_record_code(
    dataset: Any, fingerprinter: kart_core.CodeFingerprinter, digests: dict[type, str] | None = None
) -> list[str]:
    """What a raw input's recorded digest is taken under besides its stamp and definition: each class of
    ``dataset`` by its code digest (project code, ``class_digest``) or its distribution's version
    (``dist==version``)."""
    classifier = fingerprinter.classifier
    parts = []
    for kind in dataset_classes(dataset):
        version = classifier.version_of(kind.__module__)
        parts.append(version if version is not None else class_digest(kind, fingerprinter, digests))
    return parts


def class_digest(kind: type, fingerprinter: kart_core.CodeFingerprinter, digests: dict[type, str] | None) -> str:
    """The code digest of project class ``kind``, taken once per run: ``digests`` (the run's, by class) keeps it.

    A project's datasets share their class (every ``type: my_project.datasets.MyCsv`` entry): without the memo
    each dataset's first reader walked the class's code again (20 walks of one class in the 200-node bench's
    run). Within a run the code is as it was when the run first looked, as the node functions' are
    (``PipelineRun`` fingerprints them when it starts); the next run takes it anew.
    """
    if digests is None:
        return fingerprinter.fingerprint(kind).digest
    found = digests.get(kind)
    if found is None:
        found = digests[kind] = fingerprinter.fingerprint(kind).digest
    return found
