"""kart_core.worker: ``[gokart_worker]`` honoured under luigi, named in a warning under kart's executor.

The luigi-side behaviour is compared with gokart 1.12.2 in separate processes (``gokart_twin``).
"""

from __future__ import annotations

import configparser
import datetime
import os
import warnings
from pathlib import Path
from typing import Any

import luigi
import pytest
from gokart_twin import run_both, run_script

import kart_core
from kart_core.errors import IgnoredSettingWarning
from kart_core.worker import SECTION, Worker, check_worker_section, gokart_worker, luigi_worker_settings


def _parser(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


def test_keys_kart_always_honours_are_silent() -> None:
    parser = _parser(
        "[gokart_worker]\ncheck_unfulfilled_deps = true\ncheck_complete_on_run = True\ntask_completion_check_at_run = true\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_worker_section(parser) == []


def test_every_other_key_is_named_in_a_warning() -> None:
    parser = _parser(
        "[gokart_worker]\ntimeout = 5\nkeep_alive = true\ncheck_complete_on_run = false\nno_such_key = 1\n"
    )
    with pytest.warns(IgnoredSettingWarning) as caught:
        ignored = check_worker_section(parser)
    assert ignored == ["timeout", "keep_alive", "check_complete_on_run", "no_such_key"]
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith("[gokart_worker] timeout = 5 is ignored: kart's executor has no luigi worker")
    assert "WorkerSchedulerFactory" in messages[0]
    assert messages[2].startswith("[gokart_worker] check_complete_on_run = false is ignored: kart commits a run only")
    assert messages[3].endswith("gokart has no such [gokart_worker] key either (a typo?).")


def test_the_misspelt_section_is_reported() -> None:
    with pytest.warns(IgnoredSettingWarning, match=r"\[gokart.worker\] is not read by gokart or kart"):
        assert check_worker_section(_parser("[gokart.worker]\ntimeout = 5\n")) == ["gokart.worker"]


def test_no_section_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_worker_section(_parser("[core]\nworkers = 2\n")) == []


def test_gokart_worker_has_gokarts_keys_and_defaults() -> None:
    settings = gokart_worker()
    assert settings.timeout == 0
    assert settings.wait_interval == 1.0
    assert settings.max_keep_alive_idle_duration == datetime.timedelta(0)
    assert settings.task_completion_check_at_run is True
    passed_on = luigi_worker_settings(settings)
    assert "task_completion_check_at_run" not in passed_on
    assert passed_on["check_unfulfilled_deps"] is True
    assert SECTION == "gokart_worker"


def test_worker_passes_the_section_to_luigis_worker() -> None:
    import luigi.scheduler

    config = gokart_worker(timeout=7, wait_interval=0.5)
    with Worker(scheduler=luigi.scheduler.Scheduler(), config=config) as worker:
        assert worker._config.timeout == 7
        assert worker._config.wait_interval == 0.5


_LUIGI_CFG = "[gokart_worker]\ntimeout = 5\nwait_interval = 0.25\ncheck_complete_on_run = true\n"

_UNDER_LUIGI = """
import json, os
import luigi, luigi.scheduler
import gokart
from gokart.build import WorkerSchedulerFactory

class Double(gokart.TaskOnKart):
    x = luigi.IntParameter()
    def run(self):
        self.dump(self.x * 2)

factory = WorkerSchedulerFactory()
worker = factory.create_worker(factory.create_local_scheduler(), 1)
task = Double(x=21)
ok = luigi.build([task], worker_scheduler_factory=factory, local_scheduler=True, log_level="ERROR")
files = sorted(os.path.relpath(os.path.join(d, f), "resources") for d, _, fs in os.walk("resources") for f in fs)
print(json.dumps({
    "timeout": worker._config.timeout,
    "wait_interval": worker._config.wait_interval,
    "check_complete_on_run": worker._config.check_complete_on_run,
    "ok": ok,
    "value": task.output().load(),
    "output": os.path.relpath(task.output().path(), "resources"),
    "files": [f for f in files if not f.startswith("log/manifest/")],
}))
"""


@pytest.mark.slow
def test_section_is_honoured_under_luigi_as_in_gokart(tmp_path: Path) -> None:
    for library in ("gokart", "kart"):
        (tmp_path / library).mkdir()
        (tmp_path / library / "luigi.cfg").write_text(_LUIGI_CFG)
    results = run_both(_UNDER_LUIGI, tmp_path, env={"LUIGI_CONFIG_PATH": "luigi.cfg"})
    assert results["kart"] == results["gokart"]
    assert results["kart"]["timeout"] == 5
    assert results["kart"]["value"] == 42


_UNDER_KART = """
import json, warnings
import luigi
import gokart

class Double(gokart.TaskOnKart):
    x = luigi.IntParameter()
    def run(self):
        self.dump(self.x * 2)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    value = gokart.build(Double(x=21))
print(json.dumps({"value": value, "warnings": [str(w.message) for w in caught if "gokart_worker" in str(w.message)]}))
"""


@pytest.mark.slow
def test_kart_build_names_each_ignored_key(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text(_LUIGI_CFG)
    result = run_script("kart", _UNDER_KART, tmp_path, env={"LUIGI_CONFIG_PATH": "luigi.cfg"})
    assert result["value"] == 42
    assert [message.split(" is ignored")[0] for message in result["warnings"]] == [
        "[gokart_worker] timeout = 5",
        "[gokart_worker] wait_interval = 0.25",
    ]


# --- [TaskOnKart]: a misspelt kart setting is named -----------------------------------------------


class WcDeclaresLimit(kart_core.TaskOnKart):
    """A task class declaring a parameter close to a kart setting's name, which [TaskOnKart] may set."""

    signing_keys = luigi.Parameter(default="")

    def run(self) -> None:  # noqa: D102
        self.dump(1)


def test_a_misspelt_task_on_kart_setting_is_named_in_a_warning() -> None:
    from kart_core.task_parameters import check_task_on_kart_section

    parser = _parser(
        "[TaskOnKart]\nsigning_kye = s3cret\nworkspace_directroy = /data\nverify_outputs = true\n"
        "signing_keys = declared by a task\nmy_threshold = 3\n"
    )
    with pytest.warns(IgnoredSettingWarning) as caught:
        assert check_task_on_kart_section(parser) == ["signing_kye", "workspace_directroy"]
    messages = [str(w.message) for w in caught]
    assert messages == [
        "[TaskOnKart] signing_kye is read by nothing: no kart setting or task parameter has that name. "
        "Did you mean signing_key?",
        "[TaskOnKart] workspace_directroy is read by nothing: no kart setting or task parameter has that name. "
        "Did you mean workspace_directory?",
    ]


def test_a_build_names_a_misspelt_signing_key(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import luigi.configuration

    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    config = tmp_path / "typo.cfg"
    config.write_text("[TaskOnKart]\nsigning_kye = s3cret\n")
    parser = luigi.configuration.get_config()
    luigi.configuration.add_config_path(str(config))
    try:
        with pytest.warns(IgnoredSettingWarning, match="signing_kye is read by nothing.*signing_key"):
            kart_core.build(WcDeclaresLimit(workspace_directory=str(tmp_path / "ws")), reset_register=False)
    finally:
        parser.remove_option("TaskOnKart", "signing_kye")


def test_a_misspelt_task_on_kart_section_is_named_in_a_warning() -> None:
    from kart_core.task_parameters import check_task_on_kart_section

    parser = _parser("[taskonkart]\nsigning_key = s3cret\n\n[Task_On_Kart]\nx = 1\n\n[TaskOnKartish]\ny = 2\n")
    with pytest.warns(IgnoredSettingWarning) as caught:
        assert check_task_on_kart_section(parser) == ["[taskonkart]", "[Task_On_Kart]"]
    assert str(caught[0].message) == (
        "[taskonkart] is read by nothing: kart and gokart read [TaskOnKart] (section names are case-sensitive). "
        "Rename the section."
    )


class WcSigned(kart_core.TaskOnKart):
    """A task family whose own section may hold a parameter named like a kart setting."""

    signing_key = luigi.Parameter(default="")

    def run(self) -> None:  # noqa: D102
        self.dump(1)


def test_a_signing_setting_too_far_for_difflib_or_in_another_section_is_named() -> None:
    from kart_core.task_parameters import check_task_on_kart_section

    parser = _parser(
        "[TaskOnKart]\nsignature_key = s3cret\nold_signature_secrets = a, b\ndesign_version = 2\n\n"
        "[kart]\nsigning_key = s3cret\nverify_outputs = true\n\n[WcSigned]\nsigning_key = a parameter of the task\n"
    )
    with pytest.warns(IgnoredSettingWarning) as caught:
        assert check_task_on_kart_section(parser) == [
            "[kart] signing_key",
            "[kart] verify_outputs",
            "signature_key",
            "old_signature_secrets",
        ]
    assert [str(w.message) for w in caught] == [
        "[kart] signing_key is read by nothing: kart reads signing_key from [TaskOnKart] only (or its environment "
        "variable). Move it to [TaskOnKart].",
        "[kart] verify_outputs is read by nothing: kart reads verify_outputs from [TaskOnKart] only (or its "
        "environment variable). Move it to [TaskOnKart].",
        "[TaskOnKart] signature_key is read by nothing: no kart setting or task parameter has that name. "
        "Did you mean signing_key?",
        "[TaskOnKart] old_signature_secrets is read by nothing: no kart setting or task parameter has that name. "
        "Did you mean signing_old_keys?",
    ]


def test_a_build_names_a_signing_key_in_another_section_and_its_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import luigi.configuration

    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    config = tmp_path / "misplaced.cfg"
    config.write_text("[kart]\nsigning_key = s3cret\n")
    parser = luigi.configuration.get_config()
    luigi.configuration.add_config_path(str(config))
    try:
        with pytest.warns(IgnoredSettingWarning) as caught:
            kart_core.build(WcDeclaresLimit(workspace_directory=str(tmp_path / "ws")), reset_register=False)
    finally:
        parser.remove_section("kart")
        type(parser)._config_paths.remove(str(config))
    messages = [str(w.message) for w in caught if "[kart]" in str(w.message)]
    assert messages == [
        "[kart] signing_key is read by nothing: kart reads signing_key from [TaskOnKart] only (or its environment "
        f"variable). Move it to [TaskOnKart]. (luigi configuration: {config})"
    ]


def _toml_parser(path: Path, text: str) -> Any:
    from luigi.configuration.toml_parser import LuigiTomlParser

    path.write_text(text)
    parser = LuigiTomlParser()
    parser.read([str(path)])
    return parser


def test_under_a_toml_config_every_task_on_kart_key_kart_does_not_read_is_named(tmp_path: Path) -> None:
    # attacker at3 A1: under luigi's TOML parser ConfigParser's sections() is empty, so no check saw anything;
    # gokart injects no parameter from [TaskOnKart] there (kart keeps its ids), while kart reads its own settings
    from kart_core.task_parameters import check_task_on_kart_section

    parser = _toml_parser(
        tmp_path / "luigi.toml",
        '[TaskOnKart]\nworkspace_directory = "./ws"\nsigning_key = "k"\nlimit = 0.5\nsigning_kye = "x"\n\n'
        "[taskonkart]\nx = 1\n\n[kart]\nverify_outputs = true\n",
    )
    with pytest.warns(IgnoredSettingWarning) as caught:
        assert check_task_on_kart_section(parser) == ["[taskonkart]", "[kart] verify_outputs", "limit", "signing_kye"]
    messages = [str(w.message) for w in caught]
    assert messages[2].startswith(
        "[TaskOnKart] limit is read by nothing: under a TOML luigi config (LUIGI_CONFIG_PARSER=toml) gokart sets no "
        "task parameter from [TaskOnKart]"
    )
    assert "([MyTask] limit = ...)" in messages[2]
    assert messages[3].startswith(
        "[TaskOnKart] signing_kye is read by nothing: no kart setting has that name. Did you mean signing_key?"
    )


@pytest.mark.slow
def test_a_build_under_a_toml_config_names_an_ignored_parameter_and_keeps_gokart_s_id(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "luigi.toml").write_text('[TaskOnKart]\nworkspace_directory = "./ws"\nlimit = 7\n')
    (tmp_path / "wc_toml.py").write_text(
        "import luigi, kart_core\n"
        "class WcToml(kart_core.TaskOnKart):\n"
        "    limit = luigi.IntParameter(default=3)\n"
        "    def run(self):\n"
        "        self.dump(self.limit)\n"
    )
    script = "import wc_toml, kart_core as g; t = wc_toml.WcToml(); print(g.build(t), t.workspace_directory)"
    environment = {**os.environ, "LUIGI_CONFIG_PARSER": "toml", "LUIGI_CONFIG_PATH": "luigi.toml"}
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environment.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["3", "./ws"]  # gokart's value and id (limit not injected); kart's workspace
    assert "IgnoredSettingWarning: [TaskOnKart] limit is read by nothing: under a TOML luigi config" in done.stderr
