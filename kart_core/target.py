"""Targets: one output of a task, read and written through a FileProcessor and a Storage.

Every dump is atomic (see ``kart_core.storage``), so an existing output is a whole output.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

import luigi

from kart_core import target_config
from kart_core.errors import DumpError, IntegrityError, LoadError
from kart_core.file_processor import DataFrameType, FileProcessor, make_file_processor, open_for_processor
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.signing import Signer, signature_path
from kart_core.storage import Storage, storage_for
from kart_core.workspace import with_unique_id

__all__ = [
    "TargetOnKart",
    "SingleFileTarget",
    "ModelTarget",
    "LargeDataFrameProcessor",
    "make_target",
    "make_model_target",
]


class TargetOnKart(luigi.Target):
    """One output file: exists / load / dump / remove / path / last_modification_time.

    ``signer`` None means "as configured": the signing key is read when the target loads or dumps
    (once per build, see ``kart_core.target_config``), not when it is made.
    """

    def __init__(
        self, path: str, storage: Storage | None = None, owner: str | None = None, signer: Signer | None = None
    ) -> None:
        self._path = path
        self._storage = storage if storage is not None else storage_for(path)
        self.owner = owner
        self._signer = signer

    @property
    def signer(self) -> Signer | None:
        """The signer given to this target, else the configured one (None when signing is off)."""
        return self._signer if self._signer is not None else target_config.current().signer

    def exists(self) -> bool:
        """Whether the output is there (whole: writes are atomic)."""
        return self._storage.exists(self._path)

    def path(self) -> str:
        """Where the output lives."""
        return self._path

    def remove(self) -> None:
        """Delete the output (and its signature) if it exists."""
        self._storage.remove(self._path)
        # Also when signing is off now: a stale signature would refuse the next signed run's file.
        self._storage.remove(signature_path(self._path))

    def last_modification_time(self) -> datetime:
        """When the output was written."""
        return self._storage.modification_time(self._path)

    def load(self) -> Any:
        """Read the output back."""
        raise NotImplementedError

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Write ``obj`` as this output, atomically."""
        raise NotImplementedError

    def _describe_owner(self) -> str:
        return f"the output of {self.owner}" if self.owner else "the output"

    def _require_existing(self) -> None:
        if not self.exists():
            raise LoadError(
                f"Cannot load {self._describe_owner()}: {self._path!r} does not exist. Build the task first."
            )

    @contextlib.contextmanager
    def _atomic_write(self) -> Iterator[IO[bytes]]:
        """Yield the file to write; on success it (and its signature, when signing) lands whole."""
        signer = self.signer
        with self._storage.atomic_write(self._path) as raw:
            yield raw
            if signer is not None:
                # The signature lands before the data: a writer killed in between leaves no output.
                raw.flush()
                raw.seek(0)
                signature = signer.signature(raw)
                with self._storage.atomic_write(signature_path(self._path)) as sig:
                    sig.write(signature)

    @contextlib.contextmanager
    def _open_verified(self) -> Iterator[IO[bytes]]:
        """Open the output for reading, after checking its signature when signing is on."""
        signer = self.signer
        if signer is not None:
            self._verify_signature(signer)
        with self._storage.open_read(self._path) as raw:
            yield raw

    def _verify_signature(self, signer: Signer) -> None:
        sig_path = signature_path(self._path)
        if not self._storage.exists(sig_path):
            raise IntegrityError(
                f"Refusing to load {self._describe_owner()} from {self._path!r}: signing is on "
                f"(KART_SIGNING_KEY / [TaskOnKart] signing_key) and kart did not sign this file ({sig_path!r} is "
                "missing). Delete the file and rebuild the task if you trust neither its origin nor its content."
            )
        with self._storage.open_read(sig_path) as file:
            expected = file.read()
        with self._storage.open_read(self._path) as raw:
            if not signer.matches(raw, expected):
                raise IntegrityError(
                    f"Refusing to load {self._describe_owner()} from {self._path!r}: its signature does not "
                    "match (the file was changed after kart wrote it, or signed with another key). "
                    "Delete it and rebuild the task."
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"


class SingleFileTarget(TargetOnKart):
    """An output stored as one file in one format."""

    def __init__(
        self,
        path: str,
        processor: FileProcessor[Any],
        storage: Storage | None = None,
        owner: str | None = None,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(path, storage, owner, signer)
        self.processor = processor

    def load(self) -> Any:
        """Read the output; a clear LoadError names the task, path, processor and cause."""
        # No exists() first: on object storage that is one more request per load.
        try:
            with self._open_verified() as raw, open_for_processor(self.processor, raw, "r") as file:
                return self.processor.load(file)
        except IntegrityError:
            raise
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                self._require_existing()
            raise LoadError(
                f"Failed to load {self._describe_owner()} from {self._path!r} with {self.processor!r}.\n"
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Write ``obj`` atomically; a failure leaves no file at the path."""
        try:
            with self._atomic_write() as raw:
                with open_for_processor(self.processor, raw, "w") as file:
                    self.processor.dump(obj, file)
        except Exception as exc:
            raise DumpError(
                f"Failed to dump {self._describe_owner()} to {self._path!r} with {self.processor!r}.\n"
                f"{type(exc).__name__}: {exc}"
            ) from exc


class ModelTarget(TargetOnKart):
    """A zip holding what ``save_function(obj, path)`` wrote and the pickled ``load_function`` (gokart's layout)."""

    MODEL_FILE = "model.pkl"
    LOAD_FUNCTION_FILE = "load_function.pkl"

    def __init__(
        self,
        path: str,
        temporary_directory: str,
        save_function: Callable[[Any, str], None],
        load_function: Callable[[str], Any] | None,
        storage: Storage | None = None,
        owner: str | None = None,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(path, storage, owner, signer)
        self._temporary_directory = temporary_directory
        self._save_function = save_function
        self._load_function = load_function

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Save the model into a scratch directory, zip it and write the zip atomically."""
        with self._scratch() as scratch:
            try:
                self._save_function(obj, os.path.join(scratch, self.MODEL_FILE))
                with open(os.path.join(scratch, self.LOAD_FUNCTION_FILE), "wb") as file:
                    PickleFileProcessor().dump(self._load_function, file)
            except Exception as exc:
                raise DumpError(
                    f"Failed to save {self._describe_owner()} to {self._path!r}: {type(exc).__name__}: {exc}"
                ) from exc
            with self._atomic_write() as raw:
                with zipfile.ZipFile(raw, "w") as archive:
                    for name in sorted(os.listdir(scratch)):
                        _add_tree(archive, scratch, name)

    def load(self) -> Any:
        """Unzip into a scratch directory and call the load function on the model path."""
        self._require_existing()
        with self._scratch() as scratch:
            with self._open_verified() as raw:
                data = raw.read()
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(scratch)
                load_function = self._load_function or _load_pickled(os.path.join(scratch, self.LOAD_FUNCTION_FILE))
                return load_function(os.path.join(scratch, self.MODEL_FILE))
            except Exception as exc:
                raise LoadError(
                    f"Failed to load {self._describe_owner()} from {self._path!r} as a model zip.\n"
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def _scratch(self) -> tempfile.TemporaryDirectory[str]:
        os.makedirs(self._temporary_directory, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=self._temporary_directory)


def _add_tree(archive: zipfile.ZipFile, root: str, name: str) -> None:
    full = os.path.join(root, name)
    if os.path.isdir(full):
        for child in sorted(os.listdir(full)):
            _add_tree(archive, root, os.path.join(name, child))
    else:
        archive.write(full, name)


def _load_pickled(path: str) -> Any:
    with open(path, "rb") as file:
        return PickleFileProcessor().load(file)


class LargeDataFrameProcessor:
    """Save a DataFrame as pickled chunks of about ``max_byte`` bytes; load them back in order."""

    def __init__(self, max_byte: int) -> None:
        self.max_byte = int(max_byte)

    def save(self, df: Any, file_path: str) -> None:
        """Write ``data_{i}.pkl`` chunks beside ``file_path``."""
        import numpy as np

        directory = os.path.dirname(file_path)
        os.makedirs(directory, exist_ok=True)
        if df.empty:
            df.to_pickle(os.path.join(directory, "data_0.pkl"))
            return
        chunks = int(df.memory_usage(deep=False).sum()) // self.max_byte + 1
        for i, rows in enumerate(np.array_split(np.arange(len(df)), chunks)):
            if len(rows):
                df.iloc[rows[0] : rows[-1] + 1].to_pickle(os.path.join(directory, f"data_{i}.pkl"))

    @staticmethod
    def load(file_path: str) -> Any:
        """Concatenate the chunks in their original order (gokart's glob order is arbitrary)."""
        import pandas as pd

        directory = os.path.dirname(file_path)
        names = [n for n in os.listdir(directory) if re.fullmatch(r"data_\d+\.pkl", n)]
        names.sort(key=lambda n: int(n[5:-4]))
        return pd.concat([pd.read_pickle(os.path.join(directory, n)) for n in names])


def make_target(
    file_path: str,
    unique_id: str | None = None,
    processor: FileProcessor[Any] | None = None,
    task_lock_params: object = None,
    store_index_in_feather: bool = True,
    owner: str | None = None,
    *,
    dataframe_type: DataFrameType = "pandas",
    signer: Signer | None = None,
) -> SingleFileTarget:
    """Return the target for ``file_path`` (with ``_{unique_id}`` added), its format chosen by extension.

    gokart 1.12.2's signature. ``task_lock_params`` is accepted and ignored: kart locks a whole
    task run (``run_one``), never a single dump. ``signer`` defaults to the configured signing key
    (``KART_SIGNING_KEY``), read when the target is used.

    Raises:
        UnknownFormatError: no FileProcessor serves the extension and none was given.
    """
    path = with_unique_id(file_path, unique_id)
    if processor is None:
        processor = make_file_processor(
            path, store_index_in_feather=store_index_in_feather, dataframe_type=dataframe_type, task_label=owner
        )
    return SingleFileTarget(path, processor, owner=owner, signer=signer)


def make_model_target(
    file_path: str,
    temporary_directory: str,
    save_function: Callable[[Any, str], None],
    load_function: Callable[[str], Any] | None,
    unique_id: str | None = None,
    task_lock_params: object = None,
    owner: str | None = None,
    *,
    signer: Signer | None = None,
) -> ModelTarget:
    """Return a zip target for models saved by ``save_function`` and read by ``load_function``.

    gokart 1.12.2's signature; ``task_lock_params`` is accepted and ignored, as in ``make_target``.
    """
    path = with_unique_id(file_path, unique_id)
    scratch_root = os.path.join(temporary_directory, hashlib.md5(path.encode()).hexdigest())
    return ModelTarget(path, scratch_root, save_function, load_function, owner=owner, signer=signer)
