"""`kart verify` with signing on: outputs that no signed manifest lists (a gokart-written workspace, outputs
written before signing was turned on, a removed manifest) and manifests copied over another task's."""

from __future__ import annotations

from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner
from gokart_twin import run_script

import kart_core as gokart
from kart_core.cli import DAMAGE_FOUND, cli
from kart_core.errors import IntegrityError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class SignedPair(gokart.TaskOnKart[dict]):
    """Two outputs committed together: both must be reported and removed."""

    x = luigi.IntParameter()

    def output(self) -> dict[str, gokart.TargetOnKart]:
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}

    def run(self) -> None:
        self.dump(("a", self.x), "a")
        self.dump(("b", self.x), "b")


class SignedOne(gokart.TaskOnKart[int]):
    x = luigi.IntParameter()

    def output(self) -> gokart.TargetOnKart:  # not the default path: gokart's would name the script's module
        return self.make_target("one/value.pkl")

    def run(self) -> None:
        self.dump(self.x)


@pytest.fixture(params=["local", "memory", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk, fsspec memory:// and a real S3 server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    if request.param == "memory":
        return f"memory://kart-verify-signing/{tmp_path.name}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/resources"


def _remove(path: str) -> None:
    storage_for(path).remove(path)


def test_with_signing_outputs_whose_manifest_was_removed_are_reported_and_deleted(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    task = SignedPair(x=1, workspace_directory=any_workspace)
    other = SignedOne(x=1, workspace_directory=any_workspace)
    gokart.build([task, other], reset_register=False)
    _remove(log_task_path(task, MANIFEST))
    with pytest.raises(IntegrityError, match="records no commit"):
        gokart.build(task, reset_register=False)

    report = verify_workspace(any_workspace)
    outputs = sorted(target.path() for target in task.output().values())
    label = f"SignedPair[{task.make_unique_id()[:8]}]"
    assert [(p.kind, p.path, p.task) for p in report.problems] == [("unrecorded", path, label) for path in outputs]
    assert not report.ok and report.unrecorded == 2 and report.manifests == 1
    assert "no signed manifest records it" in report.problems[0].detail

    assert remove_damaged(report) == outputs
    assert not any(storage_for(path).exists(path) for path in outputs)
    assert storage_for(other.output().path()).exists(other.output().path())  # vouched for: kept
    assert gokart.build(task, reset_register=False) == {"a": ("a", 1), "b": ("b", 1)}  # ran again, signed
    assert verify_workspace(any_workspace).ok


def test_without_signing_outputs_without_a_manifest_are_not_reported(workspace: str) -> None:
    task = SignedPair(x=2, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    _remove(log_task_path(task, MANIFEST))
    report = verify_workspace(workspace)
    assert report.ok and report.problems == () and report.unrecorded == 0
    assert remove_damaged(report) == []


def test_outputs_written_before_signing_was_turned_on_are_reported_with_their_manifest(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = SignedPair(x=3, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    report = verify_workspace(workspace)
    # The refused manifest stands for the outputs it lists (they go with it): one line per task.
    assert [(p.kind, p.task) for p in report.problems] == [("manifest", f"SignedPair[{task.make_unique_id()[:8]}]")]
    assert sorted(remove_damaged(report)) == sorted(
        [*(t.path() for t in task.output().values()), report.problems[0].path]
    )
    assert gokart.build(task, reset_register=False) == {"a": ("a", 3), "b": ("b", 3)}
    assert verify_workspace(workspace).ok


def test_a_manifest_copied_over_another_task_s_names_the_task_being_loaded(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    first, second = SignedOne(x=1, workspace_directory=workspace), SignedOne(x=2, workspace_directory=workspace)
    gokart.build([first, second], reset_register=False)
    Path(log_task_path(second, MANIFEST)).write_bytes(Path(log_task_path(first, MANIFEST)).read_bytes())
    first_label, second_label = (f"SignedOne[{t.make_unique_id()[:8]}]" for t in (first, second))

    with pytest.raises(IntegrityError) as refused:
        gokart.build(second, reset_register=False)
    message = str(refused.value)
    assert f"Refusing to trust the manifest of {second_label} at" in message
    assert f"it holds the record of {first_label}" in message

    report = verify_workspace(workspace)
    kinds = [(p.kind, p.task, p.path) for p in report.problems]
    assert kinds == [
        ("manifest", second_label, log_task_path(second, MANIFEST)),
        ("unrecorded", second_label, second.output().path()),
    ]
    assert f"holds the record of {first_label}" in report.problems[0].detail
    deleted = remove_damaged(report)
    assert first.output().path() not in deleted and Path(first.output().path()).exists()  # not the other task's
    assert second.output().path() in deleted
    assert gokart.build(second, reset_register=False) == 2
    assert verify_workspace(workspace).ok


GOKART_SCRIPT = """
import json, luigi, gokart

class SignedPair(gokart.TaskOnKart):
    x = luigi.IntParameter()
    def output(self):
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}
    def run(self):
        self.dump(("a", self.x), "a")
        self.dump(("b", self.x), "b")

class SignedOne(gokart.TaskOnKart):
    x = luigi.IntParameter()
    def output(self):
        return self.make_target("one/value.pkl")
    def run(self):
        self.dump(self.x)

tasks = [SignedPair(x=7, workspace_directory="ws"), SignedOne(x=7, workspace_directory="ws")]
for task in tasks:
    gokart.build(task, reset_register=False)
print(json.dumps([t.make_unique_id() for t in tasks]))
"""


def test_a_gokart_written_workspace_is_reported_only_with_signing_and_delete_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair_id, one_id = run_script("gokart", GOKART_SCRIPT, tmp_path)
    monkeypatch.chdir(tmp_path)
    workspace = "ws"
    Path(workspace, "notes.txt").write_text("not an output: never reported, never deleted")
    pair, one = SignedPair(x=7, workspace_directory=workspace), SignedOne(x=7, workspace_directory=workspace)
    assert (pair.make_unique_id(), one.make_unique_id()) == (pair_id, one_id)

    unsigned = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert unsigned.exit_code == 0 and "0 problem(s)" in unsigned.output  # gokart's outputs load without signing

    monkeypatch.setenv(SIGNING_KEY, "a secret")
    outputs = sorted([*(t.path() for t in pair.output().values()), one.output().path()])
    report = verify_workspace(workspace)
    assert [(p.kind, p.path) for p in report.problems] == [("unrecorded", path) for path in outputs]
    assert all("not signed" in p.detail for p in report.problems)
    assert {p.task for p in report.problems} == {f"SignedPair[{pair_id[:8]}]", f"SignedOne[{one_id[:8]}]"}

    result = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert result.exit_code == DAMAGE_FOUND and result.output.count("(deleted)") == 3
    assert "and 3 output(s) no signed manifest lists" in result.output
    assert not any(Path(path).exists() for path in outputs) and Path(workspace, "notes.txt").exists()
    assert gokart.build(pair, reset_register=False) == {"a": ("a", 7), "b": ("b", 7)}  # runs again, signed
    assert gokart.build(one, reset_register=False) == 7
    assert CliRunner().invoke(cli, ["verify", "-w", workspace]).exit_code == 0
