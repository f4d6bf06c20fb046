"""Problems: data plus pure torch functions; a registry of the built-in ones."""

from __future__ import annotations

from collections.abc import Callable

from .attack import make_blackbox_attack
from .base import BilevelProblem, ClosedForm, MinimaxProblem
from .cleaning import make_data_cleaning
from .fewshot import make_few_shot
from .logistic import make_l2_logistic
from .loss_tuning import make_online_loss_tuning
from .minimax_w import make_minimax_w
from .online import BilevelStream, make_online_quadratic
from .online_attack import make_online_attack
from .quadratic import make_quadratic
from .regularization import make_feature_regularization
from .saddle import make_strict_saddle

_REGISTRY: dict[str, Callable[..., BilevelProblem | MinimaxProblem | BilevelStream]] = {
    "quadratic": make_quadratic,
    "l2_logistic": make_l2_logistic,
    "strict_saddle": make_strict_saddle,
    "minimax_w": make_minimax_w,
    "blackbox_attack": make_blackbox_attack,
    "data_cleaning": make_data_cleaning,
    "feature_regularization": make_feature_regularization,
    "few_shot": make_few_shot,  # episodic: a new meta-batch of tasks every outer step
    "online_quadratic": make_online_quadratic,  # streams of problems (bilevel.online.run_online)
    "online_attack": make_online_attack,
    "online_loss_tuning": make_online_loss_tuning,
}


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(_REGISTRY)


def make(name: str, **params) -> BilevelProblem | MinimaxProblem:
    """Build a registered problem, e.g. ``make("quadratic", dim_inner=20, dim_outer=10, seed=0)``."""
    return get_factory(name)(**params)


def get_factory(name: str) -> Callable[..., BilevelProblem | MinimaxProblem]:
    """The factory registered under ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown problem {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def register(name: str, factory: Callable[..., BilevelProblem | MinimaxProblem]) -> None:
    """Add a problem factory under ``name`` (used by later modules and by users)."""
    if name in _REGISTRY:
        raise ValueError(f"problem {name!r} is already registered")
    _REGISTRY[name] = factory


__all__ = ["BilevelProblem", "BilevelStream", "ClosedForm", "MinimaxProblem", "make_online_quadratic",
           "available", "get_factory", "make", "register"]
