"""luigi's config as it is now: edited files re-read (keeping what the program set), ${ENV} followed."""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import luigi.configuration
import pytest

import kart_core
from kart_core import luigi_config


class LcTask(kart_core.TaskOnKart[str]):
    value = luigi.Parameter(default="built-in")


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lc.cfg"
    path.write_text(text)
    kart_core.add_config(str(path))
    return path


def _get(section: str, key: str) -> str | None:
    return luigi.configuration.get_config().get(section, key, None)


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "[LcTask]\nvalue = one\n[Other]\nkeep = yes\n")
    luigi_config.refresh()
    path.write_text("[LcTask]\nvalue = three\n[Added]\nnew = 1\n")
    luigi_config.refresh()
    assert _get("LcTask", "value") == "three" and _get("Added", "new") == "1"
    assert _get("Other", "keep") is None  # deleted from the file: gone (luigi's reload() would keep it)


def test_values_the_program_set_survive_a_file_edit(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "[LcTask]\nvalue = from-file\nother = 1\n")
    luigi_config.refresh()
    config = luigi.configuration.get_config()
    config.set("LcTask", "value", "from-program")
    config.set("Mine", "flag", "on")
    config.remove_option("LcTask", "other")
    path.write_text("[LcTask]\nvalue = edited\nother = 2\n[Mine]\nflag = off\n")
    luigi_config.refresh()
    assert _get("LcTask", "value") == "from-program" and _get("Mine", "flag") == "on"
    assert _get("LcTask", "other") is None


def test_a_literal_percent_and_the_default_section_are_read_again(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "[DEFAULT]\nshared = a\n[LcTask]\nvalue = 10\n")
    luigi_config.refresh()
    path.write_text("[DEFAULT]\nshared = b\n[LcTask]\nvalue = 50%%\nraw = 50%\n")
    luigi_config.refresh()
    config = luigi.configuration.get_config()
    assert _get("LcTask", "shared") == "b" and _get("LcTask", "value") == "50%"
    assert config.get("LcTask", "raw", raw=True) == "50%"


def test_the_fingerprint_follows_interpolated_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_VALUE", "1")
    _config_file(tmp_path, "[LcTask]\nvalue = ${LC_VALUE}\n")
    before = luigi_config.fingerprint()
    monkeypatch.setenv("LC_UNRELATED", "x")
    assert luigi_config.fingerprint() == before
    monkeypatch.setenv("LC_VALUE", "2")
    assert luigi_config.fingerprint() != before
    assert LcTask().value == "2"


def test_a_task_created_after_a_change_is_a_new_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_WS", str(tmp_path / "a"))
    _config_file(tmp_path, "[Unused]\nws = ${LC_WS}\n")
    first = LcTask()
    first.make_unique_id()
    assert LcTask() is first  # luigi's instance cache, while nothing changed
    monkeypatch.setenv("LC_WS", str(tmp_path / "b"))
    assert LcTask() is not first  # it may hold upstreams derived under the old config


def test_a_thorough_refresh_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "[LcTask]\nvalue = aaa\n")
    luigi_config.refresh()
    stamp = os.stat(path)
    path.write_text("[LcTask]\nvalue = bbb\n")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    luigi_config.refresh()
    assert _get("LcTask", "value") == "aaa"  # size, mtime and inode unchanged: the cheap check misses it
    luigi_config.refresh(thorough=True)
    assert _get("LcTask", "value") == "bbb"


_WRITE_THEN_BUILD = """
import sys, luigi, kart_core
class CfgAfterImport(kart_core.TaskOnKart):
    x = luigi.Parameter(default="built-in default")
    def run(self):
        self.dump(self.x)
with open(sys.argv[2], "w") as file:
    file.write("[CfgAfterImport]\\nx=%s\\n" % sys.argv[1])
task = CfgAfterImport(workspace_directory=sys.argv[3])
print(kart_core.build(task, progress=False), task.make_unique_id())
"""


@pytest.mark.parametrize(
    ("config_name", "existed_before"), [("luigi.cfg", False), ("client.cfg", False), ("luigi.cfg", True)]
)
def test_a_config_file_written_after_import_is_used_by_the_first_build(
    tmp_path: Path, config_name: str, existed_before: bool
) -> None:
    # luigi's default config paths, read from the working directory (luigi ignores a LUIGI_CONFIG_PATH
    # that does not exist when it starts, so that variation is not kart's to handle).
    import subprocess
    import sys

    config = tmp_path / config_name
    if existed_before:
        config.write_text("[CfgAfterImport]\nx=stale\n")
    env = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    env["CI"] = "true"
    seen = []
    for value in ("first", "second", "first"):
        done = subprocess.run(
            [sys.executable, "-c", _WRITE_THEN_BUILD, value, str(config), str(tmp_path / "ws")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        seen.append(done.stdout.strip().splitlines()[-1].split())
    assert [output for output, _ in seen] == ["first", "second", "first"]
    assert seen[0][1] == seen[2][1] != seen[1][1]  # the id follows the value written, not the previous file


_SWITCH_CONFIG_PATH = """
import os, sys
os.environ["LUIGI_CONFIG_PATH"] = "a.cfg"
import luigi, kart_core
class Switched(kart_core.TaskOnKart):
    n = luigi.IntParameter(default=0)
    def run(self):
        self.dump(self.n)
seen = [kart_core.build(Switched(workspace_directory="ws"), progress=False)]
for value in sys.argv[1:]:
    if value == "-":
        del os.environ["LUIGI_CONFIG_PATH"]
    else:
        os.environ["LUIGI_CONFIG_PATH"] = value
    seen.append(kart_core.build(Switched(workspace_directory="ws"), progress=False))
print(*seen)
"""


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        (["b.cfg"], "1 2"),  # a notebook switching dev.cfg -> prod.cfg
        (["b.cfg", "a.cfg"], "1 2 1"),  # and back
        (["-"], "1 0"),  # the variable removed: the file it named is no longer read
    ],
)
def test_luigi_config_path_changed_in_the_process_is_read_by_the_next_build(
    tmp_path: Path, switches: list[str], expected: str
) -> None:
    import subprocess
    import sys

    (tmp_path / "a.cfg").write_text("[Switched]\nn = 1\n")
    (tmp_path / "b.cfg").write_text("[Switched]\nn = 2\n")
    env = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    done = subprocess.run(
        [sys.executable, "-c", _SWITCH_CONFIG_PATH, *switches],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
