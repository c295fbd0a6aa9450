"""kart_kedro: kart tasks in Kedro — catalog datasets, kart graphs as pipelines, and a node cache.

- ``TaskOnKartDataset``: a catalog entry whose data is a kart task's cached output.
- ``RawFile``: a kart task standing for a raw input file, versioned by its md5 (so readers rerun).
- ``to_pipeline(tasks)``: a kart graph as a Kedro ``Pipeline`` (nodes run through ``kart_core.run_one``).
- ``KartRunner`` / ``KartThreadRunner`` / ``KartParallelRunner``: ``kedro run --runner
  kart_kedro.KartRunner`` skips nodes whose code (with the project code it calls), parameters and
  inputs are unchanged, loading their outputs from the kart cache; ``code_version`` pins a function's
  code fingerprint.

Entry points: ``kedro.hooks`` (``kart_kedro.hooks:hooks``, declares to_pipeline edges in the catalog)
and ``kedro.project_commands`` (``kart_kedro.cli:commands``, ``kedro kart list|clear``).
"""

from kart_core import code_version
from kart_kedro._receipt import KartReceipt
from kart_kedro.dataset import TaskOnKartDataset
from kart_kedro.pipeline import to_pipeline
from kart_kedro.pipeline_run import CODE_VERSION_TAG, NO_CACHE_TAG
from kart_kedro.raw_file import RawFile
from kart_kedro.receipt_dataset import TaskReceiptDataset
from kart_kedro.runner import KartParallelRunner, KartRunner, KartThreadRunner

__all__ = [
    "CODE_VERSION_TAG",
    "NO_CACHE_TAG",
    "KartParallelRunner",
    "KartReceipt",
    "KartRunner",
    "KartThreadRunner",
    "RawFile",
    "TaskOnKartDataset",
    "TaskReceiptDataset",
    "code_version",
    "to_pipeline",
]
