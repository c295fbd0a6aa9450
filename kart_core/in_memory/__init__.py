"""gokart's ``gokart.in_memory``: outputs kept as Python objects in this process, not written to files.

A task keeps an output in memory by returning ``make_in_memory_target(key, task_lock_params)`` from
its ``output()`` (gokart 1.12.2 has no TaskOnKart switch for it; neither has kart). The object
itself is stored (no serialization), in one store per process that every
``InMemoryCacheRepository()`` sees. Inside a task's run a dump is staged and kept only when the run
commits, like a file output. The store is per process: build with ``workers=1`` or
``executor="thread"`` (process workers would keep their outputs to themselves).
"""

from kart_core.in_memory.data import InMemoryData
from kart_core.in_memory.repository import InMemoryCacheRepository
from kart_core.in_memory.target import InMemoryTarget, make_in_memory_target

__all__ = ["InMemoryCacheRepository", "InMemoryData", "InMemoryTarget", "make_in_memory_target"]
