"""The penalty hyper-objective of F2BA / FSBA, ``specs/fsba.md`` §2–3:

    L*_λ(x) = min_y [f(x, y) + λ g(x, y)] − λ min_z g(x, z),

approximating Ψ(x) = f(x, y*(x)) with value, gradient and Hessian errors O(1/λ). With
``y ≈ y*_λ(x)`` and ``z ≈ y*(x)`` (inner solutions, e.g. from AGD):

- gradient (envelope theorem): ``∇L*_λ = ∇_x f(x, y) + λ [∇_x g(x, y) − ∇_x g(x, z)]``;
- Hessian: ``S(L_λ; x, y) − λ S(g; x, z)`` with the Schur complement
  ``S(H) = H_xx − H_xy H_yy⁻¹ H_yx``. Both terms are O(λ) and nearly cancel: float64, Cholesky solves
  (never an inverse), symmetrised result;
- Hessian-vector product without forming any matrix (IFSBA, §3): ``H v = (L_λ)_xx v − (L_λ)_xy u1 −
  λ [g_xx v − g_xy u2]``, ``u1 = (L_λ)_yy⁻¹ (L_λ)_yx v`` and ``u2 = g_yy⁻¹ g_yx v`` by conjugate gradient.
"""

from __future__ import annotations

import torch

from ..oracle import Oracle
from .linear_solvers import conjugate_gradient


def penalty_value(oracle: Oracle, x, y, z, lam: float, batch=None) -> torch.Tensor:
    """``f(x, y) + λ (g(x, y) − g(x, z))`` (equals L*_λ(x) at the exact inner solutions)."""
    return oracle.value("f", x, y, batch) + lam * (oracle.value("g", x, y, batch) - oracle.value("g", x, z, batch))


def penalty_gradient(oracle: Oracle, x, y, z, lam: float, batch=None) -> torch.Tensor:
    """``∇_x f(x, y) + λ [∇_x g(x, y) − ∇_x g(x, z)]``."""
    return oracle.grad_x("f", x, y, batch) + lam * (oracle.grad_x("g", x, y, batch) - oracle.grad_x("g", x, z, batch))


def schur_complement(blocks: dict[str, torch.Tensor], concave: bool = False) -> torch.Tensor:
    """``H_xx − H_xy H_yy⁻¹ H_yx`` by a Cholesky solve: of ``H_yy`` (positive definite: min over y) or,
    with ``concave=True``, of ``−H_yy`` (max over y, e.g. ``∇²P`` of a minimax problem)."""
    sign = -1.0 if concave else 1.0
    chol, info = torch.linalg.cholesky_ex(sign * blocks["yy"])
    if int(info) != 0:
        what = "−f_yy is not positive definite (f not strongly concave in y)" if concave else \
            "the y-y block is not positive definite: increase λ or check strong convexity in y"
        raise ValueError(what)
    return blocks["xx"] - sign * blocks["xy"] @ torch.cholesky_solve(blocks["yx"], chol)


def penalty_hessian(oracle: Oracle, x, y, z, lam: float, batch=None) -> torch.Tensor:
    """``S(f + λ g; x, y) − λ S(g; x, z)``, symmetrised (3 Hessian evaluations)."""
    hf, hg_y, hg_z = oracle.hessian("f", x, y, batch), oracle.hessian("g", x, y, batch), oracle.hessian("g", x, z, batch)
    h = schur_complement({k: hf[k] + lam * hg_y[k] for k in hf}) - lam * schur_complement(hg_z)
    return 0.5 * (h + h.T)


def penalty_hvp(oracle: Oracle, x, y, z, lam: float, v, cg_steps: int = 50, cg_tol: float = 1e-10,
                batch=None, warm: dict | None = None) -> torch.Tensor:
    """``∇²L*_λ · v`` from Hessian-vector products only (CG for the two y-y systems).

    ``warm`` (a dict, updated in place) keeps the previous ``u1``, ``u2`` as CG starting points.
    """
    zeros_y = torch.zeros_like(y)
    # (L_λ)_yx v and g_yx v at their points: the y-part of the joint HVP with direction (v, 0)
    _, ly_x = oracle.hvp("f", x, y, dx=v, dy=zeros_y, batch=batch)
    _, gy_x = oracle.hvp("g", x, y, dx=v, dy=zeros_y, batch=batch)
    rhs1 = ly_x + lam * gy_x
    _, rhs2 = oracle.hvp("g", x, z, dx=v, dy=zeros_y, batch=batch)

    def a1(u):
        return oracle.hvp_yy("f", x, y, u, batch) + lam * oracle.hvp_yy("g", x, y, u, batch)

    def a2(u):
        return oracle.hvp_yy("g", x, z, u, batch)

    warm = warm if warm is not None else {}
    u1, _ = conjugate_gradient(a1, rhs1, cg_steps, cg_tol, v0=warm.get("u1"))
    u2, _ = conjugate_gradient(a2, rhs2, cg_steps, cg_tol, v0=warm.get("u2"))
    warm.update(u1=u1, u2=u2)
    # (L_λ)_xx v − (L_λ)_xy u1: x-part of the joint HVP with direction (v, −u1)
    fx, _ = oracle.hvp("f", x, y, dx=v, dy=-u1, batch=batch)
    gx, _ = oracle.hvp("g", x, y, dx=v, dy=-u1, batch=batch)
    gz, _ = oracle.hvp("g", x, z, dx=v, dy=-u2, batch=batch)
    return fx + lam * gx - lam * gz
