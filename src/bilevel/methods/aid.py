"""AID: approximate implicit differentiation (Pedregosa 2016; Ghadimi & Wang 2018; Grazzi et al. 2020).

Per outer step: T gradient steps on ``g(x, ·)`` (warm-started), then the implicit hypergradient
``∇_x f − ∇²_xy g·v`` with ``v ≈ [∇²_yy g]⁻¹ ∇_y f`` from a linear solver (``specs/fsba.md`` §9.2):

- ``solver="cg"``: conjugate gradient, ``solver_steps`` iterations max, relative tolerance
  ``solver_tol`` (hypertorch: K = 10, tol 1e-10);
- ``solver="neumann"``: ``solver_steps`` Neumann terms with step ``solver_lr`` (stocBiO's
  ``hessian_q``), always from zero;
- ``solver="fixed-point"``: ``solver_steps`` iterations of ``v ← v − solver_lr (∇²_yy g v − ∇_y f)``;
- ``solver=<callable>``: any solver with the calling convention of
  :data:`~bilevel.components.linear_solvers.SOLVERS` (recorded in ``params()`` by its qualified name).

``warm_start_v`` (our choice, default False as in hypertorch) starts CG / fixed point from the
previous ``v``. The final linear-system residual (CG) and the inner gradient norm are logged as
diagnostics: an implicit hypergradient is only as good as the inner solution.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..components.hypergradients import implicit_hypergradient
from ..components.inner_solvers import gradient_descent
from ..components.linear_solvers import SOLVERS, LinearSolver
from .base import HypergradientMethod
from .registry import register


@register
@dataclass(frozen=True)
class AID(HypergradientMethod):
    """Parameters: ``inner_steps``, ``inner_lr``, ``solver``, ``solver_steps``, ``solver_lr``,
    ``solver_tol``, ``warm_start_v``, ``outer_lr``, ``warm_start``, ``batch_size``."""

    name = "aid"
    uses_torch_func = False  # gradients and products by autograd only
    positive = (*HypergradientMethod.positive, "inner_lr", "solver_lr")
    nonnegative = ("solver_tol",)
    counts = ("inner_steps", "solver_steps")
    choices = {**HypergradientMethod.choices, "solver": SOLVERS}
    callables = ("solver",)

    inner_steps: int = 10
    inner_lr: float = 0.1
    solver: str | LinearSolver = "cg"
    solver_steps: int = 10
    solver_lr: float = 0.1
    solver_tol: float = 1e-10
    warm_start_v: bool = False

    def hypergradient(self, oracle, x, y_init, state):
        y = gradient_descent(oracle, x, y_init, self.inner_lr, self.inner_steps,
                             sampler=self.sampler(oracle, state, "g"))
        v0 = state.aux.get("v") if self.warm_start_v else None
        estimate, v, info = implicit_hypergradient(
            oracle, x, y, self.solver, self.solver_steps, solver_lr=self.solver_lr,
            solver_tol=self.solver_tol, v0=v0,
            batch_f=oracle.sample("f", self.batch_size, state.rng),
            batch_g=oracle.sample("g", self.batch_size, state.rng),
        )
        state.aux["v"] = v
        state.diagnostics["solver_iterations"] = float(info["iterations"])
        state.diagnostics["solver_residual"] = info["residual"]
        state.diagnostics["inner_grad_norm"] = info["inner_grad_norm"]
        return estimate, y
