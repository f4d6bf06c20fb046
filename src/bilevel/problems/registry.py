"""The problem registry: each problem module registers its factory with ``@register("name")``, and
:mod:`bilevel.problems` imports every module of the package, so a new problem touches only its own module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: a problem factory: keyword parameters -> a BilevelProblem, MinimaxProblem or BilevelStream (this module
#: imports no problem module: they all import it)
Factory = Callable[..., Any]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory | None = None):
    """Add a problem factory under ``name``: ``register("mine", make_mine)``, or ``@register("mine")`` on
    the factory; returns the factory (the decorator form: the decorator)."""

    def add(fn: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"problem {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return add if factory is None else add(factory)


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(_REGISTRY)


def factories() -> list[Factory]:
    """The registered factories, by name."""
    return [_REGISTRY[name] for name in available()]


def get_factory(name: str) -> Factory:
    """The factory registered under ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown problem {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def make(name: str, **params):
    """Build a registered problem, e.g. ``make("quadratic", dim_inner=20, dim_outer=10, seed=0)``."""
    return get_factory(name)(**params)
