"""A task found complete at the start of a build whose upstream another task of the same build changes.

The walk judges every task once, before anything runs. When a task of the build then commits other
content for an upstream of a task already judged complete (a ``rerun=True`` of a shared upstream, a
damaged upstream repaired by another task's run or by the load of a root), that task was built from
content that is no longer there. The build must not hand it back: it checks its roots' lineage again
after the tasks ran and builds once more what became stale (content rule: a task built on a changed
upstream runs again only if what it loaded changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import luigi
import pytest

import kart_core
from kart_core.errors import UnfulfilledDependencyError
from kart_core.inspect.verify import verify_workspace
from kart_core.orchestrate import orchestrate
from kart_core.storage import storage_for

POOLS = [(1, "thread"), (2, "thread"), (2, "process")]


class DbUp(kart_core.TaskOnKart[Any]):
    """Dumps ``10 * value``; ``value`` is not part of the id (an edit the id does not cover)."""

    value = luigi.IntParameter(default=2, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class DbMid(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") * 2)


class DbDown(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") + 1)


class DbCounted(kart_core.TaskOnKart[Any]):
    """Not deterministic: dumps 10 times the number of its runs so far (counted in ``journal``)."""

    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("run\n")
        with open(self.journal) as handle:
            self.dump(10 * len(handle.read().splitlines()))


class DbParity(kart_core.TaskOnKart[Any]):
    """Loads its upstream but dumps only whether it is even: equal content for most changes upstream."""

    up = kart_core.TaskInstanceParameter()
    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("parity\n")
        self.dump(self.load("up") % 2 == 0)


def _build(tasks: Any, **kwargs: Any) -> Any:
    return kart_core.build(tasks, reset_register=False, **kwargs)


def _truncate(path: str) -> None:
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    with storage.atomic_write(path) as file:
        file.write(data[:2])  # a small int's pickle is 5 bytes: cut below that, or nothing changes


@pytest.mark.parametrize(("workers", "executor"), POOLS)
@pytest.mark.parametrize("down_first", [True, False])
def test_two_roots_sharing_an_upstream_rerun_by_one(
    workspace: str, workers: int, executor: str, down_first: bool
) -> None:
    """Down(Up) cached; Mid(Up(rerun=True)) in the same build writes Up anew (30): Down is 31, not 21."""
    ws = workspace
    assert _build(DbDown(up=DbUp(workspace_directory=ws), workspace_directory=ws)) == 21
    down = DbDown(up=DbUp(workspace_directory=ws), workspace_directory=ws)
    mid = DbMid(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    roots = [down, mid] if down_first else [mid, down]
    result = orchestrate(roots, workers=workers, executor=executor, load_roots=True)
    values = dict(zip(result.roots, result.values or [], strict=True))
    assert [values[key] for key in result.roots] == ([31, 60] if down_first else [60, 31])
    assert not result.stale_roots and not result.failed
    assert len(result.ran) == 3 and len(set(result.ran)) == 3  # Up, Mid, Down: each once
    assert result.roots[roots.index(down)] in result.stale and "3 ran" in result.summary()
    assert verify_workspace(ws).ok


@pytest.mark.parametrize(("workers", "executor"), POOLS)
def test_a_task_under_a_root_that_ran_before_its_upstream_changed(workspace: str, workers: int, executor: str) -> None:
    """Mid(Up) cached; Down(Mid(Up)) runs, and Down(Up(rerun=True)) in the same build writes Up anew: Mid
    is stale, and Down(Mid), which may have run before Up's rerun, is built on it. The build runs Mid
    again, then Down(Mid): 61, not 41."""
    ws = workspace
    assert _build(DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws)) == 40
    chain = DbDown(up=DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws), workspace_directory=ws)
    side = DbDown(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    assert _build([chain, side], workers=workers, executor=executor) == [61, 31]
    assert verify_workspace(ws).ok
    assert _build([chain], workers=workers, executor=executor) == [61]


@pytest.mark.parametrize(("workers", "executor"), POOLS)
def test_a_repair_with_other_content_by_another_root(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    """Down(Up) cached, Up damaged; Mid(Up) runs and its repair of Up writes other content (20): Down,
    fresh when the walk checked it, is built again from the new Up (21, not 11)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    _truncate(DbCounted(journal=journal, workspace_directory=ws).output().path())
    down, mid = (
        cls(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws) for cls in (DbDown, DbMid)
    )
    result = orchestrate([down, mid], workers=workers, executor=executor, load_roots=True)
    assert result.values == [21, 40] and not result.stale_roots
    assert len(result.repaired) == 1 and result.roots[0] in result.stale
    assert Path(journal).read_text().count("run") == 2  # the repair only: Counted did not run a third time
    assert verify_workspace(ws).ok


def test_a_root_repaired_by_its_load_with_other_content(workspace: str, tmp_path: Path) -> None:
    """Two roots, Counted and Down(Counted), both cached; Counted's output is damaged. Loading it to hand
    it back repairs it with other content (20): Down, loaded after, must be 21, not 11."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def counted() -> DbCounted:
        return DbCounted(journal=journal, workspace_directory=ws)

    assert _build(DbDown(up=counted(), workspace_directory=ws)) == 11
    _truncate(counted().output().path())
    result = orchestrate([counted(), DbDown(up=counted(), workspace_directory=ws)], load_roots=True)
    assert result.values == [20, 21] and not result.stale_roots
    assert verify_workspace(ws).ok


def test_a_change_that_leaves_what_a_task_dumps_equal_stops_there(workspace: str, tmp_path: Path) -> None:
    """Down(Parity(Up)) cached; Mid(Up(rerun=True)) writes Up = 40 (was 20): Parity runs again (its input
    changed) and dumps True again, so Down, whose input is unchanged, stays as it was."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def down(up: DbUp) -> DbDown:
        return DbDown(up=DbParity(up=up, journal=journal, workspace_directory=ws), workspace_directory=ws)

    assert _build(down(DbUp(workspace_directory=ws))) == 2
    mid = DbMid(up=DbUp(value=4, rerun=True, workspace_directory=ws), workspace_directory=ws)
    result = orchestrate([down(DbUp(workspace_directory=ws)), mid], load_roots=True)
    assert result.values == [2, 80]
    assert Path(journal).read_text().count("parity") == 2
    assert result.roots[0] in result.cached and result.roots[0] not in result.ran
    assert verify_workspace(ws).ok


def test_a_rerun_task_runs_once_per_build(workspace: str, tmp_path: Path) -> None:
    """Counted(rerun=True) beside Down(Counted) cached: the build checks again after Counted reran with
    other content and runs Down, without re-arming Counted's rerun (it would never settle)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    rerun = DbCounted(journal=journal, rerun=True, workspace_directory=ws)
    down = DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    assert _build([down, rerun]) == [21, 20]
    assert Path(journal).read_text().count("run") == 2


class DbPicky(kart_core.TaskOnKart[Any]):
    """Fails on an upstream value above 15."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        value = self.load("up")
        if value > 15:
            raise ValueError(f"too big: {value}")
        self.dump(value + 1)


class DbFail(kart_core.TaskOnKart[Any]):
    def run(self) -> None:
        raise RuntimeError("boom")


class DbFetch(kart_core.TaskOnKart[Any]):
    """Always fetches anew (``complete()`` is False: a gokart pattern for 'latest data'); counts its runs."""

    journal = luigi.Parameter(significant=False)

    def complete(self) -> bool:
        return False

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("fetch\n")
        with open(self.journal) as handle:
            self.dump(len(handle.read().splitlines()))


@pytest.mark.parametrize("spelling", ["relative", "dot", "trailing", "symlink", "file_url", "absolute"])
def test_an_upstream_workspace_spelled_otherwise_than_the_downstream_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """Down(Counted) cached, Counted's workspace spelled otherwise than Down's (the same folder); Counted
    (rerun=True) in the same build writes 20: Down is built again (21). The check after a round compared
    the committed manifest's path with the recorded inputs as plain strings, and a relative path from
    another workspace was recorded as spelled (then joined to the downstream's workspace when read)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws").mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    ws = str(tmp_path / "ws")
    up_ws = {
        "relative": "ws",
        "dot": "./ws/",
        "trailing": ws + "/",
        "symlink": str(tmp_path / "link" / "ws"),
        "file_url": "file://" + ws,
        "absolute": ws,
    }[spelling]
    journal = str(tmp_path / "journal.txt")

    def counted(**kwargs: Any) -> DbCounted:
        return DbCounted(journal=journal, workspace_directory=up_ws, **kwargs)

    assert _build(DbDown(up=counted(), workspace_directory=ws)) == 11
    result = orchestrate([DbDown(up=counted(), workspace_directory=ws), counted(rerun=True)], load_roots=True)
    assert result.values == [21, 20] and not result.stale_roots
    assert Path(journal).read_text().count("run") == 2
    assert "2 ran (1 stale), 0 cached" in result.summary()


def test_lineage_compares_manifest_paths_canonically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Lineage.records_any`` finds a recorded input however the other side spells its path."""
    from kart_core import lineage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path)
    checked = lineage.Lineage()
    checked._inputs.add(str(tmp_path / "ws" / "log" / "manifest" / "A_1.json"))
    for spelling in (
        "ws/log/manifest/A_1.json",
        "./ws/log/manifest/A_1.json",
        str(tmp_path / "link" / "ws" / "log" / "manifest" / "A_1.json"),
        f"file://{tmp_path}/ws/log/manifest/A_1.json",
        str(tmp_path / "ws" / "." / "log" / "manifest" / "A_1.json"),
    ):
        assert checked.records_any([spelling]), spelling
    assert not checked.records_any(["ws/log/manifest/B_1.json"])
    # A reference from an old manifest to another workspace given relative: from the workspace's folder, not the cwd.
    assert lineage.resolve("other/log/manifest/A_1.json", "/ws") == "/other/log/manifest/A_1.json"
    assert lineage.resolve("log/manifest/A_1.json", "/ws") == "/ws/log/manifest/A_1.json"


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
def test_keep_going_builds_again_what_an_unrelated_failure_left_stale(
    workspace: str, tmp_path: Path, workers: int, executor: Literal["thread", "process"]
) -> None:
    """Down(Counted) cached; roots Down, Counted(rerun=True) and an unrelated failing task, keep_going: the
    failure does not end the rounds for the rest: Down is built again from the new Counted (21)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    down = DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    rerun = DbCounted(journal=journal, rerun=True, workspace_directory=ws)
    result = orchestrate(
        [down, rerun, DbFail(workspace_directory=ws)], workers=workers, executor=executor, keep_going=True
    )
    assert list(result.failed) == [result.roots[2]] and not result.stale_roots
    assert result.roots[0] in result.ran and result.roots[0] not in result.cached
    assert down.output().load() == 21
    assert "2 ran (1 stale), 0 cached, 1 failed" in result.summary()


def test_a_failure_names_the_roots_it_leaves_stale(workspace: str, tmp_path: Path) -> None:
    """Down(Counted) cached; roots Down, Counted(rerun=True) and Picky(Counted), failing on the new Counted; without keep_going the
    build stops at the failure: nothing is loaded, and a root left built on the replaced Counted is named."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    down = DbDown(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    rerun = DbCounted(journal=journal, rerun=True, workspace_directory=ws)
    fail = DbPicky(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    result = orchestrate([down, rerun, fail], load_roots=True)
    assert result.values is None and list(result.failed) == [result.roots[2]]
    assert result.roots[0] in result.cached and result.stale_roots == [result.roots[0]]
    assert "1 ran, 1 cached (1 built on stale upstreams), 1 failed" in result.summary()


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
def test_a_task_found_complete_that_fails_in_a_later_round_counts_once(
    workspace: str, tmp_path: Path, workers: int, executor: Literal["thread", "process"]
) -> None:
    """Picky(Counted) cached (11); Counted(rerun=True) writes 20, and Picky, run again, fails on it: Picky
    counts as failed only (not cached too), and no annotation stands beside a count it is not in."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbPicky(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)) == 11
    picky = DbPicky(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws)
    rerun = DbCounted(journal=journal, rerun=True, workspace_directory=ws)
    result = orchestrate([picky, rerun], workers=workers, executor=executor)
    assert list(result.failed) == [result.roots[0]] and result.ran == [result.roots[1]]
    assert not result.cached and not result.stale_roots
    assert result.summary().startswith("kart build: 1 ran, 0 cached, 1 failed, 0 not run")


def test_a_task_always_incomplete_runs_once_per_build_and_stops_its_reader(workspace: str, tmp_path: Path) -> None:
    """Use(Fetch), Fetch's ``complete()`` always False (it overrides it): one build of Use and Fetch runs Fetch
    once (the next round does not run it again), and Use does not run on it: luigi's worker refuses a task whose
    requirement is incomplete right before it runs ("Unfulfilled dependency at run time", attacker at14 N18)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    fetch = DbFetch(journal=journal, workspace_directory=ws)
    down = DbDown(up=DbFetch(journal=journal, workspace_directory=ws), workspace_directory=ws)
    result = orchestrate([down, fetch], load_roots=True)
    assert Path(journal).read_text().count("fetch") == 1  # once in this build
    assert list(result.failed) == [result.roots[0]] and result.ran == [result.roots[1]]
    assert isinstance(result.failed[result.roots[0]], UnfulfilledDependencyError)


def test_keep_going_does_not_name_a_root_stopped_by_the_failure(workspace: str, tmp_path: Path) -> None:
    """Down(Picky(Counted)) built; Counted(rerun=True) writes 20 and Picky fails on it (keep_going): Down
    is not run (its upstream failed), so it is not named as handed back stale either."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def down() -> DbDown:
        return DbDown(
            up=DbPicky(up=DbCounted(journal=journal, workspace_directory=ws), workspace_directory=ws),
            workspace_directory=ws,
        )

    assert _build(down()) == 12
    result = orchestrate([down(), DbCounted(journal=journal, rerun=True, workspace_directory=ws)], keep_going=True)
    assert len(result.failed) == 1 and not result.stale_roots and not result.cached
    assert result.roots[0] in result.not_run


class DbTally(kart_core.TaskOnKart[Any]):
    """``load("up") + 1``; each run appends its name and what it loaded to ``journal``."""

    up = kart_core.TaskInstanceParameter()
    journal = luigi.Parameter(significant=False)
    name = luigi.Parameter(default="tally", significant=False)

    def run(self) -> None:
        value = self.load("up")
        with open(self.journal, "a") as handle:
            handle.write(f"{self.name} {value}\n")
        self.dump(value + 1)


def _runs(journal: str, name: str) -> list[str]:
    return [line.split()[1] for line in Path(journal).read_text().splitlines() if line.split()[0] == name]


@pytest.mark.parametrize(("workers", "executor"), POOLS)
@pytest.mark.parametrize("chain_first", [True, False])
def test_a_task_over_a_complete_upstream_whose_upstream_reruns_later_runs_once(
    workspace: str, tmp_path: Path, workers: int, executor: str, chain_first: bool
) -> None:
    """Mid(Up) and Judged(Up) cached (40, 21); roots Tally(Mid(Up)) (never built), Down(Up(rerun=True)) and
    Judged(Up). The walk finds Mid and Judged complete, but Up's rerun in the same round writes 30: Mid and
    Judged are stale. Tally must run once, from the new Mid (60), not first from the old one (40) and again
    in the next round; Judged runs once, in the next round, from the new Up (30)."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def judged() -> DbTally:
        return DbTally(up=DbUp(workspace_directory=ws), journal=journal, name="judged", workspace_directory=ws)

    assert _build([DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws), judged()]) == [40, 21]
    mid = DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws)
    chain = DbTally(up=mid, journal=journal, workspace_directory=ws)
    side = DbDown(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    roots = [chain, side, judged()] if chain_first else [side, chain, judged()]
    result = orchestrate(roots, workers=workers, executor=executor, load_roots=True)
    assert result.values == ([61, 31, 31] if chain_first else [31, 61, 31]) and not result.failed
    assert _runs(journal, "tally") == ["60"]
    assert _runs(journal, "judged") == ["20", "30"]  # the first build's run, then this build's
    assert len(result.ran) == 5 and len(set(result.ran)) == 5  # Up, Down, Mid, Tally, Judged: each once
    assert "5 ran (2 stale), 0 cached" in result.summary()
    assert verify_workspace(ws).ok


def test_a_task_held_for_the_next_round_counts_as_not_run_when_the_build_stops(workspace: str, tmp_path: Path) -> None:
    """Mid(Up) cached; roots Down(Up(rerun=True)), Tally(Mid(Up)) and a failing task, without keep_going: Tally
    waits for the round after Up's rerun, the failure stops the build first, so Tally never ran (not from
    the Mid Up's rerun makes stale either) and counts as not run."""
    ws = workspace
    journal = str(tmp_path / "journal.txt")
    assert _build(DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws)) == 40
    chain = DbTally(
        up=DbMid(up=DbUp(workspace_directory=ws), workspace_directory=ws), journal=journal, workspace_directory=ws
    )
    side = DbDown(up=DbUp(value=3, rerun=True, workspace_directory=ws), workspace_directory=ws)
    result = orchestrate([side, chain, DbFail(workspace_directory=ws)])
    assert not Path(journal).exists()
    assert list(result.failed) == [result.roots[2]] and result.roots[1] in result.not_run
    assert result.roots[1] not in result.ran + result.cached


class DbPing(kart_core.TaskOnKart[Any]):
    """Loads what ``DbPong`` holds, through its target (not required), and dumps the number of runs so far."""

    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        _bounce(self, DbPong(journal=self.journal, workspace_directory=self.workspace_directory), "ping")


class DbPong(kart_core.TaskOnKart[Any]):
    """Loads what ``DbPing`` holds and dumps the number of runs so far: with DbPing, a cycle of loads that
    never settles (each run commits content no run committed before, so a load of the other's older
    version is always stale)."""

    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        _bounce(self, DbPing(journal=self.journal, workspace_directory=self.workspace_directory), "pong")


def _bounce(task: kart_core.TaskOnKart[Any], other: kart_core.TaskOnKart[Any], name: str) -> None:
    target = other.output()
    loaded = target.load() if target.exists() else 0
    with open(str(task.journal), "a") as handle:
        handle.write(f"{name} {loaded}\n")
    with open(str(task.journal)) as handle:
        task.dump(len(handle.read().splitlines()))


@pytest.mark.parametrize(("workers", "executor"), POOLS)
def test_a_lineage_that_never_settles_stops_at_the_round_cap_with_a_named_error(
    workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    """Ping and Pong each load the other's output: after Ping reruns, every round's commit replaces what
    the other loaded, so each round runs one of them again. The build stops after the cap (20 rounds
    after the first) and fails the roots left stale with a ``RoundLimitError`` naming both tasks (it ended
    after 3 rounds: a task that ran again was not counted as a commit, and the roots left stale only had the
    generic warning). A second such build finds both incomplete (the walk checks no lineage of a complete
    task): it goes to the cap too (it ended after one round, a root stale without a word: the check after a
    round counted only inputs recorded in lineages the walk checked, not those ``complete()`` read)."""
    from kart_core.errors import RoundLimitError
    from kart_core.orchestrate import _MAX_ROUNDS

    ws = workspace
    journal = str(tmp_path / "journal.txt")

    def ping(**kwargs: Any) -> DbPing:
        return DbPing(journal=journal, workspace_directory=ws, **kwargs)

    pong = DbPong(journal=journal, workspace_directory=ws)
    assert _build([ping(), pong]) == [1, 2]  # Ping found no Pong; Pong loaded Ping's 1
    before = len(Path(journal).read_text().splitlines())
    result = orchestrate([ping(rerun=True), pong], workers=workers, executor=executor, load_roots=True)
    runs = Path(journal).read_text().splitlines()[before:]
    # At least one run per round, the first and then each up to the cap (two at once when both were
    # stale in one round: a pool may run both); serially exactly one per round, each from the other's last.
    assert _MAX_ROUNDS + 1 <= len(runs) <= 2 * (_MAX_ROUNDS + 1)
    if workers == 1:
        expected = [f"{'pong' if n % 2 else 'ping'} {before + n}" for n in range(_MAX_ROUNDS + 1)]
        assert runs == expected
    if workers == 1:
        assert sorted(result.failed) == sorted(result.roots)  # each is built on what the other replaced
    else:  # in a pool the last round may run one after the other's commit: that one is current (CI under load 10)
        assert result.failed and set(result.failed) <= set(result.roots)
    for error in result.failed.values():
        assert isinstance(error, RoundLimitError)
        assert f"stopped after {_MAX_ROUNDS + 1} rounds" in str(error)
        assert "DbPing[" in str(error) and "DbPong[" in str(error)
    assert result.values is None and not result.stale_roots
    with pytest.raises(kart_core.GokartBuildError, match=r"RoundLimitError: kart build stopped after") as caught:
        _build([ping(rerun=True), pong], workers=workers, executor=executor)
    assert isinstance(caught.value.__cause__, RoundLimitError)
