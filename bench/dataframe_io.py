"""DataFrame I/O: kart against gokart 1.12.2 and raw pandas/pyarrow/pickle, side by side in one run.

    .venv/bin/python bench/dataframe_io.py [--rows 1000000] [--repeat 9] [--formats pkl,parquet,feather,csv]

All three run in one process on the same frame, interleaved round by round so that noise from
other work on the machine hits them alike; the best round of each is reported. Peak memory is
the rise of the resident set during one dump or load (VmHWM, reset before each operation).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

IMPLEMENTATIONS = ("raw", "kart", "gokart")
DEFAULT_FORMATS = ("pkl", "parquet", "feather", "csv")


def make_frame(rows: int) -> Any:
    """rows x 10 columns: 4 ints, 3 floats, 2 strings, 1 datetime; the same for every implementation."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    words = np.array([f"word-{i:05d}" for i in range(20_000)], dtype=object)
    columns: dict[str, Any] = {f"int_{i}": rng.integers(0, 1_000_000, rows) for i in range(4)}
    columns.update({f"float_{i}": rng.random(rows) for i in range(3)})
    columns["str_0"] = words[rng.integers(0, len(words), rows)]
    columns["str_1"] = words[rng.integers(0, len(words), rows)]
    columns["time"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**9, rows), unit="s")
    return pd.DataFrame(columns)


# --- the three ways to write and read ------------------------------------------------------------


def raw_io(fmt: str) -> tuple[Callable[[Any, str], None], Callable[[str], Any]]:
    """Plain pandas / pyarrow / pickle with their own defaults."""
    import pickle

    import pandas as pd

    def pickle_dump(df: Any, path: str) -> None:
        with open(path, "wb") as file:
            pickle.dump(df, file, protocol=pickle.HIGHEST_PROTOCOL)

    def pickle_load(path: str) -> Any:
        with open(path, "rb") as file:
            return pickle.load(file)

    return {
        "pkl": (pickle_dump, pickle_load),
        "parquet": (lambda df, p: df.to_parquet(p), pd.read_parquet),
        "feather": (lambda df, p: df.to_feather(p), pd.read_feather),
        "csv": (lambda df, p: df.to_csv(p, index=False), pd.read_csv),
    }[fmt]


def kart_io(fmt: str) -> tuple[Callable[[Any, str], None], Callable[[str], Any]]:
    """kart's targets: format by extension, atomic write."""
    from kart_core.target import make_target

    return (lambda df, p: make_target(p).dump(df), lambda p: make_target(p).load())


def gokart_io(fmt: str) -> tuple[Callable[[Any, str], None], Callable[[str], Any]]:
    """gokart 1.12.2's targets."""
    from gokart.target import make_target

    return (lambda df, p: make_target(p).dump(df), lambda p: make_target(p).load())


# --- measuring --------------------------------------------------------------------------------------

SLOW_ROUNDS = 2  # rounds of an implementation whose first round took longer than SLOW_SECONDS
SLOW_SECONDS = 12.0
FACTORIES = {"raw": raw_io, "kart": kart_io, "gokart": gokart_io}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM (the peak resident set) on Linux >= 4.0.
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


def _measure(operation: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    _reset_peak()
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    result = operation()
    seconds = time.perf_counter() - started
    peak_mib = max(0, _status_kib("VmHWM") - before) / 1024
    return seconds, peak_mib, result


def _round(implementation: str, fmt: str, frame: Any, directory: str) -> tuple[list[float], list[float], float]:
    """One dump and one load: [seconds, peak MiB] of each, and the file size in MiB."""
    dump, load = FACTORIES[implementation](fmt)
    path = os.path.join(directory, f"{implementation}_frame.{fmt}")
    dump_seconds, dump_peak, _ = _measure(lambda: dump(frame, path))
    load_seconds, load_peak, loaded = _measure(lambda: load(path))
    if len(loaded) != len(frame):
        raise AssertionError(f"{implementation} {fmt}: {len(loaded)} of {len(frame)} rows loaded")
    del loaded
    size = os.path.getsize(path) / 2**20
    os.remove(path)
    return [dump_seconds, dump_peak], [load_seconds, load_peak], size


def run(rows: int, repeat: int, formats: list[str], directory: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Measure every implementation on every format, interleaved so machine noise hits all alike."""
    frame = make_frame(rows)
    warmup = make_frame(1_000)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for fmt in formats:
        for implementation in IMPLEMENTATIONS:
            _round(implementation, fmt, warmup, directory)  # first-use imports are not measured
            results[(implementation, fmt)] = {"dump": [], "load": [], "size_mib": 0.0}
        for number in range(repeat):
            # Each side takes every position in turn: what ran just before changes allocator and cache state.
            shift = number % len(IMPLEMENTATIONS)
            for implementation in IMPLEMENTATIONS[shift:] + IMPLEMENTATIONS[:shift]:
                record = results[(implementation, fmt)]
                if number >= SLOW_ROUNDS and record["dump"][0][0] + record["load"][0][0] > SLOW_SECONDS:
                    continue  # e.g. gokart's gzip parquet: more rounds would only make the run long
                dumped, loaded, size = _round(implementation, fmt, frame, directory)
                record["dump"].append(dumped)
                record["load"].append(loaded)
                record["size_mib"] = size
                print(
                    f"{fmt} {implementation} round {number + 1}: {dumped[0]:.3f} s / {loaded[0]:.3f} s", file=sys.stderr
                )
    return results


# --- the report ---------------------------------------------------------------------------------------


def _best(samples: list[list[float]]) -> tuple[float, float]:
    """Fastest time and highest peak over the repeats."""
    return min(s[0] for s in samples), max(s[1] for s in samples)


def render(results: dict[tuple[str, str], dict[str, Any]], formats: list[str]) -> str:
    """A markdown table: seconds, peak MiB and file size per implementation, and the ratios."""
    lines = [
        "| format | op | raw s | kart s | gokart s | kart/raw | kart/gokart "
        "| peak MiB raw / kart / gokart | file MiB raw / kart / gokart |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt in formats:
        for op in ("dump", "load"):
            (raw_s, raw_m), (kart_s, kart_m), (gk_s, gk_m) = (_best(results[(i, fmt)][op]) for i in IMPLEMENTATIONS)
            sizes = " / ".join(f"{results[(i, fmt)]['size_mib']:.0f}" for i in IMPLEMENTATIONS)
            lines.append(
                f"| {fmt} | {op} | {raw_s:.3f} | {kart_s:.3f} | {gk_s:.3f} | {kart_s / raw_s:.2f}x | "
                f"{kart_s / gk_s:.2f}x | {raw_m:.0f} / {kart_m:.0f} / {gk_m:.0f} | {sizes} |"
            )
    return "\n".join(lines)


def _machine() -> str:
    import pandas as pd
    import pyarrow

    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, pyarrow {pyarrow.__version__}"
    )


def main() -> None:
    """Parse arguments; run as the driver or as one worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--formats", type=lambda s: s.split(","), default=list(DEFAULT_FORMATS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kart-bench-") as directory:
        results = run(args.rows, args.repeat, args.formats, directory)
    print(
        f"DataFrame I/O, {args.rows:,} rows x 10 columns, best of {args.repeat} rounds "
        f"(2 for a side slower than {SLOW_SECONDS:.0f} s); {_machine()}"
    )
    print(render(results, args.formats))


if __name__ == "__main__":
    main()
