"""Locks: a file lock locally, a redis lock (key = output path) against a real redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kart_core.errors import TaskLockException
from kart_core.lock import LockParams, canonical_location, canonical_lock_key, hold_lock


def _params(service: Any | None, key: str, tmp_path: Path) -> LockParams:
    if service is None:
        return LockParams(key=key, lock_directory=str(tmp_path / "locks"))
    return LockParams(key=key, redis_host=service.host, redis_port=service.port, redis_timeout=30)


@pytest.fixture(params=["ranges", "files"])
def lock_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way kart's file locks (``hold_lock``'s, ``hold_location_locks``) are taken: bytes of one file per folder
    (64-bit Linux), or a file per key (the other platforms'; forced here by hiding ``F_OFD_SETLK``)."""
    import kart_core.lock

    if request.param == "ranges" and kart_core.lock._OFD_SETLK is None:
        pytest.skip("no open file description locks on this platform")
    if request.param == "files":
        monkeypatch.setattr(kart_core.lock, "_OFD_SETLK", None)
    return str(request.param)


@pytest.fixture(params=["file", "redis"])
def lock_service(request: pytest.FixtureRequest) -> Any | None:
    """None for the file lock, the running redis server for the redis lock."""
    return request.getfixturevalue("redis_service") if request.param == "redis" else None


def test_a_held_lock_makes_others_wait_then_give_up(lock_service: Any, tmp_path: Path) -> None:
    params = _params(lock_service, f"{tmp_path}/out/Task_abc.pkl", tmp_path)
    with hold_lock(params):
        started = time.monotonic()
        with pytest.raises(TaskLockException, match="Task_abc.pkl"), hold_lock(params, wait_seconds=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    with hold_lock(params, wait_seconds=0.3):
        pass


def test_different_outputs_do_not_block_each_other(lock_service: Any, tmp_path: Path) -> None:
    with (
        hold_lock(_params(lock_service, "ws/a.pkl", tmp_path)),
        hold_lock(_params(lock_service, "ws/b.pkl", tmp_path), wait_seconds=0.1),
    ):
        pass


def test_waiter_gets_the_lock_when_it_is_released(lock_service: Any, tmp_path: Path) -> None:
    params = _params(lock_service, "ws/shared.pkl", tmp_path)
    order: list[str] = []

    def holder() -> None:
        with hold_lock(params):
            order.append("held")
            time.sleep(0.3)
            order.append("released")

    thread = threading.Thread(target=holder)
    thread.start()
    while not order:
        time.sleep(0.01)
    with hold_lock(params, wait_seconds=5):
        order.append("second")
    thread.join()
    assert order == ["held", "released", "second"]


def test_redis_lock_key_is_the_output_path(redis_service: Any, tmp_path: Path) -> None:
    import redis

    client = redis.Redis(host=redis_service.host, port=redis_service.port)
    key = f"{tmp_path}/resources/pkg/Task_0123.pkl"
    with hold_lock(_params(redis_service, key, tmp_path)):
        assert client.exists(f"kart-lock:{key}") == 1
        assert 0 < client.ttl(f"kart-lock:{key}") <= 30
    assert client.exists(f"kart-lock:{key}") == 0


_RACE = """
import sys, time
import kart_core

class SlowOnce(kart_core.TaskOnKart):
    def run(self):
        with open("runs.log", "a") as log:
            log.write("ran\\n")
        time.sleep(1.0)
        self.dump("done")

host, port = sys.argv[1], sys.argv[2]
kwargs = {"workspace_directory": "ws"}
if host != "-":
    kwargs.update(redis_host=host, redis_port=int(port))
else:
    kwargs.update(should_lock_run=True)
print(kart_core.run_one(SlowOnce(**kwargs)).value)
"""


@pytest.mark.slow
def test_two_processes_do_the_work_once(lock_service: Any, tmp_path: Path) -> None:
    (tmp_path / "race.py").write_text(textwrap.dedent(_RACE))
    args = [lock_service.host, str(lock_service.port)] if lock_service else ["-", "-"]
    # Each process has its own TMPDIR (Slurm and PBS give one per job): the machine's lock folder must not follow it.
    tmpdirs = [tmp_path / "tmp-a", tmp_path / "tmp-b"]
    runners = []
    for tmpdir in tmpdirs:
        tmpdir.mkdir()
        env = {**os.environ, "TMPDIR": str(tmpdir)}
        env.pop("KART_LOCK_DIR", None)
        command = [sys.executable, "race.py", *args]
        runners.append(subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env))
    statuses = sorted(runner.communicate(timeout=120)[0].strip() for runner in runners)
    assert statuses == ["cached", "ran"]
    assert (tmp_path / "runs.log").read_text() == "ran\n"


def test_the_machine_lock_folders_ignore_tmpdir_and_follow_kart_lock_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from kart_core.lock import commit_lock_directory, machine_lock_directory
    from kart_core.manifest import OutputRecord

    monkeypatch.delenv("KART_LOCK_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "job-tmp"))  # what TMPDIR sets
    assert machine_lock_directory() == "/tmp/kart-locks"
    assert commit_lock_directory() == "/tmp/kart-commit-locks"
    assert LockParams(key="ws/a.pkl").lock_directory == "/tmp/kart-locks"
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "shared"))
    record = OutputRecord(workspace=str(tmp_path / "ws"), manifest_name="m", key="k", task="T[0]", unique_id="0")
    assert record.lock_params().lock_directory == canonical_lock_key(str(tmp_path / "shared" / "kart-commit-locks"))
    with hold_lock(LockParams(key="ws/a.pkl")):
        assert len(os.listdir(tmp_path / "shared" / "kart-locks")) == 1


def test_redis_lock_is_renewed_while_held_and_expires_when_its_holder_dies(redis_service: Any, tmp_path: Path) -> None:
    import redis

    client = redis.Redis(host=redis_service.host, port=redis_service.port)
    params = LockParams(
        key="ws/long.pkl", redis_host=redis_service.host, redis_port=redis_service.port, redis_timeout=3
    )
    # Renewals come every redis_timeout / 3 = 1 s and the key lives 3 s: a renewal can be 2 s late on a
    # loaded machine (a timeout of 1 s left 0.67 s, which a busy CI machine can exceed) and the key lives.
    with hold_lock(params):
        time.sleep(4)  # longer than redis_timeout: still ours
        assert client.exists(f"kart-lock:{params.key}") == 1
    # A holder that vanished without releasing (no renewals): the key expires by itself.
    dead = LockParams(key="ws/dead.pkl", redis_host=redis_service.host, redis_port=redis_service.port)
    client.set(f"kart-lock:{dead.key}", "token", px=500)
    with hold_lock(dead, wait_seconds=5):
        pass


# --- canonical keys: every spelling of one output shares one lock ------------------------------

SPELLINGS = [
    ("./resources/pkg/Task_0123.pkl", "{cwd}/resources/pkg/Task_0123.pkl"),
    ("resources//pkg/./Task_0123.pkl", "{cwd}/resources/other/../pkg/Task_0123.pkl"),
    ("file://{cwd}/resources/pkg/Task_0123.pkl", "resources/pkg/Task_0123.pkl"),
]


@pytest.mark.parametrize(("first", "second"), SPELLINGS)
def test_two_spellings_of_one_local_output_share_one_lock(
    lock_service: Any, tmp_path: Path, first: str, second: str
) -> None:
    cwd = str(Path.cwd())
    one = _params(lock_service, first.format(cwd=cwd), tmp_path)
    other = _params(lock_service, second.format(cwd=cwd), tmp_path)
    assert one.key == other.key == f"{os.path.realpath(cwd)}/resources/pkg/Task_0123.pkl"
    with hold_lock(one), pytest.raises(TaskLockException), hold_lock(other, wait_seconds=0.2):
        pass


def test_a_symlinked_workspace_shares_the_lock_of_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    one = LockParams(key=str(tmp_path / "real" / "A_1.pkl"), lock_directory=str(tmp_path / "locks"))
    other = LockParams(key=str(tmp_path / "link" / "A_1.pkl"), lock_directory=str(tmp_path / "locks"))
    assert one.key == other.key


def test_the_lock_key_follows_a_symlink_pointed_elsewhere_and_a_symlinked_output(tmp_path: Path) -> None:
    """canonical_lock_key remembers each folder's resolution: it must not outlive the folder it was read from."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    link = tmp_path / "ws"
    link.symlink_to(tmp_path / "one")
    output = str(link / "A_1.pkl")
    real = os.path.realpath(tmp_path)
    assert canonical_lock_key(output) == canonical_location(output) == f"{real}/one/A_1.pkl"  # missing file
    link.unlink()
    link.symlink_to(tmp_path / "two")
    assert canonical_lock_key(output) == f"{real}/two/A_1.pkl"  # the new folder, not the remembered one
    (tmp_path / "two" / "elsewhere.pkl").write_bytes(b"x")
    (tmp_path / "two" / "A_1.pkl").symlink_to(tmp_path / "two" / "elsewhere.pkl")
    assert canonical_lock_key(output) == f"{real}/two/elsewhere.pkl"  # an output that is a symlink: its target
    assert canonical_lock_key(str(tmp_path / "gone" / "A_1.pkl")) == f"{real}/gone/A_1.pkl"  # no folder yet


def test_the_lock_key_of_a_workspace_moved_with_a_symlink_left_at_its_old_place_is_the_new_place(
    tmp_path: Path,
) -> None:
    """A release switch (``mv ws ws-new; ln -s ws-new ws``) keeps the folder (same device and inode) but not its
    name: a key read before the move must not be reused, or this process locks another name than a fresh one."""
    (tmp_path / "ws" / "__main__").mkdir(parents=True)
    real = os.path.realpath(tmp_path)
    output = str(tmp_path / "ws" / "__main__" / "A_1.pkl")
    assert canonical_lock_key(output) == f"{real}/ws/__main__/A_1.pkl"
    (tmp_path / "ws").rename(tmp_path / "ws-new")
    (tmp_path / "ws").symlink_to(tmp_path / "ws-new")
    assert canonical_lock_key(output) == canonical_location(output) == f"{real}/ws-new/__main__/A_1.pkl"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("s3://bucket/ws/pkg/A_1.pkl", "s3://bucket/ws/pkg/A_1.pkl"),
        ("S3://bucket//ws/./pkg/A_1.pkl", "s3://bucket/ws/pkg/A_1.pkl"),
        ("s3://bucket/ws/tmp/../pkg/A_1.pkl", "s3://bucket/ws/pkg/A_1.pkl"),
        ("gs://bucket/ws/pkg/A_1.pkl", "gs://bucket/ws/pkg/A_1.pkl"),
    ],
)
def test_object_storage_urls_are_canonical(spelling: str, canonical: str) -> None:
    assert canonical_lock_key(spelling) == canonical


LOCKED_TASK = textwrap.dedent(
    """
    import os, sys, time
    import luigi
    import kart_core

    class Once(kart_core.TaskOnKart):
        def run(self):
            with open(os.environ["RUNS_LOG"], "a") as log:
                log.write("ran\\n")
            time.sleep(0.5)
            self.dump(1)

    kart_core.build(Once(workspace_directory=sys.argv[1], should_lock_run=True), progress=False)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["file", "redis"])
def test_two_processes_spelling_the_workspace_differently_run_a_locked_task_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "once.py"
    script.write_text(LOCKED_TASK)
    runs_log = tmp_path / "runs.log"
    env = {**os.environ, "RUNS_LOG": str(runs_log), "CI": "true"}
    if backend == "redis":
        service = request.getfixturevalue("redis_service")
        config = tmp_path / "luigi.cfg"
        config.write_text(f"[TaskOnKart]\nredis_host={service.host}\nredis_port={service.port}\n")
        env["LUIGI_CONFIG_PATH"] = str(config)
    spellings = ["./resources/", str(tmp_path / "resources")]
    processes = [
        subprocess.Popen([sys.executable, str(script), spelling], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
        for spelling in spellings
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    assert runs_log.read_text().split() == ["ran"]


@pytest.mark.slow
def test_two_processes_in_different_working_directories_share_the_file_lock(tmp_path: Path) -> None:
    # Each process's local_temporary_directory (./resources/tmp/) differs; the lock must not live there.
    script = tmp_path / "once.py"
    script.write_text(LOCKED_TASK)
    (tmp_path / "sub").mkdir()
    runs_log = tmp_path / "runs.log"
    env = {**os.environ, "RUNS_LOG": str(runs_log), "CI": "true"}
    starts = [(tmp_path, "./ws"), (tmp_path / "sub", "file://../ws")]
    processes = [
        subprocess.Popen([sys.executable, str(script), workspace], cwd=cwd, env=env, stderr=subprocess.PIPE)
        for cwd, workspace in starts
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    assert runs_log.read_text().split() == ["ran"]


def test_file_locks_default_to_one_folder_per_machine(tmp_path: Path) -> None:
    import tempfile

    params = LockParams(key="ws/a.pkl")
    assert params.lock_directory == os.path.realpath(os.path.join(tempfile.gettempdir(), "kart-locks"))


def test_an_unreachable_redis_is_a_named_error(tmp_path: Path) -> None:
    import kart_core
    from kart_core.errors import LockUnavailableError

    params = LockParams(key=str(tmp_path / "out.pkl"), redis_host="127.0.0.1", redis_port=1, owner="Train[0badc0de]")
    with pytest.raises(LockUnavailableError) as caught:
        with hold_lock(params, wait_seconds=1):
            pass
    message = str(caught.value)
    assert "Train[0badc0de]" in message and "redis_host='127.0.0.1', redis_port=1" in message
    assert "unset them to use a file lock" in message
    assert isinstance(caught.value, ConnectionError)  # except ConnectionError, as for redis-py's own error
    assert caught.value.__cause__ is not None and "Connection refused" in str(caught.value.__cause__)

    class Unreachable(kart_core.TaskOnKart[int]):
        __module__ = __name__
        redis_host = "127.0.0.1"
        redis_port = 1

        def run(self) -> None:
            self.dump(1)

    task = Unreachable(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(kart_core.GokartBuildError) as failed:
        kart_core.build(task)
    assert isinstance(failed.value.__cause__, LockUnavailableError)
    assert f"redis lock of {task.kart_label()}" in str(failed.value)


# --- the machine's lock folders are shared by every user ---------------------------------------


def test_a_shared_lock_folder_and_its_lock_files_are_writable_by_every_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    import stat

    from kart_core.lock import commit_lock_directory, machine_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path))
    os.makedirs(commit_lock_directory(), mode=0o755)  # as an earlier kart left /tmp/kart-commit-locks
    os.chmod(commit_lock_directory(), 0o755)
    old_umask = os.umask(0o022)
    try:
        for directory in (machine_lock_directory(), commit_lock_directory()):
            with hold_lock(LockParams(key=f"{tmp_path}/ws/a.pkl", lock_directory=directory)):
                pass
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o1777
            (lock_file,) = os.listdir(directory)
            assert stat.S_IMODE(os.stat(os.path.join(directory, lock_file)).st_mode) == 0o666
    finally:
        os.umask(old_umask)


_AS_ANOTHER_USER = """
import sys
sys.path.insert(0, sys.argv[1])
from kart_core.lock import LockParams, hold_lock
with hold_lock(LockParams(key=sys.argv[2]), wait_seconds=5):
    print("locked")
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_another_user_takes_a_lock_first_made_by_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lock files were made 0644 by their first user: the second user's open() failed with EACCES.
    os.chmod(tmp_path, 0o755)
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    key = f"{tmp_path}/ws/shared.pkl"
    with hold_lock(LockParams(key=key)):
        pass
    script = tmp_path / "other.py"
    script.write_text(_AS_ANOTHER_USER)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # read-only access to the interpreter and the code wherever they live, no write bypass
    nobody += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    done = subprocess.run(
        [*nobody, sys.executable, str(script), str(Path(__file__).parents[2]), key],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KART_LOCK_DIR": str(tmp_path / "locks"), "HOME": str(tmp_path)},
    )
    assert done.stdout.strip() == "locked", done.stderr[-2000:]


def test_a_relative_kart_lock_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from kart_core.errors import LockSettingError

    monkeypatch.setenv("KART_LOCK_DIR", "locks")
    with pytest.raises(LockSettingError, match="KART_LOCK_DIR='locks' is a relative path"):
        LockParams(key="ws/a.pkl")


def test_a_file_where_the_lock_folder_must_be_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kart_core.errors import LockUnavailableError

    (tmp_path / "kart-locks").write_text("not a folder")
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path))
    with pytest.raises(LockUnavailableError, match="KART_LOCK_DIR") as caught, hold_lock(LockParams(key="ws/a.pkl")):
        pass
    assert str(tmp_path / "kart-locks") in str(caught.value)


# --- what another user puts at a lock file's name in a shared folder ----------------------------


def _planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A shared lock folder under KART_LOCK_DIR and the lock file name of ``{tmp_path}/ws/a.pkl`` in it (the
    folder's one ``keys.lock`` where keys are bytes of it, else the key's own file)."""
    import hashlib

    import kart_core.lock
    from kart_core.lock import machine_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path))
    directory = machine_lock_directory()
    os.makedirs(directory)
    key = f"{tmp_path}/ws/a.pkl"
    if kart_core.lock._OFD_SETLK is not None:
        return key, os.path.join(directory, "keys.lock")
    return key, os.path.join(directory, hashlib.md5(canonical_lock_key(key).encode()).hexdigest() + ".lock")


def test_a_symbolic_link_at_a_lock_files_name_is_refused_and_its_target_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    import stat

    from kart_core.errors import LockUnavailableError

    key, lock_file = _planted(tmp_path, monkeypatch)
    secret = tmp_path / "id_rsa"
    secret.write_text("key")
    secret.chmod(0o600)
    os.symlink(secret, lock_file)  # another user's link to a file of the one who runs kart
    with pytest.raises(LockUnavailableError, match="is a symbolic link") as caught, hold_lock(LockParams(key=key)):
        pass
    assert lock_file in str(caught.value) and "KART_LOCK_DIR" in str(caught.value)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    dangling = tmp_path / "made-by-kart"
    os.unlink(lock_file)
    os.symlink(dangling, lock_file)  # nor does the open create the link's target
    with pytest.raises(LockUnavailableError, match="is a symbolic link"), hold_lock(LockParams(key=key)):
        pass
    assert not dangling.exists()


def test_a_fifo_at_a_lock_files_name_is_refused_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    from kart_core.errors import LockUnavailableError

    key, lock_file = _planted(tmp_path, monkeypatch)
    os.mkfifo(lock_file)
    with pytest.raises(LockUnavailableError, match="not a plain file"), hold_lock(LockParams(key=key)):
        pass


def test_a_hard_link_at_a_lock_files_name_is_used_but_never_chmodded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    import stat

    key, lock_file = _planted(tmp_path, monkeypatch)
    other = tmp_path / "linked"
    other.write_text("")
    other.chmod(0o600)
    os.link(other, lock_file)
    with hold_lock(LockParams(key=key)):
        pass
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


def test_a_symbolic_link_in_place_of_a_shared_lock_folder_is_not_chmodded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    from kart_core.lock import machine_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    os.symlink(private, machine_lock_directory())
    with hold_lock(LockParams(key=f"{tmp_path}/ws/a.pkl")):
        pass
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_location_locks_are_one_per_place_shared_by_every_user_and_exclude_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    """``hold_location_locks``: two spellings of one data file share one lock, held across threads; its folder is
    a shared one (sticky, writable by all) as the run locks' are."""
    import stat

    import kart_core
    from kart_core.lock import location_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    data = tmp_path / "data"
    data.mkdir()
    held, release, failures = threading.Event(), threading.Event(), []

    def holder() -> None:
        with kart_core.hold_location_locks([str(data / "a.json"), str(data / "b.json")]):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=holder)
    old_umask = os.umask(0o022)
    try:
        thread.start()
        assert held.wait(60)
        for spelling in (str(data / "sub" / ".." / "a.json"), f"file://{data}/b.json"):
            try:
                with kart_core.hold_location_locks([spelling], wait_seconds=0):
                    failures.append(spelling)
            except TaskLockException:
                pass
        with kart_core.hold_location_locks([str(data / "c.json")], wait_seconds=0):  # another place: free
            pass
        release.set()
        thread.join()
        with kart_core.hold_location_locks([str(data / "a.json")], wait_seconds=0):  # released
            pass
        assert stat.S_IMODE(os.stat(location_lock_directory()).st_mode) == 0o1777
    finally:
        release.set()
        os.umask(old_umask)
    assert failures == []


def test_a_location_lock_folder_removed_meanwhile_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    """The location lock folder is made ready once per process; removed since (a temporary-file cleaner), the next
    lock makes it again, shared (sticky, writable by all), and still excludes another holder."""
    import stat

    import kart_core
    from kart_core.lock import location_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    with kart_core.hold_location_locks([str(tmp_path / "a.json")]):
        pass
    shutil.rmtree(location_lock_directory())
    with kart_core.hold_location_locks([str(tmp_path / "a.json")]):
        assert stat.S_IMODE(os.stat(location_lock_directory()).st_mode) == 0o1777
        with pytest.raises(TaskLockException):
            with kart_core.hold_location_locks([str(tmp_path / "x" / ".." / "a.json")], wait_seconds=0):
                pass


def test_the_location_lock_folder_keeps_one_file_whatever_the_number_of_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte-range location locks: 300 new locations (taken alone and 30 at a time) leave one lock file, shared by
    every user, and no location file is made for any of them."""
    import stat

    import kart_core
    from kart_core.lock import _OFD_SETLK, location_lock_directory

    if _OFD_SETLK is None:
        pytest.skip("no open file description locks on this platform")
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    places = [str(tmp_path / "data" / f"out{index}.json") for index in range(300)]
    old_umask = os.umask(0o022)
    try:
        for place in places[:150]:
            with kart_core.hold_location_locks([place]):
                pass
        for start in range(150, 300, 30):
            with kart_core.hold_location_locks(places[start : start + 30]):
                pass
    finally:
        os.umask(old_umask)
    assert os.listdir(location_lock_directory()) == ["locations.lock"]
    assert stat.S_IMODE(os.stat(os.path.join(location_lock_directory(), "locations.lock")).st_mode) == 0o666
    assert not (tmp_path / "data").exists()


def test_locations_sharing_a_lock_byte_are_taken_once_and_exclude_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two locations whose keys' 62 md5 bits agree share one lock: one call holding both takes it once (it does not
    wait for itself), and another thread asking for either, or for a third place on that byte, waits until the
    call ends. A collision of 62 md5 bits cannot be found for a test, so every key is put on byte 7."""
    import kart_core
    import kart_core.lock

    if kart_core.lock._OFD_SETLK is None:
        pytest.skip("no open file description locks on this platform")
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(kart_core.lock, "_range_offset", lambda key: 7)
    a, b, c = (str(tmp_path / name) for name in ("a.json", "b.json", "c.json"))
    outcomes: list[str] = []

    def other(place: str) -> None:
        try:
            with kart_core.hold_location_locks([place], wait_seconds=0):
                outcomes.append(f"took {place}")
        except TaskLockException:
            outcomes.append("excluded")

    with kart_core.hold_location_locks([a, b], wait_seconds=5):
        for place in (a, b, c):
            thread = threading.Thread(target=other, args=(place,))
            thread.start()
            thread.join(30)
    assert outcomes == ["excluded"] * 3
    with kart_core.hold_location_locks([c, b, a], wait_seconds=0):  # released
        pass


_LOCATION_HOLDER = """
import sys, time
import kart_core
with kart_core.hold_location_locks(sys.argv[1:]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_location_lock_excludes_another_process_until_its_holder_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    """Another process's location lock is held against this one (under another spelling too) and only for its
    places; a holder killed with SIGKILL leaves no lock behind."""
    import kart_core

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    script = _LOCATION_HOLDER
    if lock_kind == "files":
        script = "import kart_core.lock\nkart_core.lock._OFD_SETLK = None\n" + script
    (tmp_path / "holder.py").write_text(script)
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    holder = subprocess.Popen(
        [sys.executable, str(tmp_path / "holder.py"), a, b], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for place in (a, str(tmp_path / "x" / ".." / "b.json")):
            with pytest.raises(TaskLockException):
                with kart_core.hold_location_locks([str(tmp_path / "c.json"), place], wait_seconds=0):
                    pass
        with kart_core.hold_location_locks([str(tmp_path / "c.json")], wait_seconds=0):  # another place: free
            pass
    finally:
        holder.kill()
        holder.wait(30)
    with kart_core.hold_location_locks([b, a], wait_seconds=5):
        pass


_LOCATION_COUNTER = """
import sys, time
import kart_core, kart_core.lock
if sys.argv[1] == "collide":  # every key on one byte: locations that share a lock
    kart_core.lock._range_offset = lambda key: 7
counter, places = sys.argv[2], sys.argv[3:]
for turn in range(150):
    with kart_core.hold_location_locks(places[turn % 2 :] + places[: turn % 2]):
        with open(counter) as file:
            value = int(file.read())
        time.sleep(0.0005)  # a read-modify-write that interleaving processes would lose counts in
        with open(counter, "w") as file:
            file.write(str(value + 1))
"""


@pytest.mark.parametrize("collide", ["collide", "apart"])
def test_two_processes_locking_overlapping_locations_neither_deadlock_nor_interleave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str, collide: str
) -> None:
    """Two processes each take the locks of two places, one place in common, in alternating orders, 150 times, and
    update a shared counter under them: no update is lost and neither waits forever, also when every location
    shares one lock byte (``collide``: each process then holds one byte for two keys)."""
    if collide == "collide" and lock_kind == "files":
        pytest.skip("a lock file per location: no byte to share")
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    script = _LOCATION_COUNTER
    if lock_kind == "files":
        script = "import kart_core.lock\nkart_core.lock._OFD_SETLK = None\n" + script
    (tmp_path / "counter.py").write_text(script)
    counter = tmp_path / "counter.txt"
    counter.write_text("0")
    shared, left, right = (str(tmp_path / name) for name in ("shared.json", "left.json", "right.json"))
    workers = [
        subprocess.Popen([sys.executable, str(tmp_path / "counter.py"), collide, str(counter), *places], cwd=tmp_path)
        for places in ([shared, left], [right, shared])
    ]
    try:
        assert [worker.wait(120) for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            worker.kill()
    assert counter.read_text() == "300"


def test_the_run_and_commit_lock_folders_keep_one_file_whatever_the_number_of_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte-range run and commit locks: 200 keys in each machine folder (one at a time, then nested: a run lock held
    while another key's is taken, as a task built inside another's run) leave one ``keys.lock`` per folder, and a
    held key still excludes another thread while other keys stay free."""
    import kart_core.lock
    from kart_core.lock import commit_lock_directory, machine_lock_directory

    if kart_core.lock._OFD_SETLK is None:
        pytest.skip("no open file description locks on this platform")
    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    for directory in (machine_lock_directory(), commit_lock_directory()):
        keys = [f"{tmp_path}/ws/out{index}.pkl" for index in range(200)]
        for key in keys[:100]:
            with hold_lock(LockParams(key=key, lock_directory=directory)):
                pass
        outcomes: list[str] = []

        def other(key: str, directory: str = directory, outcomes: list[str] = outcomes) -> None:
            try:
                with hold_lock(LockParams(key=key, lock_directory=directory), wait_seconds=0):
                    outcomes.append("took")
            except TaskLockException:
                outcomes.append("excluded")

        for outer, inner in zip(keys[100:150], keys[150:], strict=True):
            with hold_lock(LockParams(key=outer, lock_directory=directory), wait_seconds=5):
                with hold_lock(LockParams(key=inner, lock_directory=directory), wait_seconds=5):
                    pass
        with hold_lock(LockParams(key=keys[0], lock_directory=directory)):
            for key in (keys[0], keys[1]):
                thread = threading.Thread(target=other, args=(key,))
                thread.start()
                thread.join(30)
        assert outcomes == ["excluded", "took"]
        assert os.listdir(directory) == ["keys.lock"]


def test_a_lock_file_a_day_old_is_made_fresh_so_temporary_file_cleaners_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_kind: str
) -> None:
    """A lock file is never written: when its times are over a day old, the next lock sets them to now (a cleaner
    removing files untouched for days, as systemd-tmpfiles does in /tmp, would take one every process still locks),
    and one locked within the day is left as it is."""
    import kart_core
    from kart_core.lock import location_lock_directory, machine_lock_directory

    monkeypatch.setenv("KART_LOCK_DIR", str(tmp_path / "locks"))
    place = str(tmp_path / "ws" / "a.json")
    with kart_core.hold_location_locks([place]), hold_lock(LockParams(key=place)):
        pass
    lock_files = [
        os.path.join(folder, name)
        for folder in (location_lock_directory(), machine_lock_directory())
        for name in os.listdir(folder)
    ]
    assert len(lock_files) == 2
    month_ago, hours_ago = time.time() - 30 * 86400, time.time() - 3 * 3600
    for lock_file in lock_files:
        os.utime(lock_file, (month_ago, month_ago))
    with kart_core.hold_location_locks([place]), hold_lock(LockParams(key=place)):
        pass
    for lock_file in lock_files:
        assert os.stat(lock_file).st_mtime > time.time() - 600
        assert os.stat(lock_file).st_atime > time.time() - 600
        os.utime(lock_file, (hours_ago, hours_ago))
    with kart_core.hold_location_locks([place]), hold_lock(LockParams(key=place)):
        pass
    assert [os.stat(lock_file).st_mtime for lock_file in lock_files] == [hours_ago, hours_ago]


def test_a_redis_lock_lost_while_held_is_warned_once(redis_service: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Attacker at26 G3: a renewal that found the key gone (a FLUSHALL, a redis restart, an expiry after a pause)
    was swallowed at every beat; another host took the lock and ran the task too, with no word."""
    import redis

    client = redis.Redis(host=redis_service.host, port=redis_service.port)
    params = LockParams(
        key="ws/lost.pkl", redis_host=redis_service.host, redis_port=redis_service.port, redis_timeout=1, owner="T[1]"
    )
    with caplog.at_level("WARNING", logger="kart_core.lock"), hold_lock(params):
        client.delete(f"kart-lock:{params.key}")
        time.sleep(1.5)  # renewals every 0.33 s: several fail
    warned = [record.getMessage() for record in caplog.records if "could not be renewed" in record.getMessage()]
    assert len(warned) == 1, warned
    assert "the redis lock of T[1]" in warned[0] and "LockNotOwnedError" in warned[0]


@pytest.mark.parametrize("timeout", [-5, 0])
def test_a_redis_timeout_that_is_not_positive_is_refused_naming_it(redis_service: Any, timeout: int) -> None:
    """Attacker at26 G6: redis said 'invalid expire time in set' when the lock was taken."""
    from kart_core.errors import LockSettingError

    with pytest.raises(
        LockSettingError, match=rf"redis_timeout={timeout} for the redis lock of .*ws/x\.pkl: it must be a positive"
    ):
        LockParams(key="ws/x.pkl", redis_host=redis_service.host, redis_port=redis_service.port, redis_timeout=timeout)
    assert LockParams(key="ws/x.pkl", redis_timeout=-5).redis_timeout == -5  # a file lock never reads it
