"""kart_core: gokart-compatible cached tasks, one cache for every scheduler.

``import kart_core as gokart`` runs code written for gokart 1.12.2's public API.
"""

from kart_core.build import BuildResult, build, load_output
from kart_core.errors import GokartBuildError, StaleTaskError
from kart_core.graph import TaskGraph, node_key, walk
from kart_core.hashing import short_id
from kart_core.pandas_type_config import PandasTypeConfig
from kart_core.parameter import (
    ExplicitBoolParameter,
    ListTaskInstanceParameter,
    SerializableParameter,
    TaskInstanceParameter,
    ZonedDateSecondParameter,
)
from kart_core.runner import RunStatus, run_one
from kart_core.task import TaskOnKart

__all__ = [
    "BuildResult",
    "ExplicitBoolParameter",
    "GokartBuildError",
    "ListTaskInstanceParameter",
    "PandasTypeConfig",
    "RunStatus",
    "SerializableParameter",
    "StaleTaskError",
    "TaskInstanceParameter",
    "TaskGraph",
    "TaskOnKart",
    "ZonedDateSecondParameter",
    "build",
    "load_output",
    "node_key",
    "run_one",
    "short_id",
    "walk",
]
