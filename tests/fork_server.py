"""Run reference and driver processes forked from a server that imported their heavy libraries once.

gokart 1.12.2 is test-only and always runs in a process of its own (it registers task classes in luigi's
one registry). A fresh interpreter spent ~2.2 s of CPU importing it (luigi ~1.6 s, pandas, polars, redis)
before the script's own work, and a session starts ~40 such processes; kart's driver processes spent ~1.7 s
on luigi and pandas, and each ``kedro`` command of the Kedro tests (tests/kedro/kedro_project.py) ~2.5 s on
Kedro. Here each run is still a process of its own, forked from a server of the test process (one per
preloaded set, started at its first run, ended with the test process) that imported those libraries before
any fork: a run costs the fork and its own work. kart_core itself is never preloaded: each
run imports the tree under test through its PYTHONPATH.

What a run gets as a fresh ``python`` would: its own process, working directory, whole environment
(``os.environ``), ``sys.argv``, ``sys.path`` (the script's folder; for ``-m`` the working directory; for ``-c`` "";
then PYTHONPATH's entries; then the interpreter's), a new ``__main__`` module, luigi's config read afresh
(LUIGI_CONFIG_PATH added as luigi adds it at import), stdout/stderr of its own, threads joined and atexit
handlers run at its end, exit code 1 and the traceback on stderr for an uncaught exception. What Python and
the preloaded libraries read only at start (hash seed, PYTHON* variables, thread-pool sizes) is the
server's: a run whose environment differs there from the server's gets a real ``python`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_ANSWER = "FORK-SERVER-ANSWER "
# What a server imports before any fork. gokart brings luigi, pandas, numpy, polars, dill and redis: gokart's
# runs import nothing more. kart's runs import kart_core themselves (the tree under test, never the server's).
GOKART = ("gokart",)
KART = ("luigi", "pandas")
# kart's runs on S3 (moto's server) also import s3fs, which brings aiobotocore, botocore and aiohttp (~0.6 s of CPU).
KART_S3 = (*KART, "s3fs")
# Variables read at interpreter or library start-up, not per run: a run whose values differ from the
# server's is a real subprocess. PYTHONPATH and PYTHONDONTWRITEBYTECODE are applied per run.
_AT_START = ("PYTHON", "LUIGI_CONFIG_PARSER", "POLARS_", "OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_")
_PER_RUN = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")


def _at_start(env: dict[str, str]) -> dict[str, str]:
    """The start-up variables of ``env`` (see ``_AT_START``)."""
    return {key: value for key, value in env.items() if key.startswith(_AT_START) and key not in _PER_RUN}


def _child(request: dict[str, Any], base_path: list[str], config_paths: dict[Any, list[str]]) -> None:
    """In the forked process: become the run ``request`` describes, run it, exit with its code (never returns)."""
    code = 1
    try:
        import types

        import luigi.configuration.core

        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),  # not the server's request pipe
            (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            target = os.open(path, flags)
            os.dup2(target, fd)
            os.close(target)
        # luigi read its config (./luigi.cfg of the server's folder) at `import luigi`: read it afresh here.
        for parser, paths in config_paths.items():
            parser._instance = None
            parser._config_paths = list(paths)
        if "LUIGI_CONFIG_PATH" in os.environ:
            luigi.configuration.core.add_config_path(os.environ["LUIGI_CONFIG_PATH"])
        args = request["args"]
        pythonpath = [
            os.path.abspath(entry) for entry in request["env"].get("PYTHONPATH", "").split(os.pathsep) if entry
        ]
        main = types.ModuleType("__main__")
        import builtins

        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        if args[0] == "-c":
            sys.path[:] = ["", *pythonpath, *base_path]
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), main.__dict__)
        elif args[0] == "-m":
            import runpy

            sys.path[:] = [os.getcwd(), *pythonpath, *base_path]
            sys.argv = ["-m", *args[2:]]
            runpy._run_module_as_main(args[1], alter_argv=True)  # type: ignore[attr-defined]  # what `python -m` runs
        else:
            import importlib.machinery

            script = os.path.abspath(args[0])
            sys.path[:] = [os.path.dirname(os.path.realpath(script)), *pythonpath, *base_path]
            sys.argv = list(args)
            main.__file__ = script
            main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
            main.__spec__ = None
            with open(script, "rb") as source:
                code_object = compile(source.read(), script, "exec")
            exec(code_object, main.__dict__)
        code = 0
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            code = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        # As the interpreter ends: non-daemon threads joined, then atexit handlers, then the streams flushed.
        try:
            threading._shutdown()  # type: ignore[attr-defined]
            import atexit

            atexit._run_exitfuncs()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _serve(preload: list[str]) -> None:
    """The fork server: per stdin line ``{"id", "cwd", "args", "env", "out", "err"}``, fork a run (``_child``);
    answer ``_ANSWER {"id", "pid"}`` once it started and ``_ANSWER {"id", "code"}`` once it ended, on stdout.
    Runs overlap: the server reads requests and reaps ended runs in one thread (no thread to fork beside)."""
    import importlib
    import selectors

    import luigi.configuration.core

    base_path = sys.path[1:]  # without this file's folder (tests/)
    for name in preload:
        importlib.import_module(name)
    parsers: list[Any] = list(luigi.configuration.core.PARSERS.values())
    config_paths = {parser: list(parser._config_paths) for parser in parsers}
    running: dict[int, Any] = {}
    pending = b""
    stdin = sys.stdin.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(stdin, selectors.EVENT_READ)
        while True:
            if selector.select(0.05):
                chunk = os.read(stdin, 1 << 16)
                if not chunk:  # the test process ends: wait for the runs left (it kills this server after 10 s)
                    while running:
                        running.pop(os.wait()[0], None)
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    sys.stdout.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(request, base_path, config_paths)
                    running[pid] = request["id"]
                    print(_ANSWER + json.dumps({"id": request["id"], "pid": pid}), flush=True)
            while running:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                answer = {"id": running.pop(pid), "code": os.waitstatus_to_exitcode(status)}
                print(_ANSWER + json.dumps(answer), flush=True)


class _Server:
    """A fork server of the test process (one per preloaded set, started at its first run, ended with the
    process) and the thread that reads its answers."""

    lock = threading.Lock()
    started: dict[tuple[str, ...], _Server] = {}

    def __init__(self, preload: tuple[str, ...]) -> None:
        """Start a server that imports ``preload`` before its first fork."""
        import atexit
        import tempfile

        from services import watch  # here: the server (this file run as a script) has no tests/ folder to import

        self.environment = _server_environment()
        self.answers: dict[int, dict[str, int]] = {}
        self.arrived = threading.Condition()
        self.next_id = 0
        errors = tempfile.NamedTemporaryFile(prefix="fork-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, __file__, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=tempfile.gettempdir(),  # luigi reads ./luigi.cfg at import; each run reads its own again
            env=self.environment,
            start_new_session=True,  # a group of its own, which the watchdog ends with its runs
        )
        errors.close()
        self.log = Path(errors.name)
        watchdog = watch(self.process)
        atexit.register(watchdog.kill)
        atexit.register(self._stop)
        atexit.register(os.unlink, errors.name)
        threading.Thread(target=self._read, daemon=True).start()

    def _stop(self) -> None:
        """End the server: its stdin closed, it waits for its runs and exits (killed after 10 s); reaped here, so
        its CPU time and its runs' count in this process's children's (``/usr/bin/time``, ``getrusage``)."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()

    @classmethod
    def get(cls, preload: tuple[str, ...]) -> _Server:
        """The running server for ``preload`` (started now if there is none)."""
        with cls.lock:
            server = cls.started.get(preload)
            if server is None or server.process.poll() is not None:
                server = cls.started[preload] = cls(preload)
            return server

    def _read(self) -> None:
        """Put each answer of the server into ``answers`` (by request id) until it ends."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(_ANSWER):
                answer = json.loads(line.removeprefix(_ANSWER))
                with self.arrived:
                    self.answers.setdefault(answer["id"], {}).update(answer)
                    self.arrived.notify_all()
        with self.arrived:
            self.arrived.notify_all()

    def send(self, request: dict[str, Any]) -> int:
        """Send ``request`` under a new id; return the id."""
        assert self.process.stdin is not None
        with self.lock:
            self.next_id += 1
            request_id = self.next_id
            self.process.stdin.write(json.dumps({**request, "id": request_id}) + "\n")
            self.process.stdin.flush()
        return request_id

    def wait(self, request_id: int, key: str, timeout: float | None) -> int | None:
        """The answer's ``key`` ("pid" or "code") for ``request_id``; None when ``timeout`` seconds passed first.

        Raises:
            AssertionError: the server ended before it answered.
        """
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self.arrived:
            while key not in self.answers.get(request_id, {}):
                if self.process.poll() is not None:
                    log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
                    raise AssertionError(f"the fork server ended ({self.process.returncode}); its stderr:\n{log}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self.arrived.wait(0.5 if left is None else min(left, 0.5))
            value = self.answers[request_id][key]
            if key == "code":
                del self.answers[request_id]
            return value


class Run:
    """One started run (``start``): ``wait`` for its result, ``kill`` it."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], preload: tuple[str, ...]) -> None:
        """Start ``python <args>`` in ``cwd`` with ``env`` (see ``start``)."""
        import tempfile

        self.args = [sys.executable, *args]
        self._process: subprocess.Popen[str] | None = None
        self._ended = False  # its exit code came: its pid may be another process's now
        self._code: int | None = None  # that exit code (None: killed by ``kill``, or still running)
        self.returncode: int | None = None  # set by ``communicate``, as ``subprocess.Popen.returncode``
        if _at_start(env) != _at_start(_server_environment()):
            self._process = subprocess.Popen(
                self.args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            return
        self._folder = tempfile.TemporaryDirectory(prefix="gokart-run-")
        self._out, self._err = os.path.join(self._folder.name, "out"), os.path.join(self._folder.name, "err")
        request = {"cwd": str(cwd), "args": args, "env": env, "out": self._out, "err": self._err}
        self._server = _Server.get(preload)
        self._id = self._server.send(request)
        pid = self._server.wait(self._id, "pid", None)
        assert pid is not None
        self.pid = pid

    def poll(self) -> int | None:
        """Its exit code if it ended, else None (as ``subprocess.Popen.poll``); ``wait`` still gives its output."""
        if self._process is not None:
            return self._process.poll()
        if self._ended:
            return self._code
        with self._server.arrived:
            return self._server.answers.get(self._id, {}).get("code")

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Its exit code, stdout and stderr once it ended.

        Raises:
            subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (it is killed).
        """
        if self._process is not None:
            try:
                out, err = self._process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
            return subprocess.CompletedProcess(self.args, self._process.returncode, out, err)
        code = self._server.wait(self._id, "code", timeout)
        if code is None:
            self.kill()
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self._ended, self._code = True, code
        try:
            out, err = Path(self._out).read_text(), Path(self._err).read_text()
        finally:
            self._folder.cleanup()
        return subprocess.CompletedProcess(self.args, code, out, err)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Its stdout and stderr once it ended, as ``subprocess.Popen.communicate`` (``returncode`` then set).

        Raises:
            subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (it is killed).
        """
        done = self.wait(timeout)
        self.returncode = done.returncode
        return done.stdout, done.stderr

    def kill(self) -> None:
        """End it (SIGKILL) if it still runs, and wait for its end."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            return
        if self._ended:
            return
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._code = self._server.wait(self._id, "code", 30)
        self._ended = True
        self._folder.cleanup()


def _server_environment() -> dict[str, str]:
    """The environment a server started now gets (the test process's, without PYTHONPATH, COLUMNS and LINES).

    rich (Kedro's logging, set up when the server imports Kedro) fixes a console's size when COLUMNS or LINES
    is set as it is made; without them it reads ``os.environ`` each time, which a run has replaced by its own.
    """
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "COLUMNS", "LINES")}


def start(args: list[str], cwd: Path, env: dict[str, str], preload: tuple[str, ...] = GOKART) -> Run:
    """Start ``python <args>`` (``[script, *argv]``, ``["-m", module, *argv]`` or ``["-c", code, *argv]``) in ``cwd`` with ``env`` as its
    whole environment: a fork of the server that imported ``preload`` (GOKART, KART, or any module names, as
    kedro_project.PRELOADED), or a real subprocess
    when ``env``'s start-up variables (``_AT_START``: PYTHONHASHSEED, ...) differ from the server's."""
    return Run(args, cwd, env, preload)


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None, preload: tuple[str, ...] = GOKART
) -> subprocess.CompletedProcess[str]:
    """``start(args, cwd, env, preload).wait(timeout)``: as ``subprocess.run([sys.executable, *args], ...,
    text=True, capture_output=True)``.

    Raises:
        subprocess.TimeoutExpired: the run took longer than ``timeout`` seconds (it is killed).
    """
    return start(args, cwd, env, preload).wait(timeout)


if __name__ == "__main__":
    _serve(sys.argv[1:])
