"""`kart tree/run module.Class` when another imported module has a task class of the same family (its name)."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from luigi.task_register import TaskClassAmbigiousException

import kart_core
from kart_core import TaskInstanceParameter
from kart_core.cli import cli

ONE = """
import luigi
from kart_core import TaskOnKart


class {family}(TaskOnKart[str]):
    name = luigi.Parameter(default="one")

    def run(self) -> None:
        self.dump(f"hello {self.name} from one")
"""

TWO = """
import luigi
from kart_core import TaskOnKart


class {family}(TaskOnKart[str]):
    who = luigi.Parameter()
    loud = luigi.BoolParameter()

    def run(self) -> None:
        self.dump(f"hi {self.who} from two" + ("!" if self.loud else ""))
"""


def _two_greets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, family: str = "Greet"
) -> tuple[ModuleType, ModuleType]:
    """Modules ``{prefix}_one`` and ``{prefix}_two``, each with a task class ``family``, both imported here."""
    (tmp_path / f"{prefix}_one.py").write_text(ONE.replace("{family}", family))
    (tmp_path / f"{prefix}_two.py").write_text(TWO.replace("{family}", family))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(f"{prefix}_one"), importlib.import_module(f"{prefix}_two")


def test_tree_and_run_take_the_class_named_not_luigis_family_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _two_greets(tmp_path, monkeypatch, "samefam")
    workspace = str(tmp_path / "ws")
    (tmp_path / "ws").mkdir()  # an empty workspace (a missing one is an error: test_cli_workspace)
    tree = CliRunner().invoke(cli, ["tree", "samefam_one.Greet", "--name", "Ann", "-w", workspace])
    assert tree.exit_code == 0, tree.output  # was 4: "Task 'Greet' is ambiguous"
    wanted = one.Greet(name="Ann", workspace_directory=workspace)
    assert tree.stdout.splitlines()[0] == f"└─-(PENDING) Greet[{wanted.make_unique_id()}]"

    run = CliRunner().invoke(cli, ["run", "samefam_two.Greet", "--who", "Bo", "--loud", "-w", workspace])
    assert run.exit_code == 0, run.output
    built = two.Greet(who="Bo", loud=True, workspace_directory=workspace)
    path = Path(built.output().path())
    assert path.relative_to(workspace).as_posix() == f"samefam_two/Greet_{built.make_unique_id()}.pkl"
    assert pickle.loads(path.read_bytes()) == "hi Bo from two!"
    assert not (Path(workspace) / "samefam_one").exists()


def test_the_other_same_family_class_parameters_are_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_greets(tmp_path, monkeypatch, "otherfam")
    result = CliRunner().invoke(cli, ["run", "otherfam_two.Greet", "--name", "Ann", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        "kart run: otherfam_two.Greet has no parameter --name. `kart run otherfam_two.Greet --help` lists its "
        "parameters."
    )


def test_a_bare_ambiguous_family_names_both_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its own family: the Greet classes of the tests above stay imported in this process.
    _two_greets(tmp_path, monkeypatch, "barefam", family="Salute")
    both = "'barefam_one.Salute' and 'barefam_two.Salute'"
    tree = CliRunner().invoke(cli, ["tree", "Salute"])
    assert tree.exit_code == 4
    assert tree.stderr.startswith(
        f"kart tree: 'Salute': name the task with its module, one of {both} (each a task class of family 'Salute')."
    )
    # gokart.run() and a task-valued parameter's JSON name a task by family alone, as gokart 1.12.2 does: luigi said
    # only "Task 'Salute' is ambiguous"; its exception class still catches kart's.
    for name_it in (
        lambda: kart_core.run(["Salute", "--local-scheduler"]),
        lambda: TaskInstanceParameter().parse('{"type": "Salute", "params": {}}'),
    ):
        with pytest.raises(TaskClassAmbigiousException) as raised:
            name_it()
        assert str(raised.value) == (
            f"Task 'Salute' is ambiguous: the imported task classes {both} have that family, and luigi finds a class "
            "by its family alone. Give one of them a task_namespace, or import only one of their modules (kart run, "
            "tree, why and report take the module.Class name)."
        )


def test_module_imports_before_the_parse_so_its_classes_take_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # luigi's --module: its classes' --Class-param options exist only once it is imported (luigi parses twice).
    one, _ = _two_greets(tmp_path, monkeypatch, "modfam")
    (tmp_path / "modfam_extra.py").write_text(
        "import luigi\nfrom kart_core import TaskOnKart\n\n\nclass ModExtra(TaskOnKart[str]):\n"
        "    z = luigi.Parameter(default='q')\n"
    )
    workspace = str(tmp_path / "ws")
    args = ["run", "modfam_one.Greet", "--module", "modfam_extra", "--ModExtra-z", "5", "--name", "Cy", "-w", workspace]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output  # was 4: "modfam_one.Greet has no parameter --ModExtra-z"
    built = one.Greet(name="Cy", workspace_directory=workspace)
    assert pickle.loads(Path(built.output().path()).read_bytes()) == "hello Cy from one"
