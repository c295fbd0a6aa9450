"""CPU time of kart_core.content_digest on one-column frames of N rows, against pandas' own
hash_pandas_object (the row hashes the digest starts from) in the same process.

Usage: python bench/content_digest.py [rows]   (default 1,000,000; best of 3 runs per frame)
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from kart_core import content_digest


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _best(func: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = _cpu()
        func()
        times.append(_cpu() - start)
    return min(times)


def main(rows: int) -> None:
    frames = {
        "object str, 1,000 distinct": [f"v{i % 1000}" for i in range(rows)],
        "object str, all distinct": [f"v{i}" for i in range(rows)],
        "object str with 10% None": [None if i % 10 == 0 else f"v{i % 1000}" for i in range(rows)],
        "object int": list(range(rows)),
        "object int and str mixed": [i if i % 2 else str(i) for i in range(rows)],
    }
    print(f"{rows:,} rows, CPU seconds (user+sys), best of 3")
    print(f"{'column':30s} {'content_digest':>15s} {'hash_pandas_object':>19s} {'ratio':>6s}")
    columns = {name: pd.Series(values, dtype=object) for name, values in frames.items()}
    columns["float64"] = pd.Series(np.arange(rows, dtype=float))
    for name, column in columns.items():
        frame = pd.DataFrame({"x": column})
        kart = _best(lambda frame=frame: content_digest(frame))
        pandas = _best(lambda frame=frame: pd.util.hash_pandas_object(frame, index=True))
        print(f"{name:30s} {kart:15.3f} {pandas:19.3f} {kart / pandas:6.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
