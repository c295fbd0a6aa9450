"""kart_core.hooks.discovery: what the metadata declares is read once per change of a sys.path folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kart_core.hooks.discovery import cache_path, declared_entry_points

REPO = str(Path(__file__).resolve().parents[2])
OLD = 1_000_000_000  # a folder time long settled (2001)


def _install(site: Path, distribution: str, entries: str, kind: str = "dist-info") -> Path:
    """A distribution's metadata folder in ``site`` declaring ``entries`` (lines of ``name = target``) for kart."""
    folder = site / f"{distribution}-1.0.{kind}"
    folder.mkdir(parents=True)
    (folder / "entry_points.txt").write_text(f"[console_scripts]\nx = y:z\n\n[kart]\n{entries}\n")
    return folder


def _settle(folder: Path) -> None:
    os.utime(folder, ns=(OLD, OLD))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_unchanged_folder_is_not_read_again_and_an_install_is_seen(cache_home: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    installed = _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]
    recorded = json.loads(Path(cache_path("kart")).read_text())["folders"]
    status = os.stat(site)
    assert recorded == {
        str(site): [
            [OLD, status.st_ctime_ns, status.st_ino],
            [["first-1.0.dist-info", [["first", "first_plugin:plugin"]]]],
        ]
    }

    # A hand edit inside an installed dist-info does not change the folder's time: the record stands.
    (installed / "entry_points.txt").write_text("[kart]\nfirst = edited:plugin\n")
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]

    # Installing another distribution changes the folder's time: it is read again, the edit with it.
    _install(site, "second", "second = second_plugin:plugin")
    assert declared_entry_points("kart", [str(site)]) == [
        ("first", "edited:plugin"),
        ("second", "second_plugin:plugin"),
    ]


def test_egg_info_is_read_every_time_and_a_fresh_folder_is_not_kept(cache_home: Path, tmp_path: Path) -> None:
    settled, fresh = tmp_path / "settled", tmp_path / "fresh"
    egg = _install(settled, "develop", "develop = old:plugin", kind="egg-info")
    _settle(settled)
    _install(fresh, "fresh", "fresh = fresh_plugin:plugin")
    assert declared_entry_points("kart", [str(settled), str(fresh)]) == [
        ("develop", "old:plugin"),
        ("fresh", "fresh_plugin:plugin"),
    ]
    # setuptools rewrites an egg-info's entry_points.txt in place (setup.py develop).
    (egg / "entry_points.txt").write_text("[kart]\ndevelop = new:plugin\n")
    assert declared_entry_points("kart", [str(settled)]) == [("develop", "new:plugin")]
    # Modified within the last seconds: a change in the same clock tick would go unnoticed, so not kept.
    assert set(json.loads(Path(cache_path("kart")).read_text())["folders"]) == {str(settled)}


def test_the_first_folder_declaring_a_name_wins(cache_home: Path, tmp_path: Path) -> None:
    front, back = tmp_path / "front", tmp_path / "back"
    _install(front, "a", "same = front:plugin")
    _install(back, "b", "same = back:plugin\nother = back:other")
    for folder in (front, back):
        _settle(folder)
    for _ in range(2):  # read, then from the file
        assert declared_entry_points("kart", [str(front), str(back)]) == [
            ("other", "back:other"),
            ("same", "front:plugin"),
        ]


def test_a_plugin_installed_after_a_process_ran_is_found_by_the_next_process(cache_home: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "probe_plugin.py").write_text("plugin = object()\n")
    _install(site, "unrelated", "unrelated = probe_plugin:plugin")
    _settle(site)
    script = "import json; from kart_core.hooks.manager import declared_entry_points; print(json.dumps(declared_entry_points()))"
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": os.pathsep.join([str(site), REPO])}

    def declared() -> list[list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return [entry for entry in json.loads(done.stdout) if entry[1].startswith("probe_plugin")]

    assert declared() == [["unrelated", "probe_plugin:plugin"]]
    assert str(site) in json.loads(Path(cache_path("kart")).read_text())["folders"]
    _install(site, "probe", "probe = probe_plugin:plugin")
    assert declared() == [["probe", "probe_plugin:plugin"], ["unrelated", "probe_plugin:plugin"]]


def test_without_a_writable_cache_folder_the_metadata_is_read_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    site = tmp_path / "site"
    _install(site, "one", "one = one:plugin")
    _settle(site)
    assert declared_entry_points("kart", [str(site)]) == [("one", "one:plugin")]
    _install(site, "two", "two = two:plugin")
    assert declared_entry_points("kart", [str(site)]) == [("one", "one:plugin"), ("two", "two:plugin")]


def test_an_install_whose_folder_time_is_set_back_is_seen(cache_home: Path, tmp_path: Path) -> None:
    """tar, rsync -a and reproducible builds set a folder's time back; its status-change time moves all the same."""
    site = tmp_path / "site"
    _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]
    _install(site, "second", "second = second_plugin:plugin")
    _settle(site)  # the same modification time as when it was recorded
    assert declared_entry_points("kart", [str(site)]) == [
        ("first", "first_plugin:plugin"),
        ("second", "second_plugin:plugin"),
    ]


def _forge(site: Path) -> None:
    """Rewrite the cache file so that ``site`` declares a plugin module of the forger's choosing."""
    cache = Path(cache_path("kart"))
    content = json.loads(cache.read_text())
    record = content["folders"][str(site)]
    record[1] = [["first-1.0.dist-info", [["first", "planted:plugin"]]]]
    cache.write_text(json.dumps(content))


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_cache_file_others_may_write_is_not_trusted(cache_home: Path, tmp_path: Path, mode: int) -> None:
    site = tmp_path / "site"
    _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    declared_entry_points("kart", [str(site)])
    _forge(site)
    os.chmod(cache_path("kart"), mode)
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]
    os.chmod(cache_path("kart"), 0o600)
    _forge(site)  # this user's own file, private: trusted (what the cache is for)
    assert declared_entry_points("kart", [str(site)]) == [("first", "planted:plugin")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_cache_file_of_another_user_is_not_trusted(cache_home: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    declared_entry_points("kart", [str(site)])
    _forge(site)
    os.chmod(cache_path("kart"), 0o644)
    os.chown(cache_path("kart"), 65534, 65534)
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]


@pytest.mark.parametrize(
    "record",
    [[[1, 2, 3], [["first-1.0.dist-info", [["first"]]]]], [[1, 2, 3], "x"], ["stamp", []], [[1, 2, 3], [[7, None]]]],
)
def test_a_malformed_record_is_read_afresh(cache_home: Path, tmp_path: Path, record: list) -> None:
    site = tmp_path / "site"
    _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    declared_entry_points("kart", [str(site)])
    cache = Path(cache_path("kart"))
    content = json.loads(cache.read_text())
    status = os.stat(site)
    if isinstance(record[0], list):
        record[0] = [OLD, status.st_ctime_ns, status.st_ino]  # the current stamp: only the shape is wrong
    content["folders"][str(site)] = record
    cache.write_text(json.dumps(content))
    assert declared_entry_points("kart", [str(site)]) == [("first", "first_plugin:plugin")]


def test_records_of_folders_off_the_path_are_kept_only_when_well_formed(cache_home: Path, tmp_path: Path) -> None:
    """Other folders' records are checked when the file is written again (not each one at every read): a malformed
    one is dropped there, a well-formed one kept, and neither changes what this path declares."""
    site, other = tmp_path / "site", tmp_path / "other"
    _install(site, "first", "first = first_plugin:plugin")
    _settle(site)
    declared_entry_points("kart", [str(site)])
    cache = Path(cache_path("kart"))
    content = json.loads(cache.read_text())
    content["folders"]["/elsewhere/bad"] = [[1, 2, 3], "x"]
    content["folders"]["/elsewhere/good"] = [[1, 2, 3], [["g-1.0.dist-info", [["g", "g_plugin:plugin"]]]]]
    cache.write_text(json.dumps(content))
    _install(other, "second", "second = second_plugin:plugin")
    _settle(other)
    assert declared_entry_points("kart", [str(site), str(other)]) == [
        ("first", "first_plugin:plugin"),
        ("second", "second_plugin:plugin"),
    ]
    folders = json.loads(cache.read_text())["folders"]
    assert "/elsewhere/bad" not in folders and folders["/elsewhere/good"][0] == [1, 2, 3]
    assert str(other) in folders and str(site) in folders
