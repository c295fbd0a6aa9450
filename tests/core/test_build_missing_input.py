"""A build where one branch lacks an external input: the other branches are built, as under gokart (attacker at14 N4).

luigi calls a missing ``luigi.ExternalTask`` output "missing data": its worker runs every task that does not
need it, and gokart 1.12.2's ``build()`` then returns None (``return_value=False``) or raises the
``FileNotFoundError`` of loading the root it could not make (``return_value=True``). Each case runs under
gokart and under kart in its own process (``gokart_twin``) and the reports must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest
from click.testing import CliRunner
from gokart_twin import run_both

import kart_core
from kart_core.cli import cli
from kart_core.errors import GokartBuildError, MissingInputBuildError

_SCRIPT = """
import json
import luigi
import gokart


class Absent(luigi.ExternalTask):
    def output(self):
        return luigi.LocalTarget('absent/input.csv')


class NeedsAbsent(gokart.TaskOnKart):
    tag = luigi.Parameter()

    def requires(self):
        return Absent()

    def run(self):
        self.dump('never')


class Independent(gokart.TaskOnKart):
    tag = luigi.Parameter()

    def run(self):
        self.dump('built ' + self.tag)


class Both(gokart.TaskOnKart):
    tag = luigi.Parameter()

    def requires(self):
        return {'needs': NeedsAbsent(tag=self.tag), 'independent': Independent(tag=self.tag)}

    def run(self):
        self.dump('both')


def attempt(tag, **kwargs):
    try:
        value = gokart.build(Both(tag=tag), reset_register=False, **kwargs)
    except Exception as exc:
        outcome = {'file_not_found': isinstance(exc, FileNotFoundError)}
    else:
        outcome = {'returned': repr(value)}
    outcome['independent_built'] = Independent(tag=tag).complete()
    outcome['needs_built'] = NeedsAbsent(tag=tag).complete()
    return outcome


print(json.dumps({
    'value_false': attempt('a', return_value=False),
    'value_true': attempt('b'),
}))
"""


def test_a_missing_input_stops_only_its_branch_and_build_returns_or_raises_as_gokart(tmp_path: Path) -> None:
    results = run_both(_SCRIPT, tmp_path)
    assert results["kart"] == results["gokart"]
    assert results["kart"]["value_false"] == {"returned": "None", "independent_built": True, "needs_built": False}
    assert results["kart"]["value_true"] == {"file_not_found": True, "independent_built": True, "needs_built": False}


# --- kart only: gokart 1.12.2's build() takes one task, kart's a list too, and runs on a pool --------------


class MiAbsent(luigi.ExternalTask):
    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)


class MiNeeds(kart_core.TaskOnKart[str]):
    path = luigi.Parameter()

    def requires(self) -> MiAbsent:
        return MiAbsent(path=self.path)

    def run(self) -> None:
        self.dump("never")


class MiIndependent(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("built")


class MiFails(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        raise ValueError("asked to fail")


@pytest.mark.parametrize("workers", [1, 2])
def test_every_root_that_does_not_need_the_input_is_built(tmp_path: Path, workers: int) -> None:
    ws = str(tmp_path / "ws")
    needs, independent = (
        MiNeeds(path=str(tmp_path / "absent.csv"), workspace_directory=ws),
        MiIndependent(workspace_directory=ws),
    )
    assert kart_core.build([needs, independent], return_value=False, reset_register=False, workers=workers) is None
    assert independent.complete() and not needs.complete()
    with pytest.raises(MissingInputBuildError, match="MiAbsent") as raised:
        kart_core.build([needs, MiIndependent(workspace_directory=ws)], reset_register=False, workers=workers)
    # The error names the file to create (attacker at21 L4: it said only "Create it, or check the path").
    assert f"an external input is missing: {str(tmp_path / 'absent.csv')!r} does not exist" in str(raised.value)


def test_a_failure_beside_a_missing_input_is_a_build_error(tmp_path: Path) -> None:
    """A task that failed is no missing data: build() raises GokartBuildError naming both, with either return_value."""
    ws = str(tmp_path / "ws")
    roots = [MiNeeds(path=str(tmp_path / "absent.csv"), workspace_directory=ws), MiFails(workspace_directory=ws)]
    with pytest.raises(GokartBuildError, match="(?s)MiAbsent.*asked to fail") as raised:
        kart_core.build(roots, return_value=False, reset_register=False)
    assert not isinstance(raised.value, MissingInputBuildError)


class MiRaw(kart_core.TaskOnKart[str]):
    """A raw input declared the kart way: an output and no run() (attacker at25 F10)."""

    def output(self) -> Any:
        return self.make_target("raw/rows.csv", use_unique_id=False)


class MiReadsRaw(kart_core.TaskOnKart[str]):
    def requires(self) -> MiRaw:
        return MiRaw(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump("read")


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
def test_a_missing_raw_input_of_a_task_without_run_is_a_missing_input(
    any_workspace: str, workers: int, executor: str
) -> None:
    """It was told "run() finished without writing its output(s) ... Call self.dump(...) in run()", a failure that
    stopped the build; now it is missing data, like an ExternalTask's: the rest is built and the file is named."""
    reads, independent = MiReadsRaw(workspace_directory=any_workspace), MiIndependent(workspace_directory=any_workspace)
    with pytest.raises(MissingInputBuildError) as raised:
        kart_core.build([reads, independent], reset_register=False, workers=workers, executor=executor)
    message = str(raised.value)
    assert "MiRaw[" in message and "has no run()" in message and "raw/rows.csv" in message
    assert "Put the file there" in message and "self.dump" not in message
    assert independent.complete() and not reads.complete()
    assert kart_core.build([reads, independent], return_value=False, reset_register=False, workers=workers) is None


def test_kart_run_exits_20_for_a_missing_raw_input(tmp_path: Path) -> None:
    """`kart run`'s exit code for missing external data (cli.md), for a raw input without run() too."""
    workspace = str(tmp_path / "ws")
    task = f"{__name__}.MiReadsRaw"
    result = CliRunner().invoke(cli, ["run", task, "--workspace-directory", workspace], catch_exceptions=False)
    assert result.exit_code == 20, result.output
    assert "has no run()" in result.stderr and "raw/rows.csv" in result.stderr
