"""kart_core.damage: outputs rewritten after kart's commit, and outputs no integrity record vouches for.

A rewrite by another writer (gokart rerunning a task writes the same path) is simulated by writing
the file and setting its mtime after its manifest's, as any later write does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
from pathlib import Path

import fork_server
import luigi
import pytest
from bit_rot import rot
from click.testing import CliRunner
from fork_server import GOKART, KART

import kart_core as gokart
from kart_core.cli import DAMAGE_FOUND, cli
from kart_core.damage import maybe_rewritten, rewritten_digest
from kart_core.errors import DamagedOutputError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.integrity import DEFAULT_ALGORITHM, digest_bytes
from kart_core.manifest import Manifest, read_unverified
from kart_core.signing import HEADER_SIZE
from kart_core.storage import storage_for
from kart_core.target import TargetOnKart


class Word(gokart.TaskOnKart[str]):
    tag = luigi.Parameter(significant=False, default="v1")

    def run(self) -> None:
        self.dump(f"value-{self.tag}")


class Suffixed(gokart.TaskOnKart[str]):
    def requires(self) -> Word:
        return Word(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + "+B")


class Table(gokart.TaskOnKart[list[str]]):
    def output(self) -> TargetOnKart:
        return self.make_target("table/rows.txt")

    def run(self) -> None:
        self.dump([str(i) for i in range(100)])


class Counted(gokart.TaskOnKart[int]):
    def requires(self) -> Table:
        return Table(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(len(self.load()))


class Fixed(gokart.TaskOnKart[str]):
    n = luigi.IntParameter()

    def output(self) -> TargetOnKart:
        return self.make_target("shared/fixed.pkl", use_unique_id=False)

    def run(self) -> None:
        self.dump(f"n={self.n}")


def _manifest(task: gokart.TaskOnKart) -> Path:
    return Path(task.workspace_directory) / "log" / "manifest" / f"{type(task).__name__}_{task.make_unique_id()}.json"


def _rewrite(path: str, data: bytes, manifest: Path) -> None:
    """Write ``data`` at ``path`` as another writer does, after the commit ``manifest`` records."""
    Path(path).write_bytes(data)
    later = manifest.stat().st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(later, later))


def _as_older_kart(workspace: str) -> None:
    """Write each unsigned manifest of ``workspace`` as kart before 2026-12-03 did (its entries without a stamp,
    ``Entry.stamp``), its times kept: its outputs are judged by the manifest's modification time."""
    for manifest in Path(workspace).rglob("log/manifest/*.json"):
        before = manifest.stat()
        try:
            current = Manifest.from_bytes(manifest.read_bytes())
        except ValueError:  # signed: it records no stamps
            continue
        outputs = {key: dataclasses.replace(entry, stamp=None) for key, entry in current.outputs.items()}
        manifest.write_bytes(dataclasses.replace(current, outputs=outputs).to_bytes())
        os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_a_same_size_rewrite_is_a_new_version_and_its_downstream_reruns(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    up = down.requires()
    _rewrite(up.output().path(), pickle.dumps("value-v2"), _manifest(up))  # the same size, other content

    caplog.set_level(logging.WARNING)
    assert gokart.build(down, reset_register=False) == "value-v2+B"  # stale: rerun on the new version
    messages = " ".join(_warnings(caplog))
    assert "rewritten outside kart" in messages and "after kart recorded its commit" in messages
    assert "records it as a new version" in messages
    caplog.clear()
    assert gokart.build(down, reset_register=False) == "value-v2+B"  # recorded: no more warnings
    assert _warnings(caplog) == []
    assert verify_workspace(workspace).ok


def _copy_keeping_time(path: str, data: bytes) -> None:
    """``cp -p`` over the file: the same inode rewritten, its modification time set back to what it was."""
    before = os.stat(path)
    with open(path, "r+b") as file:
        file.write(data)
        file.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _extract_keeping_time(path: str, data: bytes) -> None:
    """``rsync -a`` / ``tar x`` / ``unzip``: a new file with an old modification time put in the output's place."""
    old = os.stat(path).st_mtime_ns - 86_400_000_000_000  # a day before the commit
    Path(path + ".part").write_bytes(data)
    os.utime(path + ".part", ns=(old, old))
    os.replace(path + ".part", path)


@pytest.mark.parametrize("put", [_copy_keeping_time, _extract_keeping_time], ids=["cp -p", "rsync -a"])
def test_a_same_size_rewrite_with_its_time_set_back_is_a_new_version(
    workspace: str, caplog: pytest.LogCaptureFixture, put: object
) -> None:
    """Attacker at17 H3: a same-size foreign file put over a committed output with an old modification time (cp -p,
    rsync -a, tar x, touch -r) was loaded as the committed content: a new reader got the foreign value and the
    downstream built on the commit stayed fresh. The status-change time, which no call sets back, tells."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    up = down.requires()
    assert callable(put)
    put(up.output().path(), pickle.dumps("value-v2"))
    caplog.set_level(logging.WARNING)
    assert gokart.build(down, reset_register=False) == "value-v2+B"  # stale: rerun on the new version
    assert "records it as a new version" in " ".join(_warnings(caplog))
    assert verify_workspace(workspace).ok


def test_a_first_commit_leaves_its_outputs_older_than_its_manifest(workspace: str) -> None:
    """A first commit writes the manifest before it moves the outputs (each move sets an output's status-change
    time), then sets the manifest's time: its loads take the cheap path (two stats, no hash)."""
    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    assert not maybe_rewritten(up.output().path(), str(_manifest(up)))
    down = Suffixed(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    assert not maybe_rewritten(down.output().path(), str(_manifest(down)))


def test_a_same_size_rewrite_seen_first_by_loading_the_upstream(workspace: str) -> None:
    down = Suffixed(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    up = down.requires()
    _rewrite(up.output().path(), pickle.dumps("value-v3"), _manifest(up))
    assert gokart.build(up, reset_register=False) == "value-v3"  # whole per its format: served, recorded
    report = verify_workspace(workspace)
    assert [problem.kind for problem in report.problems] == ["stale"]
    assert gokart.build(down, reset_register=False) == "value-v3+B"


def test_a_touched_output_with_its_committed_content_stays_that_commit(workspace: str) -> None:
    down = Suffixed(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    up = down.requires()
    before = _manifest(up).read_bytes()
    _rewrite(up.output().path(), Path(up.output().path()).read_bytes(), _manifest(up))
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    assert gokart.build(up, reset_register=False) == "value-v1"
    assert _manifest(up).read_bytes() == before


def test_with_verify_a_same_size_rewrite_is_damage_that_says_it_was_rewritten(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    _rewrite(up.output().path(), pickle.dumps("value-v9"), _manifest(up))
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    with pytest.raises(DamagedOutputError, match=r"rewritten after kart's commit .*gokart rerunning"):
        up.output().load()


def test_a_rewrite_of_another_size_is_damage_that_says_it_was_rewritten(workspace: str) -> None:
    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    _rewrite(up.output().path(), pickle.dumps("value-longer"), _manifest(up))
    with pytest.raises(DamagedOutputError, match=r"rewritten after kart's commit") as caught:
        up.output().load()
    assert "after kart recorded its commit" in caught.value.detail
    report = verify_workspace(workspace)
    assert [problem.kind for problem in report.problems] == ["size"]
    assert "another writer" in report.problems[0].detail


def test_a_truncated_text_output_is_damage_not_a_new_version(workspace: str) -> None:
    down = Counted(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False) == 100
    up = down.requires()
    path = up.output().path()
    _rewrite(path, Path(path).read_bytes()[:100], _manifest(up))
    with pytest.raises(DamagedOutputError, match="bytes were committed"):
        up.output().load()
    assert gokart.build(Counted(workspace_directory=workspace, rerun=True), reset_register=False) == 100


def test_damage_without_a_rewrite_keeps_its_message(workspace: str) -> None:
    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    path = up.output().path()
    rot(path, b"x")  # not newer than the commit: not another writer's
    with pytest.raises(DamagedOutputError, match="truncated or changed after kart committed it"):
        up.output().load()


def test_an_output_placed_before_its_task_ran_warns_and_verify_lists_it(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    up = Table(workspace_directory=workspace)
    Path(up.output().path()).parent.mkdir(parents=True)
    Path(up.output().path()).write_text("1\n2\n")
    caplog.set_level(logging.WARNING)
    assert gokart.build(Counted(workspace_directory=workspace), reset_register=False) == 2  # loads, as gokart's
    assert any("loads unchecked" in m and "put there by hand" in m for m in _warnings(caplog))

    report = verify_workspace(workspace)
    assert report.ok and not report.strict_ok
    assert [(notice.kind, notice.path) for notice in report.notices] == [("unrecorded", up.output().path())]
    assert remove_damaged(report) == [] and os.path.exists(up.output().path())
    assert remove_damaged(report, unrecorded=True) == [up.output().path()]


def test_a_removed_manifest_warns_at_load_and_in_verify(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    down = Counted(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    up = down.requires()
    _manifest(up).unlink()
    caplog.set_level(logging.WARNING)
    assert up.output().load()[:2] == ["0", "1"]
    assert any("integrity record" in m and "removed since" in m for m in _warnings(caplog))
    (notice,) = verify_workspace(workspace).notices
    assert "kart ran Table" in notice.detail


def test_gokart_written_outputs_load_quietly_and_are_notices(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    down = Counted(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    up = down.requires()
    _manifest(up).unlink()
    versions = Path(workspace) / "log" / "module_versions" / f"Table_{up.make_unique_id()}.txt"
    versions.write_text("")  # gokart writes this log empty
    caplog.set_level(logging.WARNING)
    up.output().load()
    assert _warnings(caplog) == []
    (notice,) = verify_workspace(workspace).notices
    assert notice.detail.startswith("written by gokart")

    runner = CliRunner()
    listed = runner.invoke(cli, ["verify", "-w", workspace])
    assert listed.exit_code == 0, listed.output
    assert "1 written by gokart" in listed.output
    strict = runner.invoke(cli, ["verify", "-w", workspace, "--strict"])
    assert strict.exit_code == DAMAGE_FOUND
    assert os.path.exists(up.output().path())
    deleted = runner.invoke(cli, ["verify", "-w", workspace, "--delete-unrecorded"])
    assert deleted.exit_code == 0 and "(deleted)" not in deleted.output  # gokart's are counted, not listed
    assert not os.path.exists(up.output().path())


def test_a_fixed_path_shared_across_parameters_warns(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    assert gokart.build(Fixed(n=1, workspace_directory=workspace), reset_register=False) == "n=1"
    caplog.set_level(logging.WARNING)
    assert gokart.build(Fixed(n=2, workspace_directory=workspace), reset_register=False) == "n=1"  # as gokart
    assert any("use_unique_id=False" in m and "another parameter set" in m for m in _warnings(caplog))


_SHARED_SCRIPT = """
import os, sys, luigi
if os.environ.get("USE_GOKART"):
    import gokart
else:
    import kart_core as gokart
class A(gokart.TaskOnKart):
    tag = luigi.Parameter(significant=False, default="v1")
    def run(self): self.dump(f"value-{self.tag}")
class B(gokart.TaskOnKart):
    def requires(self): return A()
    def run(self): self.dump(self.load() + "+B")
if __name__ == "__main__":
    if sys.argv[1] == "A": print(gokart.build(A(tag=sys.argv[2], rerun=True)))
    else: print(gokart.build(B()))
"""


def _script(tmp_path: Path, *args: str, use_gokart: bool = False) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("USE_GOKART", None)
    if use_gokart:
        env["USE_GOKART"] = "1"
    # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
    done = fork_server.run(["shared.py", *args], tmp_path, env, 300, GOKART if use_gokart else KART)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] + "\n" + done.stderr


def test_gokart_rerunning_a_task_kart_built_is_seen_by_kart(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("gokart") is None:  # not imported here: gokart runs in a subprocess only
        pytest.skip("gokart (a test-only dependency) is not installed")
    (tmp_path / "shared.py").write_text(_SHARED_SCRIPT)
    assert _script(tmp_path, "B").startswith("value-v1+B")
    assert _script(tmp_path, "A", "v2", use_gokart=True).startswith("value-v2")  # the same size
    rebuilt = _script(tmp_path, "B")
    assert rebuilt.startswith("value-v2+B"), rebuilt  # B was built on the old A: stale, rerun
    assert "rewritten outside kart" in rebuilt

    assert _script(tmp_path, "A", "v22", use_gokart=True).startswith("value-v22")  # another size
    report = verify_workspace(str(tmp_path / "resources"))
    (problem,) = [problem for problem in report.problems if problem.kind == "size"]
    # gokart writes a new file and renames it into place: not the file kart's commit recorded (Entry.stamp)
    assert "another file is in its place" in problem.detail and "gokart" in problem.detail


def test_a_fixed_path_rewritten_by_another_parameter_set_says_so(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = Fixed(n=1, workspace_directory=workspace)
    gokart.build(first, reset_register=False)
    gokart.build(Fixed(n=2, workspace_directory=workspace, rerun=True), reset_register=False)  # the same size
    later = _manifest(first).stat().st_mtime_ns + 5_000_000_000
    os.utime(first.output().path(), ns=(later, later))  # as a later run's write, whatever the clock's granularity
    caplog.set_level(logging.WARNING)
    assert gokart.build(first, reset_register=False) == "n=2"  # as gokart: the path is shared
    assert any("rewritten outside kart" in m and "another parameter set" in m for m in _warnings(caplog))


def test_a_new_version_is_not_recorded_over_a_run_committed_since(workspace: str) -> None:
    """A load that found a rewrite records it only over the commit it compared against (a rerun may have won)."""
    import dataclasses

    from kart_core.manifest import read_unverified
    from kart_core.storage import storage_for
    from kart_core.transaction import record_direct_dump

    up = Word(workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    record = up.output().record
    storage = storage_for(record.manifest)
    seen = read_unverified(storage, record.manifest).outputs[record.key]  # what the load compared against
    assert gokart.build(Word(tag="v9", rerun=True, workspace_directory=workspace), reset_register=False) == "value-v9"
    now = read_unverified(storage, record.manifest).outputs[record.key]
    assert now.commit != seen.commit
    adopted = dataclasses.replace(seen, digest="xxh3_128:" + "0" * 32, commit="f" * 16)
    assert not record_direct_dump(storage, record, adopted, None, replacing=seen.commit)
    assert read_unverified(storage, record.manifest).outputs[record.key] == now
    assert gokart.build(up, reset_register=False) == "value-v9" and verify_workspace(workspace).ok
    assert record_direct_dump(storage, record, dataclasses.replace(now, commit="e" * 16), None, replacing=now.commit)
    assert read_unverified(storage, record.manifest).outputs[record.key].commit == "e" * 16


@pytest.mark.parametrize("signing", [False, True])
def test_rewritten_digest_hashes_what_the_manifest_hashes(
    workspace: str, signing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before with signing on: the signature header was hashed too, so a touched output with its
    committed content read as other content (its downstream stale) and a rewrite's digest matched nothing."""
    if signing:
        monkeypatch.setenv("KART_SIGNING_KEY", "a secret")
    else:
        monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    down = Suffixed(workspace_directory=workspace)
    gokart.build(down, reset_register=False)
    up = down.requires()
    path, manifest = up.output().path(), _manifest(up)
    entry = read_unverified(storage_for(str(manifest)), str(manifest)).outputs[up.output().record.key]
    assert entry.sealed is signing
    committed = Path(path).read_bytes()
    down_record = _manifest(down).read_bytes()

    _rewrite(path, committed, manifest)  # touched (or copied back): its committed content, newer than its manifest
    assert rewritten_digest(path, str(manifest), entry) is None
    assert verify_workspace(workspace).ok  # not stale
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    assert _manifest(down).read_bytes() == down_record  # served from cache, not run again

    other = pickle.dumps("value-v9")  # the same size, other content; a sealed file keeps a header before it
    _rewrite(path, committed[:HEADER_SIZE] + other if signing else other, manifest)
    assert rewritten_digest(path, str(manifest), entry) == f"{DEFAULT_ALGORITHM}:{digest_bytes(other)}"


class TwoOutputs(gokart.TaskOnKart[dict]):
    tag = luigi.Parameter(significant=False, default="v1")

    def output(self) -> dict[str, TargetOnKart]:
        return {"a": self.make_target("two/a.pkl"), "b": self.make_target("two/b.pkl")}

    def run(self) -> None:
        self.dump(f"a-{self.tag}", "a")
        self.dump(f"b-{self.tag}", "b")


class ReadsA(gokart.TaskOnKart[str]):
    def requires(self) -> TwoOutputs:
        return TwoOutputs(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load("a") + "+A")


@pytest.mark.parametrize("put", [_copy_keeping_time, _extract_keeping_time], ids=["cp -p", "rsync -a"])
def test_recording_one_output_s_new_version_records_its_sibling_s_too(
    workspace: str, caplog: pytest.LogCaptureFixture, put: object
) -> None:
    """Attacker at17 H11: output a rewritten with its time set back, then b rewritten plainly; the load of b recorded
    b's new version, which wrote the manifest again, past a's change: a was never checked again and ReadsA stayed
    fresh on the old content. The manifest written for b records a's new version with it."""
    reader = ReadsA(workspace_directory=workspace)
    assert gokart.build(reader, reset_register=False) == "a-v1+A"
    two = reader.requires()
    assert callable(put)
    put(two.output()["a"].path(), pickle.dumps("a-v2"))
    _rewrite(two.output()["b"].path(), pickle.dumps("b-v2"), _manifest(two))
    caplog.set_level(logging.WARNING)
    assert two.output()["b"].load() == "b-v2"  # recorded as a new version, and a with it
    assert "two/a_" in " ".join(_warnings(caplog)) and "records it as a new version" in " ".join(_warnings(caplog))
    assert gokart.build(reader, reset_register=False) == "a-v2+A"  # stale: rerun on a's new version
    assert verify_workspace(workspace).ok


def _chmod_manifests(workspace: str) -> None:
    for manifest in (Path(workspace) / "log" / "manifest").glob("*.json"):
        manifest.chmod(0o664)


def _chmod_everything(workspace: str) -> None:
    for path in Path(workspace).rglob("*"):
        if path.is_file():
            path.chmod(0o664)


@pytest.mark.parametrize("after", [_chmod_manifests, _chmod_everything], ids=["chmod manifest", "chmod -R"])
def test_a_chmod_after_a_copy_does_not_hide_it(workspace: str, after: object) -> None:
    """Attacker at18 I10: a chmod (giving a team write access) moves the manifest's status-change time past the
    copy's, which hid a same-size copy put over an output (cp -p, or a plain cp) from every load. The manifest's
    modification time, which only kart sets, is what an output is compared with."""
    down = Suffixed(workspace_directory=workspace)
    assert gokart.build(down, reset_register=False) == "value-v1+B"
    up = down.requires()
    _copy_keeping_time(up.output().path(), pickle.dumps("value-v2"))
    assert callable(after)
    after(workspace)
    assert gokart.build(down, reset_register=False) == "value-v2+B"  # stale: rerun on the new version
