"""FSBA, IFSBA, LFSBA: cubic-regularized Newton on the penalty hyper-objective.

Yang, Liu, Chen & Lui, "Second-Order Bilevel Optimization with Accelerated Convergence Rates",
arXiv 2605.06431. The paper's pseudo-code is not available to us; this is the reconstruction of
``specs/fsba.md`` §2–7 (every open choice a parameter). One iteration at ``x_t``:

1. ``y_t`` ← ``inner_steps`` AGD steps on ``L_λ(x_t, ·) = f + λ g`` from ``y_{t−1}`` (warm start);
2. ``z_t`` ← ``inner_steps`` AGD steps on ``g(x_t, ·)`` from ``z_{t−1}``;
3. ``g_t = ∇_x f(x_t, y_t) + λ (∇_x g(x_t, y_t) − ∇_x g(x_t, z_t))`` (penalty gradient, §2);
4. second-order information of ``L*_λ``:
   - FSBA (``hessian="exact"``): ``H_t = S(L_λ; x_t, y_t) − λ S(g; x_t, z_t)`` (Schur complements,
     three Hessians) and its eigendecomposition;
   - IFSBA (``hessian="hvp"``): never formed; products ``H_t v`` from HVPs and CG (§3);
   - LFSBA: the same, refreshed only when ``t mod period == 0`` and reused (factorization or
     anchor point) for the next ``period − 1`` iterations (lazy Hessians, Doikov et al. 2023, §5);
5. cubic step ``x_{t+1} = x_t + argmin_s ⟨g_t, s⟩ + ½ sᵀH_t s + (M/6)‖s‖³`` — exact solver (§4a) for
   explicit Hessians; for Hessian-free ones ``cubic_solver="gd"`` (gradient descent on the model, §4b,
   the default) or ``"lanczos"`` (our choice: a rank-``krylov_dim`` Lanczos factor ``H ≈ U diag(θ) Uᵀ`` of
   the penalty Hessian on K(H, g_t), and the exact cubic step against it; the lazy variant keeps the
   factor for the whole period, so a lazy step costs no second-order product at all).

Defaults: λ = 10, M = 10, K = 10 AGD steps (``specs/fsba.md`` F-2). Our choices: the AGD step on
``f + λ g`` is ``inner_lr / (1 + λ)`` (its smoothness grows like λ), the step on ``g`` is ``inner_lr``,
both with momentum ``inner_momentum``; the Hessian-free cubic solver starts from the Cauchy point and
stops at ``cubic_tol`` or ``cubic_iters``; CG of the HVP form is warm-started within a refresh period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..components.cubic import cubic_step_exact, cubic_step_gd, cubic_step_lowrank, lanczos_factor, symmetric_eig
from ..components.inner_solvers import accelerated_gradient_descent
from ..components.penalty import penalty_gradient, penalty_hessian, penalty_hvp
from ..oracle import Oracle
from .base import Method, State
from .registry import register


@register
@dataclass(frozen=True)
class FSBA(Method):
    """Fully second-order bilevel approximation (explicit penalty Hessian, exact cubic steps)."""

    name: ClassVar[str] = "fsba"
    positive: ClassVar[tuple[str, ...]] = ("lam", "M", "inner_lr", "cubic_lr")
    nonnegative: ClassVar[tuple[str, ...]] = ("cubic_tol", "cg_tol")
    counts: ClassVar[tuple[str, ...]] = ("inner_steps", "cubic_iters", "cg_steps")
    at_least_one: ClassVar[tuple[str, ...]] = ("period", "krylov_dim")
    intervals: ClassVar[dict[str, str]] = {"inner_momentum": "[0, 1)"}
    choices: ClassVar[dict[str, tuple]] = {"hessian": ("exact", "hvp"), "cubic_solver": ("gd", "lanczos")}

    lam: float = 10.0
    M: float = 10.0
    inner_steps: int = 10
    inner_lr: float = 0.1
    inner_momentum: float = 0.5
    period: int = 1
    hessian: str = "exact"
    cubic_solver: str = "gd"
    cubic_iters: int = 100
    krylov_dim: int = 10
    cubic_lr: float = 0.01
    cubic_tol: float = 1e-10
    cg_steps: int = 20
    cg_tol: float = 1e-10

    def init(self, oracle: Oracle, x0, y0, seed) -> State:
        state = super().init(oracle, x0, y0, seed)
        state.aux["z"] = y0.clone()
        return state

    def inner_solutions(self, oracle: Oracle, x, y, z):
        """AGD on ``f + λ g`` (for y) and on ``g`` (for z), warm-started."""
        lam = self.lam
        y = accelerated_gradient_descent(lambda v: oracle.grad_y("f", x, v) + lam * oracle.grad_y("g", x, v), y,
                                         self.inner_lr / (1.0 + lam), self.inner_momentum, self.inner_steps)
        z = accelerated_gradient_descent(lambda v: oracle.grad_y("g", x, v), z, self.inner_lr, self.inner_momentum,
                                         self.inner_steps)
        return y, z

    def step(self, oracle: Oracle, state: State) -> State:
        x = state.x
        y, z = self.inner_solutions(oracle, x, state.y, state.aux["z"])
        grad = penalty_gradient(oracle, x, y, z, self.lam)
        refresh = state.k % self.period == 0
        if self.hessian == "exact":
            if refresh or "eig" not in state.aux:
                state.aux["eig"] = symmetric_eig(penalty_hessian(oracle, x, y, z, self.lam))
                state.diagnostics["penalty_hessian_min_eig"] = float(state.aux["eig"][0][0])
            s = cubic_step_exact(grad, None, self.M, eig=state.aux["eig"])
        else:
            if refresh or "anchor" not in state.aux:
                state.aux["anchor"] = (x, y, z)
                state.aux["cg_warm"] = {}
            xa, ya, za = state.aux["anchor"]

            def hvp(v):
                return penalty_hvp(oracle, xa, ya, za, self.lam, v, self.cg_steps, self.cg_tol, warm=state.aux["cg_warm"])

            if self.cubic_solver == "lanczos":  # lazy: the rank-k factor is kept for the whole period
                if refresh or "lowrank" not in state.aux:
                    theta, U, products = lanczos_factor(grad, hvp, self.krylov_dim)
                    state.aux["lowrank"] = (theta, U)
                else:
                    products = 0
                s = cubic_step_lowrank(grad, *state.aux["lowrank"], self.M)
            else:
                s, products = cubic_step_gd(grad, hvp, self.M, self.cubic_lr, self.cubic_iters, self.cubic_tol,
                                            generator=state.rng)
            state.diagnostics["cubic_products"] = float(products)
        state.diagnostics["step_norm"] = float(torch.linalg.vector_norm(s))
        state.hypergradient = (x, grad)
        state.x = x + s
        state.y, state.aux["z"] = y, z
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class IFSBA(FSBA):
    """Hessian-free FSBA: penalty-Hessian products from HVPs + CG, cubic model solved by gradient descent."""

    name: ClassVar[str] = "ifsba"
    hessian: str = "hvp"


@register
@dataclass(frozen=True)
class LFSBA(FSBA):
    """Lazy FSBA: the penalty Hessian (and its eigendecomposition) refreshed every ``period`` iterations."""

    name: ClassVar[str] = "lfsba"
    period: int = 10
