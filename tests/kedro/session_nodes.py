"""Node and input of tests/kedro/test_kedro_sessions.py: one pipeline that several Kedro sessions run at once.

Each session's first load of its ``raw`` input (kart's digest for the key, planning the node) waits until every
session has made its own (``SessionInput`` counts the loads of this process), so all of them plan the node before
any runs it; ``double`` then waits until the session that runs it has loaded it for the node too and lets the
others reach their own ``run_one`` (they wait there for this process's turn of the node run, or find it
committed): so the sessions overlap on one node run, whatever the machine's load. In another process (``main``) it does not wait.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from kedro.io import AbstractDataset, DataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset

_loads = threading.Condition()
_count = {"loads": 0, "sessions": 0, "expected": 0}
RAN_IN: list[str] = []  # the name of the thread each run of ``double`` ran in, in order


def expect_sessions(sessions: int) -> None:
    """``double`` waits for the loads of ``sessions`` sessions (0: it does not wait)."""
    with _loads:
        _count["loads"], _count["sessions"], _count["expected"] = 0, 0, sessions
    RAN_IN.clear()


class SessionInput(AbstractDataset[Any, int]):
    """The raw input 21, counted each time it is loaded (kart's digest for the key, then the node's own load)."""

    _loaded = False

    def _load(self) -> int:
        with _loads:
            _count["loads"] += 1
            _count["sessions"] += not self._loaded
            self._loaded = True
            _loads.notify_all()
            # The first load (kart's digest, planning the node) waits for the other sessions' first loads.
            _loads.wait_for(lambda: _count["sessions"] >= _count["expected"], timeout=20)
        return 21

    def _save(self, data: int) -> None:
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        return {}


def double(value: int) -> int:
    """``2 * value``, after the other sessions planned the node (see the module docstring)."""
    RAN_IN.append(threading.current_thread().name)
    with _loads:
        expected = _count["expected"]
        if _count["loads"] < expected + 1:  # every session's digest load, and this run's load
            _loads.wait_for(lambda: _count["loads"] >= expected + 1, timeout=20)
            time.sleep(0.5)  # the other sessions go from their digest to run_one: microseconds
    return 2 * value


PIPELINE = Pipeline([node(double, "raw", "out", name="double")])


def catalog(out_path: str) -> DataCatalog:
    """A session's catalog: ``raw`` (21) and its own persistent ``out`` (a JSON file)."""
    return DataCatalog({"raw": SessionInput(), "out": JSONDataset(filepath=out_path)})


def main() -> None:
    """``python session_nodes.py WORKSPACE OUT_PATH``: one KartRunner session in this process."""
    from kart_kedro import KartRunner

    KartRunner(workspace_directory=sys.argv[1]).run(PIPELINE, catalog(sys.argv[2]))
    with open(sys.argv[2]) as stream:
        print(json.load(stream))


if __name__ == "__main__":
    main()
