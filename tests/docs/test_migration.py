"""docs/migration.md stays true: each documented difference from gokart 1.12.2 is measured in both libraries.

gokart is a test-only dependency; tests/docs/migration_facts.py runs once per library in its own
process (both register task classes in luigi's one registry) and reports what it saw.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fork_server
import pytest
from doc_blocks import REPO, Chain, chains, check_chain
from fork_server import GOKART, KART

DOC = REPO / "docs" / "migration.md"
DRIVER = Path(__file__).with_name("migration_facts.py")


def _facts(library: str, directory: Path) -> dict[str, Any]:
    directory.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("LUIGI_CONFIG_PATH", "KART_SIGNING_KEY")}
    # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
    done = fork_server.run([str(DRIVER), library], directory, env, 300, GOKART if library == "gokart" else KART)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("migration")
    libraries = ("gokart", "kart")
    # The two processes at the same time, not one after the other (twice the wall time beside an idle core).
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(libraries, pool.map(lambda library: _facts(library, root / library), libraries), strict=True))


pytestmark = pytest.mark.slow


def test_same_ids(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["unique_id"] == facts["gokart"]["unique_id"]


def test_get_task_params_reads_task_params(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["get_task_params"] == {"size": "3"}
    assert "file_path" in facts["gokart"]["get_task_params"]  # gokart returned the task_log


def test_module_versions_is_filled(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["module_versions_lines"] > 0
    assert facts["gokart"]["module_versions_lines"] == 0


def test_seed_value_zero_is_used(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["seed_with_value_zero"] == 0
    assert facts["kart"]["first_draw_with_seed_zero"] == facts["kart"]["expected_first_draw"]
    assert facts["gokart"]["seed_with_value_zero"] != 0


def test_python_random_in_run_starts_at_the_seed(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["first_draw_with_seed_7"] == facts["kart"]["expected_draw_with_seed_7"]
    assert facts["gokart"]["first_draw_with_seed_7"] != facts["gokart"]["expected_draw_with_seed_7"]


def test_large_data_frame_comes_back_in_order(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["large_frame_rows_in_order"] is True


def test_parquet_compression(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["parquet_compression"] == "SNAPPY"
    assert facts["gokart"]["parquet_compression"] == "GZIP"


def test_unknown_extension_error(facts: dict[str, dict[str, Any]]) -> None:
    # kart's error is also the AssertionError gokart raises (docs/migration.md, errors table).
    assert facts["kart"]["unknown_extension_error"][:4] == [
        "UnknownFormatError",
        "KartError",
        "ValueError",
        "AssertionError",
    ]
    assert facts["gokart"]["unknown_extension_error"][0] == "AssertionError"


def test_build_leaves_logging_alone(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["warning_enabled_in_run"] is True
    assert facts["kart"]["logging_disable_changed_by_build"] is False
    assert facts["gokart"]["warning_enabled_in_run"] is False


def test_build_keeps_task_classes_registered(facts: dict[str, dict[str, Any]]) -> None:
    assert facts["kart"]["user_class_registered_after_build"] is True
    assert facts["gokart"]["user_class_registered_after_build"] is False


@pytest.mark.parametrize("chain", [pytest.param(c, id=c.name) for c in chains(DOC)])
def test_migration_program(chain: Chain, tmp_path: Path) -> None:
    check_chain(chain, tmp_path)
