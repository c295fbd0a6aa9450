"""kart_core.inspect.verify and `kart verify`: a whole workspace checked against its integrity records."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import fsspec
import luigi
import pandas as pd
import pytest
from bit_rot import rot
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import DAMAGE_FOUND, cli
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY


class VerifyFrame(gokart.TaskOnKart[pd.DataFrame]):
    n = luigi.IntParameter()

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("verify/frame.csv")

    def run(self) -> None:
        self.dump(pd.DataFrame({"x": range(self.n)}))


class VerifyTotal(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()

    def requires(self) -> VerifyFrame:
        return VerifyFrame(n=self.n, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(int(self.load()["x"].sum()))


def _built(workspace: str, n: int = 5) -> VerifyTotal:
    task = VerifyTotal(n=n, workspace_directory=workspace)
    assert gokart.build(task, reset_register=False) == sum(range(n))
    return task


def _frame_path(task: VerifyTotal) -> str:
    return task.requires().output().path()


def test_a_clean_workspace_verifies(workspace: str) -> None:
    _built(workspace, 5)
    _built(workspace, 6)
    report = verify_workspace(workspace)
    assert report.ok and report.manifests == 4 and report.outputs == 4 and report.hashes


def test_truncated_flipped_and_missing_outputs_are_each_named(workspace: str) -> None:
    truncated, flipped, missing = _built(workspace, 5), _built(workspace, 6), _built(workspace, 7)
    Path(_frame_path(truncated)).write_bytes(Path(_frame_path(truncated)).read_bytes()[:-3])
    data = bytearray(Path(_frame_path(flipped)).read_bytes())
    data[-2] = ord("9") if data[-2] != ord("9") else ord("8")  # same size, other content
    # Not newer than its manifest (bit rot): a file newer would also make its downstream stale (test_damage.py).
    rot(_frame_path(flipped), bytes(data))
    os.remove(missing.output().path())

    report = verify_workspace(workspace)
    kinds = {problem.path: problem.kind for problem in report.problems}
    assert kinds == {_frame_path(truncated): "size", _frame_path(flipped): "hash", missing.output().path(): "missing"}
    labels = {problem.task for problem in report.problems}
    assert labels == {
        f"VerifyFrame[{truncated.requires().make_unique_id()[:8]}]",
        f"VerifyFrame[{flipped.requires().make_unique_id()[:8]}]",
        f"VerifyTotal[{missing.make_unique_id()[:8]}]",
    }

    assert not report.ok
    quick = verify_workspace(workspace, hashes=False)  # presence and size only: the flipped byte passes
    assert {problem.kind for problem in quick.problems} == {"size", "missing"}


def test_remove_damaged_makes_the_next_build_run_the_task_again(workspace: str) -> None:
    task = _built(workspace, 5)
    frame = Path(_frame_path(task))
    frame.write_bytes(frame.read_bytes()[:-3])
    assert remove_damaged(verify_workspace(workspace)) == [str(frame)]
    assert not frame.exists()
    gokart.build(task.requires(), reset_register=False)
    assert pd.read_csv(frame)["x"].tolist() == [0, 1, 2, 3, 4]
    assert verify_workspace(workspace).ok


def test_only_missing_outputs_still_verify_ok(workspace: str) -> None:
    task = _built(workspace, 5)
    os.remove(_frame_path(task))  # how a gokart user forces a rerun
    report = verify_workspace(workspace)
    assert report.ok and [problem.kind for problem in report.problems] == ["missing"]


def test_an_unreadable_manifest_goes_with_its_task_s_outputs_so_the_task_reruns(workspace: str) -> None:
    task, other = _built(workspace, 5), _built(workspace, 6)
    manifest = Path(workspace, "log", "manifest", f"VerifyTotal_{task.make_unique_id()}.json")
    manifest.write_text("{not json")
    report = verify_workspace(workspace)
    assert [(problem.kind, problem.path) for problem in report.problems] == [("manifest", str(manifest))]
    with pytest.raises(gokart.errors.DamagedOutputError, match="manifest"):
        task.output().load()  # stuck: the task is complete and its output cannot be loaded
    assert sorted(remove_damaged(report)) == sorted([task.output().path(), str(manifest)])
    assert not manifest.exists() and Path(other.output().path()).exists() and Path(_frame_path(task)).exists()
    assert gokart.build(task, reset_register=False) == 10  # ran again
    assert verify_workspace(workspace).ok and manifest.exists()


def _folder_in_place_of_the_frame_manifest(workspace: str, task: VerifyTotal) -> Path:
    manifest = Path(workspace, "log", "manifest", f"VerifyFrame_{task.requires().make_unique_id()}.json")
    manifest.unlink()
    manifest.mkdir()
    return manifest


def test_a_manifest_that_is_a_folder_is_damaged_metadata_and_a_build_repairs_it(workspace: str) -> None:
    # attacker at3 A5: verify said clean, --delete did nothing, every load named the healthy csv
    task = _built(workspace, 5)
    manifest = _folder_in_place_of_the_frame_manifest(workspace, task)
    report = verify_workspace(workspace)
    # The reader built on it is stale too: what the unreadable record holds cannot be told (attacker at21 L7).
    assert [(problem.kind, problem.path) for problem in report.problems][0] == ("manifest", str(manifest))
    assert [problem.kind for problem in report.problems] == ["manifest", "stale"]
    assert not report.ok and report.notices == ()  # its outputs are reported with it, not as unrecorded
    with pytest.raises(gokart.errors.DamagedOutputError, match="is a folder, not a file"):
        task.requires().output().load()
    assert gokart.build(VerifyTotal(n=5, rerun=True, workspace_directory=workspace), reset_register=False) == 10
    assert manifest.is_file() and verify_workspace(workspace).ok  # the repair's commit wrote the file


def test_verify_delete_removes_an_empty_manifest_folder_but_not_one_holding_files(workspace: str) -> None:
    task = _built(workspace, 5)
    manifest = _folder_in_place_of_the_frame_manifest(workspace, task)
    assert sorted(remove_damaged(verify_workspace(workspace))) == sorted([_frame_path(task), str(manifest)])
    assert not manifest.exists() and not Path(_frame_path(task)).exists()
    rerun = VerifyTotal(n=5, rerun=True, workspace_directory=workspace)
    assert gokart.build(rerun, reset_register=False) == 10 and verify_workspace(workspace).ok
    manifest = _folder_in_place_of_the_frame_manifest(workspace, task)
    (manifest / "notes.txt").write_text("someone's")
    report = verify_workspace(workspace)
    assert [problem.kind for problem in report.problems] == ["manifest", "stale"]  # its reader: stale (at21 L7)
    remove_damaged(report)
    assert (manifest / "notes.txt").read_text() == "someone's"  # not kart's to delete
    with pytest.raises(gokart.errors.DamagedOutputError, match="is a folder, not a file"):
        task.requires().output().load()
    # attacker at4 B4: a rerun failed at the commit's last rename with a bare IsADirectoryError, leaving a marker
    with pytest.raises(gokart.errors.GokartBuildError, match="is a folder, not a file"):
        gokart.build(VerifyFrame(n=5, rerun=True, workspace_directory=workspace), reset_register=False)
    assert sorted(path.name for path in manifest.parent.iterdir() if path.name.startswith("VerifyFrame_")) == [
        manifest.name
    ]


class VerifyRecorded(gokart.TaskOnKart[int]):
    """Keeps its run record in its manifest (kart_kedro's node runs do): no task_log file lists its outputs."""

    kart_run_record_in_manifest = True
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.n)


def test_an_unreadable_manifest_holding_the_run_record_goes_with_the_outputs_named_by_its_id(workspace: str) -> None:
    task = VerifyRecorded(n=3, workspace_directory=workspace)
    other = VerifyRecorded(n=4, workspace_directory=workspace)
    gokart.build([task, other], reset_register=False)
    manifest = Path(workspace, "log", "manifest", f"VerifyRecorded_{task.make_unique_id()}.json")
    manifest.write_text("{not json")
    report = verify_workspace(workspace)
    assert sorted(remove_damaged(report)) == sorted([task.output().path(), str(manifest)])
    assert Path(other.output().path()).exists()
    assert gokart.build(task, reset_register=False) == 3  # ran again
    assert verify_workspace(workspace).ok


def test_with_signing_a_same_size_copy_with_equal_content_fails_the_seal(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")

    class SealedText(gokart.TaskOnKart[str]):
        tag = luigi.Parameter()

        def output(self) -> gokart.TargetOnKart:
            return self.make_target("verify/text.txt")

        def run(self) -> None:
            self.dump("same text for every tag")

    one, two = SealedText(tag="a", workspace_directory=workspace), SealedText(tag="b", workspace_directory=workspace)
    gokart.build([one, two], reset_register=False)
    shutil.copyfile(one.output().path(), two.output().path())
    problems = verify_workspace(workspace).problems
    assert [(problem.kind, problem.path) for problem in problems] == [("signature", two.output().path())]
    monkeypatch.delenv(SIGNING_KEY)
    assert verify_workspace(workspace).ok  # without the key only size and hash can be checked, and they match


def test_verify_on_s3(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/resources"
    task = _built(workspace, 5)
    fs = fsspec.filesystem("s3", **_s3_options())
    frame = _frame_path(task)
    fs.pipe_file(frame, fs.cat_file(frame)[:-3])
    report = verify_workspace(workspace)
    assert [(problem.kind, problem.path) for problem in report.problems] == [("size", frame)]
    assert remove_damaged(report) == [frame] and not fs.exists(frame)


def _s3_options() -> dict[str, object]:
    from kart_core.storage.remote import s3_options

    return s3_options()


def test_kart_verify_command_reports_deletes_and_exits_3(workspace: str) -> None:
    task = _built(workspace, 5)
    ok = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert (
        ok.exit_code == 0 and "Checked 2 output(s) of 2 task(s)" in ok.output and "0 problem(s), 0 missing" in ok.output
    )

    frame = Path(_frame_path(task))
    frame.write_bytes(frame.read_bytes()[:-3])
    found = CliRunner().invoke(cli, ["verify", "-w", workspace, "--format", "json"])
    assert found.exit_code == DAMAGE_FOUND == 3
    document = json.loads(found.output)
    assert [(p["kind"], p["path"], p["deleted"]) for p in document["problems"]] == [("size", str(frame), False)]

    deleted = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert deleted.exit_code == DAMAGE_FOUND and "(deleted)" in deleted.output and not frame.exists()
    missing = CliRunner().invoke(cli, ["verify", "-w", workspace])  # a missing output is listed, not failed
    assert missing.exit_code == 0 and "0 problem(s), 1 missing" in missing.output
    gokart.build(task.requires(), reset_register=False)
    assert CliRunner().invoke(cli, ["verify", "-w", workspace, "--quick"]).exit_code == 0


def test_a_mistyped_workspace_is_an_error_not_a_clean_result(workspace: str, tmp_path: Path) -> None:
    from kart_core.errors import WorkspaceNotFoundError

    _built(workspace, 5)
    typo = str(tmp_path / "resorces")
    with pytest.raises(WorkspaceNotFoundError, match="resorces"):
        verify_workspace(typo)
    result = CliRunner().invoke(cli, ["verify", "-w", typo])
    assert result.exit_code == 1 and "No workspace at" in result.output and "Traceback" not in result.output
    os.makedirs(typo)  # an existing, empty folder is a workspace with nothing in it yet
    assert verify_workspace(typo).ok and verify_workspace(typo).outputs == 0


class VerifySavedFolder(gokart.TaskOnKart[str]):
    """Saves a folder at its output's path, as model.save(path) does."""

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("model/weights.pkl")

    def run(self) -> None:
        folder = Path(self.output().path())
        folder.mkdir(parents=True)
        (folder / "w.txt").write_text("1111")
        (folder / "config.txt").write_text("{}")


def test_a_folder_saved_at_an_output_path_is_listed_as_unrecorded(workspace: str) -> None:
    """Attacker at17 H4: kart records files, not folders; a workspace whose saved folder had a truncated file in it
    verified clean, even under --strict. It is listed as unrecorded (fails --strict), and never deleted on that."""
    task = VerifySavedFolder(workspace_directory=workspace)
    gokart.build(task, reset_register=False, return_value=False)  # a folder: read by its path, not loaded
    folder = Path(task.output().path())
    (folder / "w.txt").write_text("11")
    report = verify_workspace(workspace)
    assert report.ok and not report.strict_ok
    assert [(notice.kind, notice.path) for notice in report.notices] == [("unrecorded", str(folder))]
    assert "kart records files, not folders" in report.notices[0].detail
    assert remove_damaged(report, unrecorded=True) == []
    assert (folder / "w.txt").read_text() == "11" and (folder / "config.txt").exists()
    result = CliRunner().invoke(cli, ["verify", "-w", workspace, "--strict"])
    assert result.exit_code == DAMAGE_FOUND and str(folder) in result.output
