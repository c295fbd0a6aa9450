"""gokart's ``gokart.object_storage``: helpers for ``s3://`` and ``gs://`` paths, on kart's storage.

``exists`` and ``get_timestamp`` go through kart's fsspec storage (``kart_core.storage``, configured
by ``[S3Config]`` / ``[GCSConfig]``); ``get_object_storage_target`` returns luigi's S3/GCS targets
as gokart's does. gokart's zip clients are not provided: kart writes model zips through its
storage (``make_model_target``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kart_core.errors import UnsupportedFeatureError
from kart_core.gcs_config import GCSConfig, missing_gcs_support
from kart_core.s3_config import S3Config
from kart_core.storage import storage_for
from kart_core.storage.remote import FsspecStorage

__all__ = ["ObjectStorage", "object_storage_path_prefix"]

object_storage_path_prefix = ["s3://", "gs://"]


def _not_object_storage(path: str) -> UnsupportedFeatureError:
    # gokart raised a bare RuntimeError here; UnsupportedFeatureError is one (through NotImplementedError).
    return UnsupportedFeatureError(
        f"{path!r} is not an object storage path: ObjectStorage serves s3:// and gs:// only."
    )


class ObjectStorage:
    """Static helpers for object storage paths (gokart 1.12.2's class and method names)."""

    @staticmethod
    def if_object_storage_path(path: str) -> bool:
        """Whether ``path`` starts with ``s3://`` or ``gs://``."""
        return any(path.startswith(prefix) for prefix in object_storage_path_prefix)

    @staticmethod
    def get_object_storage_target(path: str, format: Any) -> Any:
        """luigi's ``S3Target`` / ``GCSTarget`` for ``path`` with the ``[S3Config]`` / ``[GCSConfig]`` client.

        Raises:
            MissingExtraError: boto3 (S3) or the Google API client (GCS) is missing (an ``ImportError``).
            UnsupportedFeatureError: ``path`` is not an s3:// or gs:// path (a ``RuntimeError``).
        """
        if path.startswith("s3://"):
            import luigi.contrib.s3

            return luigi.contrib.s3.S3Target(path, client=S3Config().get_s3_client(), format=format)
        if path.startswith("gs://"):
            try:
                import googleapiclient  # noqa: F401
            except ImportError as exc:
                raise missing_gcs_support(exc) from None
            import luigi.contrib.gcs

            return luigi.contrib.gcs.GCSTarget(path, client=GCSConfig().get_gcs_client(), format=format)
        raise _not_object_storage(path)

    @staticmethod
    def exists(path: str) -> bool:
        """Whether an object, or a "directory" of objects (a prefix), is at ``path`` (as gokart's luigi client says).

        Raises:
            UnsupportedFeatureError: ``path`` is not an s3:// or gs:// path.
        """
        if not ObjectStorage.if_object_storage_path(path):
            raise _not_object_storage(path)
        storage = storage_for(path)
        return storage.exists_or_prefix(path) if isinstance(storage, FsspecStorage) else storage.exists(path)

    @staticmethod
    def get_timestamp(path: str) -> datetime:
        """When the object at ``path`` was last written, as an aware UTC datetime (boto's form, which gokart returned for S3).

        Raises:
            FileNotFoundError: no object is at ``path``.
            UnsupportedFeatureError: ``path`` is not an s3:// or gs:// path.
        """
        if not ObjectStorage.if_object_storage_path(path):
            raise _not_object_storage(path)
        return storage_for(path).modification_time(path).astimezone(timezone.utc)

    @staticmethod
    def get_zip_client(file_path: str, temporary_directory: str) -> Any:
        """Not provided: gokart's zip clients are replaced by kart's storage.

        Raises:
            UnsupportedFeatureError: always; use ``TaskOnKart.make_model_target`` (zips on any storage).
        """
        raise UnsupportedFeatureError(
            f"ObjectStorage.get_zip_client({file_path!r}) is gokart's internal zip client, which kart does not have: "
            "kart reads and writes model zips on any storage itself. Use TaskOnKart.make_model_target / "
            "make_large_data_frame_target, or kart_core.storage.storage_for(path) for raw objects."
        )

    @staticmethod
    def is_buffered_reader(file: object) -> bool:
        """Whether ``file`` is not luigi's streaming S3 reader (always true without boto3), as gokart's."""
        try:
            import boto3  # noqa: F401
        except ImportError:
            return True
        import luigi.contrib.s3

        return not isinstance(file, luigi.contrib.s3.ReadableS3File)
