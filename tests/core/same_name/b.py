"""Module b of the same-name pair: its SnModel dumps "from b"; its SnUse reads its own module's SnModel."""

from __future__ import annotations

from typing import Any

import luigi
import pandas as pd

import kart_core


class SnModel(kart_core.TaskOnKart[Any]):
    """An output under a path without the module (``make_target``): shared with the other module's SnModel."""

    size = luigi.IntParameter(default=3)

    def output(self) -> Any:
        return self.make_target("same_name/model.pkl")

    def run(self) -> None:
        self.dump({"module": "b", "values": list(range(self.size))})


class SnUse(kart_core.TaskOnKart[Any]):
    """Needs this module's SnModel (a default output path: under the module's folder, not shared)."""

    model = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("model")["module"])


class SnTable(kart_core.TaskOnKart[Any]):
    """A csv DataFrame under a path without the module: shared with the other module's SnTable."""

    def output(self) -> Any:
        return self.make_target("same_name/table.csv")

    def run(self) -> None:
        self.dump(pd.DataFrame({"module": ["b"], "value": [1]}))
