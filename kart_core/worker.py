"""gokart's ``[gokart_worker]`` config section: honoured where kart has the equivalent, reported otherwise.

gokart 1.12.2 runs tasks with its own fork of luigi's worker, configured by ``[gokart_worker]``
(``gokart.worker.gokart_worker``). kart runs a graph in two ways, and the section means this in each:

- **under luigi** (``luigi.build(..., worker_scheduler_factory=kart_core.build.WorkerSchedulerFactory())``):
  ``Worker`` is luigi's worker with every ``[gokart_worker]`` key that luigi's ``[worker]`` also has
  passed on, so each is honoured as in gokart. ``task_completion_check_at_run`` (gokart's own key)
  is always on: a kart task's ``run()`` goes through ``run_one``, which skips a complete task.
- **under kart's executor** (``kart_core.build``, ``kart_core.run``, ``kart build``): there is no
  luigi worker. ``check_unfulfilled_deps``, ``check_complete_on_run`` and
  ``task_completion_check_at_run`` describe what kart always does, so their default ``True`` is
  honoured; any other key set there, or one of those three set to ``false``, is reported by an
  ``IgnoredSettingWarning`` naming the key (``check_worker_section``), never dropped silently.

A ``[gokart.worker]`` section (a common misspelling) is read by neither gokart nor kart; kart warns.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import luigi
import luigi.worker
from luigi import rpc, scheduler

from kart_core.errors import IgnoredSettingWarning, UnsupportedFeatureError
from kart_core.outcome import task_label
from kart_core.parameter import ExplicitBoolParameter

__all__ = [
    "SECTION",
    "Worker",
    "check_worker_section",
    "gokart_worker",
    "luigi_worker_settings",
    "refuse_worker_timeouts",
]

SECTION = "gokart_worker"
_MISSPELLED_SECTION = "gokart.worker"

# What kart's executor always does, as the [gokart_worker] key and the value that says so.
_ALWAYS_UNDER_KART = {
    "check_unfulfilled_deps": True,
    "check_complete_on_run": True,
    "task_completion_check_at_run": True,
}
_WHY_ALWAYS = {
    "check_unfulfilled_deps": "kart runs a task only after its upstreams completed",
    "check_complete_on_run": "kart commits a run only when every output was written",
    "task_completion_check_at_run": "kart skips a task whose outputs exist when its turn comes",
}


class gokart_worker(luigi.Config):  # noqa: N801 - gokart's (and luigi's config-section) name
    """The ``[gokart_worker]`` settings, with gokart 1.12.2's names and defaults (see the module docstring).

    The keys shared with luigi's ``[worker]`` fall back to the same ``[core]`` options as luigi's.
    """

    id = luigi.StrParameter(default="", description="Worker id (luigi scheduling only).")
    ping_interval = luigi.FloatParameter(default=1.0, config_path={"section": "core", "name": "worker-ping-interval"})
    keep_alive = luigi.BoolParameter(default=False, config_path={"section": "core", "name": "worker-keep-alive"})
    count_uniques = luigi.BoolParameter(default=False, config_path={"section": "core", "name": "worker-count-uniques"})
    count_last_scheduled = luigi.BoolParameter(default=False)
    wait_interval = luigi.FloatParameter(default=1.0, config_path={"section": "core", "name": "worker-wait-interval"})
    wait_jitter = luigi.FloatParameter(default=5.0)
    max_keep_alive_idle_duration = luigi.TimeDeltaParameter(default=datetime.timedelta(0))
    max_reschedules = luigi.IntParameter(default=1, config_path={"section": "core", "name": "worker-max-reschedules"})
    timeout = luigi.IntParameter(default=0, config_path={"section": "core", "name": "worker-timeout"})
    task_limit = luigi.OptionalIntParameter(default=None, config_path={"section": "core", "name": "worker-task-limit"})
    retry_external_tasks = luigi.BoolParameter(
        default=False, config_path={"section": "core", "name": "retry-external-tasks"}
    )
    send_failure_email = luigi.BoolParameter(default=True)
    no_install_shutdown_handler = luigi.BoolParameter(default=False)
    check_unfulfilled_deps = luigi.BoolParameter(default=True)
    check_complete_on_run = luigi.BoolParameter(default=False)
    force_multiprocessing = luigi.BoolParameter(default=False)
    task_process_context = luigi.OptionalStrParameter(default=None)
    cache_task_completion = luigi.BoolParameter(default=False)
    task_completion_check_at_run = ExplicitBoolParameter(default=True)


def _luigi_worker_keys() -> list[str]:
    return [name for name, _ in luigi.worker.worker.get_params()]


def luigi_worker_settings(config: gokart_worker | None = None) -> dict[str, Any]:
    """The ``[gokart_worker]`` values that luigi's worker also has, as keyword arguments for ``luigi.worker.Worker``.

    Args:
        config: the settings (default: read ``[gokart_worker]`` now).

    Returns:
        ``{key: value}`` for every key of luigi's ``[worker]`` (all but ``task_completion_check_at_run``).
    """
    settings = config if config is not None else gokart_worker()
    return {key: getattr(settings, key) for key in _luigi_worker_keys()}


class Worker(luigi.worker.Worker):  # type: ignore[misc]  # luigi is untyped
    """gokart's ``gokart.worker.Worker``: luigi's worker configured from ``[gokart_worker]``.

    Args:
        scheduler: luigi scheduler (default: a new local ``luigi.scheduler.Scheduler``).
        worker_id: overrides ``[gokart_worker] id``.
        worker_processes: how many tasks run at once.
        assistant: luigi's assistant mode.
        config: the settings (default: read ``[gokart_worker]`` now).
    """

    def __init__(
        self,
        scheduler: Any = None,
        worker_id: str | None = None,
        worker_processes: int = 1,
        assistant: bool = False,
        config: gokart_worker | None = None,
    ) -> None:
        super().__init__(
            scheduler=scheduler,
            worker_id=worker_id,
            worker_processes=worker_processes,
            assistant=assistant,
            **luigi_worker_settings(config),
        )


def check_worker_section(parser: Any = None) -> list[str]:
    """Warn (``IgnoredSettingWarning``) for each ``[gokart_worker]`` key kart's executor does not honour.

    Called by every kart build. A key is honoured when it is one of ``check_unfulfilled_deps``,
    ``check_complete_on_run`` or ``task_completion_check_at_run`` set to ``true`` (what kart always
    does); anything else set in the section, and any ``[gokart.worker]`` section, is reported.

    Args:
        parser: luigi's config parser (default: ``luigi.configuration.get_config()``).

    Returns:
        The ignored keys, in the order the section lists them (``gokart.worker`` for the misspelt section).
    """
    import luigi.configuration

    config = parser if parser is not None else luigi.configuration.get_config()
    ignored: list[str] = []
    if config.has_section(_MISSPELLED_SECTION):
        ignored.append(_MISSPELLED_SECTION)
        warnings.warn(
            f"[{_MISSPELLED_SECTION}] is not read by gokart or kart: the worker section is [{SECTION}]. Rename the section.",
            IgnoredSettingWarning,
            stacklevel=2,
        )
    if not config.has_section(SECTION):
        return ignored
    for key, raw in config.items(SECTION):
        reason = _why_ignored(key, raw)
        if reason is not None:
            ignored.append(key)
            warnings.warn(f"[{SECTION}] {key} = {raw} is ignored: {reason}", IgnoredSettingWarning, stacklevel=2)
    return ignored


def _why_ignored(key: str, raw: str) -> str | None:
    """None when kart honours ``key = raw`` under its own executor, else why not (for the warning)."""
    if key in _ALWAYS_UNDER_KART:
        if _is_true(raw) == _ALWAYS_UNDER_KART[key]:
            return None
        return f"{_WHY_ALWAYS[key]}, whatever this says."
    if key in dict(gokart_worker.get_params()):
        return (
            "kart's executor has no luigi worker to configure (kart_core.build, kart_core.run, `kart build`). "
            "It is honoured under luigi: luigi.build(..., worker_scheduler_factory=kart_core.build.WorkerSchedulerFactory())."
        )
    return "gokart has no such [gokart_worker] key either (a typo?)."


def _is_true(raw: str) -> bool:
    return str(raw).strip().lower() in ("true", "1", "yes", "on")


class WorkerSchedulerFactory:
    """What ``luigi.build(..., worker_scheduler_factory=...)`` needs to run kart tasks under luigi.

    gokart 1.12.2's class: a local scheduler that prunes finished work and keeps no history, luigi's
    remote scheduler, and ``kart_core.worker.Worker`` (luigi's worker configured from ``[gokart_worker]``).
    kart's own ``build()`` does not use it: it runs on kart's executor.
    """

    def create_local_scheduler(self) -> scheduler.Scheduler:
        """A luigi scheduler in this process."""
        return scheduler.Scheduler(prune_on_get_work=True, record_task_history=False)

    def create_remote_scheduler(self, url: str) -> rpc.RemoteScheduler:
        """A client of the luigid scheduler at ``url``."""
        return rpc.RemoteScheduler(url)

    def create_worker(self, scheduler: scheduler.Scheduler, worker_processes: int, assistant: bool = False) -> Worker:
        """A worker running ``worker_processes`` tasks at once."""
        return Worker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant)


def refuse_worker_timeouts(tasks: list[Any]) -> None:
    """Refuse to build when a task to run sets luigi's ``worker_timeout`` (seconds), which kart's executor cannot honour.

    luigi's worker (gokart's too) runs such a task in a process of its own and terminates it after that many
    seconds, failing it. kart's executor has no way to stop a task's ``run()`` part way (a thread cannot be
    stopped, and a worker process runs many tasks), so rather than let the task run past its limit, nothing runs.

    Args:
        tasks: the tasks the build would run.

    Raises:
        UnsupportedFeatureError: naming each such task, its timeout, and what to do instead.
    """
    timed = [(task, seconds) for task in tasks if (seconds := getattr(task, "worker_timeout", None))]
    if not timed:
        return
    named = ", ".join(f"{task_label(task)} (worker_timeout = {seconds})" for task, seconds in timed)
    raise UnsupportedFeatureError(
        f"{named}: kart's executor cannot stop a task after its worker_timeout, so nothing was run. Build under "
        "luigi's worker instead, which honours it (luigi.build([task], worker_scheduler_factory="
        "kart_core.build.WorkerSchedulerFactory()), or gokart.run without --local-scheduler against a luigid), or "
        "remove worker_timeout (set it to None) and bound the run's time inside run()."
    )
