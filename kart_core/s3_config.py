"""gokart's ``[S3Config]`` settings: which environment variables hold the AWS keys (and, in kart, the endpoint).

kart opens ``s3://`` workspaces with s3fs (``kart_core.storage``), configured by ``s3fs_options()``;
``S3Config().get_s3_client()`` gives gokart's luigi S3 client for code that asks for it.
"""

from __future__ import annotations

import os
from typing import Any

import luigi

from kart_core.errors import MissingExtraError

__all__ = ["S3Config", "SECTION", "missing_s3_support", "s3fs_options"]

SECTION = "S3Config"
_DEFAULT_KEY_NAME = "AWS_ACCESS_KEY_ID"
_DEFAULT_SECRET_NAME = "AWS_SECRET_ACCESS_KEY"


def missing_s3_support(cause: ImportError | None = None) -> MissingExtraError:
    """The error for S3 paths or clients when boto3 / s3fs is not installed (an ``ImportError``, as gokart's)."""
    detail = f" ({cause})" if cause is not None else ""
    return MissingExtraError(
        f"S3 support requires additional dependencies. Install them with: pip install 'kart-suite[s3]'{detail}"
    )


class S3Config(luigi.Config):
    """``[S3Config]``: the names of the environment variables that hold the keys (gokart's), and ``endpoint_url``.

    ``endpoint_url`` is kart's addition (an S3-compatible server such as MinIO); the environment
    variables ``KART_S3_ENDPOINT_URL`` and boto's ``AWS_ENDPOINT_URL`` also set it.
    """

    aws_access_key_id_name = luigi.Parameter(default=_DEFAULT_KEY_NAME, description="AWS access key id variable.")
    aws_secret_access_key_name = luigi.Parameter(
        default=_DEFAULT_SECRET_NAME, description="AWS secret access key variable."
    )
    endpoint_url = luigi.OptionalParameter(default=None, description="S3-compatible endpoint (kart).")

    def get_s3_client(self) -> Any:
        """luigi's ``S3Client`` with the keys from the named variables (gokart's method).

        Raises:
            MissingExtraError: boto3 is not installed (an ``ImportError``).
        """
        try:
            import boto3  # noqa: F401
        except ImportError as exc:
            raise missing_s3_support(exc) from None
        import luigi.contrib.s3

        extra = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
        return luigi.contrib.s3.S3Client(
            aws_access_key_id=os.environ.get(str(self.aws_access_key_id_name)),
            aws_secret_access_key=os.environ.get(str(self.aws_secret_access_key_name)),
            **extra,
        )


def _config_value(option: str) -> str | None:
    import luigi.configuration

    value = luigi.configuration.get_config().get(SECTION, option, None)
    return str(value) if value not in (None, "") else None


def s3fs_options() -> dict[str, Any]:
    """The s3fs options for kart's S3 storage, read now from ``[S3Config]`` and the environment.

    Returns:
        ``use_listings_cache=False`` (another process may write at any time); ``key`` / ``secret``
        when both named variables are set (else s3fs finds credentials as boto does); ``endpoint_url``
        from ``[S3Config] endpoint_url``, ``KART_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL``.
    """
    key_name = _config_value("aws_access_key_id_name") or _DEFAULT_KEY_NAME
    secret_name = _config_value("aws_secret_access_key_name") or _DEFAULT_SECRET_NAME
    options: dict[str, Any] = {"use_listings_cache": False}
    if os.environ.get(key_name) and os.environ.get(secret_name):
        options["key"] = os.environ[key_name]
        options["secret"] = os.environ[secret_name]
    endpoint = (
        _config_value("endpoint_url") or os.environ.get("KART_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        options["endpoint_url"] = endpoint
    return options
