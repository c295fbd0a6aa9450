"""kart report: a self-contained HTML page; checked as text and in a real headless Chromium (CDP)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect import render_report, write_report
from kart_core.inspect.layout import layered_layout


class RpLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=2)
    note = luigi.Parameter(default="plain")

    def run(self) -> None:
        self.dump(list(range(self.n)))


class RpSide(gokart.TaskOnKart[int]):
    def run(self) -> None:
        raise RuntimeError("side fails")


class RpTop(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=2)

    def requires(self) -> dict[str, Any]:
        ws = self.workspace_directory
        return {
            "load": RpLoad(n=self.n, workspace_directory=ws),
            "other": RpLoad(n=self.n + 1, workspace_directory=ws),
            "side": RpSide(workspace_directory=ws),
        }

    def run(self) -> None:
        self.dump(0)


def _pipeline(workspace: str) -> RpTop:
    top = RpTop(workspace_directory=workspace)
    gokart.build(RpLoad(n=2, workspace_directory=workspace), reset_register=False)
    with pytest.raises(gokart.GokartBuildError):
        gokart.build(RpSide(workspace_directory=workspace), reset_register=False)
    return top


def test_page_has_a_node_per_task_with_status_and_no_external_resources(workspace: str) -> None:
    page = render_report([_pipeline(workspace)])
    statuses = re.findall(r'<g class="node (\w+)" data-key="[^"]+\.(\w+)_[0-9a-f]{32}"', page)
    assert sorted(statuses) == [
        ("complete", "RpLoad"),
        ("failed", "RpSide"),
        ("pending", "RpLoad"),
        ("pending", "RpTop"),
    ]
    assert page.count('<path class="edge"') == 3
    assert not re.search(r"<script[^>]+src=|<link|@import|url\(['\"]?https?:", page)
    data = json.loads(re.search(r'<script type="application/json" id="kart-data">(.*?)</script>', page, re.S).group(1))
    load = next(t for t in data["tasks"] if t["status"] == "complete")
    assert load["params"] == {"n": "2", "note": "plain"} and load["outputs"][0]["size"].endswith(" B")
    assert load["processing_time"].endswith("s") and len(load["unique_id"]) == 32


def test_hostile_parameter_text_cannot_break_out_of_the_page(workspace: str) -> None:
    hostile = '</script><script>alert(1)</script><b x="'
    page = render_report([RpLoad(note=hostile, workspace_directory=workspace)])
    assert page.count("</script>") == 2  # only the page's own two script elements end
    data = re.search(r'<script type="application/json" id="kart-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data)["tasks"][0]["params"]["note"] == hostile  # and the text comes back intact


def test_write_report_writes_the_file(workspace: str, tmp_path: Path) -> None:
    path = write_report([RpLoad(workspace_directory=workspace)], str(tmp_path / "r.html"))
    assert Path(path).read_text().startswith("<!DOCTYPE html>")


def test_layout_places_upstreams_left_and_separates_rows() -> None:
    upstream = {"a": [], "b": [], "c": ["a", "b"], "d": ["c", "a"]}
    layout = layered_layout(["a", "b", "c", "d"], upstream)
    xs = {key: pos[0] for key, pos in layout.positions.items()}
    assert xs["a"] == xs["b"] < xs["c"] < xs["d"]
    assert layout.positions["a"][1] != layout.positions["b"][1]
    assert all(0 <= x < layout.width for x in xs.values())


# --- in a real browser ----------------------------------------------------------------------------

_CHROMIUM = "/usr/bin/chromium"
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--window-size=1600,1000",
]


def _chromium() -> str:
    if not os.path.exists(_CHROMIUM):
        if shutil.which("apt-get") is None:
            pytest.skip("no /usr/bin/chromium and no apt-get to install it")
        done = subprocess.run(
            ["apt-get", "install", "-y", "chromium", "chromium-driver"], capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0 or not os.path.exists(_CHROMIUM):
            pytest.skip(f"apt-get install chromium failed ({done.returncode}): {done.stderr[-300:]}")
    return _CHROMIUM


class _Page:
    """One page driven through the Chrome DevTools protocol."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self._socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=15))
            if message.get("id") == self._next:
                assert "error" not in message, message
                return dict(message["result"])

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        x, y = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[_Page]:
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [_chromium(), *_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from websockets.sync.client import connect

        with connect(_page_socket(profile / "DevToolsActivePort", process), max_size=None, proxy=None) as socket:
            yield _Page(socket)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _page_socket(port_file: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
        targets = json.load(answer)
    return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])


@pytest.mark.slow
def test_report_renders_in_chromium_and_a_click_shows_the_parameters(
    workspace: str, tmp_path: Path, browser_page: _Page
) -> None:
    top = _pipeline(workspace)
    path = write_report([top], str(tmp_path / "report.html"))
    browser_page.call("Page.navigate", url=Path(path).as_uri())
    deadline = time.monotonic() + 15
    while browser_page.eval("document.readyState") != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert browser_page.eval("document.querySelectorAll('svg#graph g.node').length") == 4
    assert browser_page.eval("document.querySelector('svg#graph').getBoundingClientRect().width") > 500
    assert browser_page.eval("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    load = RpLoad(n=3, workspace_directory=workspace)
    browser_page.click(f'g.node[data-key$="_{load.make_unique_id()}"]')
    details = browser_page.eval("document.getElementById('details').innerText")
    assert f"RpLoad[{load.make_unique_id()[:8]}]" in details and load.make_unique_id() in details
    assert "n\t3" in details and "note\tplain" in details and "pending" in details
    assert browser_page.eval("document.querySelectorAll('g.node.selected').length") == 1
    colours = browser_page.eval(
        "[...document.querySelectorAll('g.node')]"
        ".map(n => n.classList[1] + '=' + getComputedStyle(n.querySelector('rect')).stroke)"
    )
    by_status = {entry.split("=")[0]: entry.split("=")[1] for entry in colours}
    assert len(set(by_status.values())) == 3  # complete, pending and failed are drawn in different colours
