"""Tasks whose outputs use every file format gokart picks by extension, plus dict, list and model outputs."""

from __future__ import annotations

import pickle
from typing import Any

import luigi
import numpy as np
import pandas as pd

from compat_pipeline.impl import gokart


class MakeFrame(gokart.TaskOnKart[pd.DataFrame]):
    """A small DataFrame of mixed dtypes (the default .pkl output)."""

    rows = luigi.IntParameter(default=6)

    def run(self) -> None:
        """Dump the frame."""
        frame = pd.DataFrame(
            {
                "id": list(range(self.rows)),
                "name": [f"item-{i}" for i in range(self.rows)],
                "score": [i / 4 for i in range(self.rows)],
                "ok": [i % 2 == 0 for i in range(self.rows)],
            }
        )
        self.dump(frame)


class FrameAs(gokart.TaskOnKart[pd.DataFrame]):
    """MakeFrame written again with the extension ``ext`` (make_target picks the format)."""

    ext = luigi.ChoiceParameter(choices=[".csv", ".tsv", ".json", ".parquet", ".feather", ".pkl"], var_type=str)
    source = gokart.TaskInstanceParameter(expected_type=MakeFrame)

    def output(self) -> Any:
        """``compat/frames/frame{ext}``."""
        return self.make_target(f"compat/frames/frame{self.ext}")

    def run(self) -> None:
        """Copy the input frame."""
        self.dump(self.load(self.source))


class NumpyArray(gokart.TaskOnKart):
    """An ndarray in a .npz file."""

    def output(self) -> Any:
        """``compat/array.npz``."""
        return self.make_target("compat/array.npz")

    def run(self) -> None:
        """Dump a 3x4 float array."""
        self.dump(np.arange(12, dtype=np.float64).reshape(3, 4) / 7)


class TextLines(gokart.TaskOnKart):
    """A list of strings in a .txt file (one item per line)."""

    def output(self) -> Any:
        """``compat/lines.txt``."""
        return self.make_target("compat/lines.txt")

    def run(self) -> None:
        """Dump three lines."""
        self.dump(["first line", "second line", "ünïcode line"])


class GzipText(gokart.TaskOnKart):
    """Text read from TextLines and written gzipped (.gz)."""

    def requires(self) -> Any:
        """TextLines."""
        return TextLines()

    def output(self) -> Any:
        """``compat/lines.gz``."""
        return self.make_target("compat/lines.gz")

    def run(self) -> None:
        """Upper-case the lines."""
        self.dump([line.upper() for line in self.load()])


class FixedName(gokart.TaskOnKart):
    """An output without the unique id in its name (``use_unique_id=False``)."""

    def output(self) -> Any:
        """``compat/fixed/latest.txt``."""
        return self.make_target("compat/fixed/latest.txt", use_unique_id=False)

    def run(self) -> None:
        """Dump one line of text."""
        self.dump("the latest value")


class SplitFrame(gokart.TaskOnKart):
    """A dict output: ``dump(obj, 'train')`` and ``dump(obj, 'test')`` in two formats."""

    def requires(self) -> Any:
        """MakeFrame."""
        return MakeFrame()

    def output(self) -> Any:
        """A .pkl and a .csv target by key."""
        return {"train": self.make_target("compat/split/train.pkl"), "test": self.make_target("compat/split/test.csv")}

    def run(self) -> None:
        """Split the frame in two."""
        frame = self.load()
        self.dump(frame.iloc[:4], "train")
        self.dump(frame.iloc[4:].reset_index(drop=True), "test")


class UseSplit(gokart.TaskOnKart):
    """Loads each key of SplitFrame's dict output."""

    def requires(self) -> Any:
        """SplitFrame."""
        return SplitFrame()

    def run(self) -> None:
        """Dump the row counts of both parts."""
        self.dump({"train": len(self.load("train")), "test": len(self.load("test"))})


class PairOutput(gokart.TaskOnKart):
    """A list output, each target dumped explicitly."""

    def output(self) -> Any:
        """A .txt and a .pkl target."""
        return [self.make_target("compat/pair/first.txt"), self.make_target("compat/pair/second.pkl")]

    def run(self) -> None:
        """Dump one value per target."""
        first, second = self.output()
        self.dump(["a", "b"], first)
        self.dump({"k": 1}, second)


def save_model(model: Any, path: str) -> None:
    """Pickle ``model`` to ``path``."""
    with open(path, "wb") as file:
        pickle.dump(model, file)


def load_model(path: str) -> Any:
    """Read the pickled model at ``path``."""
    with open(path, "rb") as file:
        return pickle.load(file)


class ModelZip(gokart.TaskOnKart):
    """make_model_target: a zip with the model and its load function."""

    def output(self) -> Any:
        """``compat/model/model.zip``."""
        return self.make_model_target("compat/model/model.zip", save_function=save_model, load_function=load_model)

    def run(self) -> None:
        """Dump a small 'model'."""
        self.dump({"weights": [0.5, -1.25], "bias": 3})


def format_roots() -> list[Any]:
    """Every format task."""
    source = MakeFrame()
    frames = [FrameAs(ext=ext, source=source) for ext in (".csv", ".tsv", ".json", ".parquet", ".feather", ".pkl")]
    return [source, *frames, NumpyArray(), GzipText(), FixedName(), UseSplit(), PairOutput(), ModelZip()]
