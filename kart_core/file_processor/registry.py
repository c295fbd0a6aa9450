"""Which FileProcessor serves which extension, filled from plugins."""

from __future__ import annotations

import functools
import os
from typing import Any

import pluggy

from kart_core.errors import UnknownFormatError
from kart_core.file_processor import builtin
from kart_core.file_processor.base import DataFrameType, DeferredProcessor, FileProcessor, ProcessorOptions
from kart_core.hooks.manager import create_hook_manager


class FileProcessorRegistry:
    """Maps extensions to FileProcessor classes; later registrations win, so plugins can override."""

    def __init__(self) -> None:
        self._by_extension: dict[str, type[FileProcessor[Any]] | DeferredProcessor] = {}

    @classmethod
    def from_hook_manager(cls, manager: pluggy.PluginManager) -> FileProcessorRegistry:
        """Collect every ``kart_file_processors`` implementation, built-ins first."""
        registry = cls()
        # pluggy calls the last registered plugin first; reverse so third parties override built-ins.
        for classes in reversed(manager.hook.kart_file_processors()):
            for processor_class in classes:
                registry.register(processor_class)
        return registry

    def register(self, processor_class: type[FileProcessor[Any]] | DeferredProcessor) -> None:
        """Serve each extension that ``processor_class`` declares with it (a class, or one imported on first use)."""
        for extension in processor_class.extensions:
            self._by_extension[extension.lower()] = processor_class

    def extensions(self) -> list[str]:
        """The known extensions, sorted."""
        return sorted(self._by_extension)

    def create(self, file_path: str, options: ProcessorOptions, task_label: str | None = None) -> FileProcessor[Any]:
        """Return the processor for ``file_path``'s extension, or a clear UnknownFormatError."""
        extension = os.path.splitext(file_path)[1].lower()
        processor_class = self._by_extension.get(extension)
        if processor_class is None:
            where = f" (task {task_label})" if task_label else ""
            raise UnknownFormatError(
                f"No FileProcessor for {extension or 'a file without extension'!r}{where}: {file_path}. "
                f"Known: {' '.join(self.extensions())}. Pass processor=..., or install a plugin "
                "that implements kart_file_processors."
            )
        return processor_class.create(extension, options)


@functools.cache
def default_registry() -> FileProcessorRegistry:
    """The process-wide registry: built-in formats plus entry-point plugins (created once)."""
    return FileProcessorRegistry.from_hook_manager(create_hook_manager([builtin]))


def make_file_processor(
    file_path: str,
    store_index_in_feather: bool = True,
    *,
    dataframe_type: DataFrameType = "pandas",
    task_label: str | None = None,
) -> FileProcessor[Any]:
    """Return the processor for ``file_path``'s extension (gokart's signature; ``task_label`` names the task)."""
    options = ProcessorOptions(dataframe_type=dataframe_type, store_index_in_feather=store_index_in_feather)
    return default_registry().create(file_path, options, task_label=task_label)
