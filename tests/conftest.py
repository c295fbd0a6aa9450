"""Shared fixtures: every test runs in its own temporary directory with a fresh luigi config."""

from __future__ import annotations

import signal
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType

import luigi.configuration
import luigi.task_register
import pytest

# The test servers (s3_server, s3_env, s3_bucket, gcs_server, redis_service): one definition for every directory.
pytest_plugins = ("service_fixtures",)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in tmp_path so the default ./resources/ workspace never lands in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    yield tmp_path


@pytest.fixture(autouse=True)
def _fresh_luigi_config() -> Iterator[None]:
    """Give each test an empty luigi config and restore the previous one afterwards."""
    config_class = luigi.configuration.get_config().__class__
    saved_instance, saved_paths = config_class._instance, list(config_class._config_paths)
    config_class._instance = None
    yield
    config_class._instance, config_class._config_paths = saved_instance, saved_paths


@pytest.fixture(autouse=True)
def _no_gokart_task_classes() -> Iterator[None]:
    """gokart (test-only) runs in subprocesses: task classes it registers here would sit beside kart's."""
    yield
    leaked = sorted(
        {cls.__module__ for cls in luigi.task_register.Register._reg if cls.__module__.startswith("gokart")}
    )
    if leaked:
        pytest.fail(
            f"gokart task classes registered in the pytest process ({', '.join(leaked)}); run gokart in a subprocess"
        )


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """Put SIGTERM's and SIGINT's handlers back after each test.

    Airflow's dag.test() (run in-process by tests/airflow) installs a SIGTERM handler it leaves behind;
    process-pool workers forked later in the same pytest process inherited it, so the pool's terminate()
    no longer killed a dead worker's siblings and test_process_pool's dead-worker tests failed in `make test`.
    """
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        if signal.getsignal(number) is not handler and handler is not None:
            signal.signal(number, handler)


REPOSITORY = Path(__file__).resolve().parents[1]
_LOCAL_FOLDERS = (REPOSITORY / "tests", REPOSITORY / "examples")
_LOCAL_MODULES = pytest.StashKey[dict[str, bool]]()
_REACHABLE = pytest.StashKey[dict[str, set[str]]]()


def _is_local(name: str, known: dict[str, bool]) -> bool:
    """Whether module ``name`` is a file of tests/ or examples/ (not kart, luigi or an installed package)."""
    if name not in known:
        file = getattr(sys.modules.get(name), "__file__", None)
        known[name] = file is not None and any(Path(file).resolve().is_relative_to(f) for f in _LOCAL_FOLDERS)
    return known[name]


def _reachable(module: ModuleType, known: dict[str, bool]) -> set[str]:
    """The tests/ and examples/ modules ``module`` uses: its own names' modules, and theirs in turn."""
    seen, stack = {module.__name__}, [module]
    while stack:
        for value in list(vars(stack.pop()).values()):
            name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str) and name not in seen and _is_local(name, known):
                seen.add(name)
                stack.append(sys.modules[name])
    return seen


@pytest.fixture(autouse=True)
def _task_classes_of_this_test_file(request: pytest.FixtureRequest) -> Iterator[None]:
    """While a test runs, luigi's registry holds the task classes its file sees when it runs alone.

    luigi's command-line parser adds an option for every parameter of every registered task class, and
    kart_core.run() parses its arguments several times. A pytest process that collected every file (each
    xdist worker does) holds ~240 classes with ~4,400 parameters: test_run.py and test_cli.py spent 72 and
    61 s of CPU so, against 9 and 14 s when run alone; and what the command line says (``--m`` abbreviates
    ...) depended on which other files were collected. Hidden: classes of tests/ and examples/ modules the
    test's file does not use (directly or through such modules); luigi's, kart's and installed packages'
    classes stay, and so do classes registered during the test. All are back in their order afterwards.
    """
    module = getattr(request.node, "module", None)
    if module is None:
        yield
        return
    known = request.config.stash.setdefault(_LOCAL_MODULES, {})
    reachable = request.config.stash.setdefault(_REACHABLE, {})
    if module.__name__ not in reachable:
        reachable[module.__name__] = _reachable(module, known)
    visible = reachable[module.__name__]
    register = luigi.task_register.Register
    before = list(register._reg)
    hidden = {id(cls) for cls in before if cls.__module__ not in visible and _is_local(cls.__module__, known)}
    if not hidden:
        yield
        return
    register._reg = [cls for cls in before if id(cls) not in hidden]
    try:
        yield
    finally:
        # Back in the original order (luigi's name lookup depends on it), with what the test registered
        # or dropped (kart's build drops redefined classes) applied.
        during = register._reg
        still, old = {id(cls) for cls in during}, {id(cls) for cls in before}
        register._reg = [cls for cls in before if id(cls) in hidden or id(cls) in still] + [
            cls for cls in during if id(cls) not in old
        ]


@pytest.fixture
def workspace(tmp_path: Path) -> str:
    """A workspace directory inside the test's temporary directory."""
    return str(tmp_path / "ws")


# The test files that take longest (wall time in `make test`, from `--durations`), longest first.
# `make test` spreads whole files over the cores (pytest-xdist --dist loadfile) in collection order
# (--no-loadscope-reorder: xdist would otherwise start the files with the most tests first, which left
# these few-test, many-minute files running alone at the end). Starting them first lets the short files
# fill the cores beside them. Refresh from `make test PYTEST_ARGS="--durations=60"` when it shifts.
# tests/test_project.py has no slow test but its mypy run is ~50 s of CPU: collected last, it ran alone at the end.
# xdist hands a worker its next file once 2 or fewer of its tests are pending (so celery's one test has the
# next file queued behind it from the start): what counts is that the long files are all handed out early.
# Session 11's CI (-n 3, 877.8 s), per file: kedro_project_cache ~170 s, celery ~105 s (43 s of it the
# cluster's start), heartbeat ~105 s (a 300-output commit on moto outlasting a 1.5 s lease), standalone
# ~95 s, test_project ~85 s (mypy 75 s); test_airflow_worker was ~210 s and test_mypy_plugin ~110 s, both
# cut to about a third of their CPU since (one long-lived af_worker; mypy follows only what its plugins read).
# Session 13: heartbeat left the list (its long commit now waits before each copy: ~15 s of CPU, ~10 s of it
# asleep); test_project's mypy keeps its cache between sessions (~10 s of CPU warm, still ~65 s on a new machine).
# Session 25: test_side_record_kill (~235 s in session 24's CI; its kills now forks, its S3 steps still ~2 minutes)
# joins near the top, test_superseded_inputs (~110 s of four tests, now forks too) near the end.
LONGEST_FILES = (
    "tests/kedro/test_kedro_project_cache.py",
    "tests/core/test_side_record_kill.py",
    "tests/airflow/test_airflow_celery.py",
    "tests/airflow/test_airflow_worker.py",
    "tests/airflow/test_airflow_standalone.py",
    "tests/test_project.py",
    "tests/kedro/test_kedro_project.py",
    "tests/core/test_mypy_plugin.py",
    "tests/core/test_superseded_inputs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files: LONGEST_FILES, then the other files with slow tests, then the rest (stable)."""
    rank = {path: number for number, path in enumerate(LONGEST_FILES)}
    with_slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def order(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        return (0, rank[path]) if path in rank else (1, 0) if path in with_slow else (2, 0)

    items.sort(key=order)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collect with bytecode writing on, whatever PYTHONDONTWRITEBYTECODE says, and restore it after.

    pytest caches each test module's assertion-rewritten code in __pycache__ (git-ignored) only when
    ``sys.dont_write_bytecode`` is off; with the variable set (as in the agents' shells) every pytest process and
    every xdist worker rewrote and compiled all ~330 test files again: collecting tests/ took 24.2 s of user CPU,
    11.0 s with the cache (session 26, load 4-5). Tests themselves run with the setting they were given: the
    suite edits modules and imports them again within a second, where a written .pyc could be read stale.
    """
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = saved


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """With ``--durations``: also the test files by their tests' total time (setup, call and teardown), longest
    first, and the sum over all files.

    ``make test`` hands whole files to the xdist workers, so what orders LONGEST_FILES and what a speed-up has to
    cut is a file's total; ``--durations`` lists single phases, and its top 30 held under a third of the suite's
    time in session 25's CI (3,800 tests: most of the time is in the many tests of a few seconds each).
    """
    if config.option.durations is None:
        return
    seconds: dict[str, float] = {}
    tests: dict[str, set[str]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                path = report.nodeid.split("::")[0]
                seconds[path] = seconds.get(path, 0.0) + report.duration
                tests.setdefault(path, set()).add(report.nodeid)
    if not seconds:
        return
    shown = 40
    terminalreporter.write_sep(
        "=", f"slowest {min(shown, len(seconds))} test files (all {len(seconds)}: {sum(seconds.values()):.0f} s)"
    )
    for path, total in sorted(seconds.items(), key=lambda item: -item[1])[:shown]:
        terminalreporter.write_line(f"{total:8.1f}s {len(tests[path]):5d} tests  {path}")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--docs-screenshots``: the report screenshot test also copies its pictures into docs/img/."""
    parser.addoption(
        "--docs-screenshots",
        action="store_true",
        default=False,
        help="copy the report screenshots the browser test takes into docs/img/ (make docs-screenshots)",
    )
