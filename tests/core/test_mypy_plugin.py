"""kart_core.mypy: mypy, run in a subprocess on a tiny project, reports wrong task parameters.

gokart 1.12.2's plugin is run on the same project (with ``import gokart``) for comparison. Under
luigi 3.8 (whose ``luigi.Task`` is a ``dataclass_transform``) gokart's generated constructor is
replaced by mypy's, which knows only annotated parameters; so the two agree on annotated
parameters, and only kart's checks unannotated ones (``n = luigi.IntParameter()``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mypy_cache import mypy_cache

import kart_core

pytestmark = pytest.mark.slow

_ANNOTATED = """
import luigi
import gokart


class Train(gokart.TaskOnKart[int]):
    n: int = luigi.IntParameter()
    rate: float = luigi.FloatParameter(default=0.1)

    def run(self) -> None:
        self.dump(self.n + 1)


Train(n=1, rate=0.5)
Train(n="1")
Train(unknown=1)
"""

_UNANNOTATED = """
import enum
import luigi
import kart_core as gokart


class Color(enum.Enum):
    RED = 1


class Base(gokart.TaskOnKart[int]):
    n = luigi.IntParameter()
    name = luigi.Parameter(default="x")
    maybe = luigi.OptionalIntParameter(default=None)
    color = luigi.EnumParameter(enum=Color)


class Child(Base):
    upstream = gokart.TaskInstanceParameter()

    def run(self) -> None:
        reveal_type(self.n)
        self.dump(self.n + 1)


Child(n=1, name="a", maybe=None, color=Color.RED, upstream=Base(n=2), workspace_directory="w", rerun=True)
Child(n="1")
Child(name=3)
Base(color="red", maybe="x")
Child(upstream=3)
Child(redis_port="6379")
"""


# One mypy cache per plugin, kept between sessions (tests/mypy_cache.py): analysing kart_core, luigi and
# gokart is most of a cold run's time (minutes on a loaded machine); later runs reuse it, which also
# exercises the plugin's metadata being read back from the cache for classes of other modules. The plugin's
# file is in the cache's key (mypy's plugins snapshot): kart_core/mypy.py imports only mypy. Named (and, for a
# new checkout, copied from another's) when a test first runs mypy, not at collection.


# mypy analyses only what the plugins read (luigi, kart_core, gokart; stubs such as typeshed's are always
# read): the other packages kart_core and luigi import (polars, redis, sqlalchemy, pydantic, ...) count as
# Any. Following them was ~2/3 of each cold run's CPU (25 -> 9 s for the annotated source, same lines).
_FOLLOW = """follow_imports = "skip"

[[tool.mypy.overrides]]
module = ["luigi", "luigi.*", "kart_core", "kart_core.*", "gokart", "gokart.*"]
follow_imports = "normal"

"""


def _mypy(tmp_path: Path, plugin: str, source: str, options: str = "") -> list[str]:
    """Error and note lines of mypy on ``source`` with ``plugin``, as ``line: message  [code]``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.mypy]\nplugins = ["{plugin}"]\n{_FOLLOW}{textwrap.dedent(options)}'
    )
    (tmp_path / "tasks.py").write_text(textwrap.dedent(source))
    env = {key: value for key, value in os.environ.items() if key != "MYPY_CACHE_DIR"}
    # `pip install -e` (make test) installs kart through an import hook, which mypy does not follow:
    # point mypy at the folder that holds kart_core, as a normal install's site-packages would.
    env["MYPYPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(kart_core.__file__)))
    cache = str(mypy_cache(f"plugin {plugin}" + (" strict" if "disallow_missing_parameters" in options else "")))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", cache, "--config-file", "pyproject.toml", "tasks.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return [
        re.sub(r"^tasks\.py:(\d+): (error|note): ", r"\1: ", line)
        for line in done.stdout.splitlines()
        if line.startswith("tasks.py:")
    ]


def test_annotated_parameters_are_checked_as_gokarts_plugin_checks_them(tmp_path: Path) -> None:
    kart_source = _ANNOTATED.replace("import gokart", "import kart_core as gokart")
    # The two mypy processes (own caches) at the same time: one after the other they took twice the wall time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        kart_run = pool.submit(_mypy, tmp_path / "kart", "kart_core.mypy", kart_source)
        gokart_run = pool.submit(_mypy, tmp_path / "gokart", "gokart.mypy", _ANNOTATED)
        kart, gokart = kart_run.result(), gokart_run.result()
    assert (
        kart
        == gokart
        == [
            '15: Argument "n" to "Train" has incompatible type "str"; expected "int"  [arg-type]',
            '16: Unexpected keyword argument "unknown" for "Train"  [call-arg]',
        ]
    )


def test_unannotated_and_inherited_parameters_are_checked(tmp_path: Path) -> None:
    assert _mypy(tmp_path, "kart_core.mypy", _UNANNOTATED) == [
        '22: Revealed type is "Any"',  # no default and no annotation: Any, as gokart's plugin
        '27: Argument "n" to "Child" has incompatible type "str"; expected "int"  [arg-type]',
        '28: Argument "name" to "Child" has incompatible type "int"; expected "str"  [arg-type]',
        '29: Argument "color" to "Base" has incompatible type "str"; expected "Color"  [arg-type]',
        '29: Argument "maybe" to "Base" has incompatible type "str"; expected "int | None"  [arg-type]',
        '30: Argument "upstream" to "Child" has incompatible type "int"; expected "TaskOnKart[Any]"  [arg-type]',
        '31: Argument "redis_port" to "Child" has incompatible type "str"; expected "int | None"  [arg-type]',
    ]


def test_disallow_missing_parameters_requires_parameters_without_default(tmp_path: Path) -> None:
    source = """
    import luigi
    import kart_core as gokart


    class Train(gokart.TaskOnKart[int]):
        n = luigi.IntParameter()
        rate = luigi.FloatParameter(default=0.1)


    Train(n=1)
    Train(rate=0.2)
    """
    lines = _mypy(tmp_path, "kart_core.mypy", source, "[tool.kart-mypy]\ndisallow_missing_parameters = true\n")
    assert lines == ['12: Missing named argument "n" for "Train"  [call-arg]']


def test_positional_parameter_arguments_are_reported(tmp_path: Path) -> None:
    source = """
    import luigi
    import kart_core as gokart


    class Train(gokart.TaskOnKart[int]):
        name = luigi.Parameter("x")
    """
    [line] = _mypy(tmp_path, "kart_core.mypy", source)
    assert line.startswith("7: Pass task parameter arguments by name when type-checking with kart's mypy plugin")
