"""kart_core against gokart 1.12.2 on the behaviours of issue 16 ("Behaviour that differs").

Each probe (tests/core/compat_behaviour/probe.py) runs once with gokart and once with kart, each
in its own process and directory; this module compares their JSON reports: exception types,
config-resolved values and unique ids, tree and table text, parameter parsing, and ``.pkl`` files
of a script's classes loaded by another script.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fork_server
import pytest
from compat_pipeline.harness import DriverError, driver_env
from fork_server import GOKART, KART

import kart_core
from kart_core import errors

IMPLS = ("gokart", "kart")
GENERIC = {"Exception", "BaseException", "object"}


def probe(impl: str, cwd: Path, command: str, *args: str, config: str | None = None) -> Any:
    """Run ``compat_behaviour.probe`` with ``impl`` in ``cwd`` (optionally with a luigi config text)."""
    return probes([(impl, cwd, command, *args)], config=config)[0]


def probes(runs: list[tuple[Any, ...]], config: str | None = None) -> list[Any]:
    """``probe(impl, cwd, command, *args)`` for each ``(impl, cwd, command, *args)`` of ``runs``, in order.

    Each run has its own process, as in ``probe``; the processes start together (one after the other, the
    pickle test's six gokart and kart start-ups took ~30 s of wall time for ~12 s of CPU). Raises
    DriverError (the end of its stderr) for a process that exits non-zero.
    """
    started: list[tuple[Path, list[str], fork_server.Run]] = []
    try:
        for impl, cwd, command, *args in runs:
            cwd.mkdir(parents=True, exist_ok=True)
            env = driver_env(impl)
            if config is not None:
                (cwd / "luigi.cfg").write_text(config)
                env["LUIGI_CONFIG_PATH"] = str(cwd / "luigi.cfg")
            out = cwd / f"{command}-{impl}.json"
            line = ["-m", "compat_behaviour.probe", impl, command, str(out), *args]
            # A fork of a server that imported gokart (or luigi and pandas) once: still a process of its own.
            started.append((out, line, fork_server.start(line, cwd, env, GOKART if impl == "gokart" else KART)))
        reports = []
        while started:
            out, line, process = started[0]
            done = process.wait(timeout=300)
            started.pop(0)
            if done.returncode != 0:
                raise DriverError(f"{' '.join(line)} failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
            reports.append(json.loads(out.read_text()))
        return reports
    finally:
        for _, _, process in started:  # a failed or timed-out run: end the others too
            process.kill()


def both(tmp_path_factory: pytest.TempPathFactory, command: str, config: str | None = None) -> dict[str, Any]:
    root = tmp_path_factory.mktemp(command)
    return dict(zip(IMPLS, probes([(impl, root / impl, command) for impl in IMPLS], config=config), strict=True))


# --- 1. exception types -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return both(tmp_path_factory, "errors")


ERROR_CASES = {
    "empty_dump": "EmptyDumpError",
    "load_missing_input": "MissingOutputError",
    "load_missing_target": "MissingOutputError",
    "load_missing_csv": "MissingOutputError",
    "load_unknown_key": "InputKeyError",
    "load_key_of_list_requires": "UnrequiredTaskError",
    "load_unrequired_task": "UnrequiredTaskError",
    "csv_of_list": "UnsupportedObjectError",
    "parquet_of_dict": "UnsupportedObjectError",
    "xml_of_list": "UnsupportedObjectError",
    "npz_of_list": "UnsupportedObjectError",
    "unknown_extension": "UnknownFormatError",
    "feather_index_named_none": "UnsupportedObjectError",
    "feather_index_column_taken": "UnsupportedObjectError",
    "dump_unknown_key": "OutputKeyError",
    "dump_without_key": "OutputKeyError",
    "requires_a_number": "RequiresError",
    "load_json_of_series": "UnloadableObjectError",  # refused at the dump; gokart's load raises ValueError
    "load_json_not_json": "LoadValueError",
    "build_missing_external": "MissingInputBuildError",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_kart_error_extends_what_gokart_raises(raised: dict[str, Any], case: str) -> None:
    """Where gokart raises a builtin type, kart raises its own error that is also that builtin."""
    gokart_error, kart_error = raised["gokart"][case], raised["kart"][case]
    assert "error" in gokart_error and "error" in kart_error
    assert kart_error["error"] == ERROR_CASES[case]
    assert issubclass(getattr(errors, kart_error["error"]), errors.KartError)
    assert set(gokart_error["builtins"]) - GENERIC <= set(kart_error["builtins"]), (gokart_error, kart_error)


@pytest.mark.slow
def test_kart_messages_name_the_task_path_and_fix(raised: dict[str, Any]) -> None:
    """kart keeps its own messages: the task as Class[8 hex], the file, what to do next."""
    kart = raised["kart"]
    assert kart["load_unknown_key"]["message"].startswith("DictRequires[")
    assert "Keys: ['a']" in kart["load_unknown_key"]["message"]  # no KeyError quoting
    assert "Upstream[" in kart["load_missing_input"]["message"]
    assert "Build the task first" in kart["load_missing_input"]["message"]
    assert "ws/absent.pkl" in kart["load_missing_target"]["message"]
    assert "ws/x.csv" in kart["csv_of_list"]["message"] and "CsvFileProcessor" in kart["csv_of_list"]["message"]
    assert "rename the index" in kart["feather_index_named_none"]["message"]
    assert "Known: .csv" in kart["unknown_extension"]["message"]
    assert kart["dump_unknown_key"]["message"].startswith("TwoOutputs[")


@pytest.mark.slow
def test_a_reader_error_is_caught_by_its_builtin_base(raised: dict[str, Any]) -> None:
    """A UnicodeDecodeError cannot be made from a message: kart's LoadError is its ValueError (attacker at14 N5)."""
    gokart, kart = raised["gokart"]["load_csv_not_utf8"], raised["kart"]["load_csv_not_utf8"]
    assert gokart["error"] == "UnicodeDecodeError" and "ValueError" in gokart["builtins"]
    assert kart["error"] == "LoadValueError" and "ValueError" in kart["builtins"]
    assert "UnicodeDecodeError: 'utf-8' codec can't decode" in kart["message"]


@pytest.mark.slow
def test_both_dump_what_the_format_holds(raised: dict[str, Any]) -> None:
    assert raised["gokart"]["npz_of_array"] == raised["kart"]["npz_of_array"] == {"value": None}


def test_error_classes_are_their_builtins_in_process() -> None:
    """The same promise checked on the classes themselves (what the migration table lists)."""
    assert issubclass(errors.EmptyDumpError, AssertionError)
    assert issubclass(errors.MissingOutputError, FileNotFoundError) and issubclass(
        errors.MissingOutputError, errors.LoadError
    )
    assert issubclass(errors.UnsupportedObjectError, TypeError) and issubclass(
        errors.UnsupportedObjectError, AssertionError
    )
    assert issubclass(errors.InputKeyError, KeyError) and issubclass(errors.InputKeyError, errors.UnrequiredTaskError)
    assert issubclass(errors.OutputKeyError, KeyError) and issubclass(errors.OutputKeyError, AssertionError)
    assert issubclass(errors.UnknownFormatError, AssertionError) and issubclass(errors.UnknownFormatError, ValueError)
    assert str(errors.InputKeyError("a message")) == "a message"


def load_error_raised_while_handling(cause: BaseException) -> errors.LoadError:
    """The LoadError a target makes while handling the reader's ``cause``."""
    try:
        raise cause
    except BaseException:
        return errors.LoadError("Failed to load X[12345678] from 'ws/x.json'.")


def test_load_error_is_the_readers_builtin_and_pickles() -> None:
    """Made while a reader's error is handled, a LoadError is also its builtin; it survives the trip back from
    a worker process (pickle), and outside a handler, or for a non-builtin error, it is a plain LoadError."""
    import pickle
    import zipfile

    found = load_error_raised_while_handling(ValueError("Expected object or value"))
    assert type(found) is errors.LoadValueError and isinstance(found, ValueError)
    back = pickle.loads(pickle.dumps(found))
    assert type(back) is errors.LoadValueError and str(back) == str(found)
    key = load_error_raised_while_handling(KeyError("k"))
    assert isinstance(key, KeyError) and str(key) == "Failed to load X[12345678] from 'ws/x.json'."
    unicode = load_error_raised_while_handling(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert type(unicode) is errors.LoadValueError
    assert type(load_error_raised_while_handling(zipfile.BadZipFile("no zip"))) is errors.LoadError
    assert type(errors.LoadError("outside a handler")) is errors.LoadError
    try:
        raise ValueError("x")
    except ValueError:
        assert type(errors.MissingOutputError("missing")) is errors.MissingOutputError  # subclasses stay


# --- 2. [TaskOnKart] values on parameters declared by subclasses --------------------------------

CONFIGS = {
    "task_on_kart": "[TaskOnKart]\nparam_a = 5\nrerun = true\n",
    "class": "[Declares]\nparam_a = 7\nparam_b = cls\n[Inherits]\nparam_a = 8\n",
    "both": "[TaskOnKart]\nparam_a = 5\nparam_b = tok\n[Declares]\nparam_a = 7\n[Redeclares]\nparam_a = 9\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_task_on_kart_section_as_gokart(tmp_path: Path, name: str) -> None:
    """Same values and unique ids: [TaskOnKart] reaches parameters declared in a class's own body and
    outranks [ClassName] there; an inherited declaration is not reached."""
    seen = dict(zip(IMPLS, probes([(impl, tmp_path / impl, "config") for impl in IMPLS], CONFIGS[name]), strict=True))
    assert seen["kart"] == seen["gokart"]
    assert all("value" in result for result in seen["kart"].values())


@pytest.mark.slow
def test_task_on_kart_section_changes_the_declaring_class(tmp_path: Path) -> None:
    seen = probe("kart", tmp_path, "config", config=CONFIGS["both"])
    assert seen["Declares"]["value"]["params"] == {"param_a": "5", "param_b": "tok"}  # not [Declares]' 7
    assert seen["Inherits"]["value"]["params"] == {"param_a": "1", "param_b": "x"}  # inherits: untouched
    assert seen["Redeclares"]["value"]["params"]["param_a"] == "5"


# --- 3. .pkl of __main__ classes and functions ---------------------------------------------------


@pytest.mark.slow
def test_pickles_of_script_classes_load_in_another_script(tmp_path: Path) -> None:
    """Each library's .pkl of a script's class, instance and function loads from another process, in both."""
    expected = {"value": {"point": ["Point", 8], "function": 6, "class": 10, "plain": [1.5, "a", {"k": [1, 2]}]}}
    written = probes([(writer, tmp_path / f"write-{writer}", "pickle_write") for writer in IMPLS])
    paths = {
        writer: str(tmp_path / f"write-{writer}" / report["path"])
        for writer, report in zip(IMPLS, written, strict=True)
    }
    pairs = [(writer, reader) for writer in IMPLS for reader in IMPLS]
    read = probes(
        [(reader, tmp_path / f"read-{writer}-{reader}", "pickle_read", paths[writer]) for writer, reader in pairs]
    )
    assert dict(zip(pairs, read, strict=True)) == dict.fromkeys(pairs, expected)


@pytest.mark.slow
def test_feather_column_names_as_gokart(tmp_path: Path) -> None:
    """A frame whose column names are not all strings (``pd.DataFrame(array)``) loads as gokart's does, from
    either library's file: names as strings ('0', '1'); and gokart reads kart's files (attacker at14 N3)."""
    written = probes([(writer, tmp_path / f"write-{writer}", "feather_write") for writer in IMPLS])
    folders = {writer: str(tmp_path / f"write-{writer}" / "ws") for writer in IMPLS}
    pairs = [(writer, reader) for writer in IMPLS for reader in IMPLS]
    read = dict(
        zip(
            pairs,
            probes(
                [
                    (reader, tmp_path / f"read-{writer}-{reader}", "feather_read", folders[writer])
                    for writer, reader in pairs
                ]
            ),
            strict=True,
        )
    )
    assert set(written[0]) == set(written[1])
    expected = read[("gokart", "gokart")]
    assert expected["int_columns"] == {"value": [[["str", "0"], ["str", "1"]], None, None, [0, 1], [[1, 2], [3, 4]]]}
    assert expected["timestamp_columns"]["value"][0] == [["str", "2020-01-01 00:00:00"]]
    assert expected["float_and_named_columns"]["value"][:2] == [[["str", "0.5"]], "cn"]
    for pair in pairs:
        assert read[pair] == expected, pair


def test_ordinary_objects_keep_the_plain_pickle_format(tmp_path: Path) -> None:
    """Without a __main__ class in it, a .pkl is a standard pickle: no dill needed to load it."""
    import pickle

    target = kart_core.target.make_target(str(tmp_path / "plain.pkl"))
    target.dump({"a": [1, 2.5, "x"], "frac": __import__("fractions").Fraction(1, 3)})
    data = Path(target.path()).read_bytes()
    assert b"dill" not in data
    assert pickle.loads(data)["frac"].denominator == 3


# --- 4. tree and table for every requires() shape ----------------------------------------------


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return both(tmp_path_factory, "tree")


SHAPES = ["generator", "set", "map", "chain", "tuple", "dict_of_generators", "dict_of_sets", "dict_of_maps"]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_tree_and_table_as_gokart(trees: dict[str, Any], shape: str) -> None:
    """Same tree text (with and without details), table (requires cell included) and dump_task_info_table file."""
    gokart, kart = trees["gokart"][shape], trees["kart"][shape]
    assert "value" in gokart["tree"], gokart
    assert kart == gokart
    # Leaf(n=1) was dumped beforehand: every shape but dict_of_sets holds it, as COMPLETE.
    assert ("(COMPLETE) Leaf[" in kart["tree"]["value"]) is (shape != "dict_of_sets")


@pytest.mark.slow
def test_luigi_targets_are_described_where_gokart_fails(trees: dict[str, Any]) -> None:
    """A task whose output() is a luigi.LocalTarget: gokart's tree calls target.path() and fails; kart
    reports each task's complete() (COMPLETE when the file exists, else PENDING)."""
    assert trees["gokart"]["luigi_targets"]["tree"]["error"] == "TypeError"
    lines = trees["kart"]["luigi_targets"]["tree"]["value"].splitlines()
    assert lines[1].startswith("└─-(PENDING) Requires_luigi_targets[")
    assert lines[2].startswith("   |--(COMPLETE) LuigiTargetTask[")
    assert lines[3].startswith("   └─-(PENDING) LuigiTargetTask[")
    assert "output=['exists.txt']" in trees["kart"]["luigi_targets"]["details"]["value"]


# --- 5. load_data_frame on an empty upstream ----------------------------------------------------


def test_load_data_frame_of_empty_upstream_has_the_required_columns(tmp_path: Path) -> None:
    """gokart's PR #137 behaviour (gokart 1.12.2 no longer has load_data_frame, see params probe)."""
    import pandas as pd

    class TkEmpty(kart_core.TaskOnKart[pd.DataFrame]):
        def run(self) -> None:
            self.dump(pd.DataFrame())

    class TkNeeds(kart_core.TaskOnKart[pd.DataFrame]):
        def requires(self) -> Any:
            return TkEmpty(workspace_directory=str(tmp_path))

        def run(self) -> None:
            self.dump(self.load_data_frame(required_columns={"b", "a"}))

    frame = kart_core.build(TkNeeds(workspace_directory=str(tmp_path)), reset_register=False)
    assert list(frame.columns) == ["a", "b"] and len(frame) == 0


# --- 6. ExplicitBoolParameter and cache_unique_id ---------------------------------------------------


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return both(tmp_path_factory, "params")


@pytest.mark.slow
def test_explicit_bool_parameter_as_gokart(parsed: dict[str, Any]) -> None:
    """parse(), the command line (a bare --flag is an argparse error) and a missing default."""
    cases = [key for key in parsed["gokart"] if key.startswith(("parse", "cli", "no default"))]
    assert len(cases) == 14
    for key in cases:
        gokart, kart = parsed["gokart"][key], parsed["kart"][key]
        assert {k: v for k, v in kart.items() if k != "message"} == {
            k: v for k, v in gokart.items() if k != "message"
        }, key
    assert parsed["kart"]["cli ['--flag']"]["error"] == "SystemExit"


@pytest.mark.slow
def test_cache_unique_id_false_recomputes(parsed: dict[str, Any]) -> None:
    """With cache_unique_id=False the id (and output path) follows a changed requires(); cached, it stays."""
    assert parsed["kart"]["cache_unique_id=False"] == parsed["gokart"]["cache_unique_id=False"]
    assert parsed["kart"]["cache_unique_id=True"] == parsed["gokart"]["cache_unique_id=True"]
    before, after, _, path = parsed["kart"]["cache_unique_id=False"]
    assert before != after and after in path
    cached = parsed["kart"]["cache_unique_id=True"]
    assert cached[0] == cached[1] == cached[2]


@pytest.mark.slow
def test_gokart_has_no_load_data_frame(parsed: dict[str, Any]) -> None:
    """Why item 5 is checked against gokart's PR #137 rather than against gokart 1.12.2."""
    assert parsed["gokart"]["has load_data_frame"] is False and parsed["kart"]["has load_data_frame"] is True


# --- 7. load_data_frame of several inputs --------------------------------------------------------


@pytest.mark.slow
def test_load_data_frame_of_several_inputs_is_gokarts_concatenation(tmp_path_factory: pytest.TempPathFactory) -> None:
    """requires() as a list, a tuple, a nested list, a one-entry dict (one TaskInstanceParameter) or a dict holding a
    list: ``load_data_frame()`` is the frame a gokart 1.12.2 user gets from ``pd.concat`` of ``load()``'s frames
    (same columns, index, rows), and ``load()`` has gokart's shape (attacker at19 J4: each frame was walked into
    its column labels, pandas' TypeError). A dict of several inputs stays an error, as in gokart's last
    load_data_frame (an AttributeError there)."""
    seen = both(tmp_path_factory, "data_frames")
    gokart, kart = seen["gokart"], seen["kart"]
    assert gokart["list"]["frame"] == {"value": [["i", "v"], [0, 0], [[1, 10], [2, 20]]]}
    for name in ("list", "tuple", "one_in_a_dict", "list_in_a_dict", "nested_list"):
        assert kart[name] == gokart[name], name
    assert gokart["tuple"]["load"] == kart["tuple"]["load"] == "list"
    assert kart["dict_of_two"]["load"] == gokart["dict_of_two"]["load"] == "dict"
    refused = kart["dict_of_two"]["frame"]
    assert refused["error"] == "DataFrameInputError" and "AttributeError" in refused["builtins"]
    assert refused["message"].startswith("Reads_dict_of_two[") and "load_data_frame('key')" in refused["message"]
