"""kart_core: gokart-compatible cached tasks, one cache for every scheduler.

``import kart_core as gokart`` runs code written for gokart 1.12.2's public API.

The facade is lazy (PEP 562, ``kart_core.lazy``): ``import kart_core`` loads nothing else, and each
public name imports its module on first use. So ``kart runs`` (which needs neither luigi nor pandas)
starts in a fraction of the time luigi's import takes, while ``kart_core.TaskOnKart`` and
``from kart_core import build`` work as before. Type checkers read the imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kart_core.lazy import install
from kart_core.luigi_import import defer_requests

# luigi's package imports requests for its RPC client (~0.1 s); kart defers that to its first use.
defer_requests()

if TYPE_CHECKING:
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
    from kart_core.build import BuildResult, WorkerSchedulerFactory, build
    from kart_core.digest import digest as content_digest
    from kart_core.display import params_text, task_params_text, task_text, value_text
    from kart_core.dotted import import_object
    from kart_core.errors import GokartBuildError, RoundLimitError, StaleTaskError
    from kart_core.fingerprint import (
        CodeFingerprint,
        CodeFingerprinter,
        ModuleClassifier,
        code_fingerprint,
        code_version,
    )
    from kart_core.graph import TaskGraph, node_key, walk
    from kart_core.hashing import short_id, unique_id_from_parts
    from kart_core.info import make_tree_info, tree_info
    from kart_core.lineage import stale_upstreams
    from kart_core.loading import load_output
    from kart_core.lock import hold_location_locks
    from kart_core.output_digests import (
        CompleteOutputs,
        SiblingOutputs,
        committed_digests,
        output_digests,
        output_digests_if_complete,
        outputs_if_complete,
    )
    from kart_core.pandas_type_config import PandasTypeConfig
    from kart_core.param_plan import config_frozen
    from kart_core.param_roundtrip import LossyParameter, lossy_parameters
    from kart_core.parameter import (
        ExplicitBoolParameter,
        ListTaskInstanceParameter,
        SerializableParameter,
        TaskInstanceParameter,
        ZonedDateSecondParameter,
        serialize_value,
    )
    from kart_core.places import PlacedGraph, find_path, find_place, place_graph, requirement_places
    from kart_core.run import run
    from kart_core.runlog import read_log as read_run_log
    from kart_core.runlog import stored_params as stored_run_params
    from kart_core.runlog_reader import built_at as run_built_at
    from kart_core.runner import RunReport, RunStatus, repair_if_damaged, run_one, run_one_reporting
    from kart_core.safe_pickle import loads_plain_data
    from kart_core.target_config import frozen as target_config_frozen
    from kart_core.target_config import verifying as verify_loads
    from kart_core.task import TaskOnKart
    from kart_core.testing import test_run
    from kart_core.transaction import check_before_commit
    from kart_core.tree.task_info import make_task_info_as_tree_str
    from kart_core.utils import add_config
    from kart_core.workspace_management import delete_local_unnecessary_outputs

# Public name -> the module that defines it ("module:attribute" when the public name is an alias).
_EXPORTS = {
    "BuildResult": "kart_core.build",
    "CodeFingerprint": "kart_core.fingerprint",
    "CodeFingerprinter": "kart_core.fingerprint",
    "ExplicitBoolParameter": "kart_core.parameter",
    "GokartBuildError": "kart_core.errors",
    "ListTaskInstanceParameter": "kart_core.parameter",
    "LossyParameter": "kart_core.param_roundtrip",
    "ModuleClassifier": "kart_core.fingerprint",
    "PandasTypeConfig": "kart_core.pandas_type_config",
    "RunReport": "kart_core.runner",
    "RunStatus": "kart_core.runner",
    "SerializableParameter": "kart_core.parameter",
    "RoundLimitError": "kart_core.errors",
    "StaleTaskError": "kart_core.errors",
    "stale_upstreams": "kart_core.lineage",
    "TaskInstanceParameter": "kart_core.parameter",
    "PlacedGraph": "kart_core.places",
    "TaskGraph": "kart_core.graph",
    "TaskOnKart": "kart_core.task",
    "WorkerSchedulerFactory": "kart_core.build",
    "ZonedDateSecondParameter": "kart_core.parameter",
    "add_config": "kart_core.utils",
    "build": "kart_core.build",
    "check_before_commit": "kart_core.transaction",
    "code_fingerprint": "kart_core.fingerprint",
    "code_version": "kart_core.fingerprint",
    "config_frozen": "kart_core.param_plan",
    "content_digest": "kart_core.digest:digest",
    "delete_local_unnecessary_outputs": "kart_core.workspace_management",
    "find_path": "kart_core.places",
    "find_place": "kart_core.places",
    "hold_location_locks": "kart_core.lock",
    "import_object": "kart_core.dotted",
    "load_output": "kart_core.loading",
    "loads_plain_data": "kart_core.safe_pickle",
    "lossy_parameters": "kart_core.param_roundtrip",
    "make_task_info_as_tree_str": "kart_core.tree.task_info",
    "serialize_value": "kart_core.parameter",
    "make_tree_info": "kart_core.info",
    "node_key": "kart_core.graph",
    "committed_digests": "kart_core.output_digests",
    "output_digests": "kart_core.output_digests",
    "output_digests_if_complete": "kart_core.output_digests",
    "outputs_if_complete": "kart_core.output_digests",
    "CompleteOutputs": "kart_core.output_digests",
    "SiblingOutputs": "kart_core.output_digests",
    "params_text": "kart_core.display",
    "place_graph": "kart_core.places",
    "read_run_log": "kart_core.runlog:read_log",
    "run_built_at": "kart_core.runlog_reader:built_at",
    "requirement_places": "kart_core.places",
    "run": "kart_core.run",
    "run_one": "kart_core.runner",
    "run_one_reporting": "kart_core.runner",
    "repair_if_damaged": "kart_core.runner",
    "short_id": "kart_core.hashing",
    "stored_run_params": "kart_core.runlog:stored_params",
    "target_config_frozen": "kart_core.target_config:frozen",
    "task_params_text": "kart_core.display",
    "task_text": "kart_core.display",
    "unique_id_from_parts": "kart_core.hashing",
    "test_run": "kart_core.testing",
    "tree_info": "kart_core.info",
    "value_text": "kart_core.display",
    "verify_loads": "kart_core.target_config:verifying",
    "walk": "kart_core.graph",
}
# Submodules reachable as attributes (gokart.tree.task_info..., kart_core.workspace for adapters and tools);
# any other submodule is found on first access too.
_SUBMODULES = frozenset(
    [
        "config_params",
        "display",
        "errors",
        "file_processor",
        "target",
        "testing",
        "tree",
        "utils",
        "worker",
        "workspace",
    ]
)

__all__ = sorted(_EXPORTS)

install(__name__, _EXPORTS, _SUBMODULES)
