"""The `kart` command, run in-process with click's CliRunner (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner

import kart_core as gokart
from kart_core import luigi_config
from kart_core.cli import GOKART_CODES, _split_keeps, cli

M = __name__  # tasks below are named "<this module>.Class" on the command line


class CliLoad(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.dump(list(range(self.n)))


class CliFeatures(gokart.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)
    scale = luigi.IntParameter(default=1)

    def requires(self) -> CliLoad:
        return CliLoad(n=self.n)

    def run(self) -> None:
        self.dump([x * self.scale for x in self.load()])


class CliShortNames(gokart.TaskOnKart[str]):
    """Parameters named like the start of luigi's own options (--worker-id, --local-scheduler, ...)."""

    w = luigi.Parameter(default="-")
    worker = luigi.Parameter(default="-")
    local = luigi.BoolParameter()

    def run(self) -> None:
        self.dump(f"{self.w} {self.worker} {self.local}")


class CliNamedLikeLuigi(gokart.TaskOnKart[str]):
    """A parameter with the exact name of one of luigi's options: luigi's parser cannot be built for it."""

    worker_id = luigi.Parameter(default="-")

    def run(self) -> None:
        self.dump(self.worker_id)


class CliReport(gokart.TaskOnKart[int]):
    n = luigi.IntParameter(default=3)
    fail = luigi.BoolParameter(default=False)

    def requires(self) -> dict[str, gokart.TaskOnKart]:
        return {"features": CliFeatures(n=self.n), "load": CliLoad(n=self.n)}

    def run(self) -> None:
        if self.fail:
            raise ValueError("asked to fail")
        self.dump(sum(self.load("features")) + sum(self.load("load")))


class CliNeeds(gokart.TaskOnKart[int]):
    max_rows = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.max_rows)


class CliBadComplete(gokart.TaskOnKart[int]):
    def complete(self) -> bool:
        raise OSError("cannot reach the store")


class CliExits(gokart.TaskOnKart[int]):
    def run(self) -> None:
        sys.exit(7)


class CliInterrupted(gokart.TaskOnKart[int]):
    def run(self) -> None:
        raise KeyboardInterrupt


class CliTimed(gokart.TaskOnKart[int]):
    """Sets luigi's worker_timeout, which kart's executor cannot honour."""

    worker_timeout = 5

    def run(self) -> None:
        self.dump(1)


class CliNeedsTask(gokart.TaskOnKart[int]):
    upstream = gokart.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(len(self.load("upstream")))


def kart(*args: str) -> CliRunner.invoke:
    """Run `kart args...` in-process."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_builds_the_task_and_exits_zero() -> None:
    result = kart("run", f"{M}.CliReport", "--n", "4")
    assert result.exit_code == 0, result.output
    assert "kart build: 3 ran, 0 cached, 0 failed" in result.stderr
    assert gokart.build(CliReport(n=4), reset_register=False) == 2 * sum(range(4))
    again = kart("run", f"{M}.CliReport", "--n", "4")
    assert again.exit_code == 0 and "0 ran, 1 cached" in again.stderr  # a complete root is not walked further


def test_run_failure_exits_40_naming_the_failed_task_and_its_id() -> None:
    result = kart("run", f"{M}.CliReport", "--n", "2", "--fail")
    uid = CliReport(n=2, fail=True).make_unique_id()
    assert result.exit_code == GOKART_CODES.task_failed == 40
    assert f"FAILED CliReport[{uid[:8]}] (unique id {uid})" in result.stderr
    assert "ValueError: asked to fail" in result.stderr
    assert "2 ran, 0 cached, 1 failed" in result.stderr


def test_run_keep_going_and_workers_still_report_the_failure() -> None:
    result = kart(
        "run", "--workers", "2", "--executor", "thread", "--keep-going", f"{M}.CliReport", "--n", "5", "--fail"
    )
    assert result.exit_code == 40
    assert CliLoad(n=5).complete() and CliFeatures(n=5).complete()


def test_run_exits_50_when_the_graph_cannot_be_walked() -> None:
    result = kart("run", f"{M}.CliBadComplete")
    assert result.exit_code == GOKART_CODES.scheduling_error == 50
    assert f"FAILED {CliBadComplete().kart_label()} (unique id {CliBadComplete().make_unique_id()})" in result.stderr
    assert "OSError: cannot reach the store" in result.stderr


class CliBadChild(gokart.TaskOnKart[int]):
    upstream = gokart.TaskInstanceParameter()


class CliBadRequires(gokart.TaskOnKart[int]):
    def requires(self) -> CliBadChild:
        return CliBadChild(upstream=5)


def test_run_prints_the_note_of_a_definition_error() -> None:
    """kart's definition errors are printed alone (no traceback), so the note saying whose requires() raised (and what
    to fix) was dropped."""
    result = kart("run", f"{M}.CliBadRequires")
    assert result.exit_code == 50
    assert "ParameterTypeError: CliBadChild: parameter 'upstream' expects an instance" in result.stderr
    assert "kart: raised by requires() of CliBadRequires(); fix it, or the parameters that reach it." in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_reports_sys_exit_in_a_task_as_a_failure(workers: str) -> None:
    result = kart("run", "--workers", workers, "--executor", "thread", f"{M}.CliExits")
    assert result.exit_code == 40
    assert f"FAILED {CliExits().kart_label()}" in result.stderr and "SystemExit: 7" in result.stderr


def test_run_stops_on_a_keyboard_interrupt_after_the_summary() -> None:
    result = kart("run", f"{M}.CliInterrupted")
    assert result.exit_code == 1 and "Aborted!" in result.stderr
    assert "kart build: 0 ran, 0 cached, 1 failed, 0 not run" in result.stderr


def test_run_with_a_bad_task_name_or_parameter_exits_4_with_a_hint() -> None:
    missing_module = kart("run", "no_such_module.Task")
    assert missing_module.exit_code == 4 and "cannot import module 'no_such_module'" in missing_module.stderr
    missing_class = kart("run", f"{M}.NoSuchTask")
    assert missing_class.exit_code == 4 and "'test_cli' has no attribute 'NoSuchTask'" in missing_class.stderr
    bad_param = kart("run", f"{M}.CliLoad", "--no-such-param", "1")
    assert bad_param.exit_code == 4 and f"{M}.CliLoad has no parameter --no-such-param." in bad_param.stderr
    bare = kart("run", "CliLoad")
    assert bare.exit_code == 4 and "name the task with its module" in bare.stderr
    unset = kart("run", f"{M}.CliNeeds")  # the constructor's wording ("Pass it to the constructor") is not for a shell
    assert unset.exit_code == 4 and "constructor" not in unset.stderr
    assert "it requires --max-rows (or max_rows under [CliNeeds] in luigi's config); its parameters: --max-rows" in (
        unset.stderr
    )


def test_run_refuses_a_worker_timeout_in_one_line_before_anything_runs() -> None:
    assert_one_line_error(
        invoke("run", f"{M}.CliTimed"), 4, "CliTimed[", "worker_timeout = 5", "cannot stop a task", "luigi.build"
    )
    assert not CliTimed().complete()


def test_an_abbreviated_or_unknown_parameter_names_the_task_the_flag_and_close_parameters_only() -> None:
    # argparse's abbreviations made `--m 3` mean luigi's `--module 3` ("No module named '3'"); gokart 1.12.2 takes
    # `--sc 2` for `--scale 2` silently and stops on `--w` with "ambiguous option: --w could match --worker-id,
    # --worker-ping-interval, ..." (exit 2): luigi's own options and its --Family-param spellings, none a parameter.
    how = f"`kart run {M}.CliFeatures --help` lists its parameters."
    result = kart("run", f"{M}.CliFeatures", "--m", "3")
    assert result.exit_code == 4
    assert result.stderr == (
        f"kart run: {M}.CliFeatures has no parameter --m (names are not abbreviated). Did you mean "
        f"--modification-time-check? {how}\n"
    )
    prefix = kart("run", f"{M}.CliFeatures", "--sc", "2")  # would have set --scale
    assert prefix.exit_code == 4 and prefix.stderr == (
        f"kart run: {M}.CliFeatures has no parameter --sc (names are not abbreviated). Did you mean --scale? {how}\n"
    )
    luigis = kart("run", f"{M}.CliFeatures", "--wor", "2")  # starts only luigi's --worker-... and --workers
    assert luigis.exit_code == 4 and luigis.stderr == (
        f"kart run: {M}.CliFeatures has no parameter --wor (names are not abbreviated). Did you mean "
        f"--workspace-directory? {how}\n"
    )
    unknown = kart("run", f"{M}.CliFeatures", "--scales=3")
    assert unknown.exit_code == 4
    assert unknown.stderr == f"kart run: {M}.CliFeatures has no parameter --scales. Did you mean --scale? {how}\n"
    none = kart("tree", f"{M}.CliFeatures", "--zzz", "3")
    assert none.exit_code == 4 and none.stderr.startswith(f"kart tree: {M}.CliFeatures has no parameter --zzz. `kart")


def test_help_after_the_task_name_lists_the_tasks_parameters() -> None:
    result = kart("run", "-w", "/nonexistent/never-created", f"{M}.CliNeeds", "--help")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"{M}.CliNeeds parameters (--name value; a BoolParameter is a flag):"
    assert lines[1].split() == ["--max-rows", "IntParameter,", "required"]
    assert lines[2].startswith("Inherited from TaskOnKart: --cache-unique-id, ") and "--rerun, " in lines[2]
    features = kart("why", f"{M}.CliFeatures", "-h").stdout.splitlines()
    assert [line.split()[:3] for line in features[1:3]] == [
        ["--n", "IntParameter,", "default"],
        ["--scale", "IntParameter,", "default"],
    ]
    assert "Usage: kart run" in kart("run", "--help").stdout  # before the task: the command's own help
    missing = kart("run", "no_such_module.Task", "--help")
    assert missing.exit_code == 4 and "cannot import module 'no_such_module'" in missing.stderr


def test_parameters_named_like_the_start_of_luigis_options_are_set() -> None:
    # luigi's first pass stopped on "ambiguous option: --w could match --worker-id, ..." (luigi does too)
    result = kart("run", f"{M}.CliShortNames", "--w", "a", "--worker=b", "--local")
    assert result.exit_code == 0, result.stderr
    assert gokart.build(CliShortNames(w="a", worker="b", local=True), reset_register=False) == "a b True"
    assert "1 cached" in result.stderr or "1 ran" in result.stderr


@pytest.mark.parametrize("args", [[], ["--worker-id", "x"]])
def test_a_parameter_named_exactly_like_a_luigi_option_is_one_line(args: list[str]) -> None:
    # argparse's "conflicting option string: --worker-id" came as a 50-line traceback
    assert_one_line_error(
        invoke("run", f"{M}.CliNamedLikeLuigi", *args), 4, "its parameter --worker-id has the name of one of luigi's"
    )


def test_name_equals_value_sets_the_parameter() -> None:
    # luigi's first pass (no task parameters known) took `--n=` for an abbreviation of `--no-lock`
    result = kart("run", f"{M}.CliFeatures", "--n=2", "--scale=5")
    assert result.exit_code == 0, result.stderr
    assert gokart.build(CliFeatures(n=2, scale=5), reset_register=False) == [0, 5]
    assert "1 cached" in kart("run", f"{M}.CliFeatures", "--n", "2", "--scale", "5").stderr


def test_a_malformed_task_instance_parameter_shows_the_json_form() -> None:
    result = kart("run", f"{M}.CliNeedsTask", "--upstream", f"{M}.CliLoad(n=3)")
    assert result.exit_code == 4
    assert "parameter --upstream cannot be" in result.stderr
    assert 'as JSON: \'{"type": "TaskFamily", "params": {"name": value}}\'' in result.stderr
    good = kart("run", f"{M}.CliNeedsTask", "--upstream", '{"type": "CliLoad", "params": {"n": 2}}')
    assert good.exit_code == 0, good.stderr
    assert gokart.build(CliNeedsTask(upstream=CliLoad(n=2)), reset_register=False) == 2


def test_run_workspace_option_sets_every_task_workspace(tmp_path: Path) -> None:
    result = kart("run", "--workspace", str(tmp_path / "elsewhere"), f"{M}.CliReport", "--n", "1")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "elsewhere" / "log" / "task_log").iterdir())) == 3
    assert not (tmp_path / "resources").exists()


def test_tree_shows_status_ids_and_details() -> None:
    report = CliReport(n=3)
    os.mkdir("resources")  # an empty workspace (a missing one is an error: test_cli_workspace)
    pending = kart("tree", f"{M}.CliReport", "--n", "3")
    assert pending.exit_code == 0
    assert pending.output.splitlines()[0] == f"└─-(PENDING) CliReport[{report.make_unique_id()}]"
    assert "(PENDING) CliLoad[" in pending.output
    kart("run", f"{M}.CliReport", "--n", "3")
    detailed = kart("tree", f"{M}.CliReport", "--n", "3", "--details")
    assert f"(COMPLETE) CliReport[{report.make_unique_id()}](parameter={{'n': '3', 'fail': 'False'}}" in detailed.output
    assert report.output().path() in detailed.output and "time=" in detailed.output


def test_tree_with_a_bad_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["tree", f"{M}.Nope"])
    assert result.exit_code == 4 and "'test_cli' has no attribute 'Nope'" in result.output


def test_runs_lists_filters_and_prints_json() -> None:
    kart("run", f"{M}.CliReport", "--n", "2")
    kart("run", f"{M}.CliFeatures", "--n", "3", "--scale", "2")
    table = kart("runs")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["CLASS", "UNIQUE", "ID", "PARAMETERS", "TIME", "FINISHED", "AT", "SIZE", "STATUS"]
    assert len(lines) == 1 + 5  # Load n=2, Features n=2, Report n=2, Load n=3, Features n=3 scale=2
    features = json.loads(kart("runs", "--class", "CliFeatures", "--format", "json").output)
    assert sorted(r["params"]["n"] for r in features) == ["2", "3"]
    scaled = json.loads(kart("runs", "--class", f"{M}.CliFeatures", "--param", "scale=2", "--format", "json").output)
    assert [r["unique_id"] for r in scaled] == [CliFeatures(n=3, scale=2).make_unique_id()]
    assert scaled[0]["output_size"] == os.path.getsize(CliFeatures(n=3, scale=2).output().path())
    csv = kart("runs", "--format", "csv", "--param", "n=3").output.splitlines()
    assert csv[0].startswith("class,unique_id,params") and len(csv) == 3
    assert "NAME=VALUE" in CliRunner().invoke(cli, ["runs", "--param", "oops"]).output


def test_runs_finds_a_class_by_the_name_a_package_re_exports_it_under(tmp_path: Path) -> None:
    """Attacker at17 H1: `kart runs --class mlpipeline.Train` (a re-export of mlpipeline.tasks.Train, the name every
    other command takes) said "No runs found." for a class with runs."""
    kart("run", f"{M}.CliFeatures", "--n", "3", "--scale", "2")
    # in the current directory (a test's own): the CLI imports from it as `python -m` does
    Path("cli_reexport.py").write_text(f"from {M} import CliFeatures  # noqa: F401\n")
    by_alias = json.loads(kart("runs", "--class", "cli_reexport.CliFeatures", "--format", "json").output)
    by_home = json.loads(kart("runs", "--class", f"{M}.CliFeatures", "--format", "json").output)
    assert [r["unique_id"] for r in by_alias] == [r["unique_id"] for r in by_home] != []
    assert CliFeatures(n=3, scale=2).make_unique_id() in [r["unique_id"] for r in by_alias]
    sys.modules.pop("cli_reexport", None)


def test_runs_on_an_empty_workspace_says_so(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    result = kart("runs", "--workspace", str(tmp_path / "nothing"))
    assert result.exit_code == 0 and result.output.strip() == "No runs found."


def test_why_names_the_differing_parameter() -> None:
    kart("run", f"{M}.CliReport", "--n", "2")
    cached = kart("why", f"{M}.CliReport", "--n", "2")
    assert "is cached" in cached.output
    changed = kart("why", f"{M}.CliReport", "--n", "2", "--fail")
    old = CliReport(n=2).make_unique_id()[:8]
    assert f"differs from the nearest cached run CliReport[{old}]" in changed.output
    assert "parameter 'fail': now True, cached run False" in changed.output


def test_gc_lists_by_default_and_deletes_only_with_delete() -> None:
    kart("run", f"{M}.CliReport", "--n", "2")
    kart("run", f"{M}.CliReport", "--n", "3")
    dropped = CliReport(n=3).output().path()
    listed = kart("gc", "--keep", f"{M}.CliReport", "--n", "2")
    assert listed.exit_code == 0
    assert dropped in listed.output and "Would delete 21 file(s)" in listed.output
    assert "Dry run: nothing deleted" in listed.output and os.path.exists(dropped)
    deleted = kart("gc", "--keep", f"{M}.CliReport", "--n", "2", "--delete")
    assert "Deleted 21 file(s)" in deleted.output and not os.path.exists(dropped)
    assert CliReport(n=2).complete()
    assert "Would delete 0 file(s)" in kart("gc", "--keep", f"{M}.CliReport", "--n", "2").output


def test_gc_warns_when_a_kept_task_is_not_in_the_workspace() -> None:
    """Attacker at17 H5: a kept task with a mistyped parameter keeps nothing of its class, silently."""
    kart("run", f"{M}.CliReport", "--n", "2")
    built = kart("gc", "--keep", f"{M}.CliReport", "--n", "2")
    assert "warning" not in built.stderr
    typo = kart("gc", "--keep", f"{M}.CliReport", "--n", "20")
    assert typo.exit_code == 0
    label = f"CliReport[{CliReport(n=20).make_unique_id()[:8]}]"
    assert f"kart gc: warning: the kept task {label} is not complete in this workspace" in typo.stderr
    assert f"`kart why {M}.CliReport --n 20`" in typo.stderr
    assert CliReport(n=2).output().path() in typo.output  # the plan still lists what it would delete


def test_gc_keeps_several_tasks_and_rejects_contradictions() -> None:
    kart("run", f"{M}.CliLoad", "--n", "1")
    kart("run", f"{M}.CliLoad", "--n", "2")
    both = kart("gc", "--keep", f"{M}.CliLoad", "--n", "1", "--keep", f"{M}.CliLoad", "--n", "2")
    assert "Would delete 0 file(s)" in both.output and "keeping 14 reachable" in both.output
    contradiction = CliRunner().invoke(cli, ["gc", "--dry-run", "--delete", "--keep", f"{M}.CliLoad"])
    assert contradiction.exit_code == 4 and "contradict" in contradiction.output
    assert CliRunner().invoke(cli, ["gc"]).exit_code == 4


def test_split_keeps() -> None:
    assert _split_keeps(["--keep", "a.B", "--x", "1", "--keep=c.D"]) == [("a.B", ["--x", "1"]), ("c.D", [])]
    with pytest.raises(Exception, match="expected --keep"):
        _split_keeps(["a.B"])
    with pytest.raises(Exception, match="--keep needs a task"):
        _split_keeps(["--keep"])


def test_report_writes_one_html_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkdir("resources")
    result = kart("report", f"{M}.CliReport", "--n", "2", "-o", str(out / "r.html"))
    assert result.exit_code == 0, result.output
    page = (out / "r.html").read_text()
    assert page.count('<g class="node ') == 3 and "CliReport" in page


def test_config_option_reads_a_luigi_config(tmp_path: Path) -> None:
    config = tmp_path / "kart.cfg"
    config.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'from_config'}\n")
    result = kart("--config", str(config), "run", f"{M}.CliLoad", "--n", "1")
    assert result.exit_code == 0 and (tmp_path / "from_config" / "log").is_dir()


_PIPELINE = textwrap.dedent(
    """
    import luigi
    import kart_core as gokart

    class SubLoad(gokart.TaskOnKart[list]):
        n = luigi.IntParameter()
        fail = luigi.BoolParameter(default=False)

        def run(self):
            if self.fail:
                raise RuntimeError("boom in a subprocess")
            self.dump(list(range(self.n)))
    """
)


@pytest.mark.slow
def test_kart_console_script_in_a_subprocess(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("kart")
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    (tmp_path / "subpipe.py").write_text(_PIPELINE)
    env = {**os.environ, "CI": "1"}
    ok = subprocess.run(
        [str(script), "run", "subpipe.SubLoad", "--n", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "1 ran" in ok.stderr
    failed = subprocess.run(
        [str(script), "run", "subpipe.SubLoad", "--n", "4", "--fail"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 40
    assert "FAILED SubLoad[" in failed.stderr and "boom in a subprocess" in failed.stderr
    runs = subprocess.run(
        [str(script), "runs", "--format", "json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    statuses = {r["params"]["n"]: r["status"] for r in json.loads(runs.stdout)}
    assert statuses == {"3": "complete", "4": "unfinished"}


# --- the CLI never crashes on a workspace; bad values exit 4 with one line (issue 12 #9) ------

HEX = "0123456789abcdef" * 2
GONE_CLASS_PICKLE = b"cgone_module_for_kart_tests\nGone\n)\x81."  # a pickle of a class that no longer exists


def invoke(*args: str) -> CliRunner.invoke:
    """Run `kart args...` in-process without letting exceptions through (as a shell user sees it)."""
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result: CliRunner.invoke, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["runs", "--format", "xml"], ["kart runs:", "'--format'", "'xml' is not one of"]),
        (["run", "--workers", "abc", f"{M}.CliLoad"], ["kart run:", "'--workers'", "'abc'"]),
        (["run", "--workers", "0", f"{M}.CliLoad"], ["kart run:", "'--workers'", "x>=1"]),
        (["run", "--executor", "fork", f"{M}.CliLoad"], ["kart run:", "'--executor'", "'fork'"]),
        (["runs", "--param", "novalue"], ["kart runs:", "NAME=VALUE"]),
        (["runs", "--param", "=3"], ["kart runs:", "NAME=VALUE"]),
        (["runs", "--bogus"], ["kart runs:", "No such option '--bogus'"]),
        (["nosuch"], ["kart:", "No such command 'nosuch'"]),
        (["--config", "/no/such/file.cfg", "runs"], ["kart:", "'--config'", "does not exist"]),
        (["tree", f"{M}.Nope"], ["kart tree:", "has no attribute 'Nope'"]),
        (["why", "no_such_module.Task"], ["kart why:", "cannot import module 'no_such_module'"]),
        (["report", f"{M}.CliLoad", "--n", "notanint"], ["kart report:", "--n cannot be 'notanint'", "IntParameter"]),
        (["tree", f"{M}.CliLoad", "--no-such-param", "1"], ["kart tree:", "has no parameter --no-such-param"]),
        (["tree", f"{M}.CliFeatures", "--CliLoad-n", "x"], ["kart tree:", "CliLoad"]),
        (["gc"], ["kart gc:", "--keep"]),
        (["gc", "--keep"], ["kart gc:", "--keep needs a task"]),
        (["gc", "--dry-run", "--delete", "--keep", f"{M}.CliLoad"], ["kart gc:", "contradict"]),
        (["runs", "--workspace"], ["kart", "'--workspace' requires an argument"]),
    ],
)
def test_bad_values_exit_4_with_one_line(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(invoke(*args), 4, *fragments)


def test_run_with_a_bad_task_also_exits_4_with_one_line() -> None:
    assert_one_line_error(invoke("run", f"{M}.CliLoad", "--n", "x"), 4, "kart run:", "CliLoad", "--n cannot be 'x'")
    assert_one_line_error(invoke("run", f"{M}.CliLoad", "--nope", "1"), 4, "kart run:", "has no parameter --nope.")


def test_a_malformed_config_file_exits_4_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("this is not = an ini file\n[unclosed\n")
    assert_one_line_error(invoke("--config", str(bad), "runs"), 4, "kart:", "--config", str(bad))


def test_an_unusable_workspace_url_exits_1_with_one_line() -> None:
    assert_one_line_error(invoke("runs", "--workspace", "nosuchscheme://bucket/ws"), 1, "kart runs:", "nosuchscheme://")


def test_an_unwritable_report_file_exits_1_with_one_line(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "r.html"
    result = invoke("report", f"{M}.CliLoad", "-o", str(target))
    assert_one_line_error(result, 1, "kart report:", "r.html")
    assert f"no folder '{target.parent}'" in result.output and "create it or pass another --output" in result.output


def test_help_and_bare_kart_exit_0() -> None:
    assert invoke().exit_code == 0 and "Commands:" in invoke().output
    assert invoke("runs", "--help").exit_code == 0


def _damage(workspace: Path, report: CliReport) -> dict[str, Path]:
    """A built workspace plus every kind of file kart cannot read, each named like a run log."""
    log = workspace / "log"
    uid = report.make_unique_id()
    load_uid = CliLoad(n=report.n).make_unique_id()
    damaged = {
        "garbage task_params": log / "task_params" / f"Foreign_{HEX}.pkl",
        "gone class task_log": log / "task_log" / f"Foreign_{HEX}.pkl",
        "empty processing_time of the root": log / "processing_time" / f"CliReport_{uid}.pkl",
        "garbage task_log of an upstream": log / "task_log" / f"CliLoad_{load_uid}.pkl",
        "list as task_params": log / "task_params" / f"CliReport_{'f' * 32}.pkl",
        "wrong file_path type": log / "task_log" / f"CliReport_{'f' * 32}.pkl",
        "undecodable name": log / "task_params" / f"Bad\udcffName_{HEX}.pkl",
    }
    damaged["garbage task_params"].write_bytes(os.urandom(64) + b"\x00garbage")
    damaged["gone class task_log"].write_bytes(GONE_CLASS_PICKLE)
    damaged["empty processing_time of the root"].write_bytes(b"")
    damaged["garbage task_log of an upstream"].write_bytes(b"\x80\x04not a pickle at all")
    damaged["list as task_params"].write_bytes(__import__("pickle").dumps(["n", "3"]))
    damaged["wrong file_path type"].write_bytes(__import__("pickle").dumps({"file_path": 5}))
    damaged["undecodable name"].write_bytes(b"x")
    folder = log / "task_params" / f"Folder_{HEX}.pkl"
    folder.mkdir()
    (folder / "inner.pkl").write_bytes(b"x")
    (log / "random_seed" / f"CliReport_{uid}.pkl").unlink()
    (log / "random_seed" / f"CliReport_{uid}.pkl").mkdir()  # a folder where a log of the root should be
    os.mkfifo(log / "task_params" / f"Pipe_{HEX}.pkl")  # reading a pipe would block: never opened
    os.symlink(workspace / "nowhere", log / "task_log" / f"Dangling_{HEX}.pkl")
    (log / "task_params" / "README.txt").write_text("notes")
    return damaged


@pytest.fixture
def damaged_workspace(tmp_path: Path) -> tuple[str, CliReport]:
    workspace = tmp_path / "damaged"
    assert kart("run", f"{M}.CliReport", "--n", "3", "-w", str(workspace)).exit_code == 0  # the whole graph there
    report = CliReport(n=3, workspace_directory=str(workspace))
    assert report.output().load() == 2 * sum(range(3))
    _damage(workspace, report)
    return str(workspace), report


def _no_crash(result: CliRunner.invoke) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_runs_on_a_damaged_workspace_lists_what_it_can_and_warns(damaged_workspace: tuple[str, CliReport]) -> None:
    workspace, report = damaged_workspace
    result = invoke("runs", "--workspace", workspace, "--format", "json")
    warnings = _no_crash(result)
    rows = {(r["class"], r["unique_id"]): r for r in json.loads(result.stdout)}
    assert rows[("CliReport", report.make_unique_id())]["status"] == "complete"
    assert rows[("CliReport", report.make_unique_id())]["processing_time"] is None  # the empty log is skipped
    assert rows[("CliLoad", CliLoad(n=3).make_unique_id())]["status"] == "damaged log"
    assert rows[("Foreign", HEX)]["params"] == {} and rows[("Foreign", HEX)]["status"] == "damaged log"
    assert rows[("CliReport", "f" * 32)]["params"] == {} and rows[("CliReport", "f" * 32)]["status"] == "damaged log"
    assert not any(cls in {"Folder", "Pipe", "Dangling"} or "Bad" in cls for cls, _ in rows)
    lines = warnings.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines)
    assert any(f"Foreign_{HEX}.pkl" in line and "task_params" in line for line in lines)
    assert any("gone_module_for_kart_tests" in line for line in lines)
    assert any("file_path is not a list" in line for line in lines)
    assert any("holds a list" in line for line in lines)
    table = invoke("runs", "--workspace", workspace)
    _no_crash(table)
    assert "damaged log" in table.stdout


def test_why_tree_and_report_on_a_damaged_workspace(damaged_workspace: tuple[str, CliReport], tmp_path: Path) -> None:
    workspace, report = damaged_workspace
    why = invoke("why", f"{M}.CliReport", "--n", "3", "-w", workspace)
    _no_crash(why)
    assert "is cached" in why.stdout
    changed = invoke("why", f"{M}.CliReport", "--n", "4", "-w", workspace)
    _no_crash(changed)
    assert "parameter 'n': now 4, cached run 3" in changed.stdout
    tree = invoke("tree", f"{M}.CliReport", "--n", "3", "--details", "-w", workspace)
    warnings = _no_crash(tree)
    assert f"(COMPLETE) CliReport[{report.make_unique_id()}]" in tree.stdout
    assert "processing_time=unknown" in tree.stdout.replace("'", "") or "unknown" in tree.stdout
    assert f"CliReport_{report.make_unique_id()}.pkl" in warnings and "EOFError" in warnings
    page = tmp_path / "r.html"
    rendered = invoke("report", f"{M}.CliReport", "--n", "3", "-w", workspace, "-o", str(page))
    _no_crash(rendered)
    assert page.read_text().count('<g class="node complete') == 3


def test_tree_why_report_show_a_damaged_output_and_a_rerun_repairs_it(tmp_path: Path) -> None:
    workspace = str(tmp_path / "ws")
    assert kart("run", f"{M}.CliReport", "--n", "3", "-w", workspace).exit_code == 0
    load = CliLoad(n=3, workspace_directory=workspace)
    path = Path(load.output().path())
    committed = path.stat().st_size
    path.write_bytes(path.read_bytes()[:4])
    tree = invoke("tree", f"{M}.CliReport", "--n", "3", "-w", workspace)
    _no_crash(tree)
    assert f"(DAMAGED) CliLoad[{load.make_unique_id()}]" in tree.stdout
    assert "a task that must run and loads it runs it again first" in tree.stdout
    assert "kart verify --delete" in tree.stdout
    why = invoke("why", f"{M}.CliReport", "--n", "3", "--fail", "-w", workspace)
    _no_crash(why)
    assert f"  {load.kart_label()} is cached but damaged: {path}: {committed} bytes were committed, found 4." in (
        why.stdout
    )
    page = tmp_path / "r.html"
    _no_crash(invoke("report", f"{M}.CliReport", "--n", "3", "-w", workspace, "-o", str(page)))
    assert page.read_text().count('<g class="node damaged') == 1
    rerun = invoke("run", f"{M}.CliReport", "--n", "3", "--rerun", "-w", workspace)
    assert rerun.exit_code == 0, rerun.output
    assert f"needs the output of {load.kart_label()}, which is damaged" in rerun.stderr
    assert path.stat().st_size == committed and load.output().load() == [0, 1, 2]


@pytest.mark.slow
def test_damaged_workspace_in_a_subprocess_never_prints_a_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("kart")
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    (tmp_path / "subpipe.py").write_text(_PIPELINE)
    env = {**os.environ, "CI": "1", "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}

    def kart_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert kart_process("run", "subpipe.SubLoad", "--n", "3").returncode == 0
    log = tmp_path / "resources" / "log"
    (log / "task_params" / f"SubLoad_{HEX}.pkl").write_bytes(b"\x00garbage")
    (log / "task_params" / f"Bad\udcffName_{HEX}.pkl").write_bytes(b"x")
    (log / "task_log" / f"SubLoad_{HEX}.pkl").write_bytes(GONE_CLASS_PICKLE)
    for args in (
        ["runs"],
        ["why", "subpipe.SubLoad", "--n", "4"],
        ["tree", "subpipe.SubLoad", "--n", "3", "--details"],
    ):
        done = kart_process(*args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    bad = kart_process("runs", "--format", "xml")
    assert bad.returncode == 4 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_runs_on_a_damaged_s3_workspace_warns_and_lists(s3_bucket: str) -> None:
    import fsspec

    from kart_core.storage.remote import s3_options

    workspace = f"s3://{s3_bucket}/ws"
    load = CliLoad(n=2, workspace_directory=workspace)
    assert gokart.build(load, reset_register=False) == [0, 1]
    fs = fsspec.filesystem("s3", **s3_options())
    fs.pipe(f"{s3_bucket}/ws/log/task_params/Foreign_{HEX}.pkl", b"\x00garbage")
    fs.pipe(f"{s3_bucket}/ws/log/task_log/CliLoad_{load.make_unique_id()}.pkl", b"")
    result = invoke("runs", "-w", workspace, "--format", "json")
    warnings = _no_crash(result)
    statuses = {(r["class"], r["unique_id"]): r["status"] for r in json.loads(result.stdout)}
    assert statuses == {("CliLoad", load.make_unique_id()): "damaged log", ("Foreign", HEX): "unfinished"}
    assert f"s3://{s3_bucket}/ws/log/task_params/Foreign_{HEX}.pkl" in warnings and "EOFError" in warnings


# --- kart gc: scope and temporaries --------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kart gc sweeps upload spools from the system temp folder: make it this test's own."""
    import tempfile

    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_gc_scope_defaults_to_the_kept_classes_and_all_widens_it() -> None:
    kart("run", f"{M}.CliReport", "--n", "2")  # CliReport, CliFeatures and CliLoad (n=2)
    kart("run", f"{M}.CliLoad", "--n", "7")
    report_output = CliReport(n=2).output().path()
    dropped_load = CliLoad(n=7).output().path()
    scoped = kart("gc", "--keep", f"{M}.CliLoad", "--n", "2")
    assert "Scope: outputs and run logs of the kept graphs' classes (CliLoad); " in scoped.output
    assert (
        "14 kart file(s) of other classes, or whose class cannot be told, left alone (--all includes them)"
        in scoped.output
    )
    assert dropped_load in scoped.output and report_output not in scoped.output
    assert "Would delete 7 file(s)" in scoped.output
    kart("gc", "--keep", f"{M}.CliLoad", "--n", "2", "--delete")
    assert CliReport(n=2).complete() and not CliLoad(n=7).complete()
    wide = kart("gc", "--keep", f"{M}.CliLoad", "--n", "2", "--all")
    assert "Scope: every kart-named file in the workspace (--all)." in wide.output
    assert report_output in wide.output and "Would delete 14 file(s)" in wide.output
    kart("gc", "--keep", f"{M}.CliLoad", "--n", "2", "--all", "--delete")
    assert not CliReport(n=2).complete() and CliLoad(n=2).complete()


def test_gc_lists_and_deletes_old_temporaries_only(tmp_path: Path, _private_tmpdir: Path) -> None:
    import time

    kart("run", f"{M}.CliLoad", "--n", "2")
    folder = Path(CliLoad(n=2).output().path()).parent
    old, fresh = folder / f".CliLoad_{HEX}.pkl.a1.kart-tmp", folder / f".CliLoad_{HEX}.pkl.b2.kart-tmp"
    spool = _private_tmpdir / "kart-upload-x1"
    for path in (old, fresh, spool):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (old, spool):
        os.utime(path, (two_hours_ago, two_hours_ago))
    listed = kart("gc", "--keep", f"{M}.CliLoad", "--n", "2", "--temp-age", "3600")
    assert (
        "Temporaries unchanged for 1 hour or more (killed writes, scratch, upload spools): 2; younger ones left alone: 1."
        in listed.output
    )
    assert str(old) in listed.output and str(spool) in listed.output and str(fresh) not in listed.output
    assert "Would delete 2 file(s)" in listed.output
    default_age = kart("gc", "--keep", f"{M}.CliLoad", "--n", "2")
    assert "Would delete 0 file(s)" in default_age.output  # a day by default: two hours is young
    kart("gc", "--keep", f"{M}.CliLoad", "--n", "2", "--temp-age", "3600", "--delete")
    assert not old.exists() and not spool.exists() and fresh.exists() and CliLoad(n=2).complete()


@pytest.mark.parametrize("age", ["-1", "abc", ""])
def test_gc_bad_temp_age_exits_4(age: str) -> None:
    assert_one_line_error(invoke("gc", "--keep", f"{M}.CliLoad", "--temp-age", age), 4, "kart gc:", "--temp-age")


# --- a task's own code raising while a command walks its graph; a config that cannot be read ---------

_RAISING_TASKS = """
import luigi, kart_core

class Fine(kart_core.TaskOnKart):
    def run(self):
        self.dump(1)

class BadRequires(kart_core.TaskOnKart):
    def requires(self):
        raise RuntimeError("req boom")

class BadComplete(kart_core.TaskOnKart):
    def complete(self):
        raise RuntimeError("complete boom")

class OnTop(kart_core.TaskOnKart):
    def requires(self):
        return BadComplete()
"""


@pytest.mark.parametrize("command", [["why"], ["tree"], ["tree", "--details"], ["report", "-o", "r.html"]])
@pytest.mark.parametrize("task", ["clitask_raising.BadRequires", "clitask_raising.OnTop"])
def test_task_code_raising_while_walking_exits_50_naming_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], task: str
) -> None:
    (tmp_path / "clitask_raising.py").write_text(_RAISING_TASKS)
    (tmp_path / "ws").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(cli, [*command, task, "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 50, result.output
    headline = result.stderr.splitlines()[0]
    assert "graph cannot be walked" in headline and "RuntimeError" in headline
    assert task.rsplit(".", 1)[1] in headline
    assert "boom" in result.stderr


def test_an_unset_variable_in_luigi_config_exits_4_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import luigi.configuration

    monkeypatch.delenv("KART_TEST_UNSET_WS", raising=False)
    config = luigi.configuration.get_config()
    config.set("TaskOnKart", "workspace_directory", "${KART_TEST_UNSET_WS}")
    result = CliRunner().invoke(cli, ["runs"])
    assert result.exit_code == 4, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "KART_TEST_UNSET_WS" in result.stderr and "Traceback" not in result.stderr


_VERIFY_TASKS = """
import luigi, kart_core

class VerUp(kart_core.TaskOnKart):
    def output(self):
        return self.make_target("up.txt")

    def run(self):
        self.dump(["alpha", "omega"])

class VerDown(kart_core.TaskOnKart):
    def requires(self):
        return VerUp()

    def run(self):
        self.dump(self.load())
"""


@pytest.mark.parametrize(
    ("flag", "repair", "code", "content"),
    [
        (["--verify"], "1", 0, b"alpha\nomega\n"),  # the hash sees it: VerUp runs again, its output is whole
        (["--verify"], "0", 40, b"ALPHA\nomega\n"),  # repairs off: the named error, nothing rebuilt
        ([], "1", 0, b"ALPHA\nomega\n"),  # sizes only: the change goes unseen
        (["--no-verify"], "1", 0, b"ALPHA\nomega\n"),
    ],
)
def test_verify_flag_checks_content_hashes_of_loaded_outputs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: list[str],
    repair: str,
    code: int,
    content: bytes,
) -> None:
    (tmp_path / "clitask_verify.py").write_text(_VERIFY_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("KART_VERIFY_OUTPUTS", raising=False)
    monkeypatch.setenv("KART_REPAIR_DAMAGED", repair)
    workspace = str(tmp_path / "ws")
    assert CliRunner().invoke(cli, ["run", "clitask_verify.VerDown", "--workspace", workspace]).exit_code == 0
    up = next((tmp_path / "ws").glob("up_*.txt"))
    up.write_bytes(up.read_bytes().replace(b"alpha", b"ALPHA"))  # same size: only the hash sees it
    next((tmp_path / "ws" / "clitask_verify").glob("VerDown_*.pkl")).unlink()
    result = CliRunner().invoke(cli, [*flag, "run", "clitask_verify.VerDown", "--workspace", workspace])
    assert result.exit_code == code, result.output
    assert up.read_bytes() == content
    if code:
        assert "DamagedOutputError" in result.stderr and "VerUp" in result.stderr
        assert "kart verify --delete" in result.stderr
    elif content.startswith(b"alpha"):
        assert "VerDown[" in result.stderr and "needs the output of VerUp[" in result.stderr
        assert "content hash xxh3_128:" in result.stderr
    assert "KART_VERIFY_OUTPUTS" not in os.environ  # the flag is scoped to the command


def test_a_bad_config_value_names_the_section_the_parameter_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text("[CliLoad]\nn = notint\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "run", f"{M}.CliLoad"])
    assert result.exit_code == 4
    assert f"[CliLoad] n = 'notint' in luigi's config (in {str(config)!r}) is not a valid IntParameter value" in (
        result.output
    )
    assert "pass --n on the command line" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_a_closed_pipe_stops_the_listing_quietly(tmp_path: Path) -> None:
    """`kart gc ... | head -1`: no 'BrokenPipeError' line once the reader is gone."""
    import subprocess
    import sys

    workspace = tmp_path / "ws"
    (workspace / "old").mkdir(parents=True)
    for number in range(4000):  # a listing far larger than a pipe's buffer
        (workspace / "old" / f"Gone_{number:032x}.pkl").write_bytes(b"x")
    command = [sys.executable, "-c", "from kart_core.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "gc", "--keep", f"{M}.CliLoad", "-w", str(workspace), "--all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"Scope:")
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and "BrokenPipe" not in error and "Traceback" not in error


def test_help_shows_a_parameter_luigis_config_sets_with_its_value_and_file_not_as_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kart run X --help` listed --max-rows as required while luigi.cfg set it: the user thought they must pass it.
    config = tmp_path / "conf" / "param.ini"
    config.parent.mkdir()
    config.write_text("[CliNeeds]\nmax_rows = 250\n[TaskOnKart]\nscale = 7\n[CliFeatures]\nscale = 3\n")
    luigi_config.refresh()  # the baseline kart_core's import takes in a `kart` process, before the variable is set
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(config))
    lines = kart("run", f"{M}.CliNeeds", "--help").stdout.splitlines()
    assert lines[1].split(None, 2) == [
        "--max-rows",
        "IntParameter,",
        f"configured 250 ([CliNeeds] max_rows in {str(config)!r})",
    ]
    assert kart("run", f"{M}.CliNeeds").exit_code == 0  # the build takes it from there, as the help says
    # [TaskOnKart] outranks [Class] for a parameter the class declares (gokart's injection); a default is replaced.
    features = kart("tree", f"{M}.CliFeatures", "-h").stdout.splitlines()
    assert features[2].split(None, 2) == [
        "--scale",
        "IntParameter,",
        f"configured 7 ([TaskOnKart] scale in {str(config)!r})",
    ]
    local = tmp_path / "luigi.cfg"  # read from the current directory, the --config file last of all
    local.write_text("[CliNeeds]\nmax_rows = ten\n")
    extra = tmp_path / "extra.cfg"
    extra.write_text("[CliLoad]\nn = 9\n")
    monkeypatch.delenv("LUIGI_CONFIG_PATH")
    needs = kart("--config", str(extra), "run", f"{M}.CliNeeds", "--help").stdout.splitlines()[1]
    assert needs.split(None, 2)[2].startswith("configured 'ten' (not a valid IntParameter value: ")
    assert needs.endswith(f"([CliNeeds] max_rows in {str(local)!r})")
    load = kart("--config", str(extra), "why", f"{M}.CliLoad", "--help").stdout.splitlines()[1]
    assert load.split(None, 2)[2] == f"configured 9 ([CliLoad] n in {str(extra)!r})"


class CliSumsLoads(gokart.TaskOnKart[int]):
    first = gokart.TaskInstanceParameter(expected_type=CliLoad)
    loads = gokart.ListTaskInstanceParameter(expected_elements_type=CliLoad)

    def run(self) -> None:
        self.dump(len(self.load("first")) + sum(len(items) for items in self.load("loads")))


def test_help_shows_how_to_write_a_task_valued_parameter_and_the_example_builds() -> None:
    # The help said only "--upstream  TaskInstanceParameter, required": a new user passed a class name.
    lines = kart("run", f"{M}.CliSumsLoads", "--help").stdout.splitlines()
    first = """--first '{"type": "CliLoad", "params": {"n": "3"}}'"""
    loads = """--loads '[{"type": "CliLoad", "params": {"n": "3"}}]'"""
    assert f"A task as --first is JSON naming its class (imported), e.g. {first}." in lines
    assert f"A task as --loads is JSON naming its class (imported), e.g. {loads}." in lines
    any_task = kart("run", f"{M}.CliNeedsTask", "-h").stdout
    assert """e.g. --upstream '{"type": "TaskFamily", "params": {}}'.""" in any_task
    built = kart("run", f"{M}.CliSumsLoads", *shlex.split(f"{first} {loads}"))
    assert built.exit_code == 0, built.stderr
    assert gokart.build(CliSumsLoads(first=CliLoad(), loads=[CliLoad()]), reset_register=False) == 6
