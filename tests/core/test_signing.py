"""Opt-in signing: kart refuses outputs it did not seal with the configured key, before running any of their code.

The four attacks of issue 12 #5 are each refused with nothing executed: a swap between verifying
and loading, another output copied over this one, an older version copied back, and two concurrent
writers. The attacker's pickle would create a marker file when unpickled; the marker stays absent.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import pandas as pd
import pytest

import kart_core
from kart_core.errors import GokartBuildError, IntegrityError, SigningKeyError
from kart_core.signing import HEADER_SIZE, MAGIC, Signer, signature_path, signer_from_config
from kart_core.storage import storage_for
from kart_core.target import make_model_target, make_target
from kart_core.workspace import MANIFEST, log_task_path

OWNER = "Train[0badc0de]"


class _WritesAFileWhenUnpickled:
    """A pickle payload an attacker could plant: unpickling runs code (here: creates a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Turn signing on through the environment."""
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    return "test-secret"


def test_signing_is_off_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    assert signer_from_config() is None
    target = make_target(str(tmp_path / "plain.pkl"))
    target.dump(1)
    assert pickle.loads(Path(target.path()).read_bytes()) == 1  # plain bytes, as gokart writes them
    assert not os.path.exists(signature_path(target.path()))


def test_key_from_luigi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    config = luigi.configuration.get_config()
    config.add_section("TaskOnKart")
    config.set("TaskOnKart", "signing_key", "from-config")
    signer = signer_from_config()
    assert signer is not None and "from-config" not in repr(signer)


def test_an_empty_key_is_a_named_error() -> None:
    with pytest.raises(SigningKeyError, match="KART_SIGNING_KEY"):
        Signer(b"")


@pytest.mark.parametrize("value", ["", "   "])
def test_a_key_set_but_empty_in_the_environment_is_a_named_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """``KART_SIGNING_KEY=$MISSING`` turned signing off silently (AT3); unset means off, empty is a mistake."""
    monkeypatch.setenv("KART_SIGNING_KEY", value)
    with pytest.raises(SigningKeyError, match="environment variable KART_SIGNING_KEY") as info:
        signer_from_config()
    assert "unset KART_SIGNING_KEY" in str(info.value)


def test_a_key_set_but_empty_in_the_luigi_config_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    config = luigi.configuration.get_config()
    config.add_section("TaskOnKart")
    config.set("TaskOnKart", "signing_key", "")
    with pytest.raises(SigningKeyError, match=r"\[TaskOnKart\] signing_key"):
        signer_from_config()


def test_signed_output_round_trips_with_the_header_in_the_file(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "frame.pkl"), owner=OWNER)
    target.dump(pd.DataFrame({"a": [1, 2]}))
    data = Path(target.path()).read_bytes()
    assert data.startswith(MAGIC) and not os.path.exists(signature_path(target.path()))
    pd.testing.assert_frame_equal(pickle.loads(data[HEADER_SIZE:]), pd.DataFrame({"a": [1, 2]}))
    pd.testing.assert_frame_equal(target.load(), pd.DataFrame({"a": [1, 2]}))


def test_a_signed_file_still_loads_after_signing_is_turned_off(
    signing_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_target(str(tmp_path / "table.csv"))
    target.dump(pd.DataFrame({"a": [1, 2]}))
    monkeypatch.delenv("KART_SIGNING_KEY")
    assert target.load()["a"].tolist() == [1, 2]


def test_tampered_pickle_is_refused_before_any_code_runs(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "model.pkl"), owner=OWNER)
    target.dump({"weights": [1, 2, 3]})
    marker = tmp_path / "pwned"
    Path(target.path()).write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(str(marker))))
    with pytest.raises(IntegrityError) as info:
        target.load()
    assert target.path() in str(info.value) and OWNER in str(info.value) and "did not sign" in str(info.value)
    assert not marker.exists()


def test_unsigned_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "foreign.pkl")
    make_target(path).dump([1])  # written while signing was off, e.g. by gokart
    monkeypatch.setenv("KART_SIGNING_KEY", "now-on")
    with pytest.raises(IntegrityError, match="did not sign") as info:
        make_target(path, owner=OWNER).load()
    assert path in str(info.value) and "kart verify --delete" in str(info.value)


def test_a_signature_file_of_the_earlier_format_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "old.pkl")
    make_target(path).dump([1])
    Path(signature_path(path)).write_text("kart-hmac-sha256:" + "0" * 64 + "\n")
    monkeypatch.setenv("KART_SIGNING_KEY", "now-on")
    with pytest.raises(IntegrityError, match="older kart"):
        make_target(path).load()


def test_file_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "data.csv")
    make_target(path, signer=Signer(b"key-one")).dump(pd.DataFrame({"a": [1]}))
    with pytest.raises(IntegrityError, match="does not match"):
        make_target(path, signer=Signer(b"key-two")).load()


def test_remove_deletes_an_earlier_signature_file(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "x.txt"))
    target.dump(["line"])
    Path(signature_path(target.path())).write_text("stale")
    target.remove()
    assert not os.path.exists(target.path()) and not os.path.exists(signature_path(target.path()))


def test_model_target_is_signed_and_checked(signing_key: str, tmp_path: Path) -> None:
    def save(model: Any, path: str) -> None:
        with open(path, "wb") as file:
            pickle.dump(model, file)

    def load(path: str) -> Any:
        with open(path, "rb") as file:
            return pickle.load(file)

    target = make_model_target(str(tmp_path / "model.zip"), str(tmp_path / "tmp"), save, load, owner=OWNER)
    target.dump({"w": 1})
    assert target.load() == {"w": 1}
    with open(target.path(), "ab") as file:
        file.write(b"appended")
    with pytest.raises(IntegrityError, match=r"Train\[0badc0de\]"):
        target.load()


class Upstream(kart_core.TaskOnKart[Any]):
    """Writes a pickle."""

    def run(self) -> None:
        self.dump({"value": 41})


class Downstream(kart_core.TaskOnKart[Any]):
    """Reads it."""

    def requires(self) -> Any:
        return Upstream(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load()["value"] + 1)


def test_pipeline_refuses_a_tampered_upstream_output(signing_key: str, workspace: str) -> None:
    upstream = Upstream(workspace_directory=workspace)
    kart_core.build(upstream, reset_register=False)
    Path(upstream.output().path()).write_bytes(pickle.dumps({"value": 999}))
    with pytest.raises(GokartBuildError) as info:
        kart_core.build(Downstream(workspace_directory=workspace), reset_register=False)
    (errors,) = info.value.raised_exceptions.values()
    assert isinstance(errors[0], IntegrityError) and upstream.output().path() in str(errors[0])
    assert not Downstream(workspace_directory=workspace).output().exists()


# --- the four attacks ----------------------------------------------------------------------------


class Payload(kart_core.TaskOnKart[Any]):
    """Dumps what its (insignificant) ``kind`` says: a plain value, or the attacker's pickle."""

    name = luigi.Parameter()
    kind = luigi.Parameter(default="plain", significant=False)
    marker = luigi.Parameter(default="", significant=False)

    def run(self) -> None:
        self.dump(_WritesAFileWhenUnpickled(self.marker) if self.kind == "evil" else {"name": self.name})


def test_attack_swap_between_verify_and_load_never_runs_the_planted_pickle(signing_key: str, workspace: str) -> None:
    """A writer swaps the file between a good signed version and a planted pickle as fast as it can."""
    victim = Payload(name="victim", workspace_directory=workspace)
    kart_core.build(victim, reset_register=False)
    path = Path(victim.output().path())
    marker = Path(workspace) / "pwned"
    good = path.read_bytes()
    evil = pickle.dumps(_WritesAFileWhenUnpickled(str(marker)))
    stop = threading.Event()

    def swap() -> None:
        flip = 0
        while not stop.is_set():
            staging = path.with_name(f".swap{flip % 2}")
            staging.write_bytes(evil if flip % 2 else good)
            os.replace(staging, path)
            flip += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    loaded = refused = 0
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            try:
                assert make_target(str(path), record=victim.output().record).load() == {"name": "victim"}
                loaded += 1
            except IntegrityError:
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert not marker.exists()
    assert loaded > 0 and refused > 0  # both versions were seen; the planted one never ran


def test_attack_another_outputs_signed_file_copied_over_is_refused(signing_key: str, workspace: str) -> None:
    marker = Path(workspace) / "pwned"
    victim = Payload(name="victim", workspace_directory=workspace)
    other = Payload(name="other", kind="evil", marker=str(marker), workspace_directory=workspace)
    kart_core.build(victim, reset_register=False)
    kart_core.build(other, reset_register=False, return_value=False)  # signed by kart, for its own path
    shutil.copyfile(other.output().path(), victim.output().path())
    with pytest.raises(IntegrityError, match="does not match") as info:
        victim.output().load()
    assert victim.output().path() in str(info.value) and "kart verify --delete" in str(info.value)
    assert not marker.exists()


def test_attack_an_older_version_copied_back_is_refused(signing_key: str, workspace: str, tmp_path: Path) -> None:
    marker = Path(workspace) / "pwned"
    first = Payload(name="rolled", kind="evil", marker=str(marker), workspace_directory=workspace)
    kart_core.build(first, reset_register=False, return_value=False)
    old = tmp_path / "old-version"
    shutil.copyfile(first.output().path(), old)
    second = Payload(name="rolled", rerun=True, workspace_directory=workspace)  # same id, new content
    assert second.make_unique_id() == first.make_unique_id()
    kart_core.build(second, reset_register=False)
    shutil.copyfile(old, second.output().path())
    with pytest.raises(IntegrityError, match="older version copied back"):
        second.output().load()
    assert not marker.exists()
    Path(log_task_path(second, MANIFEST)).unlink()  # removing the record does not help either
    with pytest.raises(IntegrityError, match="manifest was removed"):
        second.output().load()
    assert not marker.exists()


_CONCURRENT_WRITER = """
import os, random, sys, time
sys.path.insert(0, os.getcwd())
import kart_core
from writer_tasks import Noisy
tasks = [Noisy(n=n, workspace_directory=sys.argv[1]) for n in range(12)]
for task in tasks:
    time.sleep(random.random() / 200)
    kart_core.build(task, reset_register=False, return_value=False)
"""

_WRITER_TASKS = """
import os, random, time
import luigi
import kart_core

class Noisy(kart_core.TaskOnKart):
    n = luigi.IntParameter()

    def complete(self):
        return False  # every writer runs every task: the writers race on each commit

    def run(self):
        value = (os.getpid(), random.random())
        time.sleep(random.random() / 100)
        self.dump(value)
"""


def test_attack_concurrent_writers_never_leave_data_with_another_writers_signature(
    signing_key: str, workspace: str, tmp_path: Path
) -> None:
    (tmp_path / "writer.py").write_text(textwrap.dedent(_CONCURRENT_WRITER))
    (tmp_path / "writer_tasks.py").write_text(textwrap.dedent(_WRITER_TASKS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    writers = [subprocess.Popen([sys.executable, "writer.py", workspace], cwd=tmp_path, env=env) for _ in range(3)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    sys.path.insert(0, str(tmp_path))
    try:
        from writer_tasks import Noisy  # type: ignore[import-not-found]

        pids = {writer.pid for writer in writers}
        for n in range(12):
            value = Noisy(n=n, workspace_directory=workspace).output().load()
            assert value[0] in pids
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("writer_tasks", None)


def test_cleanup_keeps_the_signatures_of_kept_outputs(signing_key: str, workspace: str) -> None:
    downstream = Downstream(workspace_directory=workspace)
    kart_core.build(downstream, reset_register=False)
    stray = Path(workspace) / "stray_0123456789abcdef0123456789abcdef.pkl"
    stray.write_bytes(b"x")
    deleted = kart_core.delete_local_unnecessary_outputs(downstream)
    assert deleted == [str(stray)]
    assert downstream.output().load() == 42 and Upstream(workspace_directory=workspace).output().load() == {"value": 41}


# --- key rotation: old keys verify, the new key signs --------------------------------------------


class RotA(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class RotB(kart_core.TaskOnKart[int]):
    def requires(self) -> Any:
        return RotA(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1)


class RotC(kart_core.TaskOnKart[int]):
    k = luigi.IntParameter(default=0)

    def requires(self) -> Any:
        return RotB(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + self.k)


def test_a_changed_key_refuses_naming_the_task_and_old_keys_keep_the_workspace_readable(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "old-secret")
    assert kart_core.build(RotC(workspace_directory=workspace)) == 2
    monkeypatch.setenv("KART_SIGNING_KEY", "new-secret")
    with pytest.raises(GokartBuildError) as caught:
        kart_core.build(RotC(k=1, workspace_directory=workspace))
    refusal = caught.value.__cause__
    assert isinstance(refusal, IntegrityError)
    upstream = RotB(workspace_directory=workspace)
    assert f"manifest of {upstream.kart_label()} at" in str(refusal)  # the task, not only the file
    assert "KART_SIGNING_OLD_KEYS" in str(refusal) and "`kart verify --delete`" in str(refusal)
    monkeypatch.setenv("KART_SIGNING_OLD_KEYS", "older-still, old-secret")
    assert kart_core.build(RotC(k=1, workspace_directory=workspace)) == 3  # read under the old key
    monkeypatch.delenv("KART_SIGNING_OLD_KEYS")
    # what the build wrote is signed with the new key: it loads without the old one; the old outputs do not
    assert RotC(k=1, workspace_directory=workspace).output().load() == 3
    with pytest.raises(IntegrityError):
        upstream.output().load()


def test_old_keys_come_from_the_luigi_config_and_never_sign(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "old-secret")
    monkeypatch.delenv("KART_SIGNING_OLD_KEYS", raising=False)
    target = make_target(str(tmp_path / "value.pkl"))
    target.dump({"v": 1})
    monkeypatch.setenv("KART_SIGNING_KEY", "new-secret")
    with pytest.raises(IntegrityError, match="KART_SIGNING_OLD_KEYS"):
        make_target(str(tmp_path / "value.pkl")).load()
    config = luigi.configuration.get_config()
    config.add_section("TaskOnKart")
    config.set("TaskOnKart", "signing_old_keys", "old-secret")
    signer = signer_from_config()
    assert signer is not None and signer.has_old_keys and "old-secret" not in repr(signer)
    assert make_target(str(tmp_path / "value.pkl")).load() == {"v": 1}
    rewritten = make_target(str(tmp_path / "again.pkl"))
    rewritten.dump({"v": 2})
    data = Path(rewritten.path()).read_bytes()
    name = str(tmp_path / "again.pkl")
    assert Signer(b"new-secret").verify(data, name) is not None  # the new key signed it
    assert Signer(b"old-secret").verify(data, name) is None


def test_kart_verify_accepts_old_keys_and_delete_clears_what_only_they_signed(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kart_core.inspect.verify import remove_damaged, verify_workspace

    monkeypatch.setenv("KART_SIGNING_KEY", "old-secret")
    kart_core.build(RotC(workspace_directory=workspace))
    monkeypatch.setenv("KART_SIGNING_KEY", "new-secret")
    assert not verify_workspace(workspace).ok
    monkeypatch.setenv("KART_SIGNING_OLD_KEYS", "old-secret")
    assert verify_workspace(workspace).ok  # content, sizes and signatures all check under the old key
    monkeypatch.delenv("KART_SIGNING_OLD_KEYS")
    report = verify_workspace(workspace)
    assert sorted(problem.kind for problem in report.problems) == ["manifest", "manifest", "manifest"]
    remove_damaged(report)
    assert kart_core.build(RotC(workspace_directory=workspace)) == 2  # rebuilt under the new key
    assert verify_workspace(workspace).ok


# --- signing turned on over a workspace built without it: what the build reports -----------------------------


class SigUp(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class SigDown(kart_core.TaskOnKart[int]):
    def requires(self) -> Any:
        return SigUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1)


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_a_root_refused_by_signing_counts_as_failed_not_cached(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], workers: int, executor: Any
) -> None:
    """Before, the summary said "0 ran, 1 cached" and then build() raised the refusal (or, without
    return_value, raised nothing at all); the fix the message names (`kart verify --delete`) works."""
    from kart_core.inspect.verify import remove_damaged, verify_workspace

    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    root = SigDown(workspace_directory=any_workspace)
    assert kart_core.build(root, reset_register=False) == 2
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    capsys.readouterr()
    refused = rf"manifest of SigDown\[{root.make_unique_id()[:8]}\] at .*not signed.*`kart verify --delete`"
    with pytest.raises(IntegrityError, match=refused):
        kart_core.build(root, workers=workers, executor=executor, reset_register=False)
    assert "kart build: 0 ran, 0 cached, 1 failed, 0 not run" in capsys.readouterr().err
    with pytest.raises(GokartBuildError, match=refused) as caught:
        kart_core.build(root, workers=workers, executor=executor, reset_register=False, return_value=False)
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert "kart build: 0 ran, 0 cached, 1 failed, 0 not run" in capsys.readouterr().err
    storage_for(root.output().path()).remove(root.output().path())  # the root runs and loads its refused upstream
    with pytest.raises(GokartBuildError, match=rf"SigUp\[{root.requires().make_unique_id()[:8]}\].*not signed"):
        kart_core.build(root, workers=workers, executor=executor, reset_register=False)
    assert "kart build: 0 ran, 0 cached, 2 failed, 0 not run" in capsys.readouterr().err  # SigUp is not "cached"
    remove_damaged(verify_workspace(any_workspace))  # what the message says to do
    assert kart_core.build(root, workers=workers, executor=executor, reset_register=False) == 2
    assert "kart build: 2 ran, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err


def test_kart_run_over_an_unsigned_cache_fails_naming_the_task_and_the_fix(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from kart_core.cli import cli

    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    root = SigDown(workspace_directory=workspace)
    assert kart_core.build(root, reset_register=False) == 2
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    result = CliRunner().invoke(cli, ["run", f"{__name__}.SigDown", "--workspace-directory", workspace])
    assert result.exit_code == 40, result.output  # a failed task (gokart's code), not 0
    assert "kart build: 0 ran, 0 cached, 1 failed, 0 not run" in result.stderr
    assert f"FAILED {root.kart_label()}" in result.stderr and "`kart verify --delete`" in result.stderr


def test_an_empty_key_never_loads_a_pickle_planted_in_a_signed_workspace(
    monkeypatch: pytest.MonkeyPatch, workspace: str
) -> None:
    """AT3: built signed, an attacker plants a pickle and deletes the manifest; a run with the key empty ran it."""
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    upstream = Upstream(workspace_directory=workspace)
    kart_core.build(upstream, reset_register=False)
    marker = Path(workspace) / "pwned"
    Path(upstream.output().path()).write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(str(marker))))
    storage_for(workspace).remove(log_task_path(upstream, MANIFEST))
    monkeypatch.setenv("KART_SIGNING_KEY", "")
    with pytest.raises(SigningKeyError, match="KART_SIGNING_KEY"):
        kart_core.build(Downstream(workspace_directory=workspace), reset_register=False)
    assert not marker.exists()
