"""Methods for ``min_x max_y f(x, y)`` (f strongly concave in y): GDA, MCN and LMCN.

They use only the level ``"f"`` of the oracle (a :class:`~bilevel.problems.MinimaxProblem` runs as a
bilevel problem with lower level ``−f``, see ``MinimaxProblem.as_bilevel``).

- **GDA** (``specs/fsba.md`` §8.2): simultaneous ``x ← x − lr_x ∇_x f``, ``y ← y + lr_y ∇_y f`` at
  the old point (two gradients per iteration, as counted by the reference code).
- **MCN** (Luo, Li & Chen, NeurIPS 2022; §8.2 as coded): ``y`` ← ``inner_steps`` AGD ascent steps
  on f(x, ·) (η = 0.1, θ = 0.9, K = 8, warm start); gradient ``∇_x f`` at the AGD output; the
  Hessian of P(x) = max_y f as the Schur complement ``f_xx − f_xy f_yy⁻¹ f_yx`` at (x, y); cubic step
  with M = 10 solved per coordinate on the diagonal of that Hessian (``cubic_solver="separable"``,
  MCN's ``fmin3``: exact only when the Hessian is diagonal, as on the problem of §8.1) or exactly
  (``"exact"``).
- **LMCN** (lazy MCN, FSBA paper): MCN whose second-order information (the Schur complement and
  its eigendecomposition) is recomputed only when ``t mod period == 0``, at the current (x, y), and
  reused for the next ``period − 1`` cubic steps (``specs/fsba.md`` §5, §7); exact cubic solver.
  Reconstruction: the paper's pseudo-code is not available to us; ``period`` defaults to 10 (F-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..components.cubic import cubic_step_exact, cubic_step_separable, symmetric_eig
from ..components.inner_solvers import accelerated_gradient_descent
from ..components.penalty import schur_complement
from ..oracle import Oracle
from .base import Method, State
from .registry import register


def concave_schur_complement(blocks: dict[str, torch.Tensor]) -> torch.Tensor:
    """``∇²P = f_xx − f_xy f_yy⁻¹ f_yx`` for f strongly concave in y, symmetrised."""
    h = schur_complement(blocks, concave=True)
    return 0.5 * (h + h.T)


@register
@dataclass(frozen=True)
class GDA(Method):
    """Simultaneous gradient descent–ascent."""

    name: ClassVar[str] = "gda"
    problem_kind: ClassVar[str] = "minimax"
    positive: ClassVar[tuple[str, ...]] = ("lr_x", "lr_y")

    lr_x: float = 0.01
    lr_y: float = 0.1

    def step(self, oracle: Oracle, state: State) -> State:
        gx = oracle.grad_x("f", state.x, state.y)
        gy = oracle.grad_y("f", state.x, state.y)
        state.hypergradient = (state.x, gx)
        state.x, state.y = state.x - self.lr_x * gx, state.y + self.lr_y * gy
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class MCN(Method):
    """Minimax cubic-regularized Newton (MCN as coded: per-coordinate cubic solver, K = 8 AGD steps)."""

    name: ClassVar[str] = "mcn"
    problem_kind: ClassVar[str] = "minimax"
    positive: ClassVar[tuple[str, ...]] = ("M", "inner_lr")
    counts: ClassVar[tuple[str, ...]] = ("inner_steps",)
    at_least_one: ClassVar[tuple[str, ...]] = ("period",)
    intervals: ClassVar[dict[str, str]] = {"inner_momentum": "[0, 1)"}
    choices: ClassVar[dict[str, tuple]] = {"cubic_solver": ("separable", "exact")}

    M: float = 10.0
    inner_steps: int = 8
    inner_lr: float = 0.1
    inner_momentum: float = 0.9
    period: int = 1
    cubic_solver: str = "separable"

    def step(self, oracle: Oracle, state: State) -> State:
        x = state.x
        y = accelerated_gradient_descent(lambda v: -oracle.grad_y("f", x, v), state.y, self.inner_lr,
                                         self.inner_momentum, self.inner_steps)
        grad = oracle.grad_x("f", x, y)
        if state.k % self.period == 0 or "hessian" not in state.aux:
            hessian = concave_schur_complement(oracle.hessian("f", x, y))
            state.aux["hessian"] = hessian
            state.aux["eig"] = symmetric_eig(hessian) if self.cubic_solver == "exact" else None
            lam_min = state.aux["eig"][0][0] if state.aux["eig"] is not None else torch.linalg.eigvalsh(hessian)[0]
            state.diagnostics["schur_min_eig"] = float(lam_min)
        if self.cubic_solver == "exact":
            s = cubic_step_exact(grad, None, self.M, eig=state.aux["eig"])
        else:
            s = cubic_step_separable(grad, torch.diagonal(state.aux["hessian"]), self.M)
        state.hypergradient = (x, grad)
        state.x, state.y = x + s, y
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class LMCN(MCN):
    """Lazy MCN: the Schur-complement Hessian refreshed every ``period`` iterations; exact cubic steps."""

    name: ClassVar[str] = "lmcn"
    period: int = 10
    cubic_solver: str = "exact"
