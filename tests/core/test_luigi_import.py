"""kart_core.luigi_import: luigi loads without requests; luigi's RPC client imports it on first use."""

from __future__ import annotations

from pathlib import Path

from test_lazy import python


def test_a_task_class_is_defined_without_importing_requests(tmp_path: Path) -> None:
    out = python(
        "import sys, kart_core\n"
        "class T(kart_core.TaskOnKart): pass\n"
        "import luigi.rpc\n"
        "print('requests' in sys.modules, type(luigi.rpc.requests).__name__, luigi.rpc.HAS_REQUESTS)\n"
        "print(luigi.rpc.HAS_UNIX_SOCKET, 'kart_core.luigi_import' in repr(sys.meta_path))\n",
        tmp_path,
    )
    # luigi's flags are what luigi/rpc.py sets with requests installed (requests_unixsocket is not),
    # and the one-shot import hook is gone.
    assert out.split() == ["False", "_OnFirstUse", "True", "False", "False"]


def test_luigis_rpc_client_imports_requests_when_it_is_made(tmp_path: Path) -> None:
    out = python(
        "import sys, kart_core\n"
        "kart_core.TaskOnKart\n"
        "import luigi.rpc\n"
        "fetcher = luigi.rpc.RemoteScheduler('http://127.0.0.1:9')._fetcher\n"
        "import requests, requests.adapters\n"
        "print(type(fetcher).__name__, type(fetcher.session) is requests.Session, sys.modules['requests'] is requests)\n"
        "print(requests.adapters.HTTPAdapter.__module__, luigi.rpc.RPCError.__module__)\n",
        tmp_path,
    )
    assert out.split() == ["RequestsFetcher", "True", "True", "requests.adapters", "luigi.rpc"]


def test_nothing_changes_when_luigi_or_requests_came_first(tmp_path: Path) -> None:
    out = python(
        "import sys, luigi, kart_core\n"
        "kart_core.TaskOnKart\n"
        "print(type(luigi.rpc.requests).__name__, 'requests' in sys.modules)\n",
        tmp_path,
    )
    assert out.split() == ["module", "True"]
