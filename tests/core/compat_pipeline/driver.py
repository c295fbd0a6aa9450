"""Run the pipeline with one implementation and report ids, values, completeness and logs as JSON.

Usage: ``KART_COMPAT_IMPL=gokart|kart python -m compat_pipeline.driver COMMAND OUT.json [ARG...]``:

- ``build``: each root with the implementation's build; ``build-all``: AllTasks only;
- ``ids``: the graph report without building;
- ``luigi WORKERS [ROOT]``: luigi.build of AllTasks (or Diamond) with the local scheduler;
- ``errors``: the exceptions of task definition mistakes and of a failing build;
- ``chain DEPTH``: the unique id of a DEPTH-long ChainLink chain.

The current directory is the workspace's parent (``./resources/``).
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import pickle
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
from luigi.task import flatten

from compat_pipeline.impl import IMPL, gokart


def canonical(obj: Any) -> Any:
    """A JSON-able form of a loaded output that is equal exactly when the outputs are equal."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return {"frame": obj.to_json(orient="split", date_format="iso"), "dtypes": [str(t) for t in obj.dtypes]}
    if isinstance(obj, np.ndarray):
        return {"ndarray": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, Mapping):
        return {"mapping": [[canonical(k), canonical(v)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {type(obj).__name__: [canonical(item) for item in obj]}
    if isinstance(obj, datetime.date | enum.Enum | Path):
        return {type(obj).__name__: repr(obj)}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return {type(obj).__name__: repr(obj)}


def node_name(task: Any) -> str:
    """``family_uniqueid`` for a TaskOnKart, luigi's task_id for a plain luigi task."""
    if isinstance(task, gokart.TaskOnKart):
        return f"{task.get_task_family()}_{task.make_unique_id()}"
    return str(task.task_id)


def walk(roots: list[Any]) -> list[Any]:
    """Every task under ``roots``, depth first in requires() order, each once."""
    seen: dict[str, Any] = {}
    stack = list(reversed(roots))
    while stack:
        task = stack.pop()
        name = node_name(task)
        if name in seen:
            continue
        seen[name] = task
        stack.extend(reversed(flatten(task.requires())))
    return list(seen.values())


def load_outputs(task: Any) -> Any:
    """Load every output of ``task`` (a plain luigi task's file is read as text)."""
    if not isinstance(task, gokart.TaskOnKart):
        return task.output().read()
    output = task.output()
    if isinstance(output, dict):
        return {key: target.load() for key, target in output.items()}
    if isinstance(output, list | tuple):
        return [target.load() for target in output]
    return output.load()


def read_logs(task: Any) -> dict[str, Any]:
    """The task_params and random_seed logs and the module_versions lines of a TaskOnKart."""
    if not isinstance(task, gokart.TaskOnKart):
        return {}
    base = Path(task.workspace_directory) / "log"
    stem = f"{type(task).__name__}_{task.make_unique_id()}"
    logs: dict[str, Any] = {}
    for kind in ("task_params", "random_seed"):
        with open(base / kind / f"{stem}.pkl", "rb") as file:
            logs[kind] = canonical(pickle.load(file))
    logs["module_versions"] = (base / "module_versions" / f"{stem}.txt").read_text().splitlines()
    return logs


def report_graph(roots: list[Any]) -> dict[str, Any]:
    """Ids (in walk order), completeness, loaded outputs and logs of every task under ``roots``."""
    from compat_pipeline.roots import AllTasks

    nodes = walk(roots)
    complete = {node_name(task): bool(task.complete()) for task in nodes}
    return {
        "impl": IMPL,
        "task_classes": len({type(t) for t in nodes if not isinstance(t, AllTasks)}),
        "ids": [node_name(task) for task in nodes],
        "complete_before": complete,
        "params": {node_name(t): t.to_str_params(only_significant=True) for t in nodes},
        "class_names": {node_name(t): type(t).__name__ for t in nodes if isinstance(t, gokart.TaskOnKart)},
        "output_paths": sorted(os.path.normpath(target.path()) for t in nodes for target in flatten(t.output())),
    }


def command_build(roots: list[Any]) -> dict[str, Any]:
    """Report the graph, build each root with the implementation's build, then load every output."""
    report = report_graph(roots)
    started = time.perf_counter()
    report["roots"] = [node_name(root) for root in roots]
    report["values"] = [canonical(gokart.build(root)) for root in roots]
    report["build_seconds"] = time.perf_counter() - started
    nodes = walk(roots)
    report["outputs"] = {node_name(task): canonical(load_outputs(task)) for task in nodes}
    report["logs"] = {node_name(task): read_logs(task) for task in nodes}
    return report


def luigi_root(name: str) -> Any:
    """The root task for ``luigi``: AllTasks (the whole pipeline) or Diamond (four tasks, two in parallel)."""
    from compat_pipeline.graph import Diamond
    from compat_pipeline.roots import AllTasks

    roots = {"AllTasks": AllTasks, "Diamond": Diamond}
    if name not in roots:
        raise SystemExit(f"unknown root {name!r}; use one of {sorted(roots)}")
    return roots[name]()


def command_luigi(workers: int, root_name: str) -> dict[str, Any]:
    """luigi.build of one root with the local scheduler, then the graph report and every loaded output."""
    # luigi's worker sleeps wait_interval + uniform(0, wait_jitter=5 s) whenever it waits on a running
    # task; shorter waits change only the speed.
    config = luigi.configuration.get_config()
    config.set("worker", "wait_interval", "0.05")
    config.set("worker", "wait_jitter", "0")
    result = luigi.build([luigi_root(root_name)], local_scheduler=True, workers=workers, detailed_summary=True)
    report = report_graph([luigi_root(root_name)])
    report["luigi_status"] = result.status.name
    report["outputs"] = {node_name(task): canonical(load_outputs(task)) for task in walk([luigi_root(root_name)])}
    return report


def command_chain(depth: int) -> dict[str, Any]:
    """The unique id of ChainLink(n=depth), or the exceptions (with their causes) computing it raised."""
    from compat_pipeline.graph import ChainLink

    started = time.perf_counter()
    try:
        unique_id = ChainLink(n=depth).make_unique_id()
    except Exception as exc:
        return {"errors": exception_chain(exc), "recursion_limit": sys.getrecursionlimit()}
    return {
        "unique_id": unique_id,
        "seconds": time.perf_counter() - started,
        "recursion_limit": sys.getrecursionlimit(),
    }


def mistakes() -> dict[str, Any]:
    """Task constructions that must fail, by case name (each a zero-argument callable)."""
    from compat_pipeline import formats, graph, params

    return {
        "wrong element type": lambda: graph.Gather(tasks=(formats.MakeFrame(),)),
        "not a task": lambda: graph.Wrap(task="not a task"),
        "wrong expected type": lambda: formats.FrameAs(ext=".csv", source=params.IntParam()),
        "bad choice": lambda: params.ChoiceParams(mode="bogus"),
        "missing parameter": lambda: graph.ChainLink(),
    }


def command_errors() -> dict[str, Any]:
    """The exception types (MRO names) each mistake raises, and what a failing build raises and leaves."""
    from compat_pipeline.graph import Fails

    report: dict[str, Any] = {"mistakes": {}}
    for case, make in mistakes().items():
        try:
            make()
            report["mistakes"][case] = None
        except Exception as exc:
            report["mistakes"][case] = [klass.__name__ for klass in type(exc).__mro__]
    task = Fails()
    try:
        gokart.build(task)
        report["build"] = None
    except Exception as exc:
        raised = getattr(exc, "raised_exceptions", {})
        report["build"] = {
            "type": type(exc).__name__,
            "raised": {key: [type(e).__name__ for e in value] for key, value in raised.items()},
            "failed_id": task.make_unique_id(),
        }
    return report


def exception_chain(exc: BaseException | None) -> list[str]:
    """The type names of ``exc`` and of its causes / contexts, outermost first."""
    names = []
    while exc is not None and len(names) < 20:
        names.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return names


def main(argv: list[str]) -> None:
    """Dispatch COMMAND and write its JSON report to OUT."""
    from compat_pipeline.roots import AllTasks, all_roots

    command, out = argv[0], argv[1]
    if command == "build":
        report = command_build(all_roots())
    elif command == "build-all":
        report = command_build([AllTasks()])
    elif command == "ids":
        report = report_graph(all_roots())
    elif command == "luigi":
        report = command_luigi(int(argv[2]), argv[3] if len(argv) > 3 else "AllTasks")
    elif command == "errors":
        report = command_errors()
    elif command == "chain":
        report = command_chain(int(argv[2]))
    else:
        raise SystemExit(f"unknown command {command!r}; use build, build-all, ids, luigi or chain")
    Path(out).write_text(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    os.environ.setdefault("KART_COMPAT_IMPL", "kart")
    main(sys.argv[1:])
