"""``.pkl`` dump cost with kart's ``__main__`` guard on, against the plain pickler and dill (gokart's).

    .venv/bin/python bench/pickle_main.py [--repeat 7]

This script defines functions in ``__main__``, so kart's PickleFileProcessor runs its guarding
pickler (a ``reducer_override`` hook that looks for ``__main__`` classes and functions) on every
dump here: the worst case for ordinary objects. Three payloads: a 1M-row DataFrame, a dict of 200k
floats, and a list of 100k instances of a class from an imported module. Each is dumped to an
in-memory file by ``pickle.dump`` (protocol 5), kart's processor and ``dill.dump`` (what gokart
1.12.2 writes), interleaved round by round; the best round of each is reported, with the ratios.
"""

from __future__ import annotations

import argparse
import fractions
import io
import pickle
import time
from collections.abc import Callable
from typing import Any


def payloads() -> dict[str, Any]:
    """The objects to dump; none of them holds anything defined in ``__main__``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.random(1_000_000) for i in range(5)})
    floats = {f"k{i}": float(i) for i in range(200_000)}
    objects = [fractions.Fraction(i, 7) for i in range(100_000)]
    return {"frame 1M x 5": frame, "dict 200k floats": floats, "100k Fraction objects": objects}


def dumpers() -> dict[str, Callable[[Any, io.BytesIO], None]]:
    """The implementations, each writing one object to a file."""
    import dill

    from kart_core.file_processor.pickle_format import PickleFileProcessor

    processor = PickleFileProcessor()
    return {
        "pickle": lambda obj, file: pickle.dump(obj, file, protocol=5),
        "kart": processor.dump,
        "dill": lambda obj, file: dill.dump(obj, file, protocol=4),
    }


def best_times(
    obj: Any, implementations: dict[str, Callable[[Any, io.BytesIO], None]], repeat: int
) -> dict[str, float]:
    """The best of ``repeat`` interleaved rounds, in seconds, per implementation."""
    best = {name: float("inf") for name in implementations}
    for _ in range(repeat):
        for name, dump in implementations.items():
            file = io.BytesIO()
            started = time.perf_counter()
            dump(obj, file)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    """Print one row per payload: milliseconds per implementation and kart's ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    implementations = dumpers()
    print("| payload | pickle ms | kart ms | dill (gokart) ms | kart / pickle | kart / dill |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, obj in payloads().items():
        best = best_times(obj, implementations, args.repeat)
        print(
            f"| {name} | {best['pickle'] * 1e3:.1f} | {best['kart'] * 1e3:.1f} | {best['dill'] * 1e3:.1f} "
            f"| {best['kart'] / best['pickle']:.2f} | {best['kart'] / best['dill']:.2f} |"
        )


if __name__ == "__main__":
    main()
