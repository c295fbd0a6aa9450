"""Real Airflow for the tests: one temporary AIRFLOW_HOME with a SQLite DB for the whole session.

Airflow reads its configuration when first imported, so the environment is set here, at import
time, before any test module imports airflow or kart_airflow.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AIRFLOW_HOME = tempfile.mkdtemp(prefix="kart-airflow-home-")
DAGS_FOLDER = os.path.join(AIRFLOW_HOME, "dags")  # empty: tests register the DAGs they build
os.makedirs(DAGS_FOLDER)
os.environ.update(
    AIRFLOW_HOME=AIRFLOW_HOME,
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=DAGS_FOLDER,
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
)
# mlpipeline (the demo pipeline) lives in examples/; subprocesses get it through PYTHONPATH.
sys.path.insert(0, str(EXAMPLES))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db(airflow_db_template: Path) -> str:
    """A fresh metadata DB in the session's AIRFLOW_HOME (a copy of the template), with the dag bundles
    registered."""
    from af_cluster import copy_db
    from airflow import settings
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    # Connections pooled before the copy would keep SQLAlchemy's view of the old file: start afresh.
    settings.engine.dispose()
    copy_db(airflow_db_template, Path(AIRFLOW_HOME) / "airflow.db")
    DagBundlesManager().sync_bundles_to_db()
    return AIRFLOW_HOME


def _reset_into(path: Path) -> None:
    """Run Airflow's ``resetdb`` on this process's DB and copy the result to ``path``.

    On an empty DB ``resetdb`` and ``airflow db migrate`` both end in ``initdb``'s ORM create_all, alembic
    stamp, default pool and log templates (airflow/utils/db.py), so clusters get the schema their
    ``airflow`` commands expect; in process it costs ~3 s of CPU against ~9 s for an ``airflow`` process.
    """
    from af_cluster import copy_db
    from airflow.utils import db

    db.resetdb()
    copy_db(Path(AIRFLOW_HOME) / "airflow.db", path)


@pytest.fixture(scope="session")
def airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty metadata DB made once per test session (shared by the xdist workers): airflow_db and the
    clusters copy it."""
    from af_cluster import migrated_db_template

    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker's base temp is a subfolder of the session's: share the parent.
    return migrated_db_template(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base, _reset_into)


def register(dag: Any) -> None:
    """Store a DAG built in a test in the metadata DB, as the dag-processor would (dag.test() needs it)."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=DAGS_FOLDER)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture
def register_dag(airflow_db: str) -> Any:
    """``register_dag(dag)``: store the DAG as the dag-processor would, without running it."""
    return register


@pytest.fixture
def run_dag(airflow_db: str) -> Iterator[Any]:
    """``run_dag(dag)``: register the DAG, run it once with dag.test(), return the DagRun."""

    def run(dag: Any) -> Any:
        register(dag)
        return dag.test()

    yield run
