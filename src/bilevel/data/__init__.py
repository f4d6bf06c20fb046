"""Datasets of the three papers: registry, verified cache, readers of the official formats, offline routes.

>>> from bilevel import data
>>> ds = data.load("breast-cancer")          # official file if cached/seeded, else exact rebuild
>>> ds["all"]["x"].shape, ds.label, ds.record()["files"]

See :mod:`bilevel.data.store` for the lookup order and the ``BILEVEL_DATA_DIR`` /
``BILEVEL_DATA_SEED_DIRS`` environment variables, and README "Datasets".
"""

import importlib

from .errors import ChecksumError, DataError, MissingDataError
from .registry import DATASETS, DatasetSpec, FileSpec, available, get
from .store import DataStore, Located, checksums

#: loaded on first use (:mod:`.datasets` imports torch; the registry and the store do not)
_FROM_DATASETS = ("Dataset", "configure", "load", "track_usage")

__all__ = ["DATASETS", "ChecksumError", "DataError", "DataStore", "Dataset", "DatasetSpec", "FileSpec", "Located",
           "MissingDataError", "available", "checksums", "configure", "get", "load",
           "track_usage"]


def __getattr__(name: str):
    if name in _FROM_DATASETS:
        return getattr(importlib.import_module(".datasets", __name__), name)
    raise AttributeError(f"module 'bilevel.data' has no attribute {name!r}")
