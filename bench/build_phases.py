"""Where a first build's memory goes: the resident size of one build of a graph at each phase, in one process.

Phases: imported, the walk (when the first task starts), every quarter of the tasks run, just before the root runs,
after the root's input floor was read (``Transaction.note_required``: one entry per requirement) and once a manifest
of over 1,000 inputs was encoded (the root's commit). Each line gives the resident size now and at its peak (MiB),
glibc's heap (arena, mmapped, in use, free: ``mallinfo2``) and the number of Python memory blocks allocated: a phase
that frees memory lowers the blocks but seldom the resident size (pymalloc keeps an arena while one block in it lives).

    .venv/bin/python bench/build_phases.py --shape fan-in --size 100000 --dir /dev/shm

It wraps kart internals (``executor.run_one_reporting``, ``Transaction.note_required``, ``Transaction._encoded``):
a tool to find what to cut, not a benchmark with a peer (``bench/graph_overhead.py`` has the peak with gokart's).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mallinfo() -> _MallInfo2 | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc.mallinfo2()  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc 2.33+
        return None


def phase(label: str) -> None:
    """Print one line: resident MiB now and at peak, glibc's heap, Python's allocated blocks."""
    with open("/proc/self/statm") as statm:
        now = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info, mib = _mallinfo(), 2**20
    heap = (
        f"heap {info.arena / mib:5.0f} mmap {info.hblkhd / mib:4.0f} used {info.uordblks / mib:5.0f} "
        f"free {info.fordblks / mib:4.0f}"
        if info is not None
        else "heap -"
    )
    print(f"{label:26s} rss {now:6.0f} peak {peak:6.0f} | {heap} | blocks {sys.getallocatedblocks()}", flush=True)


def _instrument(size: int) -> None:
    """Wrap the build's steps to call ``phase`` at each phase."""
    from kart_core import executor, transaction

    count = [0]
    run = executor.run_one_reporting

    def reporting(task: Any, *args: Any, **kwargs: Any) -> Any:
        if count[0] == 0:
            phase("walked")
        count[0] += 1
        if size >= 4 and count[0] % (size // 4) == 0:
            phase(f"ran {count[0]:,}")
        if count[0] == size + 1:
            phase("root starts")
        return run(task, *args, **kwargs)

    executor.run_one_reporting = reporting  # type: ignore[assignment]
    note_required = transaction.Transaction.note_required

    def noted(self: Any) -> None:
        note_required(self)
        if self.required and len(self.required) > 1000:
            phase(f"floor of {len(self.required):,}")

    transaction.Transaction.note_required = noted  # type: ignore[method-assign]
    encoded = transaction.Transaction._encoded

    def encoding(self: Any, manifest: Any, name: str) -> Any:
        out = encoded(self, manifest, name)
        if len(manifest.inputs) > 1000:
            phase(f"encoded {len(out[0]) / 2**20:.0f} MB")
        return out

    transaction.Transaction._encoded = encoding  # type: ignore[method-assign]


def main() -> None:
    """Build one graph in a fresh workspace under ``--dir`` and print the phases."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="fan-in", help="a shape of bench/graph_tasks.py")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dir", default=None, help="where the workspace goes (e.g. /dev/shm); default the temp dir")
    args = parser.parse_args()
    os.environ.setdefault("CI", "true")  # no live progress display
    sys.path.insert(0, HERE)
    sys.setrecursionlimit(max(1000, 4 * args.size + 100))
    with tempfile.TemporaryDirectory(prefix="bench-phases-", dir=args.dir) as workspace:
        os.chdir(workspace)
        import graph_tasks

        import kart_core

        phase("imported")
        _instrument(args.size)
        kart_core.build(graph_tasks.make(args.shape, args.size), workers=1)
        phase("built")
        os.chdir(HERE)


if __name__ == "__main__":
    main()
