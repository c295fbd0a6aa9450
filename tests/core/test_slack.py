"""The Slack hook plugin against a local HTTP server on 127.0.0.1 that records the API calls."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import luigi
import luigi.configuration
import pytest

import kart_core as gokart
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager
from kart_core.runlog import RunLogPlugin
from kart_core.slack import SlackNotifier, SlackSettings, build_message

pytest.importorskip("slack_sdk")


class FakeSlack:
    """Answers the Slack Web API methods kart uses, and records every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_with: str | None = None
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                decoded = {"raw": body} if self.path.startswith("/upload/") else recorder.decode(self.headers, body)
                recorder.calls.append((self.path, decoded))
                self.answer(recorder.reply(self.path))

            def answer(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    @staticmethod
    def decode(headers: Any, body: bytes) -> dict[str, Any]:
        kind = headers.get("Content-Type", "")
        if "json" in kind:
            return dict(json.loads(body))
        if "x-www-form-urlencoded" in kind:
            return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        return {"raw": body}

    def reply(self, path: str) -> dict[str, Any]:
        if self.fail_with:
            return {"ok": False, "error": self.fail_with}
        port = self.server.server_address[1]
        if path.endswith("chat.postMessage"):
            return {"ok": True, "channel": "C0KART", "ts": "1700000000.000100"}
        if path.endswith("files.getUploadURLExternal"):
            return {"ok": True, "upload_url": f"http://127.0.0.1:{port}/upload/F0TREE", "file_id": "F0TREE"}
        if path.endswith("files.completeUploadExternal"):
            return {"ok": True, "files": [{"id": "F0TREE", "title": "kart task tree"}]}
        return {"ok": True}

    def methods(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path, _ in self.calls]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _configure(**options: str) -> None:
    config = luigi.configuration.get_config()
    config.add_section("SlackConfig")
    for name, value in options.items():
        config.set("SlackConfig", name, value)


@pytest.fixture
def configured(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> FakeSlack:
    monkeypatch.setenv("KART_TEST_SLACK_TOKEN", "xoxb-test-token")
    _configure(token_name="KART_TEST_SLACK_TOKEN", channel="#ml-builds", base_url=slack.url)
    return slack


class SkStep(gokart.TaskOnKart[int]):
    x = luigi.IntParameter(default=1)
    fail = luigi.BoolParameter(default=False)

    def run(self) -> None:
        if self.fail:
            raise ValueError("step failed")
        self.dump(self.x)


class SkTop(gokart.TaskOnKart[int]):
    fail = luigi.BoolParameter(default=False)

    def requires(self) -> SkStep:
        return SkStep(fail=self.fail, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1)


def _build(task: Any) -> Any:
    manager = create_hook_manager([RunLogPlugin(), builtin_formats, SlackNotifier()], load_entry_points=False)
    return gokart.build(task, reset_register=False, hook_manager=manager)


def test_success_posts_one_message(configured: FakeSlack, workspace: str) -> None:
    top = SkTop(workspace_directory=workspace)
    assert _build(top) == 2
    assert configured.methods() == ["chat.postMessage"]
    body = configured.calls[0][1]
    assert body["channel"] == "#ml-builds"
    assert body["text"].startswith(f"kart build succeeded: {top.kart_label()}\nkart build: 2 ran, 0 cached, 0 failed")


def test_failure_names_the_failed_task_and_its_unique_id(
    configured: FakeSlack, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    luigi.configuration.get_config().set("SlackConfig", "to_user", "U123")
    with pytest.raises(gokart.GokartBuildError):
        _build(SkTop(fail=True, workspace_directory=workspace))
    text = configured.calls[0][1]["text"]
    step = SkStep(fail=True, workspace_directory=workspace)
    assert text.startswith("<@U123> kart build FAILED: SkTop[")
    assert f"• {step.kart_label()} (unique id {step.make_unique_id()}): ValueError: step failed" in text
    assert "Not run because of them: SkTop[" in text


def test_tree_is_uploaded_with_files_upload_v2_in_the_thread(configured: FakeSlack, workspace: str) -> None:
    luigi.configuration.get_config().set("SlackConfig", "send_tree_info", "True")
    top = SkTop(workspace_directory=workspace)
    _build(top)
    assert configured.methods() == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "F0TREE",
        "files.completeUploadExternal",
    ]
    uploaded = configured.calls[2][1]["raw"].decode()
    assert f"(COMPLETE) SkTop[{top.make_unique_id()}]" in uploaded and "(COMPLETE) SkStep[" in uploaded
    complete = configured.calls[3][1]
    assert complete["channel_id"] == "C0KART" and complete["thread_ts"] == "1700000000.000100"
    assert json.loads(complete["files"])[0]["id"] == "F0TREE"


def test_inert_without_token_or_channel(slack: FakeSlack, workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KART_SLACK_BASE_URL", slack.url)
    _configure(channel="#ml-builds")  # no token in the environment
    _build(SkTop(workspace_directory=workspace))
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-default-name")
    luigi.configuration.get_config().remove_option("SlackConfig", "channel")
    _build(SkStep(x=5, workspace_directory=workspace))  # a token, but no channel
    assert slack.calls == []


def test_base_url_from_the_environment_and_default_token_name(
    slack: FakeSlack, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SLACK_BASE_URL", slack.url.rstrip("/"))
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-default-name")
    _configure(channel="C999")
    assert SlackSettings.from_config().base_url == slack.url
    _build(SkStep(x=7, workspace_directory=workspace))
    assert slack.methods() == ["chat.postMessage"]


def test_a_slack_error_never_fails_the_build(
    configured: FakeSlack, workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    configured.fail_with = "channel_not_found"
    assert _build(SkStep(x=3, workspace_directory=workspace)) == 3
    assert "Could not notify Slack channel #ml-builds" in caplog.text and "channel_not_found" in caplog.text


def test_build_message_without_failures_lists_no_tasks() -> None:
    result = gokart.BuildResult(ran=["m.A_" + "a" * 32], seconds=0.5)
    assert build_message([], result) == "kart build succeeded: \n" + result.summary()


def test_the_kart_entry_point_names_the_plugin() -> None:
    points = [ep for ep in importlib.metadata.entry_points(group="kart") if ep.value.startswith("kart_core.slack")]
    if not points:
        pytest.skip(
            "the 'kart' entry point for kart_core.slack is not in the installed metadata yet (pip install -e .)"
        )
    assert isinstance(points[0].load(), SlackNotifier)


def test_the_settings_class_is_made_only_when_slack_is_configured(tmp_path: Any) -> None:
    """Every build's hook manager imports kart_core.slack (the entry point): its frozen SlackSettings dataclass, whose
    methods are generated from source, is made only when a build finds Slack configured, or when it is named."""
    script = (
        "import sys, luigi\n"
        "import kart_core.slack as slack\n"
        "from kart_core.runner import default_hook_manager\n"
        "class T(luigi.Task):\n"
        "    pass\n"
        "default_hook_manager().hook.kart_after_build(tasks=[T()], result=None)\n"
        "print('kart_core.slack_settings' in sys.modules or 'SlackSettings' in vars(slack))\n"
        "from kart_core.slack import SlackSettings\n"
        "import dataclasses\n"
        "print(dataclasses.is_dataclass(SlackSettings), SlackSettings is slack.SlackSettings)\n"
        "print(SlackSettings(token='x', channel='#c').enabled, SlackSettings(token='x', channel=None).enabled)\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("SLACK_TOKEN", "LUIGI_CONFIG_PATH")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:3] == ["False", "True True", "True False"]
    assert not hasattr(importlib.import_module("kart_core.slack"), "SlackSetting")  # other names: AttributeError
