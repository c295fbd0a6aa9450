"""What kart's machinery needs of a task: typed Protocols, in a leaf module.

The runner, the graph walk, the run logs, build() and the scheduler adapters know tasks only
through these Protocols, never through ``Any`` and never by importing ``TaskOnKart`` (which
sits above them: luigi calls ``task.run()``, and TaskOnKart routes that into ``run_one``).

``TaskOnKart`` satisfies ``KartTask``; any ``luigi.Task`` satisfies ``LuigiTask`` (a plain luigi
task, e.g. an ``ExternalTask``, may appear in a kart graph: it has no cache and no run logs).
Use ``is_kart_task`` to tell them apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

__all__ = ["KartTarget", "KartTask", "LuigiTask", "is_kart_task", "target_path"]


@runtime_checkable
class KartTarget(Protocol):
    """One output: luigi's Target plus the path and load that kart reads it through."""

    def exists(self) -> bool:
        """Whether the output is there, whole."""
        ...

    def path(self) -> str:
        """Where the output lives (a local path or an fsspec URL)."""
        ...

    def load(self) -> Any:
        """Read the output back."""
        ...

    def remove(self) -> None:
        """Delete the output if it exists."""
        ...

    def dump(self, obj: Any, lock_at_dump: bool = True) -> None:
        """Write ``obj`` as the output."""
        ...

    def last_modification_time(self) -> datetime:
        """When the output was written (gokart's ``TargetOnKart.last_modification_time``)."""
        ...


class LuigiTask(Protocol):
    """What every node of a kart graph has: luigi.Task's completeness, dependencies and id."""

    @property
    def task_id(self) -> str:
        """luigi's id: family and significant parameters (a kart task computes it when first read)."""
        ...

    def complete(self) -> bool:
        """Whether the task's outputs are all there."""
        ...

    def requires(self) -> Any:
        """The upstream tasks, as a task, a list or a dict of tasks (luigi's convention)."""
        ...

    def output(self) -> Any:
        """The outputs, as a target, a list or a dict of targets."""
        ...

    def to_str_params(self, only_significant: bool = False, only_public: bool = False) -> dict[str, str]:
        """luigi's string form of the parameters."""
        ...

    def run(self) -> Any:
        """Do the task's work (luigi's worker calls it; a kart task routes it through ``run_one``)."""
        ...


class KartTask(LuigiTask, Protocol):
    """What the runner, the graph walk, run logs, build() and the adapters read of a kart task.

    Every name here is a gokart 1.12.2 parameter or method of ``TaskOnKart``, or a ``kart_*``
    method kart adds (kart's own names carry the prefix so task parameters cannot hide them).
    """

    workspace_directory: str
    local_temporary_directory: str
    rerun: bool
    significant: bool
    complete_check_at_run: bool
    should_lock_run: bool
    should_dump_supplementary_log_files: bool
    serialized_task_definition_check: bool
    redis_host: str | None
    redis_port: int | None
    redis_timeout: int
    cache_unique_id: bool
    task_unique_id: str | None
    task_log: dict[str, Any]
    FIX_RANDOM_SEED_VALUE_NONE_MAGIC_NUMBER: ClassVar[int]

    @property
    def param_kwargs(self) -> dict[str, Any]:
        """Each parameter's value by name (luigi's attribute)."""

    @property
    def fix_random_seed_methods(self) -> Iterable[str]:
        """Dotted names of the seed functions called before ``run()``."""
        ...

    @property
    def fix_random_seed_value(self) -> int | None:
        """The seed; the magic number (or None) means "derive it from the unique id"."""
        ...

    def make_unique_id(self) -> str:
        """The 32-hex md5 id of the task's significant parameters and upstream ids (gokart's recipe)."""
        ...

    def kart_label(self) -> str:
        """``Class[first 8 of unique id]``: how errors and logs name the task."""
        ...

    kart_stale: list[Any]  # what complete() found replaced under the task (kart_core.lineage.StaleInput)

    def kart_reset_rerun(self) -> None:
        """Start a new build: ``rerun=True`` runs the task again (replacing its outputs), once per build."""
        ...

    def kart_replacing(self) -> bool:
        """Whether a rerun waits for its commit: the run must write every output anew (``kart_core.rerun``)."""
        ...

    def kart_forget_upstreams(self) -> list[LuigiTask]:
        """Forget the cached ``requires()`` and the unique id computed from it; return the forgotten upstreams."""
        ...

    def kart_release(self) -> None:
        """Forget the outputs (targets) kept for a build; ``kart_outputs`` computes them again when asked."""
        ...

    def kart_requires(self) -> list[LuigiTask]:
        """``requires()`` flattened to a list of tasks (kart or plain luigi)."""
        ...

    def kart_requires_structure(self) -> Any:
        """``requires()`` unflattened (its dict keys and list positions name the places), memoized."""
        ...

    def kart_outputs(self) -> Any:
        """``output()``, computed once per task object: what kart itself reads (same shape as output())."""
        ...

    def get_own_code(self) -> str:
        """The task class's own source (for ``serialized_task_definition_check``)."""
        ...

    def get_info(self, only_significant: bool = False) -> dict[str, str]:
        """Parameters as strings, a task parameter as ``Class-unique_id`` (what task trees show)."""
        ...

    def kart_log_target(self, kind: str, extension: str = ".pkl") -> KartTarget:
        """The run-log target ``{workspace}/log/{kind}/{Class}_{unique_id}{extension}``."""
        ...


def is_kart_task(task: object) -> TypeGuard[KartTask]:
    """Whether ``task`` is a kart task (has a unique id and run logs), not a plain luigi task."""
    return hasattr(task, "make_unique_id") and hasattr(task, "kart_label")


def target_path(target: Any) -> str:
    """Where ``target`` lives: ``target.path()`` for kart's and gokart's targets, ``target.path`` for luigi's
    (``luigi.LocalTarget`` and other FileSystemTargets keep it as an attribute), as a str.

    For code that meets the outputs of plain luigi tasks in a kart graph (``kart gc``, ``kart report``,
    ``delete_local_unnecessary_outputs``). Raises AttributeError for an object with no path at all.
    """
    path = target.path
    return str(path() if callable(path) else path)
