"""gokart's ``[GCSConfig]`` settings: the environment variable holding the service-account credential.

The variable (``[GCSConfig] gcs_credential_name``, default ``GCS_CREDENTIAL``) holds either the path
of a service-account JSON file or the JSON itself, as in gokart. kart opens ``gs://`` workspaces
with gcsfs (``kart_core.storage``), configured by ``gcsfs_options()``; ``GCSConfig().get_gcs_client()``
gives gokart's luigi GCS client for code that asks for it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import luigi

from kart_core.errors import MissingExtraError, StorageConfigError

__all__ = ["GCSConfig", "SECTION", "gcsfs_options", "missing_gcs_support"]

SECTION = "GCSConfig"
_DEFAULT_CREDENTIAL_NAME = "GCS_CREDENTIAL"


def missing_gcs_support(cause: ImportError | None = None) -> MissingExtraError:
    """The error for GCS paths or clients when the Google libraries are missing (an ``ImportError``, as gokart's)."""
    detail = f" ({cause})" if cause is not None else ""
    return MissingExtraError(
        f"GCS support requires additional dependencies. Install them with: pip install 'kart-suite[gcs]'{detail}"
    )


class GCSConfig(luigi.Config):
    """``[GCSConfig]``: ``gcs_credential_name`` (gokart's) and ``endpoint_url`` (kart's, e.g. an emulator)."""

    gcs_credential_name = luigi.StrParameter(
        default=_DEFAULT_CREDENTIAL_NAME, description="The variable holding the credential (a path or JSON)."
    )
    endpoint_url = luigi.OptionalParameter(default=None, description="GCS-compatible endpoint (kart).")

    def get_gcs_client(self) -> Any:
        """luigi's ``GCSClient`` with the configured credential (gokart's method).

        Raises:
            MissingExtraError: google-api-python-client is not installed (an ``ImportError``).
        """
        try:
            import googleapiclient  # noqa: F401
        except ImportError as exc:
            raise missing_gcs_support(exc) from None
        import luigi.contrib.gcs

        return luigi.contrib.gcs.GCSClient(oauth_credentials=self._load_oauth_credentials())

    def _load_oauth_credentials(self) -> Any:
        """google-auth service-account credentials from the variable, or None when it is unset or empty."""
        try:
            from google.oauth2.service_account import Credentials
        except ImportError as exc:
            raise missing_gcs_support(exc) from None
        value = os.environ.get(str(self.gcs_credential_name))
        if not value:
            return None
        if os.path.isfile(value):
            return Credentials.from_service_account_file(value)
        return Credentials.from_service_account_info(json.loads(value))


def _config_value(option: str) -> str | None:
    import luigi.configuration

    value = luigi.configuration.get_config().get(SECTION, option, None)
    return str(value) if value not in (None, "") else None


def gcsfs_options() -> dict[str, Any]:
    """The gcsfs options for kart's GCS storage, read now from ``[GCSConfig]`` and the environment.

    Returns:
        ``token``: the credential file's path, or the parsed JSON (service-account info), when the
        variable named by ``gcs_credential_name`` is set (else gcsfs finds credentials as google-auth
        does); ``endpoint_url`` from ``[GCSConfig] endpoint_url`` when set.

    Raises:
        StorageConfigError: (a ``ValueError``) the variable holds neither an existing file's path nor valid JSON; names the variable.
    """
    name = _config_value("gcs_credential_name") or _DEFAULT_CREDENTIAL_NAME
    options: dict[str, Any] = {}
    value = os.environ.get(name)
    if value:
        options["token"] = value if os.path.isfile(value) else _credential_json(name, value)
    endpoint = _config_value("endpoint_url")
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def _credential_json(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise StorageConfigError(
            f"${name} ([GCSConfig] gcs_credential_name) holds neither the path of an existing file nor JSON "
            f"({exc.msg} at character {exc.pos}). Set it to a service-account JSON file's path or its content."
        ) from None
