"""Paper figures as data: registry of experiments (jobs, plots, claims) and config checks.

The experiments are the module-level :class:`Experiment` objects of this package's modules, found by
:mod:`.registry` (see there: a new experiment needs its module and its configuration entry only).
"""

from __future__ import annotations

from . import config as _config
from .base import Claim, Experiment, Verdict, aggregate
from .config import ConfigError
from .registry import available, get


def check_config(config: dict) -> dict:
    """Check every experiment of ``config`` (against the registered ones) and its data section; return it
    unchanged (for chaining). Raises :class:`ConfigError` naming the key of the first invalid entry."""
    return _config.check_config(config, get)


__all__ = ["Claim", "ConfigError", "Experiment", "Verdict", "aggregate", "available", "check_config", "get"]
