"""What ``kart_core.hold_location_locks`` costs per lock, for a location never locked before and for one locked already,
and how many files its lock folder gains: the lock KartRunner takes per persistent output of a node.

Per round, in a fresh data folder under ``--dir``: ``--locations`` new locations each locked and released once
(``new``), then the same ones again (``known``); CPU time (user + system) of this process per lock, median of the
rounds. The locks go to ``$KART_LOCK_DIR`` as kart's do (else ``/tmp``): on ext4 without a journal, creating a file
skips every inode freed in the last minutes, so a lock file made per new location costs what the machine deleted
lately; ``--lock-dir`` puts them in a fresh folder instead (removed at the end).

    .venv/bin/python bench/location_locks.py --dir /tmp
    .venv/bin/python bench/location_locks.py --dir /tmp --lock-dir /tmp
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def main() -> None:
    """Parse the arguments, measure, print one line per kind of location and the folder's growth."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the data folders are made")
    parser.add_argument("--lock-dir", help="make a fresh KART_LOCK_DIR under this folder (default: kart's own)")
    parser.add_argument("--locations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    made = None
    if args.lock_dir:
        made = tempfile.mkdtemp(dir=args.lock_dir, prefix="bench-lock-dir-")
        os.environ["KART_LOCK_DIR"] = made
    import kart_core
    from kart_core.lock import location_lock_directory

    folder = location_lock_directory()
    before = len(os.listdir(folder)) if os.path.isdir(folder) else 0
    new: list[float] = []
    known: list[float] = []
    data: list[str] = []
    try:
        for _ in range(args.rounds):
            data.append(tempfile.mkdtemp(dir=args.dir, prefix="bench-locations-"))
            places = [os.path.join(data[-1], f"out{index}.json") for index in range(args.locations)]
            for times in (new, known):
                started = time.process_time()
                for place in places:
                    with kart_core.hold_location_locks([place]):
                        pass
                times.append((time.process_time() - started) / len(places) * 1e6)
        after = len(os.listdir(folder))
    finally:
        for path in data:
            shutil.rmtree(path, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    print(f"kart_core from {os.path.dirname(kart_core.__file__)}; lock folder {folder}; load {os.getloadavg()[0]:.1f}")
    print(f"new location:   {statistics.median(new):8.1f} us CPU per lock (median of {args.rounds} rounds)")
    print(f"known location: {statistics.median(known):8.1f} us CPU per lock")
    print(f"lock folder: {before} -> {after} files after {args.rounds * args.locations} new locations")


if __name__ == "__main__":
    main()
