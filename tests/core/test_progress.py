"""The build progress line: live on a terminal, quiet under CI or a pipe, a summary either way."""

from __future__ import annotations

import io

import luigi
import pytest

import kart_core
from kart_core.progress import Progress


class PgLeaf(kart_core.TaskOnKart[int]):
    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class PgRoot(kart_core.TaskOnKart[int]):
    def requires(self):
        return [PgLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(3)]

    def run(self) -> None:
        self.dump(3)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_line_counts_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = FakeTerminal()
    progress = Progress(total=3, stream=stream, interval=0)
    progress.add_cached(1)
    progress.started("A[12345678]")
    assert progress.line() == "[1/3] 0 ran, 1 cached, 1 running, 0 failed | A[12345678]"
    progress.finished("A[12345678]", "ran")
    progress.started("B[12345678]")
    progress.finished("B[12345678]", "failed")
    progress.close("summary")
    out = stream.getvalue()
    assert "\r" in out and "[3/3] 1 ran, 1 cached, 0 running, 1 failed" in out
    assert out.endswith("summary\n")


def test_quiet_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    stream = FakeTerminal()
    progress = Progress(total=1, stream=stream, interval=0)
    progress.started("A[12345678]")
    progress.finished("A[12345678]", "ran")
    progress.close("done")
    assert stream.getvalue() == "done\n"


def test_build_prints_a_summary_line(workspace: str, capsys: pytest.CaptureFixture[str]) -> None:
    kart_core.build(PgRoot(workspace_directory=workspace))
    assert "kart build: 4 ran, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err
    kart_core.build(PgRoot(workspace_directory=workspace))
    assert "kart build: 0 ran, 1 cached, 0 failed, 0 not run" in capsys.readouterr().err
