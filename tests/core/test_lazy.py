"""kart_core.lazy: the facades load their modules on first use, so `kart runs` starts without luigi or pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kart_core
import kart_core.inspect

REPO = Path(__file__).resolve().parents[2]


def python(code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter (this one has luigi loaded already) and return its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("LUIGI_CONFIG_PATH", None)
    env.pop("KART_SIGNING_KEY", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_public_names_are_the_functions_even_after_their_modules_load() -> None:
    import kart_core.build  # noqa: F401  (binds the submodule on the package: the facade keeps the function)
    import kart_core.inspect.runs  # noqa: F401

    assert callable(kart_core.build) and kart_core.build.__module__ == "kart_core.build"
    assert callable(kart_core.run) and kart_core.run.__module__ == "kart_core.run"
    assert kart_core.inspect.runs.__module__ == "kart_core.inspect.runs" and callable(kart_core.inspect.runs)
    assert sorted(kart_core.__all__) == kart_core.__all__ and "TaskOnKart" in dir(kart_core)
    assert kart_core.tree.task_info.make_task_info_as_tree_str is kart_core.make_task_info_as_tree_str


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        kart_core.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "kart_core" in str(exc) and "NoSuchThing" in str(exc)
    else:
        raise AssertionError("kart_core.NoSuchThing did not raise")


def test_kart_runs_loads_neither_luigi_nor_pandas(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from kart_core.cli import main\n"
        "try:\n"
        "    main(['runs', '-w', 'resources', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "from kart_core.runlog_reader import plain_pickle_allowed\n"
        "print(json.dumps([name in sys.modules for name in ('luigi', 'pandas', 'rich')] + [plain_pickle_allowed()]))\n"
    )
    (tmp_path / "resources").mkdir()  # an empty workspace (a missing one is an error)
    out = python(code, tmp_path).splitlines()
    # no luigi config and no signing key: run logs are read with plain pickle
    assert out[0] == "[]" and json.loads(out[-1]) == [False, False, False, True]


def test_a_luigi_config_that_sets_the_workspace_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text("[TaskOnKart]\nworkspace_directory = elsewhere\n")
    code = "from kart_core.workspace import default_workspace\nprint(default_workspace())\n"
    assert python(code, tmp_path).strip() == "elsewhere"
    (tmp_path / "luigi.cfg").write_text("[core]\nno_configure_logging = true\n")
    code = "import sys\nfrom kart_core.workspace import default_workspace\nprint(default_workspace(), 'luigi' in sys.modules)\n"
    assert python(code, tmp_path).split() == ["./resources/", "False"]  # a config without it: luigi is not needed


def test_any_submodule_is_an_attribute_as_with_an_eager_facade(tmp_path: Path) -> None:
    code = "import kart_core\nprint(kart_core.storage.__name__, kart_core.inspect.explain.__module__)\n"
    assert python(code, tmp_path).split() == ["kart_core.storage", "kart_core.inspect.why"]
