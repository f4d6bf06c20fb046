"""Methods registry: names are the papers' names in lower case with hyphens.

Every module of this package is imported here (:func:`pkgutil.iter_modules`), and each registers its
classes with the :func:`~bilevel.methods.registry.register` decorator; the registered classes are
re-exported under their class names (``from bilevel.methods import AID``). Adding a method touches only
its new module.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import HypergradientMethod, Method, ParameterError, State
from .online import OnlineMethod
from .registry import available, classes, get, make, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

globals().update({cls.__name__: cls for cls in classes()})

__all__ = ["HypergradientMethod", "Method", "OnlineMethod", "ParameterError", "State", "available", "get", "make",
           "register", *(cls.__name__ for cls in classes())]
