"""Every public name of every gokart 1.12.2 module is importable from the same place in kart_core, or listed
in docs/migration.md as not provided (with what to use instead).

gokart and kart register luigi task classes under the same names, so gokart's modules are listed in a
process of their own (a fork of tests/fork_server.py's gokart server); this process imports kart's.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import fork_server
import pytest
from fork_server import GOKART

if importlib.util.find_spec("gokart") is None:  # found without importing it
    pytest.skip("gokart 1.12.2 (dev extra) lists the names compared here", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]

# The classes and functions each gokart module holds (its own and those it imports from gokart), as a
# gokart user may import them: `from gokart.task import EmptyDumpError`.
_LIST_GOKART_NAMES = """
import importlib, inspect, json, pkgutil, sys
import gokart

names, unimportable = {}, {}
for info in pkgutil.walk_packages(gokart.__path__, "gokart."):
    try:
        module = importlib.import_module(info.name)
    except Exception as exc:
        unimportable[info.name] = repr(exc)
        continue
    names[info.name] = sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (getattr(value, "__module__", None) or "").startswith("gokart")
    )
with open(sys.argv[1], "w") as out:
    json.dump({"names": names, "unimportable": unimportable}, out)
"""

# What kart does not provide, by gokart module: None for the whole module. Each is listed in
# docs/migration.md's module table with what to use instead.
NOT_PROVIDED: dict[str, list[str] | None] = {
    "gokart.build": ["TaskLockExceptionRaisedFlag"],
    "gokart.file_processor.pandas": ["ObjectStorage"],
    "gokart.file_processor.polars": ["ObjectStorage"],
    "gokart.gcs_obj_metadata_client": None,
    "gokart.gcs_zip_client": None,
    "gokart.in_memory.target": ["RequiredTaskOutput"],
    "gokart.object_storage": ["ZipClient"],
    "gokart.required_task_output": None,
    "gokart.s3_zip_client": None,
    "gokart.slack": [
        "ChannelListNotLoadedError",
        "ChannelNotFoundError",
        "EventAggregator",
        "FileNotUploadedError",
        "SlackAPI",
        "SlackConfig",
    ],
    "gokart.slack.event_aggregator": None,
    "gokart.slack.slack_api": None,
    "gokart.slack.slack_config": None,
    "gokart.target": ["GCSObjectMetadataClient", "ObjectStorage", "RequiredTaskOutput", "make_zip_client"],
    "gokart.task": ["RequiredTaskOutput", "task_complete_check_wrapper"],
    "gokart.task_complete_check": None,
    "gokart.worker": ["ContextManagedTaskProcess", "GetWorkResponse", "TaskProcess"],
    "gokart.zip_client": None,
    "gokart.zip_client_util": None,
}


@pytest.fixture(scope="module")
def gokart_names(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """gokart module -> the public classes and functions it holds, listed by gokart's own process."""
    folder = tmp_path_factory.mktemp("gokart-names")
    environment = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    done = fork_server.run(["-c", _LIST_GOKART_NAMES, str(folder / "names.json")], folder, environment, 240, GOKART)
    assert done.returncode == 0, f"the gokart subprocess failed:\n{done.stderr[-4000:]}"
    listed = json.loads((folder / "names.json").read_text())
    # gokart's mypy plugin imports mypy internals that only load inside mypy (a circular import otherwise).
    assert list(listed["unimportable"]) == ["gokart.mypy"], listed["unimportable"]
    names: dict[str, list[str]] = listed["names"]
    return names


def kart_gaps(gokart_names: dict[str, list[str]]) -> dict[str, list[str] | None]:
    """gokart module -> the names `from kart_core.<same path> import <name>` cannot import (None: no module)."""
    gaps: dict[str, list[str] | None] = {}
    for gokart_module, names in gokart_names.items():
        try:
            module = importlib.import_module("kart_core" + gokart_module.removeprefix("gokart"))
        except ModuleNotFoundError:
            gaps[gokart_module] = None
            continue
        missing = [name for name in names if not hasattr(module, name)]
        if missing:
            gaps[gokart_module] = missing
    return gaps


def test_every_gokart_name_imports_from_kart_or_is_listed_as_not_provided(
    gokart_names: dict[str, list[str]],
) -> None:
    assert len(gokart_names) >= 35 and "EmptyDumpError" in gokart_names["gokart.task"]
    assert kart_gaps(gokart_names) == NOT_PROVIDED


def test_names_gokart_users_import_are_the_same_objects() -> None:
    """The names at14 found missing (N5) are kart's classes and functions, under gokart's import paths."""
    from kart_core.build import TaskLockException
    from kart_core.errors import EmptyDumpError as KartEmptyDumpError
    from kart_core.file_processor import CsvFileProcessorPandas, FeatherFileProcessorPolars
    from kart_core.file_processor.base import PickleFileProcessor
    from kart_core.file_processor.pandas import ParquetFileProcessorPandas
    from kart_core.file_processor.pickle_format import PickleFileProcessor as KartPickle
    from kart_core.run import try_to_run_test_for_empty_data_frame as in_run
    from kart_core.task import EmptyDumpError
    from kart_core.testing import try_to_run_test_for_empty_data_frame

    assert EmptyDumpError is KartEmptyDumpError and issubclass(EmptyDumpError, AssertionError)
    assert try_to_run_test_for_empty_data_frame is in_run
    assert PickleFileProcessor is KartPickle
    assert TaskLockException is importlib.import_module("kart_core.errors").TaskLockException
    assert CsvFileProcessorPandas(sep="\t")._sep == "\t"
    assert ParquetFileProcessorPandas()._compression is None  # gokart's class default: uncompressed
    assert FeatherFileProcessorPolars(store_index_in_feather=True, lazy=True)._lazy is True


def test_not_provided_names_are_listed_in_the_migration_guide() -> None:
    """Each gap is in docs/migration.md (module table), so a gokart user learns what to use instead."""
    guide = (REPO / "docs" / "migration.md").read_text(encoding="utf-8")
    table = guide[guide.index("## Module by module") : guide.index("## Bugs kart fixes")]
    for module, names in NOT_PROVIDED.items():
        if names is None:
            assert f"`{module}`" in table, module
        else:
            for name in names:
                assert f"`{name}`" in table, (module, name)
