"""kart_core: gokart-compatible cached tasks, one cache for every scheduler.

``import kart_core as gokart`` runs code written for gokart 1.12.2's public API.
"""

from kart_core import (  # gokart.X.Y access
    config_params,
    display,  # the one formatter of tasks and parameters for people (kart runs, why, report, adapters)
    errors,
    file_processor,
    target,
    testing,
    tree,
    utils,
    worker,
    workspace,  # the cache layout (paths, log kinds, listing), for adapters and tools
)
from kart_core.build import BuildResult, WorkerSchedulerFactory, build, load_output
from kart_core.digest import digest as content_digest
from kart_core.display import params_text, task_params_text, task_text, value_text
from kart_core.dotted import import_object
from kart_core.errors import GokartBuildError, StaleTaskError
from kart_core.fingerprint import (
    CodeFingerprint,
    CodeFingerprinter,
    ModuleClassifier,
    code_fingerprint,
    code_version,
)
from kart_core.graph import TaskGraph, node_key, walk
from kart_core.hashing import short_id
from kart_core.info import make_tree_info, tree_info
from kart_core.pandas_type_config import PandasTypeConfig
from kart_core.param_plan import config_frozen
from kart_core.parameter import (
    ExplicitBoolParameter,
    ListTaskInstanceParameter,
    SerializableParameter,
    TaskInstanceParameter,
    ZonedDateSecondParameter,
)
from kart_core.places import PlacedGraph, find_place, place_graph
from kart_core.run import run
from kart_core.runner import RunStatus, run_one
from kart_core.task import TaskOnKart
from kart_core.testing import test_run
from kart_core.tree.task_info import make_task_info_as_tree_str
from kart_core.utils import add_config
from kart_core.workspace_management import delete_local_unnecessary_outputs

__all__ = [
    "BuildResult",
    "CodeFingerprint",
    "CodeFingerprinter",
    "ExplicitBoolParameter",
    "GokartBuildError",
    "ListTaskInstanceParameter",
    "ModuleClassifier",
    "PandasTypeConfig",
    "RunStatus",
    "SerializableParameter",
    "StaleTaskError",
    "TaskInstanceParameter",
    "PlacedGraph",
    "TaskGraph",
    "TaskOnKart",
    "WorkerSchedulerFactory",
    "ZonedDateSecondParameter",
    "add_config",
    "build",
    "code_fingerprint",
    "code_version",
    "config_frozen",
    "content_digest",
    "delete_local_unnecessary_outputs",
    "find_place",
    "import_object",
    "load_output",
    "make_task_info_as_tree_str",
    "make_tree_info",
    "node_key",
    "params_text",
    "place_graph",
    "run",
    "run_one",
    "short_id",
    "task_params_text",
    "task_text",
    "test_run",
    "tree_info",
    "value_text",
    "walk",
]
