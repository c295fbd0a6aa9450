"""kart_core.s3_config, gcs_config and object_storage: gokart's settings honoured by kart's fsspec storage.

S3 runs against the real moto server (tests/services.py); GCS settings are checked through the
gcsfs file system kart creates, without network. gokart 1.12.2's ImportErrors are compared in
separate processes.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import pytest
from gokart_twin import run_both
from services import S3_KEY_ID, S3_SECRET, Service

import kart_core
from kart_core.errors import StorageConfigError, UnsupportedFeatureError
from kart_core.gcs_config import GCSConfig, gcsfs_options
from kart_core.object_storage import ObjectStorage
from kart_core.s3_config import S3Config, s3fs_options
from kart_core.storage import storage_for
from kart_core.storage.remote import storage_options


def _set(section: str, **values: str) -> None:
    config = luigi.configuration.get_config()
    if not config.has_section(section):
        config.add_section(section)
    for key, value in values.items():
        config.set(section, key, value)


def _team_credentials(monkeypatch: pytest.MonkeyPatch, server: Service) -> None:
    """Keys only in TEAM_* variables, named by [S3Config]; the endpoint in [S3Config] too."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("KART_S3_ENDPOINT_URL")
    monkeypatch.setenv("TEAM_KEY", S3_KEY_ID)
    monkeypatch.setenv("TEAM_SECRET", S3_SECRET)
    _set(S3Config.__name__, aws_access_key_id_name="TEAM_KEY", aws_secret_access_key_name="TEAM_SECRET")
    _set(S3Config.__name__, endpoint_url=server.url)


class _Squares(kart_core.TaskOnKart):
    n = luigi.IntParameter()

    def output(self) -> Any:
        return self.make_target("squares.csv")

    def run(self) -> None:
        import pandas as pd

        self.dump(pd.DataFrame({"x": range(self.n), "y": [i * i for i in range(self.n)]}))


def test_s3config_settings_reach_a_build_on_s3(
    s3_bucket: str, s3_env: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _team_credentials(monkeypatch, s3_env)
    assert s3fs_options() == {
        "use_listings_cache": False,
        "key": S3_KEY_ID,
        "secret": S3_SECRET,
        "endpoint_url": s3_env.url,
    }
    task = _Squares(n=4, workspace_directory=f"s3://{bucket_ws(s3_bucket)}")
    frame = kart_core.build(task)
    assert list(frame["y"]) == [0, 1, 4, 9]
    path = task.output().path()
    assert path == f"s3://{s3_bucket}/ws/squares_{task.make_unique_id()}.csv"
    assert ObjectStorage.exists(path)
    stamp = ObjectStorage.get_timestamp(path)
    assert stamp.tzinfo == datetime.timezone.utc
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 600


def bucket_ws(bucket: str) -> str:
    return f"{bucket}/ws"


def test_s3config_client_and_target_are_luigis(
    s3_bucket: str, s3_env: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import luigi.contrib.s3
    import luigi.format

    _team_credentials(monkeypatch, s3_env)
    path = f"s3://{s3_bucket}/raw/hello.txt"
    with storage_for(path).atomic_write(path) as file:
        file.write(b"hello from kart")
    client = S3Config().get_s3_client()
    assert isinstance(client, luigi.contrib.s3.S3Client)
    assert client.exists(path)
    target = ObjectStorage.get_object_storage_target(path, luigi.format.Nop)
    assert isinstance(target, luigi.contrib.s3.S3Target)
    with target.open("r") as file:
        assert file.read() == b"hello from kart"
        assert ObjectStorage.is_buffered_reader(file) is False
    assert not ObjectStorage.exists(f"s3://{s3_bucket}/raw/missing.txt")
    with pytest.raises(FileNotFoundError):
        ObjectStorage.get_timestamp(f"s3://{s3_bucket}/raw/missing.txt")


def test_object_storage_refuses_other_paths() -> None:
    assert ObjectStorage.if_object_storage_path("gs://b/k") and not ObjectStorage.if_object_storage_path("/tmp/k")
    with pytest.raises(RuntimeError, match=r"'/tmp/k' is not an object storage path"):
        ObjectStorage.exists("/tmp/k")
    with pytest.raises(UnsupportedFeatureError, match=r"make_model_target"):
        ObjectStorage.get_zip_client("s3://b/m.zip", "/tmp")


def _service_account() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "kart-test",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "kart@kart-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_gcsconfig_credential_variable_maps_to_gcsfs_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GCS_CREDENTIAL", raising=False)
    assert gcsfs_options() == {}
    info = _service_account()
    monkeypatch.setenv("GCS_CREDENTIAL", json.dumps(info))
    assert gcsfs_options() == {"token": info}
    file = tmp_path / "sa.json"
    file.write_text(json.dumps(info))
    _set(GCSConfig.__name__, gcs_credential_name="TEAM_GCS", endpoint_url="http://127.0.0.1:9")
    monkeypatch.setenv("TEAM_GCS", str(file))
    assert gcsfs_options() == {"token": str(file), "endpoint_url": "http://127.0.0.1:9"}
    assert storage_options("gs") == gcsfs_options()
    monkeypatch.setenv("TEAM_GCS", "{not json")
    with pytest.raises(StorageConfigError, match=r"\$TEAM_GCS \(\[GCSConfig\] gcs_credential_name\) holds neither"):
        gcsfs_options()


def test_gcs_storage_is_opened_with_those_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No request is made: gcsfs builds its credentials from the token when the file system is created."""
    file = tmp_path / "sa.json"
    file.write_text(json.dumps(_service_account()))
    monkeypatch.setenv("GCS_CREDENTIAL", str(file))
    _set(GCSConfig.__name__, endpoint_url="http://127.0.0.1:9")
    fs = storage_for("gs://bucket/ws/x.pkl")._fs  # type: ignore[attr-defined]
    assert fs.credentials.credentials.service_account_email == "kart@kart-test.iam.gserviceaccount.com"
    assert fs._endpoint == "http://127.0.0.1:9"


_MISSING_LIBRARIES = """
import json, sys
sys.modules["boto3"] = None      # as if boto3 were not installed
sys.modules["s3fs"] = None
import gokart
from gokart.s3_config import S3Config
from gokart.gcs_config import GCSConfig
from gokart.object_storage import ObjectStorage

def error_of(call):
    try:
        call()
    except Exception as exc:
        return [isinstance(exc, ImportError), str(exc).split(":")[0]]
    return None

class Task(gokart.TaskOnKart):
    workspace_directory = "s3://bucket/ws"
    def run(self):
        self.dump(1)

print(json.dumps({
    "s3_client": error_of(lambda: S3Config().get_s3_client()),
    "gcs_client": error_of(lambda: GCSConfig().get_gcs_client()),
    "gcs_target": error_of(lambda: ObjectStorage.get_object_storage_target("gs://b/k", None)),
    "task_output": error_of(lambda: Task().output().exists()),
}))
"""


@pytest.mark.slow
def test_missing_libraries_raise_import_errors_as_gokarts(tmp_path: Path) -> None:
    results = run_both(_MISSING_LIBRARIES, tmp_path)
    kart, gokart = results["kart"], results["gokart"]
    for key in ("s3_client", "gcs_client", "gcs_target"):
        assert kart[key] == gokart[key] == [True, kart[key][1]], key
    assert kart["s3_client"][1] == "S3 support requires additional dependencies. Install them with"
    assert kart["gcs_client"][1] == "GCS support requires additional dependencies. Install them with"
    assert kart["task_output"] == [True, "S3 support requires additional dependencies. Install them with"]
    assert gokart["task_output"][0] is True
