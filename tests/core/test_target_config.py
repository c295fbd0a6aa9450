"""kart_core.target_config: target settings (the signing key) read once per build, not per target."""

from __future__ import annotations

import os

import pytest
from bit_rot import rot

from kart_core import target_config
from kart_core.target import make_target


def test_frozen_reads_the_key_once_for_its_body(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    target = make_target(str(tmp_path / "a.pkl"))
    with target_config.frozen() as settings:
        monkeypatch.setenv("KART_SIGNING_KEY", "later")
        monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
        assert settings.verify is False
        assert settings.signer is None
        assert target.signer is None  # the build's settings, although the environment changed
        with target_config.frozen() as inner:
            assert inner is settings  # nested scopes keep the outer read
    assert target.signer is not None  # outside a scope: read when used


def test_a_target_reads_the_key_when_used_not_when_made(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    target = make_target(str(tmp_path / "b.pkl"))
    monkeypatch.setenv("KART_SIGNING_KEY", "k")
    target.dump({"x": 1})
    assert (tmp_path / "b.pkl").read_bytes().startswith(b"KARTSIG2")  # sealed: the key was read at dump time


def test_verify_comes_from_the_environment_or_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import luigi.configuration

    monkeypatch.delenv("KART_VERIFY_OUTPUTS", raising=False)
    assert target_config.read().verify is False
    config = tmp_path / "verify.cfg"
    config.write_text("[TaskOnKart]\nverify_outputs = true\n")
    luigi.configuration.add_config_path(str(config))
    assert target_config.read().verify is True
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "0")  # the environment wins
    assert target_config.read().verify is False


def test_verify_loads_checks_hashes_in_its_body_only(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import kart_core
    from kart_core.errors import DamagedOutputError

    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "0")
    task = kart_core.TaskOnKart(workspace_directory=str(tmp_path))
    target = task.make_target("v.pkl")
    target.dump(17)
    path = tmp_path / target.path().split(str(tmp_path) + "/", 1)[1]
    data = path.read_bytes()
    # The same size, other content, no newer than its manifest (bit rot): a file newer than its manifest would be
    # recorded as a new version (test_damage.py).
    rot(str(path), data.replace(bytes([17]), bytes([71])))
    assert target.load() == 71  # verify off: the size check passes
    with kart_core.verify_loads() as settings:
        assert settings.verify is True
        with pytest.raises(DamagedOutputError, match="content hash .* was committed, found"):
            target.load()
    assert target_config.current().verify is False  # the scope ends with the body


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KART_INTEGRITY_RECORD", "OFF", False),
        ("KART_INTEGRITY_RECORD", " no ", False),
        ("KART_INTEGRITY_RECORD", "", True),  # empty: the default
        ("KART_VERIFY_OUTPUTS", "Yes", True),
        ("KART_REPAIR_DAMAGED", "0", False),
    ],
)
def test_on_off_settings_take_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: bool
) -> None:
    monkeypatch.setenv(variable, value)
    field = {"KART_INTEGRITY_RECORD": "record", "KART_VERIFY_OUTPUTS": "verify", "KART_REPAIR_DAMAGED": "repair"}
    assert getattr(target_config.read(), field[variable]) is expected


@pytest.mark.parametrize("variable", ["KART_INTEGRITY_RECORD", "KART_VERIFY_OUTPUTS", "KART_REPAIR_DAMAGED"])
def test_a_misspelt_on_off_setting_is_an_error_not_off(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    from kart_core.errors import SettingValueError

    monkeypatch.setenv(variable, "Ture")
    with pytest.raises(SettingValueError, match=rf"{variable} is 'Ture'.*neither on nor off.*true"):
        target_config.read()


def test_a_build_with_a_misspelt_integrity_record_option_stops_before_running(tmp_path) -> None:
    """In the luigi config file too (a fresh process: luigi's config is the process's)."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "luigi.cfg").write_text("[TaskOnKart]\nintegrity_record = Ture\n")
    script = textwrap.dedent(
        """
        import kart_core

        class T(kart_core.TaskOnKart):
            def run(self):
                open("ran", "w").close()
                self.dump(1)

        try:
            kart_core.build(T(), reset_register=False)
        except kart_core.errors.SettingValueError as error:
            print("refused:", error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")},
    )
    assert "refused: [TaskOnKart] integrity_record in the luigi configuration is 'Ture'" in done.stdout, done.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "resources").exists()
