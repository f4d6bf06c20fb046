"""Solvers for ``A v = b`` with ``A`` symmetric positive definite, given only ``v -> A v``.

In bilevel methods ``A = ∇²_yy g`` and ``b = ∇_y f`` (AID); every product is an oracle call, so
the solvers call ``matvec`` exactly once per iteration and never on a vector known to be zero.
Each returns ``(v, info)`` with ``info = {"iterations": k, "residual": ‖b − A v‖}`` (the residual
is the recursively updated one where the method provides it, else ``nan`` rather than an extra call).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


def conjugate_gradient(matvec: MatVec, b: torch.Tensor, max_iter: int, tol: float = 1e-10,
                       v0: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Conjugate gradient (Hestenes–Stiefel) from ``v0`` (zero if ``None``).

    Stops after ``max_iter`` products or when ``‖r_k‖ ≤ tol·‖b‖`` (relative tolerance; hypertorch's
    CG uses an absolute 1e-10, the relative form is scale-free). One ``matvec`` per iteration, plus
    one for the initial residual when ``v0`` is given.
    """
    v = torch.zeros_like(b) if v0 is None else v0.clone()
    r = b.clone() if v0 is None else b - matvec(v)
    p = r.clone()
    rs = torch.dot(r, r)
    threshold = (tol * torch.linalg.vector_norm(b)) ** 2
    k = 0
    while k < max_iter and rs > threshold:
        ap = matvec(p)
        alpha = rs / torch.dot(p, ap)
        v = v + alpha * p
        r = r - alpha * ap
        rs_new = torch.dot(r, r)
        p = r + (rs_new / rs) * p
        rs = rs_new
        k += 1
    return v, {"iterations": k, "residual": float(torch.sqrt(rs))}


def neumann_series(matvec: MatVec, b: torch.Tensor, lr: float, terms: int) -> tuple[torch.Tensor, dict]:
    """Truncated Neumann series ``v = lr Σ_{k=0}^{K} (I − lr A)^k b`` with K = ``terms`` products.

    Converges to ``A⁻¹b`` when ``0 < lr < 2/λ_max(A)``. Always starts from zero (no warm start).
    """
    term = b.clone()
    total = b.clone()
    for _ in range(terms):
        term = term - lr * matvec(term)
        total = total + term
    return lr * total, {"iterations": terms, "residual": float("nan")}


def fixed_point(matvec: MatVec, b: torch.Tensor, lr: float, max_iter: int,
                v0: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Fixed-point iteration ``v ← v − lr (A v − b)`` (a GD step on ½vᵀAv − bᵀv), warm-startable.

    From ``v0 = 0`` its k-th iterate equals the Neumann partial sum with k terms; the first
    iteration from zero needs no product (``A·0 = 0``), so K iterations cost K − 1 products.
    """
    v = torch.zeros_like(b) if v0 is None else v0.clone()
    known_zero = v0 is None
    residual = float("nan")
    for _ in range(max_iter):
        r = b if known_zero else b - matvec(v)
        v = v + lr * r
        known_zero = False
        residual = float(torch.linalg.vector_norm(r))
    return v, {"iterations": max_iter, "residual": residual}


SOLVERS = ("cg", "neumann", "fixed-point")
