"""kart_core.output_digests: a task's outputs named by content, from the manifest (or the bytes without one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import IntegrityError
from kart_core.integrity import DEFAULT_ALGORITHM
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class Pair(kart_core.TaskOnKart[dict]):
    """Two outputs whose content follows ``value`` (not a parameter: the id stays the same)."""

    value = 1

    def output(self):
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.txt")}

    def run(self) -> None:
        self.dump(self.value, "a")
        self.dump([str(self.value)], "b")


def test_outputs_are_named_by_the_content_hash_their_manifest_records(workspace: str) -> None:
    task = Pair(workspace_directory=workspace)
    assert kart_core.output_digests(task) == {str(target.path()): "" for target in task.output().values()}  # missing
    kart_core.build(task, reset_register=False, return_value=False)
    first = kart_core.output_digests(task)
    assert list(first) == [str(task.output()["a"].path()), str(task.output()["b"].path())]
    assert all(value.startswith(f"{DEFAULT_ALGORITHM}:") for value in first.values())
    for target in task.output().values():  # rebuilt with the same content: the same names
        Path(target.path()).unlink()
    kart_core.build(task, reset_register=False, return_value=False)
    assert kart_core.output_digests(task) == first
    for target in task.output().values():  # the same unique id, rebuilt with other content
        Path(target.path()).unlink()
    Pair.value = 2
    try:
        kart_core.build(task, reset_register=False, return_value=False)
    finally:
        Pair.value = 1
    second = kart_core.output_digests(task)
    assert all(second[path] != first[path] for path in first)


def test_an_output_without_a_manifest_is_named_by_its_bytes(workspace: str) -> None:
    task = Pair(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    Path(log_task_path(task, MANIFEST)).unlink()  # as gokart leaves it
    read = kart_core.output_digests(task)
    assert all(value.startswith("read:") for value in read.values())
    Path(task.output()["b"].path()).write_text("other\n")
    assert kart_core.output_digests(task)[str(task.output()["b"].path())] != read[str(task.output()["b"].path())]


def test_a_luigi_task_is_named_by_its_output_bytes(tmp_path: Path) -> None:
    class Plain(luigi.Task):
        def output(self):
            return luigi.LocalTarget(str(tmp_path / "plain.txt"))

    (tmp_path / "plain.txt").write_text("x")
    assert list(kart_core.output_digests(Plain()).values())[0].startswith("read:")


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server (moto)."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _rewrite(path: str, change: Any) -> None:
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    with storage.atomic_write(path) as file:
        file.write(change(data))


def test_with_signing_on_a_tampered_manifest_is_refused(any_workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rule as a load: a manifest whose signature is wrong names no content (IntegrityError)."""
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    task = Pair(workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    signed = kart_core.output_digests(task)
    assert all(value.startswith(f"{DEFAULT_ALGORITHM}:") for value in signed.values())
    manifest = log_task_path(task, MANIFEST)
    # Another content hash for output "b", the header (and so the signature) kept: a forged record.
    _rewrite(manifest, lambda data: data.replace(signed[str(task.output()["b"].path())].encode()[-8:], b"0" * 8))
    with pytest.raises(IntegrityError, match="Refusing to trust the manifest") as info:
        kart_core.output_digests(task)
    assert manifest in str(info.value)
    with pytest.raises(IntegrityError):  # a load says the same
        task.output()["a"].load()


def test_with_signing_on_an_unsigned_manifest_is_refused(any_workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written while signing was off, read with a key: not trusted (as a load refuses it)."""
    task = Pair(workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    unsigned = kart_core.output_digests(task)
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    with pytest.raises(IntegrityError, match="it is not signed"):
        kart_core.output_digests(task)
    monkeypatch.delenv("KART_SIGNING_KEY")
    assert kart_core.output_digests(task) == unsigned  # without a key the record names the content, as before


def test_with_signing_on_the_key_of_the_enclosing_build_is_used(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a frozen scope (a build, a Kedro run) the scope's signer decides, not the environment read now."""
    from kart_core import target_config

    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    task = Pair(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    with target_config.frozen():
        monkeypatch.setenv("KART_SIGNING_KEY", "another key")
        assert all(value.startswith(f"{DEFAULT_ALGORITHM}:") for value in kart_core.output_digests(task).values())
    with pytest.raises(IntegrityError):
        kart_core.output_digests(task)


def test_if_complete_names_the_content_from_the_read_that_found_it_complete(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None while incomplete; then output_digests' names, taken from complete()'s read (no second read)."""
    import importlib

    module = importlib.import_module("kart_core.output_digests")  # the module (the package's name is the function)
    task = Pair(workspace_directory=workspace)
    assert kart_core.output_digests_if_complete(task) is None
    kart_core.build(task, reset_register=False, return_value=False)
    expected = kart_core.output_digests(task)
    with monkeypatch.context() as patched:
        patched.setattr(module, "output_digests", lambda task: pytest.fail("read the manifest again"))
        assert kart_core.output_digests_if_complete(task) == expected
    for target in task.output().values():  # the same unique id, rebuilt with other content: the new names
        Path(target.path()).unlink()
    assert kart_core.output_digests_if_complete(task) is None
    monkeypatch.setattr(Pair, "value", 2)
    kart_core.build(task, reset_register=False, return_value=False)
    second = kart_core.output_digests_if_complete(task)
    assert second == kart_core.output_digests(task)
    assert second is not None and all(second[path] != expected[path] for path in expected)


def test_if_complete_with_signing_on_verifies_the_manifest(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """complete()'s read is not verified: with signing on the digests are read (and refused) as output_digests does."""
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    task = Pair(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    signed = kart_core.output_digests(task)
    assert kart_core.output_digests_if_complete(task) == signed
    manifest = log_task_path(task, MANIFEST)
    _rewrite(manifest, lambda data: data.replace(signed[str(task.output()["b"].path())].encode()[-8:], b"0" * 8))
    with pytest.raises(IntegrityError, match="Refusing to trust the manifest"):
        kart_core.output_digests_if_complete(task)


class Recorded(Pair):
    """Keeps its run record in its manifest, as a Kedro node run does."""

    kart_run_record_in_manifest = True


def test_outputs_if_complete_hands_the_run_record_of_the_read_that_named_the_digests(workspace: str) -> None:
    """KartRunner reads a cached node's output states from the run record of the manifest its check read."""
    task = Recorded(workspace_directory=workspace)
    assert kart_core.outputs_if_complete(task) is None  # not built: not complete
    kart_core.build(task, reset_register=False, return_value=False)
    found = kart_core.outputs_if_complete(task)
    assert found is not None
    assert found.digests == kart_core.output_digests(task) == kart_core.output_digests_if_complete(task)
    assert found.run is not None
    assert found.run["task_log"] == kart_core.read_run_log(task, kart_core.workspace.TASK_LOG, None)
    assert found.run["task_params"] == task.to_str_params(only_significant=True)
    # The record of this read, not of another: a rewritten run record is what it hands back.
    manifest = log_task_path(task, MANIFEST)
    _rewrite(manifest, lambda data: data.replace(b'"task_log":{', b'"task_log":{"mark":"rewritten",'))
    found = kart_core.outputs_if_complete(task)
    assert found is not None and found.run is not None and found.run["task_log"]["mark"] == "rewritten"
    plain = Pair(workspace_directory=workspace)  # no run record in its manifest
    kart_core.build(plain, reset_register=False, return_value=False)
    assert kart_core.outputs_if_complete(plain) == (kart_core.output_digests(plain), None)


def test_outputs_if_complete_with_signing_on_reads_no_run_record_unverified(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With signing on the digests are read verified (output_digests) and ``run`` is None: read_run_log verifies it."""
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    task = Recorded(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    found = kart_core.outputs_if_complete(task)
    assert found == kart_core.CompleteOutputs(kart_core.output_digests(task), None)


def test_committed_digests_name_what_this_process_s_own_commit_recorded(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None before a run; after run_one committed, output_digests' names without a read; None after a failed run."""
    task = Pair(workspace_directory=workspace)
    assert kart_core.committed_digests(task) is None
    kart_core.build(task, reset_register=False, return_value=False)
    expected = kart_core.output_digests(task)
    assert kart_core.committed_digests(task) == expected
    assert list(expected) == [str(target.path()) for target in task.output().values()]

    def fails(self: Pair) -> None:
        self.dump(5, "a")
        raise RuntimeError("the run fails")

    for target in task.output().values():  # incomplete again: the next build runs it
        Path(target.path()).unlink()
    monkeypatch.setattr(Pair, "run", fails)
    with pytest.raises(kart_core.errors.GokartBuildError):
        kart_core.build(task, reset_register=False, return_value=False)
    assert kart_core.committed_digests(task) is None  # not the earlier run's names


class PairRacedByAnotherProcess(Pair):
    """While its run executes, another process builds the same task and commits first."""

    def run(self) -> None:
        super().run()
        code = (
            "import sys; sys.path[:0] = sys.argv[1:2]; import kart_core; "
            "from test_output_digests import PairRacedByAnotherProcess as T; T.run = T.__bases__[0].run; T.value = 7; "
            "kart_core.build(T(workspace_directory=sys.argv[2]), reset_register=False, return_value=False)"
        )
        tests = str(Path(__file__).parent)
        subprocess.run([sys.executable, "-c", code, tests, str(self.workspace_directory)], check=True, timeout=120)


def test_committed_digests_are_none_when_another_process_s_commit_was_kept(workspace: str) -> None:
    """The run's commit finds the other process's manifest: its outputs are kept, and this run names nothing."""
    task = PairRacedByAnotherProcess(workspace_directory=workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    assert task.output()["a"].load() == 7  # the other process's run (this one dumped 1)
    assert kart_core.committed_digests(task) is None
    assert all(value.startswith(f"{DEFAULT_ALGORITHM}:") for value in kart_core.output_digests(task).values())


class _NamesItsOwnOutputs(kart_core.TaskOnKart[str]):
    """Names its own outputs' digests inside run(), then dumps: it reads, it never writes by path."""

    seen: dict[str, Any] = {}

    def run(self) -> None:
        type(self).seen["digests"] = kart_core.output_digests(self)
        type(self).seen["files"] = sorted(path.name for path in Path(self.workspace_directory).rglob("*"))
        self.dump("new")


def test_naming_digests_inside_the_run_hands_no_path_out(workspace: str) -> None:
    """Naming the outputs (output_digests) asks no target for its path(): asked by the task's own run() that marks
    the output as written by path (a .committing direct marker, the old output moved aside on a rerun)."""
    kart_core.build(_NamesItsOwnOutputs(workspace_directory=workspace), reset_register=False, return_value=False)
    output = str(_NamesItsOwnOutputs(workspace_directory=workspace).output().path())
    assert _NamesItsOwnOutputs.seen["digests"] == {output: ""}
    assert not [name for name in _NamesItsOwnOutputs.seen["files"] if "committing" in name or "kart-tmp" in name]
    committed = kart_core.output_digests(_NamesItsOwnOutputs(workspace_directory=workspace))
    task = _NamesItsOwnOutputs(workspace_directory=workspace, rerun=True)
    kart_core.build(task, reset_register=False, return_value=False)
    assert _NamesItsOwnOutputs.seen["digests"] == committed  # the committed content, as the rerun began
    assert not [name for name in _NamesItsOwnOutputs.seen["files"] if "committing" in name or "kart-tmp" in name]
    assert Path(output).name in _NamesItsOwnOutputs.seen["files"]  # the old output stays in place until the commit
