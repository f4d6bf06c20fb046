"""The method registry: every method module registers its classes with :func:`register`, and
:mod:`bilevel.methods` imports every module of the package, so a new method touches only its own module."""

from __future__ import annotations

import dataclasses

from .base import Method, ParameterError

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Register a method class under ``cls.name`` (a class decorator)."""
    if "name" not in vars(cls):
        raise ValueError(f"{cls.__qualname__} sets no name of its own: it would be registered under {cls.name!r}")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Registered method names."""
    return sorted(_REGISTRY)


def classes() -> list[type[Method]]:
    """The registered classes, by name."""
    return [_REGISTRY[name] for name in available()]


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
