"""Problems: data plus pure torch functions; a registry of the built-in ones.

Every module of this package is imported here (:func:`pkgutil.iter_modules`), and each registers its
factory with ``@register("name")`` (:mod:`~bilevel.problems.registry`); the registered factories are
re-exported under their function names (``from bilevel.problems import make_online_quadratic``).
Adding a problem touches only its new module.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import BilevelProblem, ClosedForm, MinimaxProblem
from .online import BilevelStream
from .registry import available, factories, get_factory, make, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

globals().update({fn.__name__: fn for fn in factories()})

__all__ = ["BilevelProblem", "BilevelStream", "ClosedForm", "MinimaxProblem", "available", "get_factory", "make",
           "register", *(fn.__name__ for fn in factories())]
