"""Work that a task's run() schedules on an asyncio event loop, run after the run is over, cannot write its output.

asyncio copies the scheduling context into every callback (``loop.call_soon``, ``call_soon_threadsafe``,
``call_later``, ``create_task``), so a callback holds the run's transaction (kart_core.transaction) after the run
committed. Its dump was staged into that ended run and silently lost (its staged file left behind); it now raises
``RunWriteError`` naming the task, and the committed output stays. A callback that a *thread* run() started
schedules on the main thread's loop carries that thread's own (empty) context: docs/faq.md says what kart cannot
tell there.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import RunWriteError

_SEEN: list[str] = []
_LOOP: list[asyncio.AbstractEventLoop] = []  # the loop of the thread that waits in build()


def _dump_late(task: kart_core.TaskOnKart[Any]) -> None:
    try:
        task.dump("late value")
        _SEEN.append("written")
    except RunWriteError as exc:
        _SEEN.append(f"RunWriteError: {exc}")


class Scheduler(kart_core.TaskOnKart[str]):
    """run() leaves a dump of its own output to a callback on the running event loop (how), then ends."""

    how = luigi.Parameter()
    fail = luigi.BoolParameter(default=False)

    def run(self) -> None:
        (loop,) = _LOOP
        if self.how == "call_soon":
            loop.call_soon(_dump_late, self)
        else:  # from a worker thread of the build, to the loop of the thread that waits in build()
            loop.call_soon_threadsafe(_dump_late, self)
        self.dump("run value")
        if self.fail:
            raise ValueError("the run fails after scheduling")


def _build_in_loop(task: Scheduler, **kwargs: Any) -> Any:
    async def main() -> Any:
        _LOOP[:] = [asyncio.get_running_loop()]
        try:
            return kart_core.build(task, **kwargs)
        except kart_core.GokartBuildError as exc:
            return type(exc).__name__
        finally:
            await asyncio.sleep(0.05)  # the callback runs now, after the build returned

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("how", "kwargs"), [("call_soon", {}), ("call_soon_threadsafe", {"workers": 2, "executor": "thread"})]
)
@pytest.mark.parametrize("fail", [False, True])
def test_a_callback_run_scheduled_cannot_dump_after_the_run(
    workspace: str, how: str, kwargs: dict[str, Any], fail: bool
) -> None:
    _SEEN.clear()
    task = Scheduler(how=how, fail=fail, workspace_directory=workspace)
    assert _build_in_loop(task, **kwargs) == ("GokartBuildError" if fail else "run value")
    (seen,) = _SEEN
    assert seen.startswith(f"RunWriteError: {task.kart_label()}: its output")  # was: 'written' (and lost)
    assert "was written after the task's run was over (committed, or failed and undone)" in seen
    assert "an asyncio callback or task it scheduled (loop.call_soon" in seen
    luigi.task_register.Register.clear_instance_cache()
    again = Scheduler(how=how, fail=fail, workspace_directory=workspace)
    assert again.complete() is (not fail)
    if not fail:
        assert kart_core.build(again) == "run value"
    folder = os.path.dirname(task.output().path())
    assert [name for name in os.listdir(folder) if name.endswith(".kart-tmp")] == []  # was: the lost dump's file
