"""tests/fork_server.py: a forked run sees what a fresh ``python`` process sees (compared with one, side by side)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fork_server
import pytest
from fork_server import GOKART, KART

_SCRIPT = """
import json, os, sys, atexit, luigi
atexit.register(lambda: print("atexit ran", flush=True))
config = luigi.configuration.get_config()
print(json.dumps({
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "pythonpath_first": sys.path[1],
    "main": [__name__, globals().get("__file__")],
    "variable": os.environ.get("FORK_SERVER_PROBE"),
    "local_cfg": config.get("probe", "local", "unset"),
    "env_cfg": config.get("probe", "from_env", "unset"),
    "gokart_imported": "gokart" in sys.modules,
    "dont_write_bytecode": sys.dont_write_bytecode,
}))
if sys.argv[1] == "exit":
    sys.exit(3)
if sys.argv[1] == "raise":
    raise KeyError("probe")
"""


def _runs(
    tmp_path: Path, how: str, preload: tuple[str, ...], env_config: bool = True
) -> list[subprocess.CompletedProcess[str]]:
    """The script run with ``how`` as a fresh process and as a fork of the server, each in its own folder
    (with LUIGI_CONFIG_PATH naming a second config file when ``env_config``)."""
    runs = []
    for name in ("fresh", "forked"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "probe.py").write_text(_SCRIPT)
        (folder / "luigi.cfg").write_text("[probe]\nlocal = here\n")
        (folder / "extra.cfg").write_text("[probe]\nfrom_env = there\n")
        env = {
            **os.environ,
            "FORK_SERVER_PROBE": name,
            "PYTHONPATH": os.pathsep.join([str(folder / "lib"), os.environ.get("PYTHONPATH", "")]),
        }
        if env_config:
            env["LUIGI_CONFIG_PATH"] = str(folder / "extra.cfg")
        if name == "fresh":
            command = [sys.executable, "probe.py", how]
            runs.append(subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120))
        else:
            runs.append(fork_server.run(["probe.py", how], folder, env, 120, preload))
    return runs


@pytest.mark.parametrize(("preload", "env_config"), [(GOKART, True), (GOKART, False), (KART, True)])
def test_a_forked_run_sees_what_a_fresh_process_sees(
    tmp_path: Path, preload: tuple[str, ...], env_config: bool
) -> None:
    fresh, forked = _runs(tmp_path, "ok", preload, env_config)
    assert (fresh.returncode, forked.returncode) == (0, 0), fresh.stderr + forked.stderr
    seen = [json.loads(done.stdout.splitlines()[0]) for done in (fresh, forked)]
    for facts, name in zip(seen, ("fresh", "forked"), strict=True):
        folder = str(tmp_path / name)
        assert facts["argv"] == ["probe.py", "ok"]
        assert facts["cwd"] == facts["path0"] == folder
        assert facts["pythonpath_first"] == os.path.join(folder, "lib")
        assert facts["main"] == ["__main__", os.path.join(folder, "probe.py")]
        assert facts["variable"] == name
        # luigi read this run's config: ./luigi.cfg, and LUIGI_CONFIG_PATH's file
        assert (facts["local_cfg"], facts["env_cfg"]) == ("here", "there" if env_config else "unset")
    assert seen[0]["gokart_imported"] is False and seen[1]["gokart_imported"] is (preload == GOKART)
    assert seen[0]["dont_write_bytecode"] == seen[1]["dont_write_bytecode"]
    assert fresh.stdout.splitlines()[1:] == forked.stdout.splitlines()[1:] == ["atexit ran"]


@pytest.mark.parametrize(("how", "code", "last_line"), [("exit", 3, None), ("raise", 1, "KeyError: 'probe'")])
def test_a_forked_run_ends_as_a_fresh_process_ends(tmp_path: Path, how: str, code: int, last_line: str | None) -> None:
    fresh, forked = _runs(tmp_path, how, GOKART)
    assert fresh.returncode == forked.returncode == code
    if last_line is not None:
        assert fresh.stderr.splitlines()[-1] == forked.stderr.splitlines()[-1] == last_line
        assert forked.stderr.startswith("Traceback (most recent call last):")


def test_a_run_with_its_own_hash_seed_is_a_fresh_process(tmp_path: Path) -> None:
    code = "import sys; print(hash('kart'), 'gokart' in sys.modules)"
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    fresh = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    forked = fork_server.run(["-c", code], tmp_path, env, 60, GOKART)
    assert forked.stdout == fresh.stdout and fresh.stdout.endswith(" False\n")


def test_a_run_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        fork_server.run(["-c", "import time; time.sleep(60)"], tmp_path, dict(os.environ), 2, GOKART)
    done = fork_server.run(["-c", "print('next')"], tmp_path, dict(os.environ), 60, GOKART)
    assert (done.returncode, done.stdout) == (0, "next\n")


def test_a_server_that_cannot_start_is_named_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="No module named 'no_such_module_for_the_fork_server'"):
        fork_server.run(["-c", "pass"], tmp_path, dict(os.environ), 60, ("no_such_module_for_the_fork_server",))
