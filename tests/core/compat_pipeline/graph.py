"""Tasks that shape the graph: requires() forms, tasks as parameters, decorators, seeds and chains."""

from __future__ import annotations

import os
import random
from typing import Any

import luigi
import luigi.util
import numpy as np

from compat_pipeline import formats, params
from compat_pipeline.impl import HAS_CONFIG_PARAMS, config_params, gokart


class RequiresOne(gokart.TaskOnKart):
    """requires() returns one task; load() gives its output."""

    def requires(self) -> Any:
        """MakeFrame."""
        return formats.MakeFrame()

    def run(self) -> None:
        """Dump the sum of the scores."""
        self.dump(float(self.load()["score"].sum()))


class RequiresList(gokart.TaskOnKart):
    """requires() returns a list; load() gives a list."""

    def requires(self) -> Any:
        """Two parameter tasks."""
        return [params.IntParam(), params.FloatParam()]

    def run(self) -> None:
        """Dump the two values."""
        first, second = self.load()
        self.dump([first["values"]["value"], second["values"]["value"]])


class RequiresDict(gokart.TaskOnKart):
    """requires() returns a dict; load('key') gives one output."""

    def requires(self) -> Any:
        """Dates and enums, by key."""
        return {"dates": params.DateParams(), "enums": params.EnumParams()}

    def run(self) -> None:
        """Dump a value from each input."""
        self.dump({"day": self.load("dates")["values"]["day"], "color": self.load("enums")["values"]["color"]})


class Wrap(gokart.TaskOnKart):
    """A TaskInstanceParameter (any TaskOnKart) used through the default requires()."""

    task = gokart.TaskInstanceParameter(expected_type=gokart.TaskOnKart)
    depth = luigi.IntParameter(default=0)

    def run(self) -> None:
        """Dump the depth and the input's type."""
        self.dump({"depth": self.depth, "input": type(self.load(self.task)).__name__})


class Gather(gokart.TaskOnKart):
    """A ListTaskInstanceParameter with an expected element type, given as a tuple (default requires())."""

    tasks = gokart.ListTaskInstanceParameter(expected_elements_type=params.DumpParams)

    def run(self) -> None:
        """Dump the number of inputs."""
        self.dump(len(self.load()["tasks"]))


class GatherList(gokart.TaskOnKart):
    """A ListTaskInstanceParameter given as a list, with its own requires()."""

    tasks = gokart.ListTaskInstanceParameter()

    def requires(self) -> Any:
        """The tasks of the parameter."""
        return list(self.tasks)

    def run(self) -> None:
        """Dump the string params of every input."""
        self.dump([item["str"] for item in self.load()])


class Left(gokart.TaskOnKart):
    """One side of a diamond."""

    def requires(self) -> Any:
        """MakeFrame."""
        return formats.MakeFrame()

    def run(self) -> None:
        """Dump the first id."""
        self.dump(int(self.load()["id"].iloc[0]))


class Right(gokart.TaskOnKart):
    """The other side of a diamond."""

    def requires(self) -> Any:
        """MakeFrame."""
        return formats.MakeFrame()

    def run(self) -> None:
        """Dump the last id."""
        self.dump(int(self.load()["id"].iloc[-1]))


class Diamond(gokart.TaskOnKart):
    """Both sides of the diamond, as a dict."""

    def requires(self) -> Any:
        """Left and Right."""
        return {"left": Left(), "right": Right()}

    def run(self) -> None:
        """Dump both values."""
        self.dump([self.load("left"), self.load("right")])


class RandomDraw(gokart.TaskOnKart):
    """Draws from numpy.random, seeded from the unique id (or fix_random_seed_value)."""

    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        """Dump three draws."""
        self.dump(np.random.random(3))


class PythonRandomDraw(gokart.TaskOnKart):
    """Draws from the stdlib random module, seeded like RandomDraw.

    Under gokart the first draw in run() is the second of the seeded stream: writing the
    random_seed log through luigi's atomic file consumes one ``random.randrange`` after seeding.
    """

    tag = luigi.Parameter(default="a")

    def run(self) -> None:
        """Dump three draws."""
        self.dump([random.random() for _ in range(3)])


class UsesInsignificant(gokart.TaskOnKart):
    """An upstream built with significant=False stays out of this task's id."""

    def requires(self) -> Any:
        """A RandomDraw that does not count in the id."""
        return RandomDraw(tag="insignificant", significant=False)

    def run(self) -> None:
        """Dump the upstream's draw."""
        self.dump(self.load())


class SourceChecked(gokart.TaskOnKart):
    """Built with serialized_task_definition_check=True: its source is part of its id."""

    def run(self) -> None:
        """Dump a constant."""
        self.dump("source is part of my id")


class WithTaskLog(gokart.TaskOnKart):
    """Writes a task_log entry, stored in log/task_log."""

    def run(self) -> None:
        """Log and dump."""
        self.task_log["rows"] = 5
        self.dump(5)


class Namespaced(gokart.TaskOnKart):
    """A task with a luigi task_namespace (its family differs from its class name)."""

    task_namespace = "compat"

    def run(self) -> None:
        """Dump the family."""
        self.dump(self.get_task_family())


class ChainLink(gokart.TaskOnKart):
    """Link ``n`` of a chain: requires link ``n - 1``."""

    n = luigi.IntParameter()

    def requires(self) -> Any:
        """The previous link (none for link 0)."""
        return ChainLink(n=self.n - 1) if self.n > 0 else []

    def run(self) -> None:
        """Dump the length so far."""
        self.dump(self.load() + 1 if self.n > 0 else 1)


class TextFile(luigi.Target):
    """A local text file whose ``path()`` is a method.

    gokart's dump() calls ``output().path()`` on every upstream, so a luigi.LocalTarget (whose
    ``path`` is a string) upstream of a gokart task makes gokart fail with "'str' object is not callable".
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def path(self) -> str:
        """Where the file is."""
        return self._path

    def exists(self) -> bool:
        """Whether the file is there."""
        return os.path.exists(self._path)

    def read(self) -> str:
        """The file's text."""
        with open(self._path, encoding="utf-8") as file:
            return file.read()

    def write(self, text: str) -> None:
        """Write ``text`` atomically (a temporary file, then rename)."""
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        temporary = f"{self._path}.tmp-{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, self._path)


class Fails(gokart.TaskOnKart):
    """Raises in run() after its upstream was built (not part of the roots)."""

    def requires(self) -> Any:
        """MakeFrame."""
        return formats.MakeFrame(rows=3)

    def run(self) -> None:
        """Fail."""
        raise ValueError(f"deliberate failure after loading {len(self.load())} rows")


class PlainLuigiSource(luigi.Task):
    """A plain luigi.Task upstream: its string params (not an id) enter its dependants' ids."""

    name = luigi.Parameter(default="plain")

    def output(self) -> Any:
        """A text file inside the default workspace."""
        return TextFile(f"resources/plain/{self.name}.txt")

    def run(self) -> None:
        """Write one line."""
        self.output().write("written by a plain luigi task\n")


class UsesPlainLuigi(gokart.TaskOnKart):
    """Reads the plain luigi task's file."""

    def requires(self) -> Any:
        """PlainLuigiSource."""
        return PlainLuigiSource()

    def run(self) -> None:
        """Dump the file's text."""
        self.dump(self.input().read())


@luigi.util.requires(params.IntParam)
class AfterInt(gokart.TaskOnKart):
    """luigi.util.requires: inherits IntParam's parameters and requires it."""

    def run(self) -> None:
        """Dump the input value plus one."""
        self.dump(self.load()["values"]["value"] + 1)


@luigi.util.inherits(params.DateParams)
class InheritsDates(gokart.TaskOnKart):
    """luigi.util.inherits: DateParams's parameters plus its own; requires() clones DateParams."""

    offset = luigi.IntParameter(default=2)

    def requires(self) -> Any:
        """DateParams with the same dates."""
        return self.clone(params.DateParams)

    def run(self) -> None:
        """Dump the year of the input and the offset."""
        self.dump([self.load()["values"]["day"].year, self.offset])


if HAS_CONFIG_PARAMS:

    class CompatConfig(luigi.Config):
        """Config section whose values FromConfig inherits."""

        value = luigi.IntParameter(default=11)
        renamed = luigi.Parameter(default="from config")

    @config_params().inherits_config_params(CompatConfig, parameter_alias={"renamed": "title"})
    class FromConfig(gokart.TaskOnKart):
        """inherits_config_params with a parameter alias."""

        value = luigi.IntParameter()
        title = luigi.Parameter()

        def run(self) -> None:
            """Dump both values."""
            self.dump([self.value, self.title])


def _config_params_tasks() -> list[Any]:
    """FromConfig when kart_core has inherits_config_params (both implementations then define it)."""
    return [FromConfig()] if HAS_CONFIG_PARAMS else []


def graph_roots() -> list[Any]:
    """Every graph-shaping task."""
    frame = formats.MakeFrame()
    nested = Wrap(task=Wrap(task=frame, depth=1), depth=2)
    dumps = (params.IntParam(), params.StrParams(), params.CollectionParams())
    return [
        RequiresOne(),
        RequiresList(),
        RequiresDict(),
        nested,
        Wrap(task=formats.SplitFrame(), depth=0),
        Gather(tasks=dumps),
        GatherList(tasks=[params.BoolParams(), params.OptionalParams(), params.GokartParams()]),
        Diamond(),
        RandomDraw(),
        RandomDraw(tag="fixed", fix_random_seed_value=1234),
        PythonRandomDraw(),
        PythonRandomDraw(tag="fixed", fix_random_seed_value=1234),
        UsesInsignificant(),
        SourceChecked(serialized_task_definition_check=True),
        WithTaskLog(),
        Namespaced(),
        ChainLink(n=5),
        UsesPlainLuigi(),
        AfterInt(),
        AfterInt(value=100),
        InheritsDates(),
        *_config_params_tasks(),
    ]
