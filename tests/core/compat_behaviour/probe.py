"""Run one probe with gokart 1.12.2 or kart_core and write what it saw as JSON.

    python -m compat_behaviour.probe IMPL COMMAND OUT [ARG]

IMPL is ``gokart`` or ``kart``. Both register luigi task classes under the same names, so each
run is its own process (tests/core/test_gokart_behaviour.py starts them in a temporary directory).
Commands: ``errors``, ``config``, ``tree``, ``params``, ``pickle_write``, ``pickle_read PATH``,
``feather_write``, ``feather_read DIRECTORY``, ``data_frames``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import json
import sys
from collections.abc import Callable
from typing import Any

import luigi
from luigi.cmdline_parser import CmdlineParser

IMPL, COMMAND, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
PACKAGE = "gokart" if IMPL == "gokart" else "kart_core"
gokart: Any = importlib.import_module(PACKAGE)
target_module: Any = importlib.import_module(f"{PACKAGE}.target")
tree_module: Any = importlib.import_module(f"{PACKAGE}.tree.task_info")


def outcome(call: Callable[[], Any]) -> Any:
    """The value of ``call()``, or the exception it raised: its class, builtin bases and message."""
    try:
        return {"value": call()}
    except BaseException as exc:  # SystemExit from argparse included
        builtins = [cls.__name__ for cls in type(exc).__mro__ if cls.__module__ == "builtins"]
        return {"error": type(exc).__name__, "builtins": builtins, "message": str(exc)}


# --- errors ------------------------------------------------------------------------------------


class Upstream(gokart.TaskOnKart):
    def run(self) -> None:
        self.dump(1)


class DictRequires(gokart.TaskOnKart):
    def requires(self) -> Any:
        return {"a": Upstream(workspace_directory="ws")}


class ListRequires(gokart.TaskOnKart):
    def requires(self) -> Any:
        return [Upstream(workspace_directory="ws")]


class EmptyFrames(gokart.TaskOnKart):
    fail_on_empty_dump = True


class TwoOutputs(gokart.TaskOnKart):
    def output(self) -> Any:
        return {"a": self.make_target("a.pkl"), "b": self.make_target("b.pkl")}


class AbsentExternal(luigi.ExternalTask):
    def output(self) -> Any:
        return luigi.LocalTarget("ws/absent-external.txt")


class NeedsAbsentExternal(gokart.TaskOnKart):
    def requires(self) -> Any:
        return AbsentExternal()

    def run(self) -> None:
        self.dump(1)


class RequiresNumber(gokart.TaskOnKart):
    def requires(self) -> Any:
        return 3


def load_after(path: str, write: Callable[[str], Any]) -> Any:
    """Write ``path`` with ``write(path)``, then load it through a target."""
    write(path)
    return target_module.make_target(path).load()


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def errors() -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    make_target = target_module.make_target
    named_none = pd.DataFrame({"a": [1]}, index=pd.Index([5], name="None"))
    taken = pd.DataFrame({"a": [1], "__feather_gokart_index__i": [2]}, index=pd.Index([5], name="i"))
    cases: dict[str, Callable[[], Any]] = {
        "empty_dump": lambda: EmptyFrames(workspace_directory="ws").dump(pd.DataFrame()),
        "load_missing_input": lambda: DictRequires(workspace_directory="ws").load("a"),
        "load_missing_target": lambda: make_target("ws/absent.pkl").load(),
        "load_missing_csv": lambda: make_target("ws/absent.csv").load(),
        "load_unknown_key": lambda: DictRequires(workspace_directory="ws").load("zzz"),
        "load_key_of_list_requires": lambda: ListRequires(workspace_directory="ws").load("a"),
        "load_unrequired_task": lambda: DictRequires(workspace_directory="ws").load(EmptyFrames()),
        "csv_of_list": lambda: make_target("ws/x.csv").dump([1, 2]),
        "parquet_of_dict": lambda: make_target("ws/x.parquet").dump({"a": 1}),
        "xml_of_list": lambda: make_target("ws/x.xml").dump([1]),
        "npz_of_list": lambda: make_target("ws/x.npz").dump([1]),
        "npz_of_array": lambda: make_target("ws/ok.npz").dump(np.arange(3)),
        "unknown_extension": lambda: make_target("ws/x.zzz"),
        "feather_index_named_none": lambda: make_target("ws/x.feather").dump(named_none),
        "feather_index_column_taken": lambda: make_target("ws/y.feather").dump(taken),
        "dump_unknown_key": lambda: TwoOutputs(workspace_directory="ws").dump(1, "c"),
        "dump_without_key": lambda: TwoOutputs(workspace_directory="ws").dump(1),
        "requires_a_number": lambda: RequiresNumber().make_unique_id(),
        "load_json_of_series": lambda: load_after(
            "ws/series.json", lambda path: target_module.make_target(path).dump(pd.Series([1, 2]))
        ),
        "load_json_not_json": lambda: load_after("ws/bad.json", lambda path: write_bytes(path, b"{not json")),
        "load_csv_not_utf8": lambda: load_after("ws/latin.csv", lambda path: write_bytes(path, b"a\n\xe9\xff\n")),
        # Last: gokart.build resets luigi's task registry.
        "build_missing_external": lambda: gokart.build(NeedsAbsentExternal(workspace_directory="ws"), log_level=50),
    }
    return {name: outcome(call) for name, call in cases.items()}


# --- [TaskOnKart] config ----------------------------------------------------------------------


class Declares(gokart.TaskOnKart):
    param_a = luigi.IntParameter(default=1)
    param_b = luigi.Parameter(default="x")


class Inherits(Declares):
    pass


class Redeclares(Declares):
    param_a = luigi.IntParameter(default=2)


class OverridesRerun(gokart.TaskOnKart):
    rerun = luigi.BoolParameter(default=False, significant=True)


def config() -> dict[str, Any]:
    def seen(task: Any) -> Any:
        params = task.to_str_params(only_significant=True)
        return {"params": params, "unique_id": task.make_unique_id()}

    return {
        cls.__name__: outcome(lambda cls=cls: seen(cls())) for cls in (Declares, Inherits, Redeclares, OverridesRerun)
    }


# --- tree and table -----------------------------------------------------------------------------


class Leaf(gokart.TaskOnKart):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.n)


class LuigiTargetTask(gokart.TaskOnKart):
    path = luigi.Parameter()

    def output(self) -> Any:
        return luigi.LocalTarget(self.path)


def requiring(name: str, requires: Callable[[], Any]) -> Any:
    """A task class called ``name`` whose requires() returns ``requires()`` (a new object each call)."""
    return type(name, (gokart.TaskOnKart,), {"__module__": __name__, "requires": lambda self: requires()})


def tree() -> dict[str, Any]:
    leaves = lambda *ns: [Leaf(n=n) for n in ns]  # noqa: E731
    shapes: dict[str, Callable[[], Any]] = {
        "generator": lambda: (Leaf(n=n) for n in range(2)),
        "set": lambda: {Leaf(n=1)},
        "map": lambda: map(lambda n: Leaf(n=n), range(2)),
        "chain": lambda: itertools.chain(leaves(1), leaves(2)),
        "tuple": lambda: (Leaf(n=1), Leaf(n=2)),
        "dict_of_generators": lambda: {"a": (Leaf(n=n) for n in range(2)), "b": Leaf(n=3)},
        "dict_of_sets": lambda: {"a": {Leaf(n=5)}},
        "dict_of_maps": lambda: {"a": map(lambda n: Leaf(n=n), range(2)), "b": [Leaf(n=4)]},
    }
    Leaf(n=1).output().dump(1)  # one complete upstream, without run logs
    with open("exists.txt", "w") as file:
        file.write("x")
    shapes["luigi_targets"] = lambda: [LuigiTargetTask(path="exists.txt"), LuigiTargetTask(path="absent.txt")]
    result = {}
    for shape, requires in shapes.items():
        task_class = requiring(f"Requires_{shape}", requires)
        table = outcome(lambda task_class=task_class: tree_module.make_task_info_as_table(task_class()).to_dict("list"))
        if "value" in table:
            table["value"] = {key: repr(value) for key, value in table["value"].items()}

        def dumped(task_class: Any = task_class, shape: str = shape) -> str:
            task = task_class()
            tree_module.dump_task_info_table(task, f"info/{shape}.csv")
            with open(f"info/{shape}_{task.make_unique_id()}.csv") as file:
                return file.read()

        result[shape] = {
            "dumped_table": outcome(dumped),
            "tree": outcome(lambda task_class=task_class: tree_module.make_task_info_as_tree_str(task_class())),
            "details": outcome(
                lambda task_class=task_class: tree_module.make_task_info_as_tree_str(task_class(), details=True)
            ),
            "table": table,
        }
    return result


# --- ExplicitBoolParameter and cache_unique_id ---------------------------------------------------


class Flagged(gokart.TaskOnKart):
    flag = gokart.ExplicitBoolParameter(default=False)


class FlagWithoutDefault(gokart.TaskOnKart):
    flag = gokart.ExplicitBoolParameter()


class Source(gokart.TaskOnKart):
    n = luigi.IntParameter()


class Follows(gokart.TaskOnKart):
    a = luigi.IntParameter(default=1)
    source_n = 1  # a plain attribute: changing it changes requires(), not the parameters

    def requires(self) -> Any:
        return Source(n=self.source_n)


def from_command_line(argv: list[str]) -> Any:
    with contextlib.redirect_stderr(io.StringIO()), CmdlineParser.global_instance(argv) as parser:
        return parser.get_task_obj().flag


def params() -> dict[str, Any]:
    flag = dict(Flagged.get_params())["flag"]
    result: dict[str, Any] = {
        f"parse {text!r}": outcome(lambda text=text: flag.parse(text))
        for text in ("true", "True", "FALSE", "false", "1", "yes", "")
    }
    for argv in (["--flag", "true"], ["--flag", "False"], ["--flag"], [], ["--flag=TRUE"], ["--flag", "0"]):
        result[f"cli {argv}"] = outcome(lambda argv=argv: from_command_line(["Flagged", *argv]))
    result["no default"] = outcome(lambda: FlagWithoutDefault().flag)
    for cache in (True, False):
        task = Follows(cache_unique_id=cache)
        before = task.make_unique_id()
        task.source_n = 2
        after_requires = task.make_unique_id()
        task.param_kwargs["a"] = 5
        after_kwargs = task.make_unique_id()
        result[f"cache_unique_id={cache}"] = [before, after_requires, after_kwargs, task.output().path()]
    result["has load_data_frame"] = hasattr(gokart.TaskOnKart, "load_data_frame")
    return result


# --- .pkl of __main__ classes and functions ------------------------------------------------------


def pickle_write() -> dict[str, Any]:
    # Run as `python -m`, this module is __main__: its classes and functions exist in no other script.
    task = Pickles(workspace_directory="ws")
    task.run()
    return {"path": task.output().path()}


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def doubled(self) -> int:
        return self.x * 2


def tripled(value: int) -> int:
    return value * 3


class Pickles(gokart.TaskOnKart):
    def run(self) -> None:
        self.dump({"point": Point(4), "function": tripled, "class": Point, "plain": [1.5, "a", {"k": (1, 2)}]})


def pickle_read(path: str) -> dict[str, Any]:
    def read() -> Any:
        loaded = target_module.make_target(path).load()
        return {
            "point": [type(loaded["point"]).__name__, loaded["point"].doubled()],
            "function": loaded["function"](2),
            "class": loaded["class"](5).doubled(),
            "plain": loaded["plain"],
        }

    return outcome(read)


# --- .feather column names -----------------------------------------------------------------------


def feather_frames() -> dict[str, Any]:
    """Frames whose column names are not all strings (and two that are), by name."""
    import numpy as np
    import pandas as pd

    return {
        "int_columns": pd.DataFrame(np.array([[1, 2], [3, 4]])),
        "int_columns_other_index": pd.DataFrame(np.array([[1, 2]]), index=pd.Index([7], name="i")),
        "mixed_columns": pd.DataFrame({"a": [1], 1: [2]}),
        "float_and_named_columns": pd.DataFrame({0.5: [1]}).rename_axis(columns="cn"),
        "timestamp_columns": pd.DataFrame({pd.Timestamp("2020-01-01"): [1]}),
        "str_columns": pd.DataFrame({"a": [1], "b": [2]}),
    }


def feather_write() -> dict[str, Any]:
    """Dump each of ``feather_frames()`` to ``ws/<name>.feather``; the paths."""
    paths = {}
    for name, frame in feather_frames().items():
        target = target_module.make_target(f"ws/{name}.feather")
        target.dump(frame)
        paths[name] = target.path()
    return paths


def feather_read(directory: str) -> dict[str, Any]:
    """Load each ``<directory>/<name>.feather``: its column names (with their types), columns' name, index, values."""

    def read(name: str) -> Any:
        frame = target_module.make_target(f"{directory}/{name}.feather").load()
        columns = [[type(c).__name__, str(c)] for c in frame.columns]
        return [columns, frame.columns.name, frame.index.name, list(frame.index), frame.to_numpy().tolist()]

    return {name: outcome(lambda name=name: read(name)) for name in feather_frames()}


# --- DataFrames of several inputs (load_data_frame) ------------------------------------------------


class FramePart(gokart.TaskOnKart):
    i = luigi.IntParameter()

    def run(self) -> None:
        import pandas as pd

        self.dump(pd.DataFrame({"i": [self.i], "v": [10 * self.i]}))


def frame_shapes() -> dict[str, Callable[[], Any]]:
    """requires() shapes by name, each over FramePart(1) and FramePart(2)."""
    one, two = FramePart(i=1, workspace_directory="ws"), FramePart(i=2, workspace_directory="ws")
    return {
        "list": lambda: [one, two],
        "tuple": lambda: (one, two),
        "one_in_a_dict": lambda: {"a": one},
        "list_in_a_dict": lambda: {"a": [one, two]},
        "nested_list": lambda: [one, [two, one]],
        "dict_of_two": lambda: {"a": one, "b": two},
    }


def leaf_frames(loaded: Any) -> list[Any]:
    """The DataFrames in ``loaded`` (dict values, list items), in order."""
    if isinstance(loaded, dict):
        return [frame for value in loaded.values() for frame in leaf_frames(value)]
    if isinstance(loaded, list | tuple):
        return [frame for value in loaded for frame in leaf_frames(value)]
    return [loaded]


def data_frames() -> dict[str, Any]:
    """For each of ``frame_shapes()``: the type ``load()`` returns and the DataFrame of all the inputs.

    gokart 1.12.2 has no ``load_data_frame``; its users concatenate ``load()``'s frames (gokart's PR #417), so
    with gokart the frame is ``pd.concat`` of them, with kart ``load_data_frame()``: columns, index, rows."""
    import pandas as pd

    def frame_of(task: Any) -> Any:
        frame = task.load_data_frame() if IMPL == "kart" else pd.concat(leaf_frames(task.load()))
        return [list(frame.columns), list(frame.index), frame.to_numpy().tolist()]

    for i in (1, 2):
        gokart.build(FramePart(i=i, workspace_directory="ws"), log_level=50)
    report = {}
    for name, shape in frame_shapes().items():
        reader = requiring(f"Reads_{name}", shape)(workspace_directory="ws")
        report[name] = {"load": type(reader.load()).__name__, "frame": outcome(lambda reader=reader: frame_of(reader))}
    return report


COMMANDS: dict[str, Callable[..., Any]] = {
    "errors": errors,
    "config": config,
    "tree": tree,
    "params": params,
    "pickle_write": pickle_write,
    "pickle_read": pickle_read,
    "feather_write": feather_write,
    "feather_read": feather_read,
    "data_frames": data_frames,
}

if __name__ == "__main__":
    report = COMMANDS[COMMAND](*sys.argv[4:])
    with open(OUT, "w") as out:
        json.dump(report, out, indent=1, sort_keys=True, default=repr)
