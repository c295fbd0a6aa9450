"""gokart's [GCSConfig] settings honoured against the GCS emulator (kart_core.gcs_config -> gcsfs).

``endpoint_url`` alone leads gcsfs to the emulator (no ``STORAGE_EMULATOR_HOST``), and the
service-account credential in the variable named by ``gcs_credential_name`` (a file path or the
JSON itself) is the one gcsfs signs in with: its ``token_uri`` points at a token server on
127.0.0.1 run by the test, which sees the signed JWT of that account before any object is written.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import pytest
from services import Service, make_gcs_bucket

import kart_core

pytestmark = pytest.mark.slow  # the GCS emulator process (session fixture)
# kart_core.gcs_config ([GCSConfig] -> gcsfs options) is being added beside this test; until then there is nothing to test.
pytest.importorskip("kart_core.gcs_config", reason="kart_core.gcs_config ([GCSConfig] settings) is not in this tree")

ACCOUNT = "kart-test@kart-test.iam.gserviceaccount.com"


class CfgLoad(kart_core.TaskOnKart[list]):
    n = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.dump(list(range(self.n)))


class _TokenServer(ThreadingHTTPServer):
    """OAuth's token endpoint on 127.0.0.1: records each JWT-bearer grant and answers with a token."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.grants: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/token"


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        payload = form["assertion"][0].split(".")[1]
        self.server.grants.append(
            {"grant_type": form["grant_type"][0], **json.loads(base64.urlsafe_b64decode(payload + "=" * 4))}
        )
        body = json.dumps({"access_token": "kart-test-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def token_server() -> Iterator[_TokenServer]:
    server = _TokenServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _service_account(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "kart-test",
        "private_key_id": "kart-test-key",
        "private_key": pem,
        "client_email": ACCOUNT,
        "client_id": "1",
        "token_uri": token_uri,
    }


@contextlib.contextmanager
def _gcs_config(**options: str) -> Iterator[None]:
    config = luigi.configuration.get_config()
    if not config.has_section("GCSConfig"):
        config.add_section("GCSConfig")
    for name, value in options.items():
        config.set("GCSConfig", name, value)
    yield


@pytest.mark.parametrize("form", ["file", "json"])
def test_gcs_config_credential_and_endpoint_reach_the_emulator(
    gcs_env: Service, token_server: _TokenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str
) -> None:
    bucket = make_gcs_bucket(gcs_env)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")  # only [GCSConfig] endpoint_url says where the server is
    info = _service_account(token_server.url)
    if form == "file":
        (tmp_path / "account.json").write_text(json.dumps(info))
        monkeypatch.setenv("KART_TEST_GCS_CREDENTIAL", str(tmp_path / "account.json"))
    else:
        monkeypatch.setenv("KART_TEST_GCS_CREDENTIAL", json.dumps(info))
    with _gcs_config(gcs_credential_name="KART_TEST_GCS_CREDENTIAL", endpoint_url=gcs_env.url):
        workspace = f"gs://{bucket}/ws"
        assert kart_core.build(CfgLoad(workspace_directory=workspace), reset_register=False) == [0, 1, 2]
        assert kart_core.run_one(CfgLoad(workspace_directory=workspace)) == kart_core.RunStatus.CACHED
    assert token_server.grants, "gcsfs never asked the credential's token_uri for a token"
    grant = token_server.grants[0]
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert grant["iss"] == ACCOUNT  # signed with the configured account's key
