"""Run the example Kedro project (examples/kedro) with real ``kedro`` processes, in a copy under tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kedro"
KEDRO = str(Path(sys.executable).parent / "kedro")
NODE_STATUS = re.compile(r"kart: node '([^']+)' (ran|cached)")
POSITIVE_VALUES_SUM = 3 + 4 + 10 + 2 + 7  # data/01_raw/numbers.csv, values >= min_value (0)


def copy_project(destination: Path) -> Path:
    """A fresh copy of the example project at ``destination``, without any data it produced."""
    ignore = shutil.ignore_patterns("__pycache__", "kart", "08_reporting", "resources", "journal.txt")
    return Path(shutil.copytree(EXAMPLE, destination, ignore=ignore))


def copy_ran_project(template: Path, destination: Path) -> Path:
    """A copy of ``template`` (a project copy after a run) at ``destination``, outputs, caches and file times kept.

    The state a run leaves holds no absolute path (kart's workspace is ``data/kart``), so the copy is the
    state that run would have left at ``destination``; tests start from it instead of each paying a run.
    """
    return Path(shutil.copytree(template, destination, symlinks=True))


def run_kedro(project: Path, *args: str, pythonpath: str | None = None, check: bool = True) -> str:
    """Run ``kedro`` in the project; return its log output (stderr and stdout).

    Rich logs are wide enough (COLUMNS) that one log record stays on one line. Each run is a process of its
    own, forked from a server (``_Forks``) that has imported Kedro's CLI and pandas: a ``kedro`` started
    afresh spent most of its ~2.5 s of CPU on imports. The run's environment is the one a subprocess would
    get (PYTHONPATH's entries go on sys.path); the project, kart and the runner are imported in it. What
    Python reads only at its start is the server's: the runs of one test process share its hash seed (a
    random one per session), so an environment that sets PYTHONHASHSEED gets a real ``kedro`` subprocess.
    """
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "KART_KEDRO_DEMO_JOURNAL": str(project / "journal.txt"),
        "COLUMNS": "400",
        "PYTHONDONTWRITEBYTECODE": "1",  # edits within one second must not meet a stale .pyc
    }
    env.pop("LUIGI_CONFIG_PATH", None)
    env.pop("KART_WORKSPACE", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    if "PYTHONHASHSEED" in env:
        done = subprocess.run([KEDRO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        code, stdout, stderr = _Forks.run(project, list(args), env)
    if check:
        assert code == 0, stdout + stderr
    return stderr + stdout


_ANSWER = "KEDRO-FORK-ANSWER "
# Imported once in the server, before any fork: Kedro's CLI, session and runners, and pandas (the example
# project's nodes use it). Never kart, luigi or a project: each run imports those itself, under its own
# environment (luigi reads its config once per process).
_PRELOADED = ("kedro.framework.cli.cli", "kedro.framework.session", "kedro.runner", "pandas")


def _serve() -> None:
    """The fork server: per stdin line ``{"cwd", "args", "env", "out", "err"}``, fork a process that runs
    ``kedro <args>`` in ``cwd`` with ``env`` as its whole environment, its stdout and stderr into the files
    ``out`` and ``err``; answer its exit code on stdout, after ``_ANSWER``."""
    import importlib
    import json

    sys.path[0] = os.path.dirname(KEDRO)  # as for the ``kedro`` script, not this file's folder (tests/kedro)
    for name in _PRELOADED:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.chdir(request["cwd"])
                os.environ.clear()
                os.environ.update(request["env"])
                sys.path[:0] = [entry for entry in request["env"].get("PYTHONPATH", "").split(os.pathsep) if entry]
                for fd, path, flags in (
                    (0, os.devnull, os.O_RDONLY),  # not the server's request pipe
                    (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                    (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                ):
                    target = os.open(path, flags)
                    os.dup2(target, fd)
                    os.close(target)
                sys.argv = [KEDRO, *request["args"]]
                from kedro.framework.cli import main

                try:
                    main()
                    code = 0
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(_ANSWER + json.dumps(os.waitstatus_to_exitcode(status)), flush=True)


class _Forks:
    """The test process's fork server (one per process, started at the first run, ended at exit)."""

    process: subprocess.Popen[str] | None = None

    @classmethod
    def run(cls, project: Path, args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str, str]:
        """Run ``kedro <args>`` in ``project`` with ``env``: (exit code, stdout, stderr)."""
        import json
        import selectors
        import tempfile
        import time

        if cls.process is None or cls.process.poll() is not None:
            import atexit

            from services import watch  # here: the server (this file run as a script) has no tests/ on its path

            base = {key: value for key, value in env.items() if key in ("PATH", "HOME", "COLUMNS", "DO_NOT_TRACK")}
            # Its own stderr (never a terminal: Kedro's rich logging, set up at import, decides colours by it).
            errors = tempfile.NamedTemporaryFile(prefix="kedro-fork-server-", suffix=".log", delete=False)
            cls.process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                env={**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
                start_new_session=True,  # a group of its own, which the watchdog ends with its forks
            )
            # It ended with its stdin only between runs: a test process killed during a `kedro run` left the
            # server and the forked run going. The watchdog ends both when this process dies, however it dies.
            watchdog = watch(cls.process)
            errors.close()
            atexit.register(watchdog.kill)
            atexit.register(cls.process.kill)
            atexit.register(os.unlink, errors.name)
        assert cls.process.stdin is not None and cls.process.stdout is not None
        with tempfile.TemporaryDirectory(prefix="kedro-run-") as folder:
            out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
            request = {"cwd": str(project), "args": args, "env": env, "out": out, "err": err}
            cls.process.stdin.write(json.dumps(request) + "\n")
            cls.process.stdin.flush()
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as selector:
                selector.register(cls.process.stdout, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    assert left > 0 and selector.select(left), f"kedro {' '.join(args)}: no exit in {timeout} s"
                    line = cls.process.stdout.readline()
                    assert line, f"the kedro fork server ended ({cls.process.poll()})"
                    if line.startswith(_ANSWER):
                        break
            code = int(json.loads(line.removeprefix(_ANSWER)))
            return code, Path(out).read_text(), Path(err).read_text()


if __name__ == "__main__":
    _serve()


def journal(project: Path) -> list[str]:
    """Labels of the kart tasks that ran, in every process."""
    path = project / "journal.txt"
    return path.read_text().split() if path.exists() else []


def statuses(log: str) -> dict[str, str]:
    """What KartRunner said about each node."""
    return dict(NODE_STATUS.findall(log))


def report(project: Path, name: str) -> dict:
    """A JSON output of the project (the latest version of a versioned one)."""
    path = project / "data" / "08_reporting" / f"{name}.json"
    if path.is_dir():
        path = path / max(p.name for p in path.iterdir()) / f"{name}.json"
    return json.loads(path.read_text())


def versions(project: Path, name: str) -> list[str]:
    """The saved versions of a versioned output of the project."""
    path = project / "data" / "08_reporting" / f"{name}.json"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur) by ``new`` in a file of the project copy."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
