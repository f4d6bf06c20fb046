"""The synthetic nonconvex-strongly-concave minimax problem of MCN (Luo, Li & Chen, NeurIPS 2022),
``specs/fsba.md`` §8.1 (most likely FSBA's Figure 1 [inferred]):

    f(x, y) = w(x₁) + x₂ y₁ + x₃ y₂ − y₁²/40 − 5 y₂²/2,    x ∈ R³ (min), y ∈ R² (max),
    y*(x) = (20 x₂, x₃/5),  P(x) = max_y f = w(x₁) + 10 x₂² + 0.1 x₃²,
    ∇P = (w'(x₁), 20 x₂, 0.2 x₃),  ∇²P = diag(w''(x₁), 20, 0.2),

with w the piecewise-cubic W-shaped function (parameters ε, L; s = √ε): a strict saddle at 0,
minimizers x₁ = ±(L+1)s, ``min P = −(3L+1) ε^{1.5}/3`` (= −2/375 for ε = 0.01, L = 5).
Initial points: ``init=1``: x = 0.001·(1, 1, 1) (next to the saddle); ``init=2``: x = (1, 0, 0); y₀ = 0.
"""

from __future__ import annotations

import torch

from .base import ClosedForm, MinimaxProblem
from .registry import register


def w_function(x: torch.Tensor, eps: float = 0.01, L: float = 5.0, order: int = 0) -> torch.Tensor:
    """w (order 0), w' (1) or w'' (2) at ``x`` (elementwise), branch table of §8.1 tested in order."""
    s = eps**0.5
    um, up = x + (L + 1) * s, x - (L + 1) * s
    c = (3 * L + 1) * eps**1.5 / 3
    pieces = {
        0: [s * um**2 - um**3 / 3 - c, eps * x + eps**1.5 / 3, -s * x**2 - x**3 / 3, -s * x**2 + x**3 / 3,
            -eps * x + eps**1.5 / 3, s * up**2 + up**3 / 3 - c],
        1: [2 * s * um - um**2, torch.full_like(x, eps), -2 * s * x - x**2, -2 * s * x + x**2, torch.full_like(x, -eps),
            2 * s * up + up**2],
        2: [2 * s - 2 * um, torch.zeros_like(x), -2 * s - 2 * x, -2 * s + 2 * x, torch.zeros_like(x), 2 * s + 2 * up],
    }[order]
    conditions = [x <= -L * s, x <= -s, x <= 0, x <= s, x <= L * s]
    out = pieces[-1]
    for cond, piece in zip(reversed(conditions), reversed(pieces[:-1]), strict=True):
        out = torch.where(cond, piece, out)
    return out


@register("minimax_w", limits={"init": (1, 2), "eps": "positive", "L": "positive", "seed": "counts"})
def make_minimax_w(init: int = 1, eps: float = 0.01, L: float = 5.0, dtype: torch.dtype = torch.float64,
                   device: str | torch.device = "cpu", seed: int = 0) -> MinimaxProblem:
    """The problem from initial point ``init`` (1 or 2); ``seed`` is accepted and unused (deterministic)."""
    starts = {1: [0.001, 0.001, 0.001], 2: [1.0, 0.0, 0.0]}

    def f(x, y):
        return (w_function(x[0], eps, L) + x[1] * y[0] + x[2] * y[1] - y[0] ** 2 / 40 - 2.5 * y[1] ** 2)

    def y_star(x):
        return torch.stack([20 * x[1], x[2] / 5])

    def value(x):
        return w_function(x[0], eps, L) + 10 * x[1] ** 2 + 0.1 * x[2] ** 2

    def gradient(x):
        return torch.stack([w_function(x[0], eps, L, 1), 20 * x[1], 0.2 * x[2]])

    def hessian(x):
        return torch.diag(torch.stack([w_function(x[0], eps, L, 2), torch.tensor(20.0, dtype=x.dtype),
                                       torch.tensor(0.2, dtype=x.dtype)]))

    return MinimaxProblem(
        f=f, x0=torch.tensor(starts[init], dtype=dtype, device=device), y0=torch.zeros(2, dtype=dtype, device=device),
        closed_form=ClosedForm(y_star=y_star, hypergradient=gradient, value=value),
        name=f"minimax_w[x0={init}]",
        info={"init": init, "optimal_value": -(3 * L + 1) * eps**1.5 / 3, "hyper_hessian": hessian,
              "minimizers": [[-(L + 1) * eps**0.5, 0, 0], [(L + 1) * eps**0.5, 0, 0]]},
    )
