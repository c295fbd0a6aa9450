"""`kart why` on a task built by a script run with python (module ``__main__``) and named by its module now."""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi

import kart_core as gokart
from kart_core.inspect import explain


class MainUp(gokart.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class MainDown(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=2)

    def requires(self) -> MainUp:
        return MainUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + self.n)


def built_as_main(workspace: str) -> Path:
    """The workspace as `python this_file.py` leaves it: same ids and run logs, outputs under __main__/."""
    gokart.build(MainDown(workspace_directory=workspace), return_value=False)
    module_folder = Path(workspace, *__name__.split("."))
    shutil.move(module_folder, Path(workspace, "__main__"))
    return Path(workspace, "__main__")


def test_why_says_the_task_was_built_as_main_and_what_to_do(workspace: str) -> None:
    main_folder = built_as_main(workspace)
    lines = explain(MainDown(workspace_directory=workspace))
    down_id = MainDown(workspace_directory=workspace).make_unique_id()
    assert lines[0].startswith(f"MainDown[{down_id[:8]}] will run: it was built (finished ")
    assert "as __main__.MainDown, by a script run with python" in lines[0]
    assert str(main_folder / f"MainDown_{down_id}.pkl") in lines[0] and "are gone" not in lines[0]
    assert f"which is {__name__!r} here and was '__main__' then" in lines[0]
    assert f"`from {__name__} import MainDown`" in lines[0] and f"`kart run {__name__}.MainDown`" in lines[0]
    # the upstream is named too, with the explanation said once
    assert "as __main__.MainUp" in lines[1] and "gokart names output folders" not in lines[1]


def test_why_says_outputs_are_gone_when_there_is_no_main_copy(workspace: str) -> None:
    shutil.rmtree(built_as_main(workspace))
    lines = explain(MainDown(workspace_directory=workspace))
    assert "but its output(s) are gone" in lines[0] and "__main__" not in lines[0]
