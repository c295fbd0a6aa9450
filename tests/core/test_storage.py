"""The storage interface on local disk, fsspec memory:// and a real S3-compatible server."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import pandas as pd
import pytest

import kart_core
from kart_core.storage import LocalStorage, Storage, storage_for
from kart_core.storage.base import protocol_of
from kart_core.storage.remote import FsspecStorage, s3_options


@pytest.fixture(params=["local", "memory", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A directory on each storage."""
    if request.param == "local":
        return str(tmp_path / "store")
    if request.param == "memory":
        return f"memory://kart-storage/{tmp_path.name}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/store"


def _write(storage: Storage, path: str, data: bytes) -> None:
    with storage.atomic_write(path) as file:
        file.write(data)


def test_backend_is_chosen_by_url(tmp_path: Path) -> None:
    assert isinstance(storage_for(str(tmp_path)), LocalStorage)
    assert isinstance(storage_for(f"file://{tmp_path}"), LocalStorage)
    assert isinstance(storage_for("memory://x/y"), FsspecStorage)
    assert protocol_of("s3://bucket/key") == "s3" and protocol_of("relative/dir") == ""


def test_write_read_exists_remove(root: str) -> None:
    storage = storage_for(root)
    path = f"{root}/a/b/data.bin"
    assert not storage.exists(path)
    _write(storage, path, b"payload")
    assert storage.exists(path)
    with storage.open_read(path) as file:
        assert file.read() == b"payload"
    storage.remove(path)
    assert not storage.exists(path)
    storage.remove(path)  # removing a missing file is not an error


def test_local_exists_answers_as_os_path_exists_and_raises_nothing_inside(tmp_path: Path) -> None:
    """A missing path is the common question (complete()'s markers): answered without an exception raised and caught
    inside (os.path.exists made one per missing path), and every answer is os.path.exists's."""
    storage = LocalStorage()
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "linked").symlink_to(tmp_path / "file")
    paths = [str(tmp_path / name) for name in ("file", "folder", "dangling", "linked", "missing", "file/under")]
    paths += [f"file://{tmp_path}/file", str(tmp_path / "nul\0name"), str(tmp_path / ("x" * 5000))]
    assert [storage.exists(path) for path in paths] == [os.path.exists(path.removeprefix("file://")) for path in paths]
    assert [storage.exists(path) for path in paths] == [True, True, False, True, False, False, True, False, False]
    raised: list[str] = []

    def watch(frame: Any, event: str, arg: Any) -> Any:
        if event == "exception":
            raised.append(f"{frame.f_code.co_name}: {arg[0].__name__}")
        return watch

    missing = str(tmp_path / "missing.kart-writing")
    sys.settrace(watch)
    try:
        assert not storage.exists(missing)
    finally:
        sys.settrace(None)
    assert raised == []


def test_failed_write_leaves_nothing_and_keeps_the_old_file(root: str) -> None:
    storage = storage_for(root)
    path = f"{root}/data.bin"
    with pytest.raises(RuntimeError), storage.atomic_write(path) as file:
        file.write(b"half of it")
        raise RuntimeError("writer died")
    assert not storage.exists(path)
    _write(storage, path, b"old")
    with pytest.raises(RuntimeError), storage.atomic_write(path) as file:
        file.write(b"new but unfinished")
        raise RuntimeError("writer died")
    with storage.open_read(path) as file:
        assert file.read() == b"old"
    assert list(storage.list_dir(root)) == ["data.bin"]


def test_written_file_is_readable_before_it_lands(root: str) -> None:
    storage = storage_for(root)
    with storage.atomic_write(f"{root}/x.bin") as file:
        file.write(b"abc")
        file.flush()
        file.seek(0)
        assert file.read() == b"abc"


def test_list_dir_and_modification_time(root: str) -> None:
    storage = storage_for(root)
    assert list(storage.list_dir(f"{root}/missing")) == []
    before = time.time()
    _write(storage, f"{root}/one.txt", b"1")
    _write(storage, f"{root}/two.txt", b"2")
    assert sorted(storage.list_dir(root)) == ["one.txt", "two.txt"]
    written = storage.modification_time(f"{root}/one.txt").timestamp()
    # Object stores keep whole seconds.
    assert before - 2 <= written <= time.time() + 2


# --- S3 settings ----------------------------------------------------------------------------------


def test_s3_credentials_come_from_the_variables_named_in_s3config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "key-from-my-key")
    monkeypatch.setenv("MY_SECRET", "secret-from-my-secret")
    monkeypatch.setenv("KART_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    config = luigi.configuration.get_config()
    config.add_section("S3Config")
    config.set("S3Config", "aws_access_key_id_name", "MY_KEY")
    config.set("S3Config", "aws_secret_access_key_name", "MY_SECRET")
    options = s3_options()
    assert options["key"] == "key-from-my-key" and options["secret"] == "secret-from-my-secret"
    assert options["endpoint_url"] == "http://127.0.0.1:9"
    config.set("S3Config", "endpoint_url", "http://127.0.0.1:10")
    assert s3_options()["endpoint_url"] == "http://127.0.0.1:10"


def test_s3config_credential_names_reach_the_real_server(s3_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from services import S3_KEY_ID, S3_SECRET, make_bucket

    bucket = make_bucket(s3_env)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("TEAM_S3_KEY", S3_KEY_ID)
    monkeypatch.setenv("TEAM_S3_SECRET", S3_SECRET)
    config = luigi.configuration.get_config()
    config.add_section("S3Config")
    config.set("S3Config", "aws_access_key_id_name", "TEAM_S3_KEY")
    config.set("S3Config", "aws_secret_access_key_name", "TEAM_S3_SECRET")
    path = f"s3://{bucket}/creds/check.bin"
    _write(storage_for(path), path, b"ok")
    assert storage_for(path).exists(path)


# --- a whole pipeline on S3 -------------------------------------------------------------------------


class LoadRaw(kart_core.TaskOnKart[pd.DataFrame]):
    """Makes a small frame."""

    rows = luigi.IntParameter(default=5)

    def run(self) -> None:
        self.dump(pd.DataFrame({"x": range(self.rows)}))


class Features(kart_core.TaskOnKart[pd.DataFrame]):
    """Adds a column, written as parquet."""

    raw = kart_core.TaskInstanceParameter()

    def output(self) -> Any:
        return self.make_target("features/features.parquet")

    def run(self) -> None:
        frame = self.load(self.raw)
        frame["y"] = frame["x"] * 2
        self.dump(frame)


class Report(kart_core.TaskOnKart[dict]):
    """Sums the features into a dict and a text file."""

    features = kart_core.TaskInstanceParameter()

    def output(self) -> Any:
        return {"summary": self.make_target("report/summary.pkl"), "text": self.make_target("report/summary.txt")}

    def run(self) -> None:
        frame = self.load(self.features)
        self.dump({"total": int(frame["y"].sum())}, "summary")
        self.dump([f"rows={len(frame)}"], "text")


def _pipeline(workspace: str) -> Report:
    raw = LoadRaw(workspace_directory=workspace)
    return Report(workspace_directory=workspace, features=Features(workspace_directory=workspace, raw=raw))


def test_pipeline_builds_on_s3_with_run_logs_and_rebuilds_from_cache(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    result = kart_core.build(_pipeline(workspace), reset_register=False)
    assert result == {"summary": {"total": 20}, "text": ["rows=5"]}
    storage = storage_for(workspace)
    for kind in ("task_params", "random_seed", "processing_time", "task_log"):
        assert sorted(storage.list_dir(f"{workspace}/log/{kind}"))[0].startswith("Features_")
    assert len(list(storage.list_dir(f"{workspace}/log/module_versions"))) == 3
    stamps = _modification_times(_pipeline(workspace))
    assert len(stamps) == 4
    again = kart_core.build(_pipeline(workspace), reset_register=False)
    assert again == result
    assert _modification_times(_pipeline(workspace)) == stamps
    assert kart_core.run_one(_pipeline(workspace)) == kart_core.RunStatus.CACHED


def _modification_times(report: Report) -> dict[str, Any]:
    """Every output of the pipeline and when it was written."""
    targets = [report.features.raw.output(), report.features.output()]
    targets += list(report.output().values())
    return {t.path(): t.last_modification_time() for t in targets}


def test_pipeline_on_memory_storage(tmp_path: Path) -> None:
    workspace = f"memory://kart-pipeline/{tmp_path.name}/resources"
    assert kart_core.build(_pipeline(workspace), reset_register=False)["summary"] == {"total": 20}
    assert kart_core.run_one(_pipeline(workspace).features) == kart_core.RunStatus.CACHED


def test_options_with_a_dict_value_make_one_cache_key() -> None:
    """gcsfs takes a service-account credential as a dict ([GCSConfig] with the JSON in the variable)."""
    from kart_core.storage.base import options_key

    token = {"type": "service_account", "client_email": "a@b", "scopes": ["x"]}
    first = options_key({"token": token, "endpoint_url": "http://127.0.0.1:1"})
    second = options_key({"endpoint_url": "http://127.0.0.1:1", "token": dict(token)})
    assert first == second and hash(first) == hash(second) and len({first, second}) == 1
    assert dict(first)["token"] == token and isinstance(dict(first)["token"], dict)
    assert options_key({"token": {**token, "client_email": "c@d"}}) != options_key({"token": token})


def test_local_outputs_get_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    """gokart's files are 0666 less the umask; kart's atomic writes (mkstemp: 0600) must match."""
    from kart_core.storage.local import LocalStorage

    old = os.umask(0o027)
    try:
        storage = LocalStorage()
        with storage.atomic_write(str(tmp_path / "out.bin")) as file:
            file.write(b"x")
        spool = storage.spool(str(tmp_path / "staged.bin"))
        spool.file.write(b"y")
        storage.commit(spool.stage(), str(tmp_path / "staged.bin"))
        with open(tmp_path / "plain.bin", "wb") as file:
            file.write(b"z")
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in ("out.bin", "staged.bin", "plain.bin")}
    assert modes == {"out.bin": 0o640, "staged.bin": 0o640, "plain.bin": 0o640}


class _ModeTask(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("shared")


def test_a_built_task_s_outputs_and_logs_are_readable_by_the_group_as_gokart_s(workspace: str) -> None:
    kart_core.build(_ModeTask(workspace_directory=workspace), reset_register=False)
    expected = 0o666 & ~os.umask(os.umask(0o022))
    written = [Path(root, name) for root, _, names in os.walk(workspace) for name in names]
    assert len(written) == 7  # the output, five run logs, the manifest
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {
        path.name: expected for path in written
    }


def _use_in_child(storage: Storage, path: str, copy: str) -> None:
    """Run in a forked process: read the parent's file through the parent's storage object, write a copy."""
    with storage.open_read(path) as file:
        data = file.read()
    _write(storage, copy, data + b" (copied in the child)")


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_storage_object_made_before_a_fork_works_in_the_child(scheme: str, request: pytest.FixtureRequest) -> None:
    # Forked workers (build(executor="process"), luigi's workers) inherit storage objects held by
    # targets and tasks; s3fs and gcsfs raised "This class is not fork-safe" on the parent's loop.
    import multiprocessing

    bucket = request.getfixturevalue("s3_bucket" if scheme == "s3" else "gcs_bucket")
    path, copy = f"{scheme}://{bucket}/fork/parent.txt", f"{scheme}://{bucket}/fork/child.txt"
    storage = storage_for(path)
    _write(storage, path, b"from the parent")
    assert storage.exists(path)  # the parent's file system is in use before the fork
    child = multiprocessing.get_context("fork").Process(target=_use_in_child, args=(storage, path, copy))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    with storage.open_read(copy) as file:
        assert file.read() == b"from the parent (copied in the child)"


_WAIT_CLAIM = """
import sys
from kart_core.storage import LocalStorage

print("waiting", flush=True)
LocalStorage().wait_claim(sys.argv[1])
print("free", flush=True)
"""

_HOLD_CLAIM = """
import sys, time
from kart_core.storage import LocalStorage

with LocalStorage().claim_new(sys.argv[1], b"claimed") as created:
    print(bool(created), flush=True)
    time.sleep(600)
"""


def test_a_claim_on_a_new_file_holds_off_wait_claim_in_another_process(tmp_path: Path) -> None:
    """claim_new creates exclusively and holds the file until its body ends; wait_claim waits for that."""
    import subprocess
    import sys

    storage = LocalStorage()
    path = str(tmp_path / "log" / "manifest" / "T_1.json")
    script = tmp_path / "wait.py"
    script.write_text(_WAIT_CLAIM)
    with storage.claim_new(path, b"first") as created:
        assert created  # a HeldClaim (kart_core.storage.local), true
        waiter = subprocess.Popen([sys.executable, str(script), path], stdout=subprocess.PIPE, text=True)
        assert waiter.stdout is not None
        assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        assert waiter.poll() is None  # still waiting: the claim is held
        with storage.claim_new(path, b"second") as again:
            assert again is False
    assert waiter.communicate(timeout=60)[0].strip() == "free"
    with open(path, "rb") as file:
        assert file.read() == b"first"
    storage.wait_claim(str(tmp_path / "absent.json"))  # nothing there: returns at once


def test_a_killed_claimer_holds_nobody_off(tmp_path: Path) -> None:
    """The claim is an flock: the kernel drops it with the process, so a killed first commit blocks no one."""
    import signal
    import subprocess
    import sys

    path = str(tmp_path / "T_1.json")
    script = tmp_path / "hold.py"
    script.write_text(_HOLD_CLAIM)
    holder = subprocess.Popen([sys.executable, str(script), path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "True"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    LocalStorage().wait_claim(path)
    with open(path, "rb") as file:
        assert file.read() == b"claimed"


def test_object_storage_claims_nothing(tmp_path: Path) -> None:
    """No create-if-absent on object stores: claim_new writes nothing and yields None (commits lock instead)."""
    storage = storage_for("memory://claims/T_1.json")
    with storage.claim_new("memory://claims/T_1.json", b"x") as created:
        assert created is None
    assert not storage.exists("memory://claims/T_1.json")
    storage.wait_claim("memory://claims/T_1.json")


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_build_into_a_missing_bucket_fails_naming_it_and_makes_no_bucket(
    scheme: str, request: pytest.FixtureRequest
) -> None:
    # A mistyped bucket became a new bucket holding the cache (the put made it on NoSuchBucket); gokart's
    # targets fail there, and on a real account a typo would otherwise create buckets.
    from kart_core.errors import WorkspaceNotFoundError

    real = request.getfixturevalue("s3_bucket" if scheme == "s3" else "gcs_bucket")
    typo = f"{real}-typo"
    workspace = f"{scheme}://{typo}/resources"
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(_pipeline(workspace), reset_register=False)
    cause = caught.value.__cause__
    assert isinstance(cause, WorkspaceNotFoundError) and isinstance(cause, FileNotFoundError)
    assert repr(typo) in str(cause) and "does not create buckets" in str(cause)
    file_system = storage_for(f"{scheme}://{real}/x").file_system  # type: ignore[attr-defined]
    file_system.invalidate_cache()
    assert not file_system.exists(typo)
