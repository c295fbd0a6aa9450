"""kart_core.refusal and the views that use it: with signing on, `kart tree` and `kart runs` show a task
whose manifest or output a load refuses as refused, not complete (a build would fail loading it)."""

from __future__ import annotations

from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner
from gokart_twin import run_script

import kart_core as gokart
from kart_core.cli import cli
from kart_core.errors import GokartBuildError, IntegrityError
from kart_core.inspect.runs import run_rows
from kart_core.refusal import output_refusals
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.signing import Signer
from kart_core.storage import storage_for
from kart_core.tree.task_info import make_task_info_as_tree_str
from kart_core.utils import flatten
from kart_core.workspace import MANIFEST, log_task_path

KEY = "a secret"


class RefusalPair(gokart.TaskOnKart[dict]):
    x = luigi.IntParameter()

    def output(self) -> dict[str, gokart.TargetOnKart]:
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}

    def run(self) -> None:
        self.dump(("a", self.x), "a")
        self.dump(("b", self.x), "b")


class RefusalOne(gokart.TaskOnKart[int]):
    x = luigi.IntParameter()

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("one/value.pkl")

    def run(self) -> None:
        self.dump(self.x)


@pytest.fixture(params=["local", "memory", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk, fsspec memory:// and a real S3 server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    if request.param == "memory":
        return f"memory://kart-refusal/{tmp_path.name}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/resources"


def _status(workspace: str, task: gokart.TaskOnKart) -> str:
    (row,) = [row for row in run_rows(workspace) if row["unique_id"] == task.make_unique_id()]
    return str(row["status"])


def _tree_status(task: gokart.TaskOnKart) -> str:
    return make_task_info_as_tree_str(task).strip().split("(", 1)[1].split(")", 1)[0]


def test_a_removed_manifest_shows_as_refused_only_with_signing(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, KEY)
    task, other = (
        RefusalPair(x=1, workspace_directory=any_workspace),
        RefusalOne(x=1, workspace_directory=any_workspace),
    )
    gokart.build([task, other], reset_register=False)
    assert (_status(any_workspace, task), _tree_status(task)) == ("complete", "COMPLETE")
    manifest = log_task_path(task, MANIFEST)
    storage_for(manifest).remove(manifest)

    found = output_refusals(flatten(task.output()), Signer(KEY.encode()))
    assert [r.path for r in found] == [t.path() for t in task.output().values()]  # both outputs
    assert all("no signed manifest records" in r.reason for r in found)
    assert (_status(any_workspace, task), _tree_status(task)) == ("refused", "REFUSED")
    assert (_status(any_workspace, other), _tree_status(other)) == ("complete", "COMPLETE")
    with pytest.raises(IntegrityError):  # what the views foretell
        gokart.build(task, reset_register=False)

    monkeypatch.delenv(SIGNING_KEY)  # without signing the outputs load: no refusal to show
    assert (_status(any_workspace, task), _tree_status(task)) == ("complete", "COMPLETE")


def test_another_task_s_manifest_copied_over_shows_as_refused(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, KEY)
    first, second = RefusalOne(x=1, workspace_directory=workspace), RefusalOne(x=2, workspace_directory=workspace)
    gokart.build([first, second], reset_register=False)
    Path(log_task_path(second, MANIFEST)).write_bytes(Path(log_task_path(first, MANIFEST)).read_bytes())

    (found,) = output_refusals(flatten(second.output()), Signer(KEY.encode()))
    assert found.path == log_task_path(second, MANIFEST)
    assert f"holds the record of RefusalOne[{first.make_unique_id()[:8]}]" in found.reason
    assert (_status(workspace, second), _tree_status(second)) == ("refused", "REFUSED")
    assert (_status(workspace, first), _tree_status(first)) == ("complete", "COMPLETE")
    result = CliRunner().invoke(cli, ["tree", "test_refusal.RefusalOne", "--x", "2", "-w", workspace])
    assert result.exit_code == 0, result.output
    assert "(REFUSED) RefusalOne[" in result.output and "kart verify --delete" in result.output


GOKART_SCRIPT = """
import json, luigi, gokart

class RefusalPair(gokart.TaskOnKart):
    x = luigi.IntParameter()
    def output(self):
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}
    def run(self):
        self.dump(("a", self.x), "a")
        self.dump(("b", self.x), "b")

task = RefusalPair(x=5, workspace_directory="ws")
gokart.build(task, reset_register=False)
print(json.dumps(task.make_unique_id()))
"""


def test_a_gokart_written_task_shows_as_refused_with_signing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unique_id = run_script("gokart", GOKART_SCRIPT, tmp_path)
    monkeypatch.chdir(tmp_path)
    task = RefusalPair(x=5, workspace_directory="ws")
    assert task.make_unique_id() == unique_id
    assert (_status("ws", task), _tree_status(task)) == ("complete", "COMPLETE")

    monkeypatch.setenv(SIGNING_KEY, KEY)
    found = output_refusals(flatten(task.output()), Signer(KEY.encode()))
    assert [r.reason.split(" (")[0] for r in found] == ["not signed", "not signed"]
    assert (_status("ws", task), _tree_status(task)) == ("refused", "REFUSED")  # its logs are unsigned too


class RefusalSum(gokart.TaskOnKart[int]):
    """Loads a RefusalOne: a downstream that must run reads its upstream's refused output."""

    x = luigi.IntParameter()

    def requires(self) -> RefusalOne:
        return RefusalOne(x=self.x, workspace_directory=self.workspace_directory)

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("sum/value.pkl")

    def run(self) -> None:
        self.dump(self.load() + 1)


def test_why_and_the_report_say_signing_refuses_a_task_and_what_its_downstream_meets(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kart_core.inspect.report_data import collect
    from kart_core.inspect.why import explain

    monkeypatch.setenv(SIGNING_KEY, KEY)
    upstream = RefusalOne(x=3, workspace_directory=workspace)
    gokart.build(upstream, reset_register=False)
    Path(log_task_path(upstream, MANIFEST)).unlink()
    label = upstream.kart_label()

    (line,) = explain(upstream)
    assert line.startswith(f"{label} is cached but signing refuses it: {upstream.output().path()}: signed as commit")
    assert "kart verify --delete" in line

    downstream = RefusalSum(x=3, workspace_directory=workspace)
    lines = explain(downstream)
    assert any(
        f"{label} is cached but signing refuses it" in ln and "the build fails (IntegrityError)" in ln for ln in lines
    )
    with pytest.raises(GokartBuildError, match="IntegrityError: Refusing to load the output of RefusalOne"):
        gokart.build(downstream, reset_register=False)  # what why foretold: not rebuilt by itself

    _, data = collect([upstream])
    (summary,) = data.tasks
    assert summary.status == "damaged" and "signing refuses it" in summary.reason[0]


def test_with_integrity_records_off_signed_outputs_load_and_nothing_is_refused(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kart_core.inspect.verify import verify_workspace

    monkeypatch.setenv(SIGNING_KEY, KEY)
    recorded = RefusalOne(x=8, workspace_directory=workspace)
    gokart.build(recorded, reset_register=False)  # signed as a commit, with a manifest
    monkeypatch.setenv("KART_INTEGRITY_RECORD", "0")
    task = RefusalPair(x=8, workspace_directory=workspace)
    # Before: sealed with the run's commit that no manifest held, so its own build refused to load it.
    assert gokart.build(task, reset_register=False) == {"a": ("a", 8), "b": ("b", 8)}
    assert gokart.build(task, reset_register=False) == {"a": ("a", 8), "b": ("b", 8)}  # cached: loads
    assert not Path(log_task_path(task, MANIFEST)).exists()
    assert gokart.build(recorded, reset_register=False) == 8  # records off: the MAC alone is checked
    assert (_tree_status(task), _tree_status(recorded)) == ("COMPLETE", "COMPLETE")
    assert verify_workspace(workspace).ok

    Path(task.output()["a"].path()).write_bytes(Path(task.output()["b"].path()).read_bytes())  # another's file
    with pytest.raises(IntegrityError, match="signature does not match"):
        gokart.build(task, reset_register=False)
    assert [p.kind for p in verify_workspace(workspace).problems] == ["unrecorded"]
