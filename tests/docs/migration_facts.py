"""Measure, for gokart or kart, the behaviours docs/migration.md describes; print them as JSON.

Usage: ``python migration_facts.py gokart|kart`` in an empty directory. Runs in its own process
because both libraries register task classes in luigi's one registry.
"""

from __future__ import annotations

import importlib
import json
import logging
import random
import sys

import luigi
import pandas as pd
import pyarrow.parquet as pq
from luigi import task_register

gokart = importlib.import_module("gokart" if sys.argv[1] == "gokart" else "kart_core")


class Params(gokart.TaskOnKart):
    size = luigi.IntParameter(default=3)

    def run(self):
        self.task_log["note"] = "from run"
        Params.warning_enabled_in_run = logging.getLogger("my_pipeline").isEnabledFor(logging.WARNING)
        self.dump(self.size)


class SeedZero(gokart.TaskOnKart):
    def run(self):
        self.dump(random.random())


class SeedSeven(gokart.TaskOnKart):
    def run(self):
        self.dump(random.random())


class Parquet(gokart.TaskOnKart):
    def output(self):
        return self.make_target("table.parquet")

    def run(self):
        self.dump(pd.DataFrame({"x": range(10)}))


class BigFrame(gokart.TaskOnKart):
    def output(self):
        return self.make_large_data_frame_target("big.zip", max_byte=8000)

    def run(self):
        self.dump(pd.DataFrame({"x": range(20000)}))


def facts() -> dict[str, object]:
    """Everything migration.md claims about one library."""
    disabled_before = logging.root.manager.disable
    gokart.build(Params())
    logging_changed = logging.root.manager.disable != disabled_before
    gokart.build(SeedZero(fix_random_seed_value=0))
    gokart.build(Parquet())
    seed_log = SeedZero(fix_random_seed_value=0).make_target("log/random_seed/SeedZero.pkl").load()
    module_versions = Params().make_target("log/module_versions/Params.txt").load()
    parquet_path = Parquet().output().path()
    big = gokart.build(BigFrame())
    gokart.build(SeedSeven(fix_random_seed_value=7))
    try:
        Params().make_target("table.xlsx")
        unknown_extension: list[str] = []
    except Exception as exc:
        unknown_extension = [klass.__name__ for klass in type(exc).__mro__]
    try:
        task_register.Register.get_task_cls("Params")
        registered = True
    except Exception:
        registered = False
    return {
        "unique_id": Params().make_unique_id(),
        "get_task_params": Params().get_task_params(),
        "module_versions_lines": len([line for line in module_versions if line.strip()]),
        "seed_with_value_zero": seed_log["seed"],
        "first_draw_with_seed_zero": SeedZero(fix_random_seed_value=0).output().load(),
        "expected_first_draw": random.Random(0).random(),
        "first_draw_with_seed_7": SeedSeven(fix_random_seed_value=7).output().load(),
        "expected_draw_with_seed_7": random.Random(7).random(),
        "unknown_extension_error": unknown_extension,
        "large_frame_rows_in_order": bool(big.x.is_monotonic_increasing) and len(big) == 20000,
        "parquet_compression": pq.ParquetFile(parquet_path).metadata.row_group(0).column(0).compression,
        "warning_enabled_in_run": Params.warning_enabled_in_run,
        "logging_disable_changed_by_build": logging_changed,
        "user_class_registered_after_build": registered,
    }


if __name__ == "__main__":
    print(json.dumps(facts(), default=str))
