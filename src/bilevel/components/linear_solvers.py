"""Solvers for ``A v = b`` with ``A`` symmetric positive definite, given only ``v -> A v``.

In bilevel methods ``A = ∇²_yy g`` and ``b = ∇_y f`` (AID); every product is an oracle call, so
the solvers call ``matvec`` exactly once per iteration and never on a vector known to be zero.
Each returns ``(v, info)`` with ``info = {"iterations": k, "residual": ‖b − A v‖}`` (the residual
is the recursively updated one where the method provides it, else ``nan`` rather than an extra call).

:data:`SOLVERS` is the one list of the solvers a method can name (AID's ``solver``, the online
baselines): name -> a function with the common calling convention :class:`LinearSolver`,

    ``solve(matvec, b, *, steps, lr, tol, v0) -> (v, info)``

``steps`` bounds the products (iterations or series terms), ``lr`` is the step of the first-order
solvers, ``tol`` the relative residual tolerance, ``v0`` a starting point (``None``: zero); a solver
ignores the arguments it has no use for (CG has no step, Neumann no start or tolerance). A user's
callable with this convention can be passed wherever a name is accepted (as ``solve=`` in
torchopt/jaxopt); :func:`get_solver` resolves either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


class LinearSolver(Protocol):
    """The common calling convention of :data:`SOLVERS` (see the module docstring)."""

    def __call__(self, matvec: MatVec, b: torch.Tensor, *, steps: int, lr: float, tol: float,
                 v0: torch.Tensor | None) -> tuple[torch.Tensor, dict]: ...


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


def _cg(matvec: MatVec, b: torch.Tensor, *, steps: int, lr: float, tol: float, v0: torch.Tensor | None):
    return conjugate_gradient(matvec, b, steps, tol=tol, v0=v0)


def _neumann(matvec: MatVec, b: torch.Tensor, *, steps: int, lr: float, tol: float, v0: torch.Tensor | None):
    return neumann_series(matvec, b, lr, steps)


def _fixed_point(matvec: MatVec, b: torch.Tensor, *, steps: int, lr: float, tol: float, v0: torch.Tensor | None):
    return fixed_point(matvec, b, lr, steps, v0=v0)


#: the registered solvers by name, each with the :class:`LinearSolver` convention
SOLVERS: dict[str, LinearSolver] = {"cg": _cg, "neumann": _neumann, "fixed-point": _fixed_point}


def get_solver(solver: str | LinearSolver) -> LinearSolver:
    """The solver registered under the name ``solver``, or ``solver`` itself when it is a callable."""
    if callable(solver):
        return solver
    if solver not in SOLVERS:
        raise ValueError(f"unknown linear solver {solver!r}; choose one of {', '.join(SOLVERS)} or pass a callable")
    return SOLVERS[solver]

