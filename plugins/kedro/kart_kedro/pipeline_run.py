"""One KartRunner run: for each node, serve it from the kart cache or hand it to the executor.

Decisions are made in the runner's process, in dependency order, as soon as a node's upstream
nodes are done: the node's KedroNodeRun key is computed (code fingerprint, parameters, input
digests, the content hashes of the inputs upstream cached nodes returned or hold); a complete run whose persistent outputs still hold what kart wrote is
served (outputs written back only where missing or replaced); anything else becomes a NodeWork.

An input that is a kart task's output (a TaskOnKartDataset entry, a to_pipeline node's edge) counts
by its content (the hashes its manifest records), not only its task's unique id: the same id
rebuilt with other content reruns the nodes reading it. So does an input a cached node of the run
returned (``upstream_content``): a node that ran again under the same key with other content
reruns its readers. A persistent input produced by a cached node also counts by what its dataset
holds once that node was served or ran (``stored_content``: a load need not give back the last
save, as a PartitionedDataset that adds partitions or a custom dataset that appends shows) and by its
catalog definition (its load args shape what the node sees); one whose load version is pinned
(``--load-versions``) counts by that version's content, as a raw input.

Any other input counts by its content (``input_digest.data_digest``: partition loaders are called).
A local file's digest is recorded with its file stamp (node_records: ``input_digests.pkl``), so a
later run whose raw files and their catalog definitions are unchanged computes its keys without
loading them.
An input whose content cannot be digested (a LazyFrame, a generator, a callable) would key the
cache by a pickle blind to the data: its node runs uncached instead, with one warning line.

Cached outputs handed back to Kedro are loaded with their content hash checked
(``kart_core.verify_loads``): a damaged or tampered cache entry is a miss, never data. The node
reruns (with a warning naming it and the file) when it still can; otherwise the error names
``kedro kart clear --node <name> --only``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import pickle
import re
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any

import kart_core
from kart_kedro._config import project_root as find_project_root
from kart_kedro.dataset import TaskOnKartDataset
from kart_kedro.dataset_code import project_dataset_code, raw_record_code
from kart_kedro.input_digest import data_digest
from kart_kedro.node_cache import KedroNodeRun, NodeKey
from kart_kedro.node_records import NodeRecords, RunParts
from kart_kedro.node_work import NodeResult, NodeWork
from kart_kedro.output_state import (
    FileStamp,
    OutputState,
    appending_save,
    current_state,
    dataset_config,
    file_stamp,
    is_persistent,
    lock_location,
)
from kart_kedro.pickled_code import pickled_names, resolve_name
from kart_kedro.pipeline import KartTaskNode
from kart_kedro.pipeline_io import pipeline_io
from kart_kedro.receipt_dataset import TaskReceiptDataset
from kart_kedro.runtime_dataset import RuntimeDatasets
from kart_kedro.summary import rerun_reason, stale_reason

__all__ = ["CODE_VERSION_TAG", "NO_CACHE_TAG", "PLAIN", "PipelineRun"]

logger = logging.getLogger("kart_kedro")
PLAIN = {"markup": False}  # Kedro's rich handler reads [..] as markup: task labels like Class[1a2b3c4d] would vanish

NO_CACHE_TAG = "kart_no_cache"
CODE_VERSION_TAG = "kart_code_version."  # node tag prefix: kart_code_version.3 pins the code to "3"

# What loading a damaged cache entry raises: a size or hash other than committed, a refused
# signature, or (integrity record off) a truncated pickle.
_DAMAGED = (kart_core.errors.DamagedOutputError, kart_core.errors.IntegrityError, EOFError, pickle.UnpicklingError)


class _DamagedCache(Exception):
    """A node's cached output could not be loaded back (``_DAMAGED``)."""

    def __init__(self, node_name: str, output: str, path: str, cause: BaseException) -> None:
        super().__init__(_damage_detail(cause))
        self.node_name, self.output, self.path = node_name, output, path


class _Uncacheable(Exception):
    """A node input whose content kart cannot digest: the node runs without the cache (one warning line)."""

    def __init__(self, node_name: str, name: str, cause: kart_core.errors.UndigestableError) -> None:
        where = f" ({''.join(cause.path)})" if cause.path else ""
        super().__init__(
            f"kart: node {node_name!r} runs without the cache: its input {name!r} holds {cause.kind}{where}, "
            f"whose content kart cannot digest; tag the node '{NO_CACHE_TAG}' to run it uncached without this warning"
        )


class _UncacheableCode(_Uncacheable):
    """Node code that reaches a value kart cannot digest (``CodeFingerprint.undigestable``): the node
    runs without the cache (one warning line), since an edit to that value would not change its key."""

    def __init__(self, node_name: str, undigestable: tuple[str, ...]) -> None:
        Exception.__init__(
            self,
            f"kart: node {node_name!r} runs without the cache: its code reaches {'; '.join(undigestable)}, whose "
            f"content kart cannot digest; tag the node '{NO_CACHE_TAG}' to run it uncached without this warning, "
            f"or '{CODE_VERSION_TAG}1' to cache it by a version you bump when that value changes",
        )


class _AppendingOutput(_Uncacheable):
    """A node output whose dataset appends on every save (``appending_save``): a node served from the cache
    would not append, so the node runs without the cache (one warning line), as a plain ``kedro run`` runs it."""

    def __init__(self, node_name: str, name: str, how: str) -> None:
        Exception.__init__(
            self,
            f"kart: node {node_name!r} runs without the cache: its output {name!r} {how}, which a node served from "
            f"the cache would not do; tag the node '{NO_CACHE_TAG}' to run it "
            "uncached without this warning",
        )


class _NoOutputs(_Uncacheable):
    """A node with no outputs (``outputs=None``: an export, an upload) exists for its side effect, which a
    node served from the cache would not repeat: it runs without the cache (one warning line), as a plain
    ``kedro run`` runs it."""

    def __init__(self, node_name: str) -> None:
        Exception.__init__(
            self,
            f"kart: node {node_name!r} runs without the cache: it has no outputs, so it runs for a side effect, "
            f"which a node served from the cache would not do; tag the node '{NO_CACHE_TAG}' to run it "
            "uncached without this warning",
        )


def _module(code: Any) -> str:
    """The module a class or function was defined in ("" when it names none)."""
    module = getattr(code, "__module__", None)
    return module if isinstance(module, str) else ""


def _damage_detail(cause: BaseException) -> str:
    """What is wrong with the file, without kart_core's advice (rerun=True, kart verify): the runner acts itself."""
    text = str(cause)
    found = _DETAIL.search(text)
    return found.group(1) if found else f"{type(cause).__name__}: {text.split('. ')[0]}"


_DETAIL = re.compile(r"is damaged: (.*?) \(integrity record")
# A served node's status, looked up once: an Enum member's .value is a property, computed on each read.
_CACHED = kart_core.RunStatus.CACHED.value


class PipelineRun:
    """The state of one run: node runs by node, input digests, cached outputs not yet in the catalog."""

    def __init__(
        self,
        pipeline: Any,
        catalog: Any,
        *,
        workspace_directory: str | None,
        project: str,
        code_packages: tuple[str, ...],
        is_async: bool,
        hook_manager: Any,
        run_id: str | None,
        inline: bool = False,
        inputs: set[str] | None = None,
        outputs: set[str] | None = None,
        declared: set[str] | None = None,
        key_hooks: Any = None,
    ) -> None:
        """Fingerprint every cacheable node's code now, so the whole run sees the code as it started.

        Args:
            pipeline: the (filtered) Kedro pipeline.
            catalog: the run's catalog.
            workspace_directory: the kart workspace; None for kart's default.
            project: the Kedro package name.
            code_packages: extra top-level packages whose code counts as the project's.
            is_async: Kedro's ``--async``.
            hook_manager: passed to Kedro's Task; None in worker processes.
            run_id: the Kedro session id.
            inline: each NodeWork runs as soon as it is prepared, in this thread (KartRunner), so
                the decision's completeness check is the node's only one.
            inputs: ``pipeline.inputs()`` when the caller has it (Kedro computes it anew on each call).
            outputs: ``pipeline.outputs()`` likewise.
            declared: the pipeline's datasets that were ``in catalog`` when the run started (declared, or
                matched by a dataset or catch-all pattern), when the caller has them (``_in_catalog``).
            key_hooks: the session's hook manager whose data hooks count in the keys (``hook_code``) when
                ``hook_manager`` is None because worker processes run the hooks (KartParallelRunner); None:
                ``hook_manager``.
        """
        self.pipeline, self.catalog, self.project = pipeline, catalog, project
        self.workspace_directory = workspace_directory
        self.is_async, self.hook_manager, self.run_id = is_async, hook_manager, run_id
        # Worker processes that import the project's code anew (KartParallelRunner with Kedro's spawn or forkserver
        # context) check each node's code fingerprint against its key's before it runs (``NodeWork.code``).
        self.fresh_imports = hook_manager is None and _fresh_worker_imports()
        self.inline = inline
        self.records = NodeRecords(workspace_directory, project)
        self.producer = {name: node for node in pipeline.nodes for name in node.outputs}
        self.producer_name = {name: node.name for name, node in self.producer.items()}  # Node.name: computed per read
        self.tasks: dict[str, NodeKey] = {}  # the node runs of the cached nodes decided so far
        # A node run of this run whose settings every other shares (``NodeKey``s differ in significant strings only):
        # what checks a cached node by its key's id (``check``), set by the first node run made.
        self.template: KedroNodeRun | None = None
        self.digests: dict[str, str] = {}
        # The stamp each raw input's digest was taken under (file_stamp): a node that ran is stamped again
        # after it ran, and its result is not cached when one changed meanwhile (NodeWork.watched).
        self.input_stamps: dict[str, FileStamp] = {}
        # The data digest of each stamped raw input, from the content its key's digest names: a node whose input's
        # stamp moved only in status-change times (a chmod, a hard link) loads it again and compares (NodeWork).
        self.stamped_data: dict[str, str] = {}
        # The data digest (input_digest.data_digest) of each persistent raw input without a stamp, from the load its
        # key's digest came from: a node that runs digests what Kedro loaded for it and compares (NodeWork.expected).
        self.input_data: dict[str, str] = {}
        self.parameter_digests: dict[str, str] = {}  # a parameter is loaded and digested once per run
        self.key_digests: dict[tuple[tuple[str, str], ...], str] = {}  # digest_of, per distinct mapping
        self.persistence: dict[str, bool] = {}  # whether each dataset is persistent, asked once per run
        self.created: set[str] = set()  # datasets known to exist in the catalog
        self.declared = declared
        self.runtime_datasets = RuntimeDatasets(catalog)  # each runtime-pattern type resolved once per run
        self.pending: dict[str, tuple[str, NodeKey]] = {}  # cached outputs loaded only if needed: (node, its key)
        self.configs: dict[str, str] = {}  # catalog definitions of persistent upstream inputs, once per run
        # What each persistent output holds (its state's md5) once its producer was served or ran: what its
        # readers are keyed by besides what the producer returned (stored_content).
        self.stored: dict[str, str] = {}
        self.stored_states: dict[str, OutputState] = {}  # the states those md5s are of (NodeWork.held)
        self.held: dict[str, dict[str, OutputState]] = {}  # by node: the stored states its key was computed from
        self.lock_locations: dict[str, str] = {}  # by persistent dataset: what its lock is keyed by (locations)
        self.appending: dict[str, str | None] = {}  # appending_save of each output, asked once per dataset and run
        self.contents: dict[str, dict[str, str]] = {}  # per cached node: its outputs' content hashes (committed)
        self.statuses: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.parts: dict[str, RunParts] = {}
        self.ran_parts: dict[str, RunParts] = {}  # saved as the nodes' last runs when the run ends
        self.load_counts = Counter(name for node in pipeline.nodes for name in node.inputs)
        # Outputs a node rebuilt during this run with other content than its cached commit (a damaged
        # cache of a non-deterministic node): by name, the count of such changes when it changed. A node
        # served or run from the old content runs again (``outputs_changed``), and one decided later
        # is not served (``prepare``).
        self.changed: dict[str, int] = {}
        self.changes = 0
        self.prepared_at: dict[str, int] = {}  # node name: self.changes when its inputs were put in the catalog
        self.committed: dict[str, dict[str, str]] = {}  # node name: its outputs' digests before it runs again
        if inputs is None or outputs is None:
            _, inputs, outputs = pipeline_io(pipeline)
        self.outputs = set(outputs)
        self.kept = inputs | self.outputs  # never released: the caller's data
        fingerprinter = self.fingerprinter = kart_core.CodeFingerprinter(
            kart_core.ModuleClassifier([project, *code_packages])
        )
        # One fingerprint per function and version: nodes sharing a function (a modular pipeline used
        # under several namespaces) share it. The nodes keep their functions alive for the run.
        shared: dict[tuple[int, str | None], kart_core.CodeFingerprint] = {}
        self.codes: dict[str, kart_core.CodeFingerprint] = {}  # by node name: the cacheable nodes (prepare)
        generators: dict[int, bool] = {}  # by id() of a node function: inspect's check once per function
        for node in pipeline.nodes:
            tags = node.tags  # Kedro's Node.tags copies the node's set on each read
            if cacheable(node, generators, tags):
                func = node.func
                version = _tagged_version(tags)
                key = (id(func), version)
                if key not in shared:
                    shared[key] = fingerprinter.fingerprint(func, version)
                self.codes[node.name] = shared[key]
        self.code_parts: dict[int, dict[str, str]] = {}  # RunParts.code by id() of a fingerprint in self.codes
        # What each upstream content's pickle names (upstream_code), and each such name's code digest.
        self.code_names: dict[tuple[str, str], tuple[str, ...]] = {}
        self.code_digests: dict[str, str | None] = {}
        self.dataset_codes: dict[str, dict[str, str]] = {}  # project dataset classes by dataset (dataset_code)
        self.class_digests: dict[type, str] = {}  # a project dataset class's code digest, once per run (class_digest)
        self.hook_code = hook_code(key_hooks if key_hooks is not None else hook_manager, fingerprinter)

    # --- deciding -----------------------------------------------------------------------------

    def prepare(self, node: Any) -> NodeWork | None:
        """Serve ``node`` from the cache (returns None) or return the work that runs it."""
        node_name = node.name  # Kedro's Node.name is computed on each read
        if node_name not in self.codes:  # not cacheable (decided once, with its fingerprint)
            self.restore_inputs(node)
            return self.work(node, None)
        try:
            key = self.task_for(node, node_name)
        except _Uncacheable as uncacheable:  # keyed by a pickle that misses the data, it would serve stale results
            logger.warning("%s", uncacheable, extra=PLAIN)
            self.restore_inputs(node)
            return self.work(node, None)
        self.tasks[node_name] = key
        stale = None
        persistent = [name for name in key.fields["outputs"] if self._persistent(name)]  # node.outputs, as keyed
        # Their states are in the run record: read with the digests, from one read of the manifest.
        found = self.check(key, run=bool(persistent))
        if found is not None:
            digests = found.digests
            stale = self.rebuilt_input(node)
            if stale is not None:
                self.committed[node_name] = digests
            else:
                stale = self.serve_if_fresh(node, key, found.run, persistent)
                if stale is None:
                    # Served: what its readers are keyed by (upstream_content), from the read that found it complete.
                    # Set only now: a node that runs again is named from its new commit.
                    self.contents[node_name] = _by_name(key, digests)
                    return None
            _clear_outputs(key.task)
        changes = self.changes
        self.restore_inputs(node)
        if self.changes != changes:  # an input was rebuilt with other content (a damaged cache): so is the key
            return self.prepare(node)
        if stale is None and found is None and key.made:  # its own check found a kart task it used stale
            stale = stale_reason(key.task.kart_stale)
        self.reasons[node_name] = stale or rerun_reason(self.records.last_run(node_name), self.parts[node_name])
        self.prepared_at[node_name] = self.changes
        return self.work(node, key.task, checked=self.inline)

    def check(self, key: NodeKey, run: bool) -> kart_core.CompleteOutputs | None:
        """``outputs_if_complete(key.task)`` (``run``: with its run record; else ``output_digests_if_complete``'s
        digests): None when the node run is not complete.

        Asked of ``template`` by the key's id when it can tell (``kart_sibling_outputs_if_complete``: the check
        ``complete()`` makes, on the paths and manifest the id names), so a cached node's check makes neither the node
        run nor its targets (luigi's construction and the targets were a third of a fully cached run in a new
        process: docs/benchmarks.md, session 16); otherwise of the node run, as for one this process made already
        (its targets and id are memoized: cheaper than the check by id).
        """
        template = self.template
        unique_id = None if template is None or key.made else key.unique_id
        if template is not None and unique_id is not None:
            sibling = template.kart_sibling_outputs_if_complete(unique_id, key.output_paths(), run=run)
            if sibling.decided:
                return sibling.found
        task = key.task
        if template is None and task.cache_unique_id and not task.serialized_task_definition_check:
            self.template = task
        if run:
            return kart_core.outputs_if_complete(task)  # one manifest read for the three
        digests = kart_core.output_digests_if_complete(task)  # one manifest read for both
        return None if digests is None else kart_core.CompleteOutputs(digests, None)

    def rebuilt_input(self, node: Any) -> str | None:
        """Why ``node``'s cache is stale though its key is unchanged: an input rebuilt in this run with other
        content (its producer's key does not change with its content); None when none was."""
        if not self.changed:  # nothing was rebuilt in this run (the common case): Node.inputs builds a list
            return None
        for name in node.inputs:
            if name in self.changed:
                return f"its input {name!r} was rebuilt in this run with other content"
        return None

    def work(self, node: Any, task: KedroNodeRun | None, checked: bool = False) -> NodeWork:
        """The NodeWork that runs ``node`` (its persistent outputs' states are recorded); ``checked``: see NodeWork."""
        outputs = node.outputs  # Kedro's Node.outputs builds a new list on each read
        for name in outputs:
            self.create_dataset(name)
        persistent = tuple(name for name in outputs if self._persistent(name)) if task else ()
        locations = self.locations(persistent) if persistent else ()
        watched = {name: self.input_stamps[name] for name in node.inputs if name in self.input_stamps} if task else {}
        expected = {name: self.input_data[name] for name in node.inputs if name in self.input_data} if task else {}
        stamped = {name: self.stamped_data[name] for name in watched if name in self.stamped_data}
        held = {}
        for name, state in self.held.get(node.name, {}).items() if task else ():
            if state.size < 0:  # a digest of loaded data (no file path): what Kedro loads for the node is compared
                expected[name] = state.md5
            else:
                held[name] = state
        root = self.project_root if watched else None
        code = None
        if task is not None and self.fresh_imports:
            code = (
                self.codes[node.name],
                _tagged_version(node.tags),
                tuple(self.fingerprinter.classifier.own_packages),
            )
        return NodeWork(
            node,
            self.catalog,
            task,
            persistent,
            self.is_async,
            self.hook_manager,
            self.run_id,
            checked,
            watched,
            root,
            expected,
            held,
            locations,
            stamped=stamped,
            code=code,
        )

    def locations(self, names: Any) -> tuple[str, ...]:
        """``output_state.lock_location`` of each persistent dataset in ``names`` (asked once per dataset and run)."""
        found = self.lock_locations
        for name in names:
            if name not in found:
                found[name] = lock_location(self.catalog.get(name))
        return tuple(found[name] for name in names)

    def task_for(self, node: Any, node_name: str | None = None) -> NodeKey:
        """The key of the KedroNodeRun naming this node's code, parameters and inputs (its key parts kept in
        self.parts); the node run is made when it is first needed (``NodeKey.task``). ``node_name``: ``node.name``
        when the caller has it (Kedro's ``Node.name`` is computed on each read).

        Raises:
            _Uncacheable: the node's code reaches, or an input holds, a value kart cannot digest, an
                output appends on every save, or the node has no outputs.
        """
        if node_name is None:
            node_name = node.name
        code = self.codes[node_name]
        if code.undigestable:
            raise _UncacheableCode(node_name, code.undigestable)
        node_inputs, node_outputs = node.inputs, node.outputs  # Kedro builds each list anew on every read
        if not node_outputs:
            raise _NoOutputs(node_name)
        for name in node_outputs:
            how = self.appending.get(name, "")
            if how == "":
                how = self.appending[name] = appending_save(self.catalog.get(name)) if self._persistent(name) else None
            if how is not None:
                raise _AppendingOutput(node_name, name, how)
        parameters, inputs, upstream = {}, {}, {}
        held: dict[str, str] = {}  # project code the upstream values name: "{name} (held by 'input')" -> digest
        keyed_upstream = []
        self.held.pop(node_name, None)
        for name in node_inputs:
            if _is_parameter(name):
                parameters[name] = self.parameter_digest(node, name)
            elif self._from_cached_node(name):
                upstream[name] = content = self.upstream_content(name)
                if self._persistent(name):  # read back through its catalog entry: what it holds and load args count
                    upstream[name] += self.stored_content(name)
                    inputs[name] = self.input_config(name)
                    state = self.stored_states.get(name)
                    if state is not None and not state.missing:  # checked again after the node ran (NodeWork.held)
                        self.held.setdefault(node_name, {})[name] = state
                code_held = self.upstream_code(name, content)
                if code_held:  # only then: the keys of readers of plain data stay as they were
                    held.update({f"{item} (held by {name!r})": value for item, value in code_held.items()})
                    keyed_upstream.append(upstream[name] + ":code:" + kart_core.content_digest(code_held))
                else:
                    keyed_upstream.append(upstream[name])
            else:
                inputs[name] = self.input_digest(node, name)
        around = {**self.datasets_code(node_inputs, node_outputs), **self.hook_code}
        fields: dict[str, Any] = {
            "project": self.project,
            "node_name": node_name,
            "code": code.digest
            if not around
            else kart_core.content_digest([code.digest, "datasets and hooks", around]),
            "parameters": self.digest_of(parameters),
            "data": self.digest_of(inputs),
            "inputs": tuple(node_inputs),  # tuples: KedroNodeRun.keyed finds the task by these values
            "outputs": tuple(node_outputs),
            "upstream": tuple(keyed_upstream),
        }
        if self.workspace_directory is not None:
            fields["workspace_directory"] = self.workspace_directory
        key = NodeKey(fields)
        code_parts = self.code_parts.get(id(code))
        if code_parts is None:
            packages = dict(package.split("==", 1) for package in code.packages if "==" in package)
            code_parts = self.code_parts[id(code)] = {**code.items, **packages, **_bound_state(node.func, code)}
        if held or around:
            code_parts = {**code_parts, **around, **held}
        self.parts[node_name] = RunParts(key.make_unique_id(), code_parts, parameters, inputs, upstream)
        return key

    def datasets_code(self, inputs: list[str], outputs: list[str]) -> dict[str, str]:
        """``{"module.Class (dataset class) of 'name'": code digest}`` of the project dataset classes a node reads
        and writes through (``dataset_code``): an edit of their ``_load`` changes what it reads, of their
        ``_save`` what it writes. Empty for library datasets, parameters and memory data (the common case)."""
        found: dict[str, str] = {}
        for name in (*inputs, *outputs):
            if not _is_parameter(name):
                codes = self.dataset_code(name)
                if codes:  # most datasets are no project class's: no labels to build
                    found.update({f"{label} of {name!r}": digest for label, digest in codes.items()})
        return found

    def dataset_code(self, name: str) -> dict[str, str]:
        """``project_dataset_code`` of the catalog's dataset ``name`` (empty when the catalog holds none), once per run."""
        found = self.dataset_codes.get(name)
        if found is None:
            dataset = self.catalog.get(name) if self._in_catalog(name) else None
            found = self.dataset_codes[name] = (
                {} if dataset is None else project_dataset_code(dataset, self.fingerprinter, self.class_digests)
            )
        return found

    def _from_cached_node(self, name: str) -> bool:
        """Whether input ``name`` is what a cached node of this run returned, as the node will load it.

        Not when its dataset pins a load version (``kedro run --load-versions name:v``): the node
        loads that version, which counts by its content like any other input.
        """
        producer = self.producer_name.get(name)
        if producer is None or producer not in self.tasks:
            return False
        return not (self._persistent(name) and _pinned_load_version(self.catalog.get(name)))

    def upstream_content(self, name: str) -> str:
        """The content hash of output ``name`` of the cached node run that produced it (committed, so known).

        Read from the node run's integrity manifest (``kart_core.output_digests``: one small read per
        producing node run and run). A downstream node is keyed by it, not by the producer's unique id:
        the same node run rerun (its cache deleted or damaged, its output written outside kart) may
        return other content, and then its readers must run again; the same content keeps them cached.
        """
        producer = self.producer_name[name]
        contents = self.contents.get(producer)
        if contents is None:
            task = self.tasks[producer].task
            # In output() order (KedroNodeRun.output: one target per output name, in ``outputs`` order).
            contents = self.contents[producer] = _by_name(task, kart_core.output_digests(task))
        return contents.get(name, "")

    def upstream_code(self, name: str, content: str | None = None) -> dict[str, str]:
        """``{module:qualname: code digest}`` of the classes and functions that output ``name`` of a cached node
        of this run names in its pickle (``pickled_code``): project code by its fingerprint, third-party code
        by its distribution's version (``code_digest``); empty for plain data.

        A reader calls such code without naming it (``model.predict(x)``), and the value's bytes do not
        change when it is edited: the reader is keyed by it (attacker at6 D4). The names of a content are
        known from the run that committed it (plain data), from the records (``code_names.pkl``), or read
        from the committed pickle's opcodes (nothing is unpickled) and recorded. ``content``: ``upstream_content(name)``
        when the caller has it.
        """
        if content is None:
            content = self.upstream_content(name)
        names = self.code_names.get((name, content))
        if names is None:
            names = self.records.known_code_names(name, content)
            if names is None:
                names = self.scan_output(name)
                if names is None:  # damaged: its key names that (a miss); its rerun is the caller's (restore)
                    return {"unreadable": content}
                self.records.note_code_names(name, content, names)
            self.code_names[(name, content)] = names
        if not names:  # plain data (the common case): it names no code
            return {}
        return {item: digest for item in names if (digest := self.code_digest(item)) is not None}

    def kart_task_digest(self, task: Any) -> str:
        """A kart task's output as a node input (``_kart_digest``), and the code of the project classes and
        functions its ``.pkl`` outputs name (a model the task fitted: ``upstream_code``'s reason), recorded
        per output path and content like ``upstream_code``'s."""
        digests = kart_core.output_digests(task)
        held = {}
        for path, content in digests.items():
            if not path.endswith(".pkl") or not content:
                continue
            names = self.records.known_code_names(path, content)
            if names is None:
                try:
                    with _open_binary(path) as file:
                        names = pickled_names(file)
                except (OSError, ValueError, EOFError):  # damaged: its load will say so
                    continue
                self.records.note_code_names(path, content, names)
            held.update({item: digest for item in names if (digest := self.code_digest(item)) is not None})
        base = kart_core.content_digest(["kart", kart_core.node_key(task), list(digests.values())])
        return base if not held else kart_core.content_digest([base, "project code", held])

    def scan_output(self, name: str) -> tuple[str, ...] | None:
        """The names the committed pickle of output ``name`` (its producer's cached node run) holds; None
        when it cannot be read (damaged)."""
        producer = self.producer[name].name
        target = self.tasks[producer].task.kart_outputs()[name]
        path = str(target.path())
        try:
            with _open_binary(path) as file:
                return pickled_names(file)
        except (OSError, ValueError, EOFError) as exc:  # not a pickle kart can read: named by loading it
            logger.debug("kart: the pickle %s is read by loading it (%s)", path, exc)
        code: set[Any] = set()
        try:
            kart_core.content_digest(self.load_cached(producer, name, target), code)
        except (_DamagedCache, kart_core.errors.UndigestableError):
            return None
        return tuple(sorted(f"{_module(item)}:{getattr(item, '__qualname__', '')}" for item in code))

    def code_digest(self, name: str) -> str | None:
        """The code fingerprint of the class or function ``module:qualname`` when it is project code (the
        node fingerprint's notion: no installed distribution, or an editable one), else its distribution's
        version (``ModuleClassifier.version_of``: ``dist==version``, ``python==3.11`` for the standard
        library), as the code rule counts third-party code a node names; once per run. A project name that no
        longer resolves counts as ``"unresolved"``.

        A library model (``sklearn``'s, ``xgboost``'s) pickles to the same bytes under a new version of its
        library, whose ``predict`` may compute otherwise: kart before 2026-12-02 counted such names by the
        data alone and served the old version's predictions (attacker at10 K3)."""
        if name not in self.code_digests:
            module = name.partition(":")[0]
            if module.partition(".")[0] not in sys.modules:  # the classifier tells a module's origin once imported
                resolve_name(name)
            version = self.fingerprinter.classifier.version_of(module)
            if version is not None:
                self.code_digests[name] = None if _plain_library(module, version) else version
            else:
                found = resolve_name(name)
                self.code_digests[name] = (
                    "unresolved" if found is None else self.fingerprinter.fingerprint(found).digest
                )
        return self.code_digests[name]

    def digest_of(self, digests: dict[str, str]) -> str:
        """``content_digest`` of a node's digests by dataset name, once per run for each distinct mapping
        (most nodes of a pipeline read the same parameters, and no raw input)."""
        key = tuple(digests.items())  # in order: content_digest counts a dict's order
        found = self.key_digests.get(key)
        if found is None:
            found = self.key_digests[key] = kart_core.content_digest(digests)
        return found

    def parameter_digest(self, node: Any, name: str) -> str:
        """The digest of parameter ``name`` (loaded once per run: Kedro's MemoryDataset copies it on every load)."""
        if name not in self.parameter_digests:
            self.parameter_digests[name] = self._digest_value(node, name, self.catalog.load(name))
        return self.parameter_digests[name]

    def input_digest(self, node: Any, name: str) -> str:
        """The digest of an input that no cached node of this run produced (computed once per run)."""
        if name not in self.digests:
            producer = self.producer.get(name)
            dataset = self.catalog.get(name) if name in self.catalog else None
            if producer is not None and isinstance(producer.func, KartTaskNode):  # a kart task: its id and content
                self.digests[name] = self.kart_task_digest(producer.func.task)
            elif isinstance(dataset, TaskOnKartDataset):
                dataset.ensure_built()  # its content is what the node will load
                self.digests[name] = self.kart_task_digest(dataset.task)
            elif isinstance(dataset, TaskReceiptDataset):
                self.digests[name] = _kart_digest(dataset.task)
            else:
                self.restore(name)
                self.digests[name] = self._raw_input_digest(node, name, dataset)
        return self.digests[name]

    def _raw_input_digest(self, node: Any, name: str, dataset: Any) -> str:
        """The digest of an input loaded from the catalog; a local file's is recorded with its stamp
        and reused without loading it while the file and its catalog definition stay the same."""
        stamp = file_stamp(dataset, self.project_root) if dataset is not None else None
        if stamp is None:  # a persistent one may be written by another process before the node loads it again
            data = self.input_data if is_persistent(dataset) else None  # a memory dataset: only by this run's nodes
            return self._digest_value(node, name, self.catalog.load(name), data=data)
        self.input_stamps[name] = stamp  # what each node that runs keyed by this digest is checked against
        # The classes' code too (dataset_code): an edit of a project dataset's _load, or a library upgrade, reads it again.
        config = kart_core.content_digest(
            [dataset_config(dataset, reading=True), raw_record_code(dataset, self.fingerprinter, self.class_digests)]
        )
        known = self.records.known_input_digest(name, config, stamp)
        if known is not None and "|" in known:  # "{data digest}|{library modules}" (without "|": an older kart's)
            recorded, _, modules = known.partition("|")
            named = set(filter(None, modules.split(",")))
            # A library that is project code now (pip install -e, vendored) counts by its code, which the record
            # does not name (only its top-level module): the input is read again, as a pickle of project code is.
            if all(self.fingerprinter.classifier.version_of(module) is not None for module in named):
                self.stamped_data[name] = recorded
                return self._with_code(recorded, [], named)
        code: set[Any] = set()
        libraries: set[str] = set()
        alone: dict[str, str] = {}
        digest = self._digest_value(node, name, self.catalog.load(name), code, alone, libraries)
        self.stamped_data[name] = alone[name]
        # Not recorded when it holds project code: an edit of that code, with the files unchanged, changes it.
        # The libraries its pickle names are, by module: their versions are read anew on each reuse.
        if not code and file_stamp(dataset, self.project_root) == stamp:  # the digest is of these files
            self.records.note_input_digest(name, config, stamp, f"{alone[name]}|{','.join(sorted(libraries))}")
        return digest

    @functools.cached_property
    def project_root(self) -> str | None:
        """The Kedro project's root, which raw input files are stamped relative to (found once per run)."""
        root = find_project_root()
        return str(root) if root is not None else None

    def input_config(self, name: str) -> str:
        """``catalog:{md5}`` naming how the persistent dataset ``name`` is read (once per run)."""
        if name not in self.configs:
            self.configs[name] = "catalog:" + dataset_config(self.catalog.get(name), reading=True)
        return self.configs[name]

    def note_stored(self, states: Mapping[str, OutputState]) -> None:
        """Remember what the persistent outputs in ``states`` hold now (``stored_content``)."""
        for name, state in states.items():
            self.stored[name] = "" if state.missing else ":stored:" + state.md5
            self.stored_states[name] = state

    def stored_content(self, name: str) -> str:
        """``:stored:{md5}`` of what the persistent output ``name`` of a cached node of this run holds, as its
        readers will load it; "" when kart cannot tell (the dataset is missing after its save, or its data cannot
        be digested): then its readers are keyed by what the producer returned alone.

        What the producer returned is not enough: a load need not give back the last save. A
        ``PartitionedDataset`` without ``overwrite`` (kedro_datasets.partitions) adds the saved partitions to
        those in its folder, a custom dataset may append rows or lines or merge (one kart can tell appends runs
        uncached: ``appending_save``), a versioned dataset's newest version may not be kart's; the readers see all
        of it, what other runs saved too. kart before 2026-12-01 18:10 UTC keyed them by the producer's result
        only (the known partition and versioned datasets from 17:15) and served a reader's cache built on less.
        The state (``output_state.current_state``: md5 of the files' bytes with their relative names, or of the
        loaded data for a dataset without a path) is the one serving or running the producer took anyway
        (``note_stored``): no extra read.
        """
        stored = self.stored.get(name)
        if stored is None:  # not noted by this run's serve or run of the producer (not expected): read it now
            self.note_stored({name: current_state(self.catalog.get(name))})
            stored = self.stored[name]
        return stored

    def _digest_value(
        self,
        node: Any,
        name: str,
        value: Any,
        code: set[Any] | None = None,
        data: dict[str, str] | None = None,
        libraries: set[str] | None = None,
    ) -> str:
        """The digest of input ``name``'s loaded ``value`` (partition loaders are called: ``data_digest``)
        and of the code its pickled parts name (a fitted model's class: what calling it runs): project code
        by its fingerprint, third-party code by its distribution's version (``_with_code``).

        Args:
            code: filled with that project code (classes and functions), when given.
            data: when given, ``data[name]`` is set to the digest of the data alone (``data_digest``).
            libraries: filled with the top-level modules of the third-party code it names, when given.

        Raises:
            _Uncacheable: its content cannot be digested (a LazyFrame, a generator, a function, ...).
        """
        named: set[Any] = set()
        try:
            digest = data_digest(value, named)
        except kart_core.errors.UndigestableError as exc:
            raise _Uncacheable(node.name, name, exc) from exc
        if data is not None:
            data[name] = digest
        classifier = self.fingerprinter.classifier
        project, modules = [], set()
        for item in named:
            module = _module(item)
            version = classifier.version_of(module) if module else None
            if module and version is None:
                project.append(item)
            elif module and not _plain_library(module, str(version)):
                modules.add(module.partition(".")[0])
        if code is not None:
            code.update(project)
        if libraries is not None:
            libraries.update(modules)
        return self._with_code(digest, project, modules)

    def _with_code(self, digest: str, project: list[Any], modules: set[str]) -> str:
        """``digest`` (of data) with the code fingerprints of ``project`` code and the versions of the
        third-party ``modules`` its pickle names; ``digest`` itself when it names neither (plain data)."""
        if project:
            fingerprints = sorted(self.fingerprinter.fingerprint(item).digest for item in project)
            digest = kart_core.content_digest([digest, "project code", fingerprints])
        if modules:
            classifier = self.fingerprinter.classifier
            versions = sorted({str(classifier.version_of(module)) for module in modules})
            digest = kart_core.content_digest([digest, "libraries", versions])
        return digest

    # --- serving from the cache ---------------------------------------------------------------

    def serve_if_fresh(
        self, node: Any, key: NodeKey, run: Mapping[str, Any] | None = None, persistent: list[str] | None = None
    ) -> str | None:
        """Serve a complete node run unless an output holds data kart did not write; return that reason.

        ``run``: the run record read with the check that found it complete (``NodeRecords.states``), if any.
        ``persistent``: the node's persistent outputs, in order, when the caller has them.

        When the check finds anything to write back or record, or a reason not to serve, it is made again with
        the persistent outputs' locations locked (``kart_core.hold_location_locks``, as ``NodeWork`` locks them
        from its saves through the states it records), held through the write-back and the states recorded, so
        another session's save of one cannot land in between (attacker at17 H7), and a save under way in another
        session is waited for rather than taken for data written outside kart. The common case (every output
        holds what its record says: nothing written, nothing recorded) takes no lock.
        """
        if persistent is None:
            persistent = [name for name in node.outputs if self._persistent(name)]
        checked = self._check_outputs(key, run, persistent)
        if not isinstance(checked, str) and not checked[2] and checked[1] == checked[0]:
            return self._serve_checked(node, key, *checked)
        with kart_core.hold_location_locks(self.locations(persistent)):
            checked = self._check_outputs(key, run, persistent)
            return checked if isinstance(checked, str) else self._serve_checked(node, key, *checked)

    def _check_outputs(
        self, key: NodeKey, run: Mapping[str, Any] | None, persistent: list[str]
    ) -> str | tuple[dict[str, OutputState], dict[str, OutputState], list[str]]:
        """The states recorded for ``key``'s ``persistent`` outputs, their states now, and the outputs to write back
        (missing, another run's content kart wrote, or another catalog definition); or why the node must run
        again (an output holds data written outside kart)."""
        recorded: dict[str, OutputState] = {}
        if persistent:  # by its key's paths when checked by its id: the node run is made only when a file asks it
            template = None if key.made else self.template
            paths = None if template is None else key.record_paths(str(template.workspace_directory))
            recorded = self.records.states(key, run, paths) or {}
        states = dict(recorded)
        replace = []
        for name in persistent:
            state = current_state(self.catalog.get(name), recorded.get(name))
            if state.missing or name not in recorded or state.md5 != recorded[name].md5:
                if not state.missing and not self.records.written_by_kart(name, state):
                    return f"output {name!r} holds data written outside kart"
                replace.append(name)
            elif recorded[name].config and state.config != recorded[name].config:
                replace.append(name)  # its catalog definition changed: written again through the new one
            states[name] = state  # the same content, maybe a newer mtime: remembered for the next check
        return recorded, states, replace

    def _serve_checked(
        self,
        node: Any,
        key: NodeKey,
        recorded: dict[str, OutputState],
        states: dict[str, OutputState],
        replace: list[str],
    ) -> str | None:
        """``serve_if_fresh``'s serve, after ``_check_outputs``: ``replace`` written back, the states recorded."""
        try:
            self.serve(node, key, replace)
        except _DamagedCache as damaged:
            _warn_rerun(node.name, damaged)
            return f"its cached output {damaged.output!r} was damaged"
        if replace:
            states.update({name: current_state(self.catalog.get(name)) for name in replace})
        self.note_stored(states)
        if states != recorded:
            self.records.save_states(key.task, states)
        return None

    def serve(self, node: Any, key: NodeKey, replace: list[str]) -> None:
        """Write the cached persistent outputs in ``replace`` now; memory outputs are loaded only if needed.

        Persistent outputs not in ``replace`` already hold the cached content: they are not written.
        The datasets the node ``confirms`` are confirmed, as Kedro's Task does after a node ran: an
        IncrementalDataset's checkpoint moves past the partitions the cached result was built from
        (kart before 2026-12-01 17:30 UTC left it, so every later run read them again).

        Raises:
            _DamagedCache: an output in ``replace`` cannot be loaded back (nothing was written then).
        """
        node_name = key.fields["node_name"]  # node.name, as keyed (Kedro's Node.name is computed on each read)
        # The node run and its targets are made only when an output is loaded (here, or by ``restore``).
        values = {name: self.load_cached(node_name, name, key.task.kart_outputs()[name]) for name in replace}
        for name in key.fields["outputs"]:
            if name not in replace and not self._persistent(name):
                self.pending[name] = (node_name, key)
        for name, value in values.items():
            self.create_dataset(name)
            self.catalog.save(name, value)
        for name in node.confirms:
            self.catalog.confirm(name)
        self.statuses[node_name] = _CACHED
        if logger.isEnabledFor(logging.INFO):  # the label is formatted only for a line that is shown
            logger.info("kart: node %r cached (%s)", node_name, key.kart_label(), extra=PLAIN)

    @staticmethod
    def load_cached(node_name: str, name: str, target: Any) -> Any:
        """Load a node's cached output ``name`` with its content hash checked (the bytes are read anyway).

        Raises:
            _DamagedCache: the cache entry is damaged (``_DAMAGED``).
        """
        try:
            with kart_core.verify_loads():
                return target.load()
        except _DAMAGED as exc:
            raise _DamagedCache(node_name, name, str(target.path()), exc) from exc

    def restore(self, name: str) -> None:
        """Put a cached output into the catalog if it is still only in the kart cache.

        A damaged cache entry reruns the node that produced it (``rerun_damaged``).
        """
        pending = self.pending.pop(name, None)
        if pending is None:
            return
        try:
            node_name, key = pending
            value = self.load_cached(node_name, name, key.task.kart_outputs()[name])
        except _DamagedCache as damaged:
            self.rerun_damaged(damaged)
            return
        self.create_dataset(name)
        self.catalog.save(name, value)

    def rerun_damaged(self, damaged: _DamagedCache) -> None:
        """Run again, here and now, the served node whose cached output turned out damaged when needed.

        Raises:
            kart_core.errors.AdapterError: the node cannot run again in this run (an input it reads
                is no longer held); the message names ``kedro kart clear --node <name> --only``.
        """
        node = self.producer[damaged.output]
        task = self.tasks[node.name].task
        gone = [name for name in node.inputs if not self._available(name)]
        if gone:
            raise kart_core.errors.AdapterError(
                f"KartRunner: the cached output {damaged.output!r} of node {node.name!r} ({task.kart_label()}) at "
                f"{damaged.path} is damaged ({damaged}), and the node cannot run again in this run: its input(s) "
                f"{', '.join(map(repr, gone))} are no longer held. Run `kedro kart clear --node {node.name} --only`, "
                "then run the pipeline again."
            ) from damaged
        _warn_rerun(node.name, damaged)
        self.run_again(node, task, f"its cached output {damaged.output!r} was damaged")

    def run_again(self, node: Any, task: KedroNodeRun, reason: str, before: list[str] | None = None) -> None:
        """Run ``node`` here and now though it was served (or ran) already; when its outputs then hold
        other content than before (``before``: their content hashes then; default: ``task``'s now), the
        nodes built from the old content run again too (``outputs_changed``)."""
        for name in node.outputs:
            self.pending.pop(name, None)
        if before is None:
            before = list(kart_core.output_digests(task).values())
        _clear_outputs(task)
        self.reasons[node.name] = reason
        self.restore_inputs(node)
        self.contents.pop(node.name, None)  # what it returns this time is read from its new commit
        result = self.work(node, task)()
        if result.changed:
            self.unrecorded(node, result)
            return
        self.statuses[node.name] = result.status
        self.records.mark_written(result.states)
        self.note_stored(result.states)
        self.ran_parts[node.name] = self.parts[node.name]
        logger.info("kart: node %r %s (%s)", node.name, result.status, self.reasons[node.name], extra=PLAIN)
        if list(kart_core.output_digests(task).values()) != before:
            self.outputs_changed(node)

    def outputs_changed(self, node: Any) -> None:
        """``node`` committed other content than its cache held during this run: each node already done
        that read an output of it (served from a cache built on the old content, or run on it) runs again
        now, and a node decided later is not served from its cache (``rebuilt_input``).

        Raises:
            kart_core.errors.AdapterError: such a node cannot run again in this run (an input it reads is
                no longer held); the message names ``kedro kart clear``.
        """
        self.changes += 1
        for name in node.outputs:
            self.changed[name] = self.changes
        names = set(node.outputs)
        for reader in self.pipeline.nodes:
            if reader.name in self.statuses and names.intersection(reader.inputs):
                self.stale_reader(reader, names.intersection(reader.inputs))

    def stale_reader(self, node: Any, inputs: set[str]) -> None:
        """Run again ``node``, done already from the old content of ``inputs`` (rebuilt since with other content)."""
        known = self.tasks.get(node.name)
        old = None if known is None else known.task
        listed = ", ".join(map(repr, sorted(inputs)))
        gone = [name for name in node.inputs if not self._available(name)]
        if old is None or gone:
            raise kart_core.errors.AdapterError(
                f"KartRunner: node {node.name!r} was done from the content of {listed} that this run then rebuilt "
                f"with other content (a damaged cache of a node that is not deterministic), and it cannot run "
                f"again in this run: {'its input(s) ' + ', '.join(map(repr, gone)) + ' are no longer held' if gone else 'it is not cached'}. "
                f"Run `kedro kart clear --node {node.name} --only`, then run the pipeline again."
            )
        logger.warning(
            "kart: node %r runs again: its input(s) %s were rebuilt in this run with other content",
            node.name,
            listed,
            extra=PLAIN,
        )
        before = list(kart_core.output_digests(old).values())
        key = self.tasks[node.name] = self.task_for(
            node
        )  # keyed by the rebuilt content: the old key's entry stays right
        self.run_again(
            node, key.task, f"its input {sorted(inputs)[0]!r} was rebuilt in this run with other content", before
        )

    def _available(self, name: str) -> bool:
        """Whether the catalog (or the kart cache, for a served output) still holds ``name``'s data."""
        if _is_parameter(name) or name in self.pending:
            return True
        return name in self.catalog and bool(self.catalog.exists(name))

    def create_dataset(self, name: str) -> None:
        """Create the catalog's dataset for ``name`` (from its runtime pattern) before anything is saved there.

        KartRunner leaves datasets that only the runtime pattern names uncreated until needed;
        for others (and under KartParallelRunner) the dataset already exists and this does nothing.
        """
        if name not in self.created:
            # Not declared when the run started and not created since (``_in_catalog``): Kedro's check is not asked.
            self.runtime_datasets.create(name, absent=self.declared is not None and name not in self.declared)
            self.created.add(name)

    def restore_inputs(self, node: Any) -> None:
        """Before a node runs: its inputs served from the cache go into the catalog."""
        for name in node.inputs:
            self.restore(name)

    def save_records(self) -> None:
        """Remember the key parts of the nodes that ran or were served and the contents kart wrote (also after a
        failure: they did run)."""
        self.records.save_last_runs({**self.served_parts(), **self.ran_parts})
        self.records.save_written()
        self.records.save_input_digests()
        self.records.save_code_names()

    def served_parts(self) -> dict[str, RunParts]:
        """The key parts of the nodes this run served from the cache whose recorded last run had another key.

        So ``last_runs`` names the node run each node's last use resolved to, served or ran: ``kedro kart clear
        --keep-latest`` keeps it though another run of the node was built later (kart before 2026-12-01 recorded
        only nodes that ran, and cleared a served run whose parameters were set back). Nothing is written when
        every served node was already recorded with its key (one read of the record file per run).
        """
        cached = kart_core.RunStatus.CACHED.value
        served = {}
        for node_name, status in self.statuses.items():
            parts = self.parts.get(node_name)
            if status != cached or parts is None or node_name in self.ran_parts:
                continue
            if self.records.last_unique_id(node_name) != parts.unique_id:
                served[node_name] = parts
        return served

    def restore_pipeline_outputs(self) -> None:
        """Hand the caller every pipeline output, cached or not."""
        for name in self.outputs:
            self.restore(name)

    # --- after a node ran ---------------------------------------------------------------------

    def finish(self, node: Any, result: NodeResult | None) -> None:
        """Record what happened to ``node`` (None: served from the cache) and free data nobody needs.

        A node that ran from an input rebuilt while it ran (``outputs_changed``) runs again; one that ran
        because an input was rebuilt marks its own outputs changed when their content changed.
        """
        node_name = node.name
        prepared = self.prepared_at.pop(node_name, None)
        key = self.tasks.get(node_name)
        served = False
        if result is not None and key is not None and result.status == _CACHED:
            rerun = self.served_or_rerun(node, key)  # another run committed it first
            served, result = rerun is None, result if rerun is None else rerun
        if result is not None and result.changed:
            self.unrecorded(node, result)
        elif result is not None:
            if not served:
                self.statuses[node_name] = result.status
                if key is not None:
                    self.records.mark_written(result.states)  # the states themselves are in the run's task log
                    self.note_stored(result.states)
                    self.ran_parts[node_name] = self.parts[node_name]
                    if result.contents is not None:  # what its readers are keyed by, from its own commit
                        self.contents[node_name] = result.contents
                        for name in result.plain:  # plain data names no project code: its pickle is not read
                            content = result.contents.get(name, "")
                            self.code_names[(name, content)] = ()
                            self.records.note_code_names(name, content, ())
                reason = self.reasons.get(node_name)
                logger.info(
                    "kart: node %r %s%s", node_name, result.status, f" ({reason})" if reason else "", extra=PLAIN
                )
            self.after_rebuilds(node, prepared)
        self.release(node)

    def served_or_rerun(self, node: Any, key: NodeKey) -> NodeResult | None:
        """``node`` was to run, but another run committed its node run first (another session of this process in
        a thread, another process): served as ``prepare`` serves a complete node run, for this session's catalog
        (each persistent output checked, the cached content loaded and saved where it differs).

        When an output holds data written outside kart, ``prepare`` would have run the node (its cached run
        cleared); so it runs now, in this thread, and its result is returned. kart before 2026-12-02 only warned
        and left that output as it was while the summary said "cached" (attacker at11, F5). A third run
        committing between the clear and this run is served the same way once more, then warned about.
        None: served.
        """
        for _attempt in range(2):
            stale = self.serve_if_fresh(node, key)
            if stale is None:
                return None
            logger.info("kart: node %r was cached by another run meanwhile but %s: it runs again", node.name, stale)
            self.reasons[node.name] = stale
            _clear_outputs(key.task)
            result = self.work(node, key.task)()
            if result.status != kart_core.RunStatus.CACHED.value:
                return result
        logger.warning("kart: node %r was cached by another run but %s", node.name, stale, extra=PLAIN)
        return None

    def unrecorded(self, node: Any, result: NodeResult) -> None:
        """``node`` ran, but a raw input changed between the digest in its key and the end of its run
        (``NodeResult.changed``): its result was not cached. One warning names the node and the inputs.

        Its outputs stand for this run (they are in the catalog). The node leaves ``tasks``, so its readers
        are keyed by the content of what it returned (``input_digest``), never by its key (which names content
        it may not have read) nor by a commit it did not make. The next run stamps the input anew, so it reads
        and digests it and keys the node by the content it then holds.
        """
        node_name = node.name
        listed = ", ".join(map(repr, result.changed))
        logger.warning(
            "kart: node %r ran but its result is not cached: its input(s) %s changed while it ran (written by "
            "another process between kart's digest and the node's read); this run's outputs stand, the next "
            "run keys the node by the content the input(s) hold then",
            node_name,
            listed,
            extra=PLAIN,
        )
        self.tasks.pop(node_name, None)
        self.committed.pop(node_name, None)
        self.contents.pop(node_name, None)
        self.statuses[node_name] = result.status
        self.reasons[node_name] = f"input(s) {listed} changed while it ran"
        self.records.mark_written(result.states)  # kart's runner wrote them: a later cached run may replace them
        self.note_stored(result.states)

    def after_rebuilds(self, node: Any, prepared: int | None) -> None:
        """What a run of ``node`` (prepared when ``prepared`` changes had been made) owes to rebuilt inputs."""
        key = self.tasks.get(node.name)
        before = self.committed.pop(node.name, None)
        if key is None:
            return
        # Nothing rebuilt in this run (the common case): no input of it was rebuilt late.
        late = {name for name in node.inputs if self.changed.get(name, 0) > (prepared or 0)} if self.changed else None
        if late:  # an input was rebuilt after this node had taken it (a pool ran it meanwhile)
            self.stale_reader(node, late)
        elif before is not None and kart_core.output_digests(key.task) != before:
            self.outputs_changed(node)

    def release(self, node: Any) -> None:
        """Free memory datasets once every node reading them is done."""
        for name in node.inputs:
            self.load_counts[name] -= 1
            if (
                self.load_counts[name] < 1 and name not in self.kept and self._in_catalog(name)
            ):  # not created: nothing held
                self.catalog.release(name)

    def _persistent(self, name: str) -> bool:
        known = self.persistence.get(name)
        if known is None:
            known = self.persistence[name] = self._in_catalog(name) and is_persistent(self.catalog.get(name))
        return known

    def _in_catalog(self, name: str) -> bool:
        """``name in self.catalog`` for a dataset of the pipeline, without Kedro's pattern matching when it can be told.

        Kedro's ``DataCatalog.__contains__`` matches every name it does not hold against the dataset and
        catch-all patterns (each a generator and a ``parse``): asked for each served node's memory outputs
        (whether they are persistent, whether to release them), that was three in a hundred of a fully
        cached run's time. A name of the pipeline that was not ``declared`` when the run started is in the
        catalog only once this run created it (``create_dataset``, before anything is saved under it):
        nothing else adds datasets to the catalog during a run.
        """
        if self.declared is None:  # KartParallelRunner: Kedro created the datasets itself
            return name in self.catalog
        return name in self.declared or name in self.created


# The Kedro hooks that can change the data a node computes from or saves: before_node_run may return
# replacements for its inputs, after_dataset_loaded and before_dataset_saved may change the data in place.
DATA_HOOKS = ("before_node_run", "after_dataset_loaded", "before_dataset_saved")


def hook_code(hook_manager: Any, fingerprinter: kart_core.CodeFingerprinter) -> dict[str, str]:
    """``{"module.Class.hook (hook)": code digest}`` of the project's implementations of Kedro's data hooks
    (``DATA_HOOKS``; ``fingerprinter``'s notion of project code): they can change what a node computes from, so
    they count in every cached node's key. Library plugins' (kart's own, kedro-mlflow's) do not. Empty without
    a hook manager (a runner used without a Kedro session).

    The code counts (the function, and the module values and helpers it reaches), not the hook instance's
    state: a hook object keeps per-run state as a rule (a timer's start times, ``self.context`` set in
    ``after_context_created``), which would change every key on every run (attacker at12 A3). A setting a
    hook applies to the data belongs in a module constant or in ``params:``, which count.
    """
    found: dict[str, str] = {}
    for name in DATA_HOOKS:
        try:
            implementations = list(getattr(hook_manager.hook, name).get_hookimpls() or ())
        except (AttributeError, TypeError):  # no manager, or Kedro's null manager (no session): no hooks
            return {}
        for implementation in implementations:
            function = getattr(implementation.function, "__func__", implementation.function)  # unbound: no state
            module = getattr(function, "__module__", None)
            if not isinstance(module, str) or fingerprinter.classifier.version_of(module) is not None:
                continue
            label = f"{module}.{getattr(function, '__qualname__', name)} ({name} hook)"
            found[label] = fingerprinter.fingerprint(function).digest
    return found


def _plain_library(module: str, version: str) -> bool:
    """Whether a third-party name's module is one whose values are plain data (``pickled_code.plain_data``: the
    standard library's, numpy's, pandas', and pyarrow's, which holds pandas' string columns): such names count by the data alone, as the plain value that pickles
    to them names nothing. A DataFrame a node returned is plain data in memory but its committed pickle names
    pandas and numpy classes: counted by version they keyed its readers one way after the producer ran and
    another once it was served (a rerun of every reader on the run after a served producer's content came back).
    """
    return version.startswith("python==") or module.partition(".")[0] in ("numpy", "pandas", "pyarrow")


def cacheable(node: Any, generators: dict[int, bool] | None = None, tags: set[str] | None = None) -> bool:
    """Whether KartRunner caches ``node``: not a to_pipeline kart node (kart caches those itself), not a
    generator (its outputs stream), not tagged ``kart_no_cache``.

    ``generators``: whether a function is a generator function, by ``id()`` of functions kept alive by
    the caller (the pipeline's nodes): filled in, so nodes sharing a function ask ``inspect`` once.
    ``tags``: ``node.tags`` when the caller has them.
    """
    func = node.func
    if NO_CACHE_TAG in (node.tags if tags is None else tags) or isinstance(func, KartTaskNode):
        return False
    if generators is None:
        return not inspect.isgeneratorfunction(func)
    generator = generators.get(id(func))
    if generator is None:
        generator = generators[id(func)] = inspect.isgeneratorfunction(func)
    return not generator


def _fresh_worker_imports() -> bool:
    """Whether Kedro's ParallelRunner starts its workers without the runner's modules: its context
    (``KEDRO_MP_CONTEXT``, else Python's default start method) is not ``fork``."""
    import multiprocessing

    return multiprocessing.get_context(os.environ.get("KEDRO_MP_CONTEXT") or None).get_start_method() != "fork"


def _tagged_version(tags: set[str]) -> str | None:
    """The least (in sorted order) version a ``kart_code_version.`` tag among a node's ``tags`` gives; None without one."""
    if not tags:  # most nodes have no tags: asked for every node of every run
        return None
    versions = [tag[len(CODE_VERSION_TAG) :] for tag in tags if tag.startswith(CODE_VERSION_TAG)]
    return min(versions) if versions else None


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _pinned_load_version(dataset: Any) -> bool:
    """Whether a versioned Kedro dataset loads a pinned version (``--load-versions``), not its latest save."""
    version = getattr(dataset, "_version", None)
    return getattr(version, "load", None) is not None


def _bound_state(func: Any, code: kart_core.CodeFingerprint) -> dict[str, str]:
    """``{label: digest}`` of what is bound to a node callable (its ``RunParts.code`` entry), so that a rerun
    because it changed says so; empty for a plain function (its code is an item of ``code``)."""
    if not code.root:
        return {}
    if isinstance(func, functools.partial):
        return {f"the arguments of functools.partial({_qualified(func.func)})": code.root}
    if inspect.ismethod(func):
        return {f"the state of the instance bound to {_qualified(func)}": code.root}
    if not inspect.isfunction(func) and not inspect.isbuiltin(func) and not isinstance(func, type):
        return {f"the state of the callable {_qualified(type(func))} instance": code.root}
    return {}


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _kart_digest(task: Any) -> str:
    """A kart task's output as a node input: its node key and the content hash of each output.

    The unique id alone is not enough: outputs deleted and built again after an edit the id does not
    cover hold other content under the same id.
    """
    return kart_core.content_digest(["kart", kart_core.node_key(task), list(kart_core.output_digests(task).values())])


def _by_name(task: KedroNodeRun | NodeKey, digests: dict[str, str]) -> dict[str, str]:
    """``output_digests(task)`` (output path -> content hash, in ``output()`` order) by dataset name; a node
    without outputs has one placeholder output (``KedroNodeRun.output_names``)."""
    return dict(zip(task.output_names(), digests.values(), strict=True))


def _clear_outputs(task: KedroNodeRun) -> None:
    """Drop a node run's cached outputs (and any states recorded after it) so that run_one runs it again."""
    for target in task.kart_outputs().values():
        target.remove()
    task.states_target().remove()


def _warn_rerun(node_name: str, damaged: _DamagedCache) -> None:
    """One warning for a node that runs again because its cached output is damaged."""
    logger.warning(
        "kart: node %r runs again: its cached output %r at %s is damaged (%s)",
        node_name,
        damaged.output,
        damaged.path,
        damaged,
        extra=PLAIN,
    )


def _open_binary(path: str) -> Any:
    """``path`` (a local path or an fsspec URL: a kart workspace) opened for reading bytes."""
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")  # noqa: SIM115 (returned to the caller's with)
