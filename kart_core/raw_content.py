"""The content of a file no integrity record vouches for (a raw file dropped in by hand, gokart's output): its stamp and
hash, remembered per stamp in this process, for the tasks that read it (``kart_core.transaction``, ``kart_core.damage``,
``kart_core.lineage``).
"""

from __future__ import annotations

import os
import sys

from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.outcome import produces_nothing
from kart_core.storage import stamp as stamps  # looked up per call: a test's stand-in stat reaches it
from kart_core.storage import storage_for

__all__ = ["loads_data_only", "raw_input_refusal", "raw_owner", "readable_file", "unrecorded_content", "without_run"]

# Content hashes of files without a record, by (path, stamp): a stamp changes with every write kart can see.
_CONTENT: dict[tuple[str, tuple[object, ...]], str] = {}
_CONTENT_LIMIT = 4096


def unrecorded_content(path: str, known: tuple[object, ...] | None = None) -> tuple[tuple[object, ...], str] | None:
    """``(stamp, "{algorithm}:{hex}")`` of the file at ``path`` (local path or URL), which has no integrity record:
    its stamp (``kart_core.storage.stamp``: mtime, size, inode and status-change time on local disk; ETag, size
    and time on object storage) and the content hash a manifest entry of it would hold (``kart_core.integrity``, the whole file).
    None when it is missing, a folder or cannot be read.

    ``known``: the stamp a downstream recorded with its load (``kart_core.lineage``): while the file's stamp is
    still that one the file is not read, and the hash returned is "" (unchanged). A file
    whose stamp changed is hashed once per stamp in this process (``_CONTENT``): a check repeated while nothing
    changes costs one stat, as the rewrite check of recorded outputs (``maybe_rewritten``) does.
    """
    try:
        found = stamps.stamp(path, status_change=True)  # a same-size file with its times set back: read again (at16 G1)
    except OSError:
        return None
    if found is None:
        return None
    now = tuple(found)
    if known is not None and now == tuple(known):
        return now, ""
    cached = _CONTENT.get((path, now))
    if cached is not None:
        return now, cached
    try:
        with storage_for(path).open_read(path) as file:
            _, digest = digest_stream(file, DEFAULT_ALGORITHM)
    except (OSError, ValueError):  # gone meanwhile, a folder, or not readable here
        return None
    content = f"{DEFAULT_ALGORITHM}:{digest}"
    if len(_CONTENT) >= _CONTENT_LIMIT:
        _CONTENT.clear()
    _CONTENT[(path, now)] = content
    return now, content


def readable_file(target: object) -> str | None:
    """The full path (local, absolute) or URL of the file ``target`` names, for a target whose file kart can stat and
    read without an integrity record: a kart file target without one (a bare ``kart_core.target.make_target(path)``,
    its path as given when it is a URL), a ``luigi.LocalTarget`` (its path made absolute: luigi reads a relative one
    from the working directory), and, when the program imported their modules, ``luigi.contrib.s3.S3Target`` and
    ``luigi.contrib.gcs.GCSTarget`` (read here through kart's own storage, ``kart_core.storage``). None for any other
    target (a database table, a luigi ``MockTarget``, an in-memory value): nothing kart can watch.
    """
    luigi = sys.modules.get("luigi")  # not imported here: `kart runs` reads run logs without luigi (test_lazy)
    if luigi is not None and isinstance(target, luigi.LocalTarget):
        path = target.path
        return os.path.abspath(path) if isinstance(path, str) and "://" not in path else path
    for module, name in _OBJECT_TARGETS:
        found = getattr(sys.modules.get(module), name, None)  # never imported here: luigi's gcs module warns on import
        if isinstance(found, type) and isinstance(target, found):
            path = getattr(target, "path", None)
            return path if isinstance(path, str) and "://" in path else None
    if type(target).__module__.startswith("kart_core.in_memory"):
        return None  # its "path" is a key of an in-memory store
    path = getattr(target, "_path", None)  # a kart target's file (not path(): a run may hand out a private name)
    if isinstance(path, str) and type(target).__module__.startswith("kart_core."):
        return path if "://" in path else os.path.abspath(path)
    return None


_OBJECT_TARGETS = (("luigi.contrib.s3", "S3Target"), ("luigi.contrib.gcs", "GCSTarget"))


def without_run(task: object) -> bool:
    """Whether ``task`` is a raw input, something nothing here produces (``outcome.produces_nothing``: a
    ``luigi.ExternalTask``, or a class that defines no ``run()``), as raw files dropped in by hand are declared."""
    return produces_nothing(type(task))


def raw_owner(owner: str) -> bool:
    """Whether ``owner`` (an output record's ``module.Class``) names a class of a module already imported whose tasks
    are raw inputs (``without_run``). False when it cannot be told (not imported, not found): nothing is imported.
    False for ``TaskOnKart`` itself: kart's own bookkeeping files (KartRunner's record files) are made by a bare
    ``TaskOnKart()``, which no one declares as a raw input."""
    if owner == "kart_core.task.TaskOnKart":
        return False
    module, _, name = owner.rpartition(".")
    found: object = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return isinstance(found, type) and produces_nothing(found)


def loads_data_only(target: object) -> bool:
    """Whether loading ``target`` runs no code from the file: its format is one of kart's data formats (text, gzip
    text, csv/tsv, json, parquet, feather, xml, npz without pickles, raw bytes), not a pickle, a model zip or a
    format of the program's own. What signing lets load unsigned as a raw input (``Transaction.admits_raw``)."""
    processor = getattr(target, "processor", None)
    return processor is not None and type(processor).__module__ in _DATA_FORMATS


_DATA_FORMATS = frozenset(
    f"kart_core.file_processor.{name}"
    for name in ("text_format", "pandas_format", "pandas", "polars_format", "polars", "misc_formats")
)


def raw_input_refusal(target: object, reading: bool) -> str:
    """The advice for a file signing refuses because kart did not sign it, when its task is a raw input (its
    record's ``owner`` class defines no ``run()``, ``raw_owner``): no kart commit wrote it, so ``kart verify --delete``
    and a rebuild (the usual advice) cannot help; what can is said here (attacker at25 F11). ``reading``: the load is
    made for a running task (``transaction.load_reader``). "" for any other file (the usual advice stands).
    """
    record = getattr(target, "record", None)
    owner = getattr(record, "owner", "") if record is not None else ""
    if not owner or not raw_owner(owner):
        return ""
    task, name = getattr(record, "task", owner), owner.rpartition(".")[2]
    if not loads_data_only(target):
        processor = type(getattr(target, "processor", None)).__name__
        why = (
            f"its format ({processor}) runs code from the file as it loads (a pickle, a model zip, or a format of your "
            "own), so signing never loads it unsigned"
        )
        fix = (
            f"Save the raw file in a data format (csv, tsv, parquet, feather, json, txt, npz) and name that file in "
            f"{name}.output(), or give {name} a run() that writes it (kart then signs it)."
        )
    elif not reading:
        why = (
            "such a file loads unsigned only as a requirement of a running task, in that run's own process: the task's "
            "signed manifest then records its content hash, so a new drop there makes the task stale. This load is "
            "not one"
        )
        fix = f"Load it in the run() of a task that requires {name} (self.load(), or read it by path)."
    else:
        why = (
            "such a file loads unsigned only as a requirement of the running task, in that run's own process (its "
            "signed manifest records its content hash). The running task does not require it, or loads it in a "
            "child process"
        )
        fix = f"Have the task that loads it require {name}, and load it in run()'s own process."
    return (
        f"{task} defines no run(): its file is an input you provide, which kart never signs, and {why}. {fix} "
        "`kart verify --delete` does not apply: it removes only files kart wrote, and no build writes this one."
    )
