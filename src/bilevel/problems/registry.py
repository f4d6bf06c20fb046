"""The problem registry: each problem module registers its factory with ``@register("name", limits={...})``,
and :mod:`bilevel.problems` imports every module of the package, so a new problem touches only its own module.

``limits`` declares the valid values of the factory's parameters (:mod:`bilevel.limits`). The registered
callable checks them before it builds anything, and :func:`check_params` applies the same declaration to a
configuration without building (the workflow's parse-time check): one source of truth. The built problem
carries its construction in ``info["construction"]`` -- the registry name, every resolved parameter
(defaults included) and the checksums of the data it loaded -- which is what a checkpoint's resume key
covers (:class:`bilevel.run.Checkpoint`).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..limits import Limit, ParameterError, check_values

#: a problem factory: keyword parameters -> a BilevelProblem, MinimaxProblem or BilevelStream (this module
#: imports no problem module: they all import it)
Factory = Callable[..., Any]
_REGISTRY: dict[str, Factory] = {}


def _plain(value):
    """A JSON value of a parameter (dtypes and devices as their names, tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


def _data_identity(records: list[dict]) -> list[dict]:
    return [{"dataset": r.get("dataset"), "files": [f.get("sha256") for f in r.get("files", [])],
             "arrays": r.get("array_sha256")} for r in records]


def _checked(name: str, fn: Factory, limits: Mapping[str, Limit]) -> Factory:
    """``fn`` behind the limit check, recording its construction on the problem it returns."""
    signature = inspect.signature(fn)
    undeclared = sorted(set(limits) - set(signature.parameters))
    if undeclared:
        raise ValueError(f"problem {name!r}: limits declared for parameters it does not take: {', '.join(undeclared)}")

    @functools.wraps(fn)
    def build(*args, **kwargs):
        from .. import data  # here: the registry is imported by every problem module, data by few

        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            accepted = ", ".join(signature.parameters)
            raise TypeError(f"problem {name}: {err}; accepted: {accepted}") from None
        bound.apply_defaults()
        check_values(f"problem {name}", bound.arguments, limits)
        with data.track_usage() as used:
            built = fn(*bound.args, **bound.kwargs)
        info = getattr(built, "info", None)
        if isinstance(info, dict):
            info["construction"] = {"problem": name, "params": _plain(dict(bound.arguments)),
                                    "data": _data_identity(used)}
        return built

    build.limits = dict(limits)
    build.problem_name = name
    return build


def register(name: str, factory: Factory | None = None, *, limits: Mapping[str, Limit] | None = None):
    """Add a problem factory under ``name``: ``register("mine", make_mine)``, or ``@register("mine")`` on
    the factory; returns the registered callable (the factory behind its limit check; the decorator form:
    the decorator). ``limits``: parameter -> declared limit (:mod:`bilevel.limits`)."""

    def add(fn: Factory) -> Factory:
        if name in _REGISTRY and getattr(_REGISTRY[name], "__wrapped__", None) is not fn:
            raise ValueError(f"problem {name!r} is already registered")
        _REGISTRY[name] = _checked(name, fn, limits or {})
        return _REGISTRY[name]

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


def check_params(name: str, params: Mapping) -> None:
    """The declared limits of problem ``name`` applied to ``params`` (no building): raises
    :class:`~bilevel.limits.ParameterError` naming the parameter, ``KeyError`` for an unknown problem."""
    factory = get_factory(name)
    check_values(f"problem {name}", params, getattr(factory, "limits", {}))


def make(name: str, **params):
    """Build a registered problem, e.g. ``make("quadratic", dim_inner=20, dim_outer=10, seed=0)``."""
    return get_factory(name)(**params)


__all__ = ["Factory", "ParameterError", "available", "check_params", "factories", "get_factory", "make", "register"]
