"""bilevel: reproducible bilevel optimization methods (ITD, AID, and the methods of the ZOBA, SOGD and FSBA papers).

Public API::

    import bilevel
    problem = bilevel.problems.make("quadratic", dim_inner=20, dim_outer=10, seed=0)
    method = bilevel.methods.make("aid", inner_steps=50, solver="cg", solver_steps=20)
    result = bilevel.run(method, problem, max_iters=200, eval_every=10, seed=0)
    result.x, result.y, result.trace

The names below are loaded on first use (``bilevel.methods`` imports torch; the workflow's bookkeeping
jobs -- aggregates, figures, claims -- import ``bilevel.experiments`` and ``bilevel.plotting`` without it).
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

#: public name -> (submodule, attribute or None for the submodule itself)
_PUBLIC = {
    "BilevelProblem": ("problems", "BilevelProblem"),
    "ClosedForm": ("problems", "ClosedForm"),
    "MinimaxProblem": ("problems", "MinimaxProblem"),
    "Oracle": ("oracle", "Oracle"),
    "RunResult": ("run", "RunResult"),
    "data": ("data", None),
    "methods": ("methods", None),
    "problems": ("problems", None),
}

__all__ = [*sorted(_PUBLIC), "run", "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'bilevel' has no attribute {name!r}")
    module, attr = _PUBLIC[name]
    mod = importlib.import_module(f".{module}", __name__)
    return mod if attr is None else getattr(mod, attr)


def __dir__():
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """``bilevel.run`` is the function :func:`bilevel.run.run`, also after the submodule of the same name
    was imported (the import system then sets the package attribute to the submodule: ignored here)."""

    @property
    def run(self):
        return importlib.import_module(".run", __name__).run

    @run.setter
    def run(self, value) -> None:
        pass


sys.modules[__name__].__class__ = _Package
