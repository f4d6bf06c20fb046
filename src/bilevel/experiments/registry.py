"""The registry of experiments: every module of this package that defines module-level :class:`~.base.Experiment`
objects registers them under their names, so adding an experiment touches its module and its configuration
entry only.

Modules are found on the first lookup (importing a figure module does not load the others). The
infrastructure modules below define no experiment and are not imported by the lookup; experiment modules
must not import this module or the package (they sit below it: the registry imports them).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .base import Experiment

#: modules of this package that hold no experiment (the lookup does not import them)
INFRASTRUCTURE = frozenset({"base", "config", "jobs", "pipeline", "registry", "runtimes", "tuning", "zoba_reference"})

_REGISTRY: dict[str, Experiment] = {}


def experiment_modules() -> list[str]:
    """Names of the modules the registry collects experiments from (every module of the package, in name
    order, but the infrastructure modules, subpackages and private modules)."""
    found = pkgutil.iter_modules([str(Path(__file__).resolve().parent)])
    return sorted(m.name for m in found if not m.ispkg and m.name not in INFRASTRUCTURE and not m.name.startswith("_"))


def _collect() -> dict[str, Experiment]:
    registry: dict[str, Experiment] = {}
    for name in experiment_modules():
        module = importlib.import_module(f"{__package__}.{name}")
        for value in vars(module).values():
            if isinstance(value, Experiment):
                if registry.setdefault(value.name, value) is not value:
                    raise ValueError(f"experiment {value.name!r} is defined twice (second one in {module.__name__})")
    return registry


def _registry() -> dict[str, Experiment]:
    if not _REGISTRY:
        _REGISTRY.update(_collect())
    return _REGISTRY


def available() -> list[str]:
    """Registered experiment names."""
    return sorted(_registry())


def get(name: str) -> Experiment:
    """The experiment registered under ``name``."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown experiment {name!r}; available: {', '.join(available())}")
    return registry[name]
