"""Outputs of tasks built by a script run directly (module ``__main__``): `kart tree` says where they are."""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import cli
from kart_core.inspect.as_main import main_counterpart, outputs_as_main, runs_as_main
from kart_core.target import TargetOnKart

M = __name__


class AsMainUp(gokart.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class AsMainDown(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=2)

    def requires(self) -> AsMainUp:
        return AsMainUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + self.n)


class AsMainCustomPath(gokart.TaskOnKart[int]):
    def output(self) -> TargetOnKart:
        return self.make_target("custom/out.pkl")

    def run(self) -> None:
        self.dump(1)


def built_as_main(workspace: str, n: int = 2) -> Path:
    """The workspace as `python this_file.py` leaves it: same ids and run logs, outputs under __main__/."""
    gokart.build(AsMainDown(workspace_directory=workspace, n=n), return_value=False)
    main_folder = Path(workspace, "__main__")
    for output in Path(workspace, *M.split(".")).iterdir():
        main_folder.mkdir(exist_ok=True)
        shutil.move(output, main_folder / output.name)
    return main_folder


def tree(workspace: str, *args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["tree", f"{M}.AsMainDown", "-w", workspace, *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_tree_says_a_pending_task_was_built_as_main_and_what_to_do(workspace: str) -> None:
    main_folder = built_as_main(workspace)
    down, up = AsMainDown(workspace_directory=workspace), AsMainUp(workspace_directory=workspace)
    lines = tree(workspace)
    assert lines[0] == f"└─-(PENDING) AsMainDown[{down.make_unique_id()}]"
    assert lines[2] == (
        f"PENDING {down.kart_label()} was built as __main__.AsMainDown, by a script run with python: its output(s) "
        f"are {main_folder / Path(down.output().path()).name}, not {down.output().path()}."
    )
    assert lines[3].startswith(f"gokart names output folders after the task's module, which is {M!r} here")
    assert f"`kart run {M}.AsMainDown`" in lines[3]
    assert lines[4].startswith(f"PENDING {up.kart_label()} was built as __main__.AsMainUp") and len(lines) == 5


def test_tree_names_runs_as_main_with_other_parameters(workspace: str) -> None:
    main_folder = built_as_main(workspace, n=2)
    lines = tree(workspace, "--n", "3")
    down = AsMainDown(workspace_directory=workspace, n=3)
    assert lines[2] == (
        f"PENDING {down.kart_label()}: 1 output(s) of AsMainDown built as __main__.AsMainDown (a script run with "
        f"python), with other parameters, are in {main_folder}; `kart why` compares their parameters."
    )
    assert lines[3].startswith("gokart names output folders") and "built as __main__.AsMainUp" in lines[4]


def test_tree_says_nothing_more_without_outputs_under_main(workspace: str) -> None:
    shutil.rmtree(built_as_main(workspace))
    lines = tree(workspace)
    assert len(lines) == 2 and "__main__" not in "\n".join(lines)
    gokart.build(AsMainDown(workspace_directory=workspace), return_value=False)
    assert "__main__" not in "\n".join(tree(workspace))  # complete: never a note


def test_main_counterpart_only_for_outputs_in_the_module_folder(workspace: str) -> None:
    down = AsMainDown(workspace_directory=workspace)
    path = down.output().path()
    assert (
        main_counterpart(down, path)
        == f"{path.rsplit('/', 1)[0].removesuffix('/' + M)}/__main__/{path.rsplit('/', 1)[1]}"
    )
    custom = AsMainCustomPath(workspace_directory=workspace)
    assert main_counterpart(custom, custom.output().path()) is None
    assert outputs_as_main(down, [path]) == [] and runs_as_main(workspace, "AsMainDown") == []
    built_as_main(workspace)
    assert outputs_as_main(down, [path]) == [main_counterpart(down, path)]
    assert runs_as_main(workspace, "AsMainDown") == [Path(path).name]
    assert runs_as_main(workspace, "AsMainDow") == []
    # Another class whose name starts with this one's and an underscore: not this class's run.
    other = Path(workspace) / "__main__" / f"AsMainDown_v2_{'0' * 32}.pkl"
    other.write_bytes(b"other class")
    assert runs_as_main(workspace, "AsMainDown") == [Path(path).name]
    assert runs_as_main(workspace, "AsMainDown_v2") == [other.name]
