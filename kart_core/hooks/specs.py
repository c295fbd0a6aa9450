"""Hook specifications: what a kart plugin may implement.

Built-in behaviour is itself a plugin (run logs in ``kart_core.runlog``, the file formats in
``kart_core.file_processor.builtin``), registered exactly like a third-party one.
"""

from __future__ import annotations

from typing import Any

from kart_core.hooks.markers import hookspec


class TaskRunSpecs:
    """Hooks around the one code path that runs a task (``kart_core.runner.run_one``)."""

    @hookspec
    def kart_before_task_run(self, task: Any, seed: int, seed_methods: list[str]) -> None:
        """Called after the random seed is fixed, just before the task's ``run()`` is first called.

        Not called for a task whose ``run()`` is not called: found complete, also by ``run_one``'s
        second check after it read the task's manifest (another process's commit completed it).

        Args:
            task: the TaskOnKart about to run.
            seed: the seed given to every seed method.
            seed_methods: the seed methods that were found and called.
        """

    @hookspec
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        """Called after ``run()`` returned and its outputs were committed (or another run's commit kept).

        Paired with ``kart_before_task_run``: called only when that was.

        Args:
            task: the TaskOnKart that ran.
            processing_time: seconds spent in ``run()``.
        """

    @hookspec
    def kart_commit_task_run(self, task: Any, processing_time: float) -> None:
        """Called after ``run()`` returned and its outputs check passed, just before they are committed.

        Inside the task's transaction: what a plugin dumps here (kart's run logs ``processing_time``
        and ``task_log``) is staged and committed with the outputs, or discarded with the run's outputs
        when another process committed the same task first (its outputs and logs are kept). Called
        once per commit attempt (a retried run after a repair calls it again).

        Args:
            task: the TaskOnKart whose outputs are about to be committed.
            processing_time: seconds since the run started (with any retries).
        """

    @hookspec
    def kart_on_task_error(self, task: Any, exception: BaseException) -> None:
        """Called when ``run()`` raised (or the rebuild of a damaged upstream it needed), after ``kart_before_task_run``.

        Args:
            task: the TaskOnKart that failed.
            exception: what ``run()`` raised; it is re-raised after the hooks.
        """

    @hookspec
    def kart_after_build(self, tasks: list[Any], result: Any) -> None:
        """Called once at the end of ``kart_core.build`` with its summary.

        Args:
            tasks: the root tasks of the build.
            result: a ``kart_core.outcome.BuildResult`` (also ``kart_core.BuildResult``).
        """


class FileProcessorSpecs:
    """Hooks that add file formats."""

    @hookspec
    def kart_file_processors(self) -> list[type]:
        """Return FileProcessor classes; each declares the extensions it handles in ``extensions``.

        A ``kart_core.file_processor.DeferredProcessor`` (module, class name, extensions) may stand
        for a class: its module is imported when a file with one of its extensions is first used.
        """
        raise NotImplementedError
