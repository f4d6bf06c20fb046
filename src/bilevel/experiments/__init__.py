"""Paper figures as data: registry of experiments (jobs, plots, claims) and config checks."""

from __future__ import annotations

from .base import Claim, Experiment, Verdict, aggregate
from .config import ConfigError, check_config
from .fsba_cleaning import FIGURE2 as FSBA_FIGURE2
from .fsba_cleaning import FIGURE3 as FSBA_FIGURE3
from .fsba_cleaning import FIGURE5 as FSBA_FIGURE5
from .fsba_cleaning import FIGURE6B as FSBA_FIGURE6B
from .fsba_cleaning import FIGURE7 as FSBA_FIGURE7
from .fsba_cleaning import FIGURE8 as FSBA_FIGURE8
from .fsba_meta import FIGURE4 as FSBA_FIGURE4
from .hypergradient_estimators import LOGISTIC, QUADRATIC
from .minimax_cubic import FIGURE1 as FSBA_FIGURE1
from .minimax_cubic import FIGURE6A as FSBA_FIGURE6A
from .sogd import REGRET as SOGD_REGRET
from .sogd_online import ATTACK as SOGD_ATTACK
from .sogd_online import LOSS_TUNING as SOGD_LOSS_TUNING
from .sogd_online import SWEEPS as SOGD_SWEEPS
from .zoba import ATTACK as ZOBA_ATTACK
from .zoba import DIMENSIONS as ZOBA_DIMENSIONS
from .zoba import QUADRATIC as ZOBA_QUADRATIC

_REGISTRY: dict[str, Experiment] = {e.name: e for e in (
    QUADRATIC, LOGISTIC, FSBA_FIGURE1, FSBA_FIGURE2, FSBA_FIGURE3, FSBA_FIGURE4, FSBA_FIGURE5, FSBA_FIGURE6A, FSBA_FIGURE6B,
    FSBA_FIGURE7, FSBA_FIGURE8, ZOBA_QUADRATIC, ZOBA_DIMENSIONS, ZOBA_ATTACK, SOGD_REGRET, SOGD_ATTACK,
    SOGD_LOSS_TUNING, SOGD_SWEEPS)}


def available() -> list[str]:
    """Registered experiment names."""
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The experiment registered under ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown experiment {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


__all__ = ["Claim", "ConfigError", "Experiment", "Verdict", "aggregate", "available", "check_config", "get"]
