"""code_fingerprint: changes with what runs (methods, parameters, constants, bases), not with comments or lines."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import kart_core

SOURCE = '''
import luigi
import kart_core


class Mixin:
    def helper(self):
        return 1


class Fp(Mixin, kart_core.TaskOnKart):
    """Docstring."""

    size = luigi.IntParameter(default=3)
    kind = "a"

    def run(self):
        # a comment
        self.dump({"x", "y"} if self.size in {1, 2} else [i * self.helper() for i in range(self.size)])
'''


def _fingerprint(source: str, tmp_path: Path, name: str = "fp_tasks") -> str:
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return kart_core.code_fingerprint(module.Fp)


def test_same_code_same_fingerprint_whatever_the_comments_lines_and_docstrings(tmp_path: Path) -> None:
    base = _fingerprint(SOURCE, tmp_path)
    assert len(base) == 16 and int(base, 16) >= 0
    moved = "\n\n\n" + SOURCE.replace("# a comment", "# another comment").replace('"""Docstring."""', '"""Other."""')
    assert _fingerprint(moved, tmp_path) == base


@pytest.mark.parametrize(
    "old, new",
    [
        ("range(self.size)", "range(self.size + 1)"),  # run() body
        ("default=3", "default=4"),  # parameter default
        ("luigi.IntParameter(default=3)", "luigi.IntParameter(default=3, significant=False)"),
        ('kind = "a"', 'kind = "b"'),  # class constant
        ("return 1", "return 2"),  # a mixin's method
    ],
)
def test_a_change_to_what_runs_changes_the_fingerprint(old: str, new: str, tmp_path: Path) -> None:
    assert old in SOURCE
    assert _fingerprint(SOURCE.replace(old, new), tmp_path) != _fingerprint(SOURCE, tmp_path)


def test_the_fingerprint_is_the_same_in_another_process_and_hash_seed(tmp_path: Path) -> None:
    (tmp_path / "fp_tasks.py").write_text(textwrap.dedent(SOURCE))
    script = "import fp_tasks, kart_core; print(kart_core.code_fingerprint(fp_tasks.Fp))"
    outputs = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.add(done.stdout.strip().splitlines()[-1])
    assert len(outputs) == 1


def test_running_a_task_does_not_change_its_fingerprint(tmp_path: Path) -> None:
    class Runs(kart_core.TaskOnKart[int]):
        def run(self) -> None:
            self.dump(1)

    before = kart_core.code_fingerprint(Runs)
    kart_core.build(Runs(workspace_directory=str(tmp_path)))
    assert kart_core.code_fingerprint(Runs) == before
    with pytest.raises(TypeError, match="takes a class"):
        kart_core.code_fingerprint(Runs())  # type: ignore[arg-type]
