"""What kart's machine locks cost per lock, for a key never locked before and for one locked already, and how many
files their folders gain: ``kart_core.hold_location_locks`` (KartRunner's, per persistent output of a node) and
``kart_core.lock.hold_lock`` (a task's run lock with ``should_lock_run``; the commit locks are the same code).

Per round, in a fresh data folder under ``--dir``: ``--locations`` new locations each locked and released once
(``new``), then the same ones again (``known``), for each kind of lock; CPU time (user + system) of this process per lock, median of the
rounds. The locks go to ``$KART_LOCK_DIR`` as kart's do (else ``/tmp``): on ext4 without a journal, creating a file
skips every inode freed in the last minutes, so a lock file made per new location costs what the machine deleted
lately; ``--lock-dir`` puts them in a fresh folder instead (removed at the end). Each kind of lock has its
own folder (``kart-location-locks``, ``kart-locks``).

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
from typing import Any


def main() -> None:
    """Parse the arguments, measure, print one line per kind of lock with its folder's growth."""
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
    from kart_core.lock import LockParams, hold_lock, location_lock_directory, machine_lock_directory

    def location(place: str) -> Any:
        return kart_core.hold_location_locks([place])

    def run_lock(place: str) -> Any:
        return hold_lock(LockParams(key=place))

    kinds = {"location lock": (location, location_lock_directory()), "run lock": (run_lock, machine_lock_directory())}
    data: list[str] = []
    try:
        for name, (lock, folder) in kinds.items():
            before = len(os.listdir(folder)) if os.path.isdir(folder) else 0
            new: list[float] = []
            known: list[float] = []
            for _ in range(args.rounds):
                data.append(tempfile.mkdtemp(dir=args.dir, prefix="bench-locations-"))
                places = [os.path.join(data[-1], f"out{index}.json") for index in range(args.locations)]
                for times in (new, known):
                    started = time.process_time()
                    for place in places:
                        with lock(place):
                            pass
                    times.append((time.process_time() - started) / len(places) * 1e6)
            after = len(os.listdir(folder))
            print(
                f"{name}: new key {statistics.median(new):7.1f} us CPU, known key {statistics.median(known):7.1f} us "
                f"(median of {args.rounds} rounds); {folder}: {before} -> {after} files"
            )
    finally:
        for path in data:
            shutil.rmtree(path, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    print(f"kart_core from {os.path.dirname(kart_core.__file__)}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
