"""A nonconvex-strongly-convex bilevel problem whose hyper-objective has a strict saddle at x = 0.

    g(x, y) = ½ ‖y − x‖²               (1-strongly convex in y; y*(x) = x)
    f(x, y) = ¼ y₁⁴ − ½ y₁² + ½ Σ_{j≥2} y_j²
    Ψ(x) = f(x, x):  ∇Ψ(0) = 0, ∇²Ψ(0) = diag(−1, 1, …, 1) (strict saddle);
                     minimizers x₁ = ±1, x_{j≥2} = 0 with ∇²Ψ = diag(2, 1, …, 1) ≻ 0, Ψ* = −¼.

Built for the test "a second-order method started at the saddle leaves it; gradient descent does not"
(``specs/fsba.md`` §1: FSBA reaches (ε, O(√ε)) second-order stationary points). ``x0 = y0 = 0``.
"""

from __future__ import annotations

import torch

from .base import BilevelProblem, ClosedForm
from .registry import register


def _f(y):
    return 0.25 * y[0] ** 4 - 0.5 * y[0] ** 2 + 0.5 * torch.sum(y[1:] ** 2)


@register("strict_saddle", limits={"dim": "at_least_one", "seed": "counts"})
def make_strict_saddle(dim: int = 2, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                       seed: int = 0) -> BilevelProblem:
    """The problem above with ``dim`` outer and inner variables (``seed`` is accepted and unused: no randomness)."""

    def f(x, y):
        return _f(y)

    def g(x, y):
        return 0.5 * torch.sum((y - x) ** 2)

    def hessian(x):
        return torch.diag(torch.cat([3 * x[:1] ** 2 - 1, torch.ones(dim - 1, dtype=x.dtype, device=x.device)]))

    zeros = torch.zeros(dim, dtype=dtype, device=device)
    return BilevelProblem(
        f=f, g=g, x0=zeros, y0=zeros, name="strict_saddle",
        closed_form=ClosedForm(y_star=lambda x: x.detach().clone(),
                               hypergradient=lambda x: torch.cat([x[:1] ** 3 - x[:1], x[1:]]),
                               value=lambda x: _f(x)),
        info={"dim": dim, "optimal_value": -0.25, "hyper_hessian": hessian},
    )
