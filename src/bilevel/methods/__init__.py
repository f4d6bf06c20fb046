"""Methods registry: names are the papers' names in lower case with hyphens."""

from __future__ import annotations

import dataclasses

from .aid import AID
from .base import HypergradientMethod, Method, ParameterError, State
from .f2ba import F2BA
from .fsba import FSBA, IFSBA, LFSBA
from .itd import ITD
from .minimax import GDA, LMCN, MCN
from .online import OAGD, OGD, SOBOW, SOGD, OnlineMethod
from .pzobo import PZOBO
from .soba import SOBA
from .zmdsba import ZMDSBA
from .zo_single_level import ZOGD, ZOAdam, ZOConservSGD, ZOSignSGD
from .zo_sogd import ZOSOGD
from .zoba import HFZOBA, ZOBA

_REGISTRY: dict[str, type[Method]] = {cls.name: cls for cls in (ITD, AID, F2BA, FSBA, IFSBA, LFSBA, GDA, MCN, LMCN,
                                                         ZOBA, HFZOBA, PZOBO, SOBA, ZMDSBA, SOGD, OGD, OAGD,
                                                         SOBOW, ZOSOGD, ZOGD, ZOAdam, ZOSignSGD, ZOConservSGD)}


def available() -> list[str]:
    """Registered method names."""
    return sorted(_REGISTRY)


def get(name: str) -> type[Method]:
    """The class registered under ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def make(name: str, **params) -> Method:
    """Instantiate a method, e.g. ``make("aid", inner_steps=50, solver="cg", solver_steps=20)``.

    Unknown parameter names raise :class:`ParameterError` listing the accepted ones.
    """
    cls = get(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ParameterError(f"{name}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(fields))}")
    return cls(**params)


def register(cls: type[Method]) -> type[Method]:
    """Register a method class under ``cls.name`` (usable as a decorator)."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


__all__ = ["AID", "ITD", "HypergradientMethod", "Method", "OnlineMethod", "ParameterError", "State",
           "available", "get", "make", "register"]
