"""luigi's options that ``gokart.run()`` passes through to luigi, under ``kart_core.run`` (attacker at14 N14).

Each script runs under gokart 1.12.2 and under kart, each in its own process (``gokart_twin``): ``--workers``,
``Task.resources`` (luigi's scheduler allows a resource no ``[resources]`` entry names once at a time),
``worker_timeout`` (gokart stops the task; kart refuses to start, naming the option), ``retry_count`` (a local
scheduler never retries within one run, so it changes nothing there), and a central scheduler (luigid) when
``--local-scheduler`` is absent.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gokart_twin import LIBRARIES, run_both, run_script
from services import luigi_scheduler

_TASKS = """
import json, os, sys, time
import luigi
import gokart


def note(*what):
    with open('journal.txt', 'a') as file:
        file.write(json.dumps([time.time(), *what]) + '\\n')


class Sleep(gokart.TaskOnKart):
    i = luigi.IntParameter()
    seconds = luigi.FloatParameter(default=1.0)

    def run(self):
        note('start', self.i)
        time.sleep(self.seconds)
        note('end', self.i)
        self.dump(self.i)


class Gpu(Sleep):
    resources = {'gpu': 1}


class Slow(Sleep):
    worker_timeout = 1


class Flaky(gokart.TaskOnKart):
    retry_count = 3

    def run(self):
        note('try')
        raise RuntimeError('fails')


class Fan(gokart.TaskOnKart):
    kind = luigi.Parameter(default='Sleep')
    seconds = luigi.FloatParameter(default=1.0)
    tag = luigi.Parameter(default='')

    def requires(self):
        cls = {'Sleep': Sleep, 'Gpu': Gpu, 'Slow': Slow}[self.kind]
        return [cls(i=i, seconds=self.seconds) for i in range(2)]

    def run(self):
        self.dump(1)


def main(args):
    try:
        gokart.run(args)
    except SystemExit as exit:
        code = exit.code
    rows = [json.loads(line) for line in open('journal.txt')] if os.path.exists('journal.txt') else []
    return {'code': code, 'journal': rows}
"""


def _overlap(journal: list[list[Any]]) -> bool:
    """Whether two tasks of the journal ran at the same time (one started before the other ended)."""
    running, most = 0, 0
    for row in sorted(journal, key=lambda row: (row[0], row[1] == "start")):
        running += 1 if row[1] == "start" else -1 if row[1] == "end" else 0
        most = max(most, running)
    return most > 1


def _script(args: list[str]) -> str:
    # --no-lock: luigi's lock is keyed by the process's command line, which every fork of the twin's server shares.
    return _TASKS + f"\nprint(json.dumps(main({[*args, '--no-lock']!r})))\n"


def test_workers_run_independent_tasks_at_once_as_gokart(tmp_path: Path) -> None:
    found = run_both(_script(["Fan", "--local-scheduler", "--workers", "2"]), tmp_path)
    assert [found[lib]["code"] for lib in LIBRARIES] == [0, 0]
    assert [_overlap(found[lib]["journal"]) for lib in LIBRARIES] == [True, True]


def test_tasks_holding_a_resource_never_run_at_once_as_gokart(tmp_path: Path) -> None:
    """``resources = {'gpu': 1}`` and no ``[resources]`` entry: luigi's scheduler lets one run at a time."""
    found = run_both(_script(["Fan", "--kind", "Gpu", "--local-scheduler", "--workers", "2"]), tmp_path)
    assert [found[lib]["code"] for lib in LIBRARIES] == [0, 0]
    assert [_overlap(found[lib]["journal"]) for lib in LIBRARIES] == [False, False]


def test_a_resource_limit_from_the_config_allows_that_many_at_once(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text("[resources]\ngpu = 2\n")
    args = ["Fan", "--kind", "Gpu", "--local-scheduler", "--workers", "2"]
    found = run_both(_script(args), tmp_path, env={"LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")})
    assert [found[lib]["code"] for lib in LIBRARIES] == [0, 0]
    assert [_overlap(found[lib]["journal"]) for lib in LIBRARIES] == [True, True]


def test_retry_count_retries_nothing_within_one_run_as_gokart(tmp_path: Path) -> None:
    found = run_both(_script(["Flaky", "--local-scheduler"]), tmp_path)
    assert found["kart"]["code"] == found["gokart"]["code"] == 40
    assert [len(found[lib]["journal"]) for lib in LIBRARIES] == [1, 1]  # one try each


def test_worker_timeout_is_refused_by_name_where_gokart_stops_the_task(tmp_path: Path) -> None:
    """gokart kills a task after its ``worker_timeout`` (exit 40); kart's executor cannot stop a running task, so
    kart runs nothing and fails naming the task, the option and what to do instead."""
    script = _script(["Fan", "--kind", "Slow", "--seconds", "3", "--local-scheduler"])
    gokart = run_script("gokart", script, tmp_path / "gokart")
    assert gokart["code"] == 40 and len(gokart["journal"]) == 2  # both started, neither ended: stopped
    kart_script = script.replace(
        "gokart.run(args)", "gokart.run(args)\n    except Exception as exc:\n        return {'error': str(exc)}"
    )
    kart = run_script("kart", kart_script, tmp_path / "kart")
    assert "worker_timeout" in kart["error"] and "Slow[" in kart["error"], kart
    assert "luigi.build" in kart["error"]


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[int]:
    """A real luigi central scheduler on a free loopback port (``services.luigi_scheduler``), stopped afterwards."""
    (tmp_path / "luigid").mkdir()
    with luigi_scheduler(str(tmp_path / "luigid")) as service:
        yield service.port


def _done_on(port: int) -> list[str]:
    """The ids of the tasks luigid at ``port`` holds as DONE."""
    query = json.dumps({"status": "DONE", "upstream_status": "", "search": ""})
    url = f"http://127.0.0.1:{port}/api/task_list?data={urllib.parse.quote(query)}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return sorted(json.loads(answer.read())["response"])


@pytest.mark.slow
def test_without_local_scheduler_the_run_talks_to_luigid_as_gokart(tmp_path: Path, luigid: int) -> None:
    for index, library in enumerate(LIBRARIES):
        # Tasks of their own for each library (the seconds reach the upstreams): luigid keeps what it saw.
        args = ["Fan", "--tag", f"run{index}", "--seconds", f"0.0{index}", "--scheduler-host", "127.0.0.1"]
        found = run_script(library, _script([*args, "--scheduler-port", str(luigid)]), tmp_path / library)
        assert found["code"] == 0
        done = _done_on(luigid)  # luigid ran the root, its two upstreams, and those of the runs before
        assert len([task for task in done if task.startswith("Fan_")]) == index + 1, done
