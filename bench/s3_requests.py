"""Requests per task on S3 or GCS: kart_core.build() of a chain and of a fan-in, and KartRunner on bench/kedro_runner.py's pipeline.

Each phase (first run, then fully cached run) runs in a fresh workspace prefix; every request kart's
s3fs client sends is counted by a botocore ``before-send`` hook (retries included) and sorted by
kind: HEAD, GET of an object, LIST, PUT (CopyObject is a PUT), DELETE (and bulk-delete POSTs).
Prints per task: requests, wall ms and CPU ms (user + system of this process).

Needs an S3-compatible server and a bucket, e.g. moto on 127.0.0.1:

    moto_server -H 127.0.0.1 -p 5123 &   # then create the bucket "bench"
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x KART_S3_ENDPOINT_URL=http://127.0.0.1:5123 \\
        .venv/bin/python bench/s3_requests.py --tasks 50 --root s3://bench/requests

With a ``gs://`` root the requests of kart's gcsfs client are counted instead (against a GCS emulator:
``STORAGE_EMULATOR_HOST=http://127.0.0.1:<port>``; ``--gcs-emulator`` starts gcp-storage-emulator
on a free port with a fresh bucket, as the tests do): "GET meta" is an object's metadata (existence),
"MOVE" GCS's ``objects.move``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import luigi

import kart_core
from kart_core.storage import storage_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Link(kart_core.TaskOnKart[Any]):
    """Link n of a chain: requires link n-1 and adds one."""

    n = luigi.IntParameter()

    def requires(self) -> Any:  # noqa: D102
        return Link(n=self.n - 1, workspace_directory=self.workspace_directory) if self.n > 0 else []

    def run(self) -> None:  # noqa: D102
        self.dump((self.load() if self.n > 0 else 0) + 1)


class Leaf(kart_core.TaskOnKart[Any]):
    """One of many independent leaves."""

    i = luigi.IntParameter()

    def run(self) -> None:  # noqa: D102
        self.dump(self.i)


class FanIn(kart_core.TaskOnKart[Any]):
    """Requires ``width`` leaves and sums them."""

    width = luigi.IntParameter()

    def requires(self) -> Any:  # noqa: D102
        return [Leaf(i=i, workspace_directory=self.workspace_directory) for i in range(self.width)]

    def run(self) -> None:  # noqa: D102
        self.dump(sum(self.load()))


class Counter:
    """Requests sent by one s3fs client, by kind."""

    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()

    def record(self, request: Any, **_: Any) -> None:
        query = urllib.parse.urlsplit(request.url).query
        kind = "LIST" if "list-type" in query else request.method
        self.kinds["GET object" if kind == "GET" else kind] += 1

    def wrap_gcs(self, fs: Any) -> None:
        """Count the requests of the gcsfs file system ``fs`` (its ``_request``, retries included)."""
        send = fs._request

        async def counted(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if "/upload/" in path:
                kind = "PUT"
            elif "/moveTo/" in path:
                kind = "MOVE"
            elif "/download/" in path or "alt=media" in path:
                kind = "GET object"
            elif method == "GET" and path.endswith("/o"):
                kind = "LIST"
            elif method == "GET":
                kind = "GET meta"
            else:
                kind = method
            self.kinds[kind] += 1
            return await send(method, path, *args, **kwargs)

        fs._request = counted

    def take(self) -> collections.Counter[str]:
        taken, self.kinds = self.kinds, collections.Counter()
        return taken


def _cpu() -> float:
    return time.process_time()


def _measure(counter: Counter, work: Any, tasks: int) -> str:
    counter.take()
    cpu, wall = _cpu(), time.perf_counter()
    work()
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    kinds = counter.take()
    detail = ", ".join(f"{name} {count / tasks:.2f}" for name, count in sorted(kinds.items()))
    total = sum(kinds.values()) / tasks
    return f"{total:6.2f} requests | {wall / tasks * 1e3:7.1f} ms wall | {cpu / tasks * 1e3:6.1f} ms CPU | {detail}"


def main() -> None:
    """Parse the options, run each scenario first and cached, print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument(
        "--root", default="s3://bench/requests", help="URL under which each workspace is a fresh prefix"
    )
    parser.add_argument("--skip-kedro", action="store_true")
    parser.add_argument(
        "--gcs-emulator", action="store_true", help="start gcp-storage-emulator; --root is then ignored"
    )
    args = parser.parse_args()
    if args.gcs_emulator:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.services import gcs_emulator, make_gcs_bucket

        with tempfile.TemporaryDirectory(prefix="bench-gcs-") as logs, gcs_emulator(logs) as server:
            os.environ["STORAGE_EMULATOR_HOST"] = server.url
            args.root = f"gs://{make_gcs_bucket(server)}/requests"
            _run(args)
        return
    _run(args)


def _run(args: argparse.Namespace) -> None:
    storage = storage_for(args.root)
    # The same s3fs / gcsfs instance kart uses (FsspecStorage.file_system; its private _fs on older trees).
    fs = getattr(storage, "file_system", None) or storage._fs  # type: ignore[attr-defined]
    counter = Counter()
    if args.root.startswith(("gs://", "gcs://")):
        counter.wrap_gcs(fs)
    else:
        fs.s3.meta.events.register("before-send.s3", counter.record)
    stamp = f"{int(time.time())}-{os.getpid()}"
    n = args.tasks
    scenarios: list[tuple[str, Any]] = [
        ("build() chain", lambda ws: Link(n=n - 1, workspace_directory=ws)),
        ("build() fan-in", lambda ws: FanIn(width=n - 1, workspace_directory=ws)),
    ]
    print(f"| scenario ({n} tasks) | phase | requests/task | wall ms/task | CPU ms/task | by kind |")
    print("|---|---|---:|---:|---:|---|")
    for label, make in scenarios:
        workspace = f"{args.root}/{stamp}/{label.split()[1]}"
        for phase in ("first", "cached"):

            def work(make: Any = make, workspace: str = workspace) -> None:
                kart_core.build(make(workspace), reset_register=False, return_value=False, log_level=logging.WARNING)

            row = _measure(counter, work, n)
            print(f"| {label} | {phase} | " + " | ".join(part.strip() for part in row.split("|")) + " |")
    if not args.skip_kedro:
        from kart_kedro import KartRunner
        from kedro_runner import make_catalog, make_pipeline

        for name in ("kedro", "kart_kedro"):  # after their import: Kedro configures its loggers then
            logging.getLogger(name).setLevel(logging.WARNING)
        pipeline = make_pipeline(n, 4)
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as folder:
            data = Path(folder)
            workspace = f"{args.root}/{stamp}/kedro"
            for phase in ("first", "cached"):

                def run() -> None:
                    KartRunner(workspace_directory=workspace).run(pipeline, make_catalog(n, data))

                row = _measure(counter, run, n)
                print(
                    f"| KartRunner (width 4) | {phase} | " + " | ".join(part.strip() for part in row.split("|")) + " |"
                )


if __name__ == "__main__":
    main()
