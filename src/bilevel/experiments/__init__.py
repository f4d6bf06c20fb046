"""Paper figures as data: registry of experiments (jobs, plots, claims) and config checks.

The experiments are the module-level :class:`Experiment` objects of this package's modules, found by
:mod:`.registry` (see there: a new experiment needs its module and its configuration entry only).
"""

from __future__ import annotations

from . import config as _config
from . import tuning
from .base import Claim, Experiment, Verdict, aggregate
from .config import ConfigError
from .registry import available, get


def check_config(config: dict) -> dict:
    """Check every experiment of ``config`` (against the registered ones) and its data section; return it
    unchanged (for chaining); tuning stages too (:func:`.tuning.check_tuning`).
    Raises :class:`ConfigError` naming the key of the first invalid entry."""
    _config.check_config(config, get)
    for name, exp_cfg in config["experiments"].items():
        if tuning.tuned(exp_cfg):
            tuning.check_tuning(name, exp_cfg)
    return config


__all__ = ["Claim", "ConfigError", "Experiment", "Verdict", "aggregate", "available", "check_config", "get"]
