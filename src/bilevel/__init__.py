"""bilevel: reproducible bilevel optimization methods (ITD, AID, and the methods of the ZOBA, SOGD and FSBA papers).

Public API::

    import bilevel
    problem = bilevel.problems.make("quadratic", dim_inner=20, dim_outer=10, seed=0)
    method = bilevel.methods.make("aid", inner_steps=50, solver="cg", solver_steps=20)
    result = bilevel.run(method, problem, max_iters=200, eval_every=10, seed=0)
    result.x, result.y, result.trace
"""

from . import data, methods, problems
from .oracle import Oracle
from .problems import BilevelProblem, ClosedForm, MinimaxProblem
from .run import RunResult, run

__version__ = "0.1.0"

__all__ = ["BilevelProblem", "ClosedForm", "MinimaxProblem", "Oracle", "RunResult", "data", "methods", "problems", "run",
           "__version__"]
