"""kart report: one self-contained HTML page, checked as text and in a real headless Chromium (Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest
from browser import Page, chromium_page, require_browser

import kart_core as gokart
from kart_core.inspect import render_report, write_report
from kart_core.inspect.cmdline import set_workspace
from kart_core.inspect.layout import layered_layout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


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


def _data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="kart-data">(.*?)</script>', page, re.S)
    assert found is not None
    return dict(json.loads(found.group(1)))


def test_page_has_a_node_per_task_with_status_and_no_external_resources(workspace: str) -> None:
    page = render_report([_pipeline(workspace)])
    statuses = re.findall(r'<g class="node (\w+)( root)?" data-key="[^"]+\.(\w+)_[0-9a-f]{32}"', page)
    assert sorted(statuses) == [
        ("complete", "", "RpLoad"),
        ("failed", "", "RpSide"),
        ("pending", "", "RpLoad"),
        ("pending", " root", "RpTop"),
    ]
    assert page.count('<path class="edge"') == 3
    assert not re.search(r"<script[^>]+src=|<link|@import|url\(['\"]?https?:|<img|<iframe", page)
    assert "Content-Security-Policy\" content=\"default-src 'none';" in page
    load = next(t for t in _data(page)["tasks"] if t["status"] == "complete")
    assert load["params"] == {"n": "2", "note": "plain"} and load["outputs"][0]["size"].endswith(" B")
    assert load["processing_time"] >= 0 and load["output_size"] > 0 and len(load["unique_id"]) == 32
    note = re.search(rf'data-key="[^"]+_{load["unique_id"]}".*?<text class="note"[^>]*>([^<]*)</text>', page)
    assert note is not None and re.fullmatch(r"\d+\.\d\ds · \d+ B · \d\d-\d\d \d\d:\d\d", note.group(1))


def test_a_pending_node_says_why_it_will_run(workspace: str) -> None:
    page = render_report([_pipeline(workspace)])
    other = RpLoad(n=3, workspace_directory=workspace)
    node = re.search(rf'data-key="[^"]+_{other.make_unique_id()}".*?</g>', page, re.S)
    assert node is not None
    assert "will run: it differs from the nearest cached run RpLoad[" in node.group(0)  # the tooltip, whole
    assert re.search(r'<text class="note"[^>]*>will run: n changed</text>', node.group(0))


def _damage(task: Any) -> tuple[str, int]:
    """Truncate ``task``'s output to 3 bytes (as a disk or a person might); return its path and committed size."""
    path = task.output().path()
    size = Path(path).stat().st_size
    with open(path, "r+b") as file:
        file.truncate(3)
    return path, size


def test_a_damaged_task_shows_damaged_with_the_reason(workspace: str) -> None:
    """Its outputs exist (complete() says yes), but their size is not the committed one."""
    top = _pipeline(workspace)
    load = RpLoad(n=2, workspace_directory=workspace)
    path, committed = _damage(load)
    page = render_report([top])
    task = next(t for t in _data(page)["tasks"] if t["unique_id"] == load.make_unique_id())
    assert task["status"] == "damaged"
    assert task["reason"] == [
        f"{load.kart_label()} is cached but damaged: {path}: {committed} bytes were committed, found 3. "
        "A build that needs only it takes it as cached and loading it fails (DamagedOutputError); a task that "
        "must run and loads it runs it again first (unless repairs are off). "
        "Run `kart verify --delete` (the next build runs its task again), or rerun the task (--rerun)."
    ]
    node = re.search(rf'<g class="node damaged" data-key="[^"]+_{load.make_unique_id()}".*?</g>', page, re.S)
    assert node is not None and "damaged: kart verify --delete" in node.group(0)
    assert re.search(r'<i style="background:var\(--damaged\)"></i>1 damaged', page)
    top_task = next(t for t in _data(page)["tasks"] if t["root"])
    assert top_task["status"] == "pending"  # it will run, and its reason names the damaged upstream
    assert top_task["reason"][0].startswith(top.kart_label())
    assert any(line.startswith(f"  {load.kart_label()} is cached but damaged:") for line in top_task["reason"])


def test_several_roots_are_drawn_in_one_page(workspace: str) -> None:
    first, second = RpLoad(n=7, workspace_directory=workspace), RpTop(n=4, workspace_directory=workspace)
    page = render_report([first, second])
    data = _data(page)
    assert [t["label"] for t in data["tasks"] if t["root"]] == [first.kart_label(), second.kart_label()]
    assert f"<title>kart report: {first.kart_label()}, {second.kart_label()}</title>" in page
    assert len(data["tasks"]) == 5 == page.count('<g class="node ')


def test_hostile_parameter_text_cannot_break_out_of_the_page(workspace: str) -> None:
    hostile = '</script><script>alert(1)</script><b x="'
    page = render_report([RpLoad(note=hostile, workspace_directory=workspace)])
    assert page.count("</script>") == 2  # only the page's own two script elements end
    assert _data(page)["tasks"][0]["params"]["note"] == hostile  # and the text comes back intact


def test_write_report_writes_the_file(workspace: str, tmp_path: Path) -> None:
    path = write_report([RpLoad(workspace_directory=workspace)], str(tmp_path / "r.html"))
    assert Path(path).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_parameter_that_is_not_unicode_is_escaped_in_the_report(workspace: str, tmp_path: Path) -> None:
    # A value from a non-UTF-8 argv (b"caf\\xe9" -> 'caf\\udce9') made every report of the workspace crash
    # with UnicodeEncodeError after truncating the previous report to 0 bytes (attacker at7 E3).
    out = tmp_path / "site" / "r.html"
    out.parent.mkdir()
    write_report([RpLoad(workspace_directory=workspace)], str(out))
    before = out.read_bytes()
    gokart.build(RpLoad(note="caf\udce9", workspace_directory=workspace), reset_register=False)
    write_report([RpLoad(note="caf\udce9", workspace_directory=workspace)], str(out))
    assert "caf\\udce9" in out.read_text(encoding="utf-8")
    assert out.read_bytes() != before
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]  # no temporary file left beside it


def test_a_report_through_a_symlink_or_to_a_stream_writes_through_it(workspace: str, tmp_path: Path) -> None:
    # The temporary-file-and-rename of the E3 fix replaced a symlinked (published) page's link with a regular
    # file and renamed a file over /dev/stdout's entry (attacker at8 H3).
    published = tmp_path / "www" / "report.html"
    published.parent.mkdir()
    published.write_text("old")
    link = tmp_path / "report.html"
    link.symlink_to(published)
    write_report([RpLoad(workspace_directory=workspace)], str(link))
    assert link.is_symlink() and published.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    write_report([RpLoad(workspace_directory=workspace)], str(fifo))
    assert reader.communicate(timeout=30)[0].startswith(b"<!DOCTYPE html>")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with pytest.raises(FileNotFoundError, match="no folder .*typo"):
        write_report([RpLoad(workspace_directory=workspace)], str(tmp_path / "typo" / "r.html"))
    assert not (tmp_path / "typo").exists()


def test_layout_places_upstreams_left_and_separates_rows() -> None:
    upstream = {"a": [], "b": [], "c": ["a", "b"], "d": ["c", "a"]}
    layout = layered_layout(["a", "b", "c", "d"], upstream)
    xs = {key: pos[0] for key, pos in layout.positions.items()}
    assert xs["a"] == xs["b"] < xs["c"] < xs["d"]
    assert layout.positions["a"][1] != layout.positions["b"][1]
    assert all(0 <= x < layout.width for x in xs.values())


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Page]:
    """A page of a headless Chromium with a fresh profile; skips (fails under CI=true) without a browser."""
    require_browser()
    with chromium_page(tmp_path / "chromium-profile") as page:
        yield page


def _open(browser: Page, path: str) -> None:
    browser.page.goto(Path(path).as_uri())
    browser.page.wait_for_selector("#tasks-table tbody tr", state="attached")


@pytest.mark.slow
def test_report_in_chromium_shows_every_task_the_reasons_and_the_changed_parameter(
    workspace: str, tmp_path: Path, browser: Page
) -> None:
    top = _pipeline(workspace)
    gokart.build(RpLoad(n=2, note="second", workspace_directory=workspace), reset_register=False)
    path = write_report([top], str(tmp_path / "report.html"))
    _open(browser, path)
    page = browser.page
    data = _data(Path(path).read_text(encoding="utf-8"))
    keys = {t["key"] for t in data["tasks"]}
    assert {n.get_attribute("data-key") for n in page.query_selector_all("svg#graph g.node")} == keys
    assert page.eval_on_selector("svg#graph", "e => e.getBoundingClientRect().width") > 500

    other = RpLoad(n=3, workspace_directory=workspace)
    page.click(f'g.node[data-key$="_{other.make_unique_id()}"]')
    details = page.inner_text("#details")
    assert other.kart_label() in details and other.make_unique_id() in details
    assert "n\t3" in details and "note\tplain" in details and "pending" in details
    assert "WHY IT WILL RUN" in details and "parameter 'n': now 3, cached run 2" in details
    assert page.eval_on_selector_all("g.node.selected", "ns => ns.length") == 1
    colours = page.eval_on_selector_all(
        "g.node", "ns => ns.map(n => n.classList[1] + '=' + getComputedStyle(n.querySelector('rect')).stroke)"
    )
    assert len({c.split("=")[1] for c in colours}) == 3  # complete, pending and failed in different colours

    page.click("button[data-view=tasks]")
    rows = page.query_selector_all("#tasks-table tbody tr")
    assert "why it will run (or what is wrong)" in page.inner_text("#tasks-table thead")
    assert {r.get_attribute("data-key") for r in rows} == keys
    side = RpSide(workspace_directory=workspace)
    assert "never finished" in page.inner_text(f'#tasks-table tr[data-key$="_{side.make_unique_id()}"]')

    page.click("button[data-view=runs]")
    runs = page.locator('.class-runs[data-class="RpLoad"]')
    assert runs.locator("thead th").count() == 1 + 2  # a label column and the two cached runs
    assert runs.locator("tr.differs").evaluate_all("rs => rs.map(r => r.dataset.param)") == ["note"]
    changed = runs.locator("tr.differs td.changed")
    assert changed.all_inner_texts() == ["second"]
    assert changed.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 241, 168)"
    assert runs.locator("tr.same[data-param=n] td.changed").count() == 0
    assert browser.requests == [Path(path).as_uri()]  # nothing but the page itself
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0


@pytest.mark.slow
def test_report_in_chromium_shows_a_damaged_task(workspace: str, tmp_path: Path, browser: Page) -> None:
    top = _pipeline(workspace)
    load = RpLoad(n=2, workspace_directory=workspace)
    path, committed = _damage(load)
    report = write_report([top], str(tmp_path / "report.html"))
    _open(browser, report)
    page = browser.page
    node = f'g.node[data-key$="_{load.make_unique_id()}"]'
    assert page.eval_on_selector(node, "n => n.classList.contains('damaged')")
    stroke = page.eval_on_selector(node, "n => getComputedStyle(n.querySelector('rect')).stroke")
    page.click(node)
    details = page.inner_text("#details")
    assert "WHAT IS WRONG" in details and "WHY IT WILL RUN" not in details
    assert f"{path}: {committed} bytes were committed, found 3" in details and "kart verify --delete" in details
    assert "status\tdamaged" in details
    others = page.eval_on_selector_all(
        "g.node:not(.damaged)", "ns => ns.map(n => getComputedStyle(n.querySelector('rect')).stroke)"
    )
    assert stroke not in others  # its own colour
    page.click("button[data-view=tasks]")
    row = page.locator(f'#tasks-table tr[data-key$="_{load.make_unique_id()}"]')
    assert row.locator("td.status-damaged").inner_text() == "damaged"
    assert "bytes were committed, found 3" in row.inner_text()


@pytest.mark.slow
def test_report_screenshot_renders(tmp_path: Path, browser: Page, request: pytest.FixtureRequest) -> None:
    """A screenshot of the demo pipeline's report: the page's size, and not blank.

    ``pytest --docs-screenshots`` (``make docs-screenshots``) also copies it to docs/img/.
    """
    workspace = str(tmp_path / "demo-ws")
    models = _demo_models(workspace)
    path = write_report(models, str(tmp_path / "report.html"), title="kart report: mlpipeline Evaluate (3 models)")
    _open(browser, path)
    browser.page.click('g.node.pending.root[data-key*="Evaluate_"]')
    shots = {"report.png": tmp_path / "report.png", "report-runs.png": tmp_path / "report-runs.png"}
    browser.page.screenshot(path=str(shots["report.png"]))
    browser.page.click("button[data-view=runs]")
    browser.page.eval_on_selector('.class-runs[data-class="Evaluate"]', "e => e.scrollIntoView()")
    browser.page.screenshot(path=str(shots["report-runs.png"]))

    from PIL import Image

    for shot in shots.values():
        with Image.open(shot) as image:
            assert image.size == (1400, 860)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 50  # text, boxes, status colours
        assert max(colours)[0] < 0.95 * 1400 * 860  # not one flat colour
    assert browser.requests == [Path(path).as_uri()]
    if request.config.getoption("--docs-screenshots"):
        DOCS_IMG.mkdir(exist_ok=True)
        for name, shot in shots.items():
            shutil.copyfile(shot, DOCS_IMG / name)


def _demo_models(workspace: str) -> list[Any]:
    """The demo's three models built, then a fourth (ridge, alpha 0.5) that will run: four roots."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from mlpipeline.tasks import MODELS, Evaluate

    set_workspace(workspace)  # the upstream tasks Evaluate creates in requires() too

    built = [Evaluate(model=model, alpha=0.1, workspace_directory=workspace) for model in MODELS]
    gokart.build(built, reset_register=False)
    return [*built, Evaluate(model="ridge", alpha=0.5, workspace_directory=workspace)]


def test_without_a_browser_the_tests_skip_naming_it_and_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        browser.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and the browser tests cannot run: /nonexistent/chromium"):
        browser.require_browser()
