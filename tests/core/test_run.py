"""kart_core.run (gokart.run): the command line, kart's executor, luigi's return codes, the special modes."""

from __future__ import annotations

import os
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fork_server
import luigi
import pytest
from fork_server import GOKART, KART
from luigi.parameter import MissingParameterException
from luigi.task_register import TaskClassNotFoundException

import kart_core as gokart
from kart_core.run import RetCodes, build_from_command_line, retcodes


class RnSource(gokart.TaskOnKart[list]):
    x = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump([self.x, os.getpid()])


class RnFinal(gokart.TaskOnKart[list]):
    def requires(self) -> list[RnSource]:
        return [RnSource(x=i) for i in range(4)]

    def run(self) -> None:
        self.dump([item[0] for item in self.load()])


class RnBroken(gokart.TaskOnKart[int]):
    def requires(self) -> RnSource:
        return RnSource()

    def run(self) -> None:
        raise RuntimeError("broken on purpose")


class RnMissing(luigi.ExternalTask):
    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget("never-there.csv")


class RnNeedsMissing(gokart.TaskOnKart[int]):
    def requires(self) -> RnMissing:
        return RnMissing()

    def run(self) -> None:
        self.dump(1)


class RnBadRequires(gokart.TaskOnKart[int]):
    def requires(self) -> Any:
        raise ValueError("bad requires on purpose")


class RnBadComplete(gokart.TaskOnKart[int]):
    def complete(self) -> bool:
        raise OSError("cannot reach the store")


class RnExits(gokart.TaskOnKart[int]):
    def run(self) -> None:
        sys.exit(0)  # even a "successful" exit: run() wrote nothing


class RnInterrupted(gokart.TaskOnKart[int]):
    def run(self) -> None:
        raise KeyboardInterrupt


class RnNeedsParam(gokart.TaskOnKart[int]):
    value = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.value)


def _exit_code(args: list[str], set_retcode: bool = True) -> int | str | None:
    with pytest.raises(SystemExit) as exit_info:
        gokart.run(args, set_retcode=set_retcode)
    return exit_info.value.code


def test_success_builds_and_exits_0() -> None:
    assert _exit_code(["RnFinal", "--local-scheduler"]) == 0
    assert RnFinal().output().load() == [0, 1, 2, 3]
    assert RnFinal().get_processing_time() != "unknown"  # run logs written by kart's runner


def test_parameters_and_task_flags_from_the_command_line() -> None:
    assert _exit_code(["RnNeedsParam", "--local-scheduler", "--value", "7", "--RnSource-x", "3"]) == 0
    assert RnNeedsParam(value=7).output().load() == 7


@pytest.mark.parametrize(
    ("task", "code"),
    [
        ("RnBroken", 40),
        ("RnNeedsMissing", 20),
        ("RnBadRequires", 50),
        ("RnBadComplete", 50),
        ("RnExits", 40),
    ],
)
def test_gokart_return_codes(task: str, code: int) -> None:
    assert _exit_code([task, "--local-scheduler"]) == code


def test_a_task_that_cannot_be_created_raises_as_in_gokart() -> None:
    # gokart.run() creates the task before luigi runs it, so these propagate (exit status 1).
    with pytest.raises(MissingParameterException, match="requires the 'value' parameter"):
        gokart.run(["RnNeedsParam", "--local-scheduler"])
    with pytest.raises(ValueError, match="invalid literal for int"):
        gokart.run(["RnNeedsParam", "--local-scheduler", "--value", "x"])
    # luigi's rule for its own entry point (kept for callers of build_from_command_line).
    assert build_from_command_line(["RnNeedsParam", "--local-scheduler"], RetCodes(unhandled_exception=4)) == 4


def test_a_failure_names_the_task(caplog: pytest.LogCaptureFixture) -> None:
    _exit_code(["RnBroken", "--local-scheduler"])
    assert f"{RnBroken().kart_label()} failed: RuntimeError: broken on purpose" in caplog.text


def test_a_walk_failure_names_the_task(caplog: pytest.LogCaptureFixture) -> None:
    _exit_code(["RnBadComplete", "--local-scheduler"])
    assert (
        f"Could not schedule {RnBadComplete().kart_label()}: its complete(), output() or requires() raised"
        in caplog.text
    )
    _exit_code(["RnBadRequires", "--local-scheduler"])
    assert "Could not schedule RnBadRequires: " in caplog.text and "bad requires on purpose" in caplog.text


def test_a_keyboard_interrupt_is_reported_then_propagates(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KeyboardInterrupt, match=r"kart build interrupted in RnInterrupted\["):
        gokart.run(["RnInterrupted", "--local-scheduler"])


def test_without_set_retcode_luigi_config_decides(tmp_path: Path) -> None:
    assert _exit_code(["RnBroken", "--local-scheduler"], set_retcode=False) == 0  # luigi's defaults are 0
    (tmp_path / "luigi.cfg").write_text("[retcode]\ntask_failed = 3\n")
    gokart.add_config(str(tmp_path / "luigi.cfg"))
    assert retcodes(["RnBroken"], set_retcode=False) == RetCodes(task_failed=3)
    assert _exit_code(["RnBroken", "--local-scheduler"], set_retcode=False) == 3


def test_unknown_task_lists_the_candidates() -> None:
    with pytest.raises(TaskClassNotFoundException, match=r"No task RnNoSuchTask\. Candidates are: .*RnBroken"):
        gokart.run(["RnNoSuchTask", "--local-scheduler"])


def test_workers_build_in_parallel_processes() -> None:
    assert build_from_command_line(["RnFinal", "--local-scheduler", "--workers", "2"], RetCodes()) == 0
    pids = {RnSource(x=i).output().load()[1] for i in range(4)}
    assert os.getpid() not in pids


def test_tree_info_mode_writes_the_tree_and_builds_nothing() -> None:
    code = _exit_code(["RnFinal", "--local-scheduler", "--tree-info-mode", "all", "--tree-info-output-path", "t.txt"])
    assert code == 0
    text = Path("resources/t.txt").read_text()
    assert text.splitlines()[1].startswith(f"└─-(PENDING) RnFinal[{RnFinal().make_unique_id()}](parameter={{}}")
    assert not RnFinal().complete()
    with pytest.raises(ValueError, match='--tree-info-mode must be "simple" or "all"'):
        gokart.run(["RnFinal", "--local-scheduler", "--tree-info-mode", "fancy"])


def test_delete_unnecessary_output_files_mode() -> None:
    assert _exit_code(["RnSource", "--local-scheduler", "--x", "9"]) == 0
    assert _exit_code(["RnSource", "--local-scheduler", "--x", "8"]) == 0
    assert _exit_code(["RnSource", "--local-scheduler", "--x", "8", "--delete-unnecessary-output-files"]) == 0
    assert RnSource(x=8).complete() and not RnSource(x=9).complete()


_SCRIPT = textwrap.dedent(
    """
    import sys
    import luigi
    if sys.argv.pop(1) == "kart":
        import kart_core as gokart
    else:
        import gokart

    class Source(gokart.TaskOnKart):
        x = luigi.IntParameter(default=1)
        def run(self):
            self.dump([self.x])

    class Final(gokart.TaskOnKart):
        def requires(self):
            return Source(x=2)
        def run(self):
            self.dump(self.load() + [3])

    class Broken(gokart.TaskOnKart):
        def requires(self):
            return Source()
        def run(self):
            raise RuntimeError("boom")

    class NeedsN(gokart.TaskOnKart):
        n = luigi.IntParameter()
        def run(self):
            self.dump(self.n)

    class Missing(luigi.ExternalTask):
        def output(self):
            return luigi.LocalTarget("never-there.txt")

    class NeedsMissing(gokart.TaskOnKart):
        def requires(self):
            return Missing()
        def run(self):
            self.dump(1)

    if __name__ == "__main__":
        gokart.run()
    """
)


def _cli(impl: str, directory: Path, *args: str) -> int:
    directory.mkdir(exist_ok=True)
    (directory / "main.py").write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
    done = fork_server.run(["main.py", impl, *args], directory, env, 120, GOKART if impl == "gokart" else KART)
    return done.returncode


def _both_cli(*args: str, directory: Path) -> tuple[int, int]:
    """``_cli`` with kart (in ``directory/kart``) and with gokart (``directory/gokart``): each its own process,
    the two at the same time (one after the other they took twice the wall time beside an idle core)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        ours, theirs = pool.map(lambda impl: _cli(impl, directory / impl, *args), ("kart", "gokart"))
    return ours, theirs


def _files(root: Path) -> list[str]:
    return [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("task", ["Final", "Broken", "NeedsMissing"])
def test_same_exit_codes_and_files_as_gokart(tmp_path: Path, task: str) -> None:
    ours, theirs = _both_cli(task, "--local-scheduler", directory=tmp_path)
    assert ours == theirs
    outputs = [sorted(_files(tmp_path / side / "resources")) for side in ("kart", "gokart")]
    # kart adds only its integrity record: one manifest per committed task (one per task_log).
    manifests = [name for name in outputs[0] if name.startswith("log/manifest/")]
    assert [name for name in outputs[0] if name not in manifests] == outputs[1]
    committed = [name for name in outputs[0] if name.startswith("log/task_log/")]
    assert [m.split("/")[-1].rsplit(".", 1)[0] for m in manifests] == [
        c.split("/")[-1].rsplit(".", 1)[0] for c in committed
    ]


@pytest.mark.slow
@pytest.mark.parametrize("args", [["NeedsN"], ["NeedsN", "--n", "x"], ["NoSuchTask"]])
def test_same_exit_code_as_gokart_for_a_task_that_cannot_be_created(tmp_path: Path, args: list[str]) -> None:
    ours, theirs = _both_cli(*args, "--local-scheduler", directory=tmp_path)
    assert ours == theirs == 1


@pytest.mark.slow
def test_same_tree_file_as_gokart(tmp_path: Path) -> None:
    assert _both_cli("Final", "--local-scheduler", directory=tmp_path) == (0, 0)
    assert _both_cli("Final", "--local-scheduler", "--tree-info-mode", "simple", directory=tmp_path) == (0, 0)
    trees = [(tmp_path / side / "resources" / "tree.txt").read_text() for side in ("kart", "gokart")]
    assert trees[0] == trees[1] and "(COMPLETE) Final[" in trees[0]
