"""Cubic-regularized Newton sub-problem (Nesterov & Polyak 2006), ``specs/fsba.md`` §4:

    s* = argmin_s  m(s) = ⟨g, s⟩ + ½ sᵀ H s + (M/6) ‖s‖³.

Global minimizers satisfy ``(H + (M r/2) I) s = −g`` with ``r = ‖s‖`` and ``H + (M r/2) I ⪰ 0``.

- :func:`cubic_step_exact` (§4a): eigendecomposition ``H = Q Λ Qᵀ`` and bisection on the secular
  equation ``‖s(r)‖ = r`` for ``r > r_low = max(0, −2 λ_min/M)``, including the hard case (gradient
  orthogonal to the eigenspace of ``λ_min``): ``s = s(r_low) + τ q_min`` with ``‖s‖ = r_low``.
  ``eig`` may be passed in (lazy methods reuse one factorization for m iterations).
- :func:`cubic_step_gd` (§4b, Carmon & Duchi 2016): gradient descent on m(s) from the Cauchy point,
  using only products ``H v`` (a callable): the solver of the Hessian-free methods.
- :func:`cubic_step_lanczos` (our choice for Hessian-free methods, as in ARC of Cartis, Gould & Toint
  2011): ``k`` Lanczos products span the Krylov space K_k(H, g) = span{g, Hg, …}, in which the model
  is the small tridiagonal problem ``min_u ‖g‖ e₁ᵀu + ½ uᵀT u + (M/6)‖u‖³``, solved exactly by
  :func:`cubic_step_exact`; ``s = Q u``. Exact once the space is invariant (k ≥ the number of
  distinct eigenvalues); a handful of products usually suffice where gradient descent needs hundreds.
  :func:`lanczos_factor` / :func:`cubic_step_lowrank` split it in two, so that a lazy method can keep
  the rank-k factor ``H ≈ U diag(θ) Uᵀ`` for m iterations and solve each step exactly against it.
- :func:`cubic_step_separable` (§4c): MCN's per-coordinate solver for diagonal H, where ``‖s‖³`` is
  replaced by ``Σ|s_i|³`` (exact only for that separable model).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def cubic_model(g: torch.Tensor, hv: torch.Tensor, s: torch.Tensor, M: float) -> torch.Tensor:
    """m(s) given ``hv = H s``."""
    return g @ s + 0.5 * s @ hv + M / 6.0 * torch.linalg.vector_norm(s) ** 3


def symmetric_eig(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric part of ``H``."""
    return torch.linalg.eigh(0.5 * (H + H.T))


def cubic_step_exact(g: torch.Tensor, H: torch.Tensor | None, M: float, eig=None, tol: float = 1e-12,
                     max_bisections: int = 200) -> torch.Tensor:
    """Global minimizer of the cubic model (small dimensions: one eigendecomposition)."""
    if M <= 0:
        raise ValueError(f"M must be > 0, got {M}")
    lam, Q = eig if eig is not None else symmetric_eig(H)
    gh = Q.T @ g
    lam_min = float(lam[0])
    r_low = max(0.0, -2.0 * lam_min / M)

    def s_norm(r: float) -> float:
        return float(torch.linalg.vector_norm(gh / (lam + M * r / 2.0)))

    gnorm = float(torch.linalg.vector_norm(g))
    if gnorm == 0.0 and lam_min >= 0:
        return torch.zeros_like(g)
    degenerate = lam - lam_min <= 1e-12 * max(1.0, abs(lam_min))
    hard = float(torch.linalg.vector_norm(gh[degenerate])) <= 1e-14 * max(1.0, gnorm) and lam_min < 0
    if hard:
        shifted = lam + M * r_low / 2.0
        safe = torch.where(degenerate, torch.ones_like(shifted), shifted)
        base = torch.where(degenerate, torch.zeros_like(gh), -gh / safe)
        base_norm = float(torch.linalg.vector_norm(base))
        if base_norm < r_low:  # hard case: move along the lowest eigenvector to reach ‖s‖ = r_low
            tau = math.sqrt(max(r_low**2 - base_norm**2, 0.0))
            return Q @ base + tau * Q[:, 0]
    # ‖s(r)‖ − r is decreasing on (r_low, ∞): bisection on a bracket
    hnorm = float(lam.abs().max())
    lo = r_low
    hi = max((hnorm + math.sqrt(hnorm**2 + 2.0 * M * gnorm)) / M, r_low) + 1e-300
    while s_norm(hi) > hi:  # safeguard (the bound above always brackets in exact arithmetic)
        hi *= 2.0
    for _ in range(max_bisections):
        mid = 0.5 * (lo + hi)
        if mid <= r_low or s_norm(mid) > mid:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(1.0, hi):
            break
    r = hi
    return Q @ (-gh / (lam + M * r / 2.0))


def cauchy_radius(g: torch.Tensor, hv_g: torch.Tensor, M: float) -> float:
    """Minimizer of m along −g/‖g‖: ``R_c = −β/M + sqrt(β²/M² + 2‖g‖/M)``, β = gᵀHg/‖g‖²."""
    gnorm = float(torch.linalg.vector_norm(g))
    beta = float(g @ hv_g) / gnorm**2
    return -beta / M + math.sqrt(beta**2 / M**2 + 2.0 * gnorm / M)


def cubic_step_gd(g: torch.Tensor, hvp: Callable[[torch.Tensor], torch.Tensor], M: float, lr: float,
                  iters: int = 200, tol: float = 1e-10, perturbation: float = 1e-6,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Gradient descent on m(s) from the Cauchy point, Hessian-vector products only.

    Returns ``(s, number of H·v products)``. ``lr`` should be ≤ 1/(4ℓ), ℓ ≥ ‖H‖ (Carmon & Duchi).
    A small random perturbation of g (size ``perturbation``·max(‖g‖, 1), drawn from ``generator``)
    avoids the hard case, as in Carmon & Duchi's analysis, and lets the step leave a saddle point
    where g = 0; ``perturbation=0`` disables it.
    """
    products = 0
    if perturbation > 0:
        noise = torch.randn(g.shape, generator=generator, dtype=g.dtype).to(g.device)
        scale = perturbation * max(float(torch.linalg.vector_norm(g)), 1.0)
        g = g + scale * noise / torch.linalg.vector_norm(noise)
    gnorm = float(torch.linalg.vector_norm(g))
    if gnorm == 0.0:
        return torch.zeros_like(g), products
    hg = hvp(g)
    products += 1
    s = -cauchy_radius(g, hg, M) * g / torch.linalg.vector_norm(g)
    for _ in range(iters):
        hs = hvp(s)
        products += 1
        grad = g + hs + 0.5 * M * torch.linalg.vector_norm(s) * s
        if float(torch.linalg.vector_norm(grad)) <= tol * max(1.0, gnorm):
            break
        s = s - lr * grad
    return s, products


def lanczos_factor(g: torch.Tensor, hvp: Callable[[torch.Tensor], torch.Tensor], dim: int = 10,
                   tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rank-≤``dim`` factor ``H ≈ U diag(θ) Uᵀ`` on the Krylov space K(H, g) (Lanczos, full reorthogonalisation).

    Returns ``(θ ascending, U with orthonormal columns, number of H·v products)``; the space stops growing
    early once it is invariant (``β_j ≤ tol · ‖g‖``).
    """
    gnorm = float(torch.linalg.vector_norm(g))
    if gnorm == 0.0:
        raise ValueError("lanczos_factor: the starting vector g is zero")
    basis = [g / gnorm]
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(int(dim)):
        w = hvp(basis[j])
        alphas.append(float(basis[j] @ w))
        Q = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice (numerically orthonormal basis)
            w = w - Q.T @ (Q @ w)
        beta = float(torch.linalg.vector_norm(w))
        if j == int(dim) - 1 or beta <= tol * max(gnorm, 1.0):
            break
        betas.append(beta)
        basis.append(w / beta)
    k = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=g.dtype, device=g.device))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=g.dtype, device=g.device)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    theta, V = torch.linalg.eigh(T)
    return theta, torch.stack(basis[:k]).T @ V, k


def cubic_step_lowrank(g: torch.Tensor, theta: torch.Tensor, U: torch.Tensor, M: float) -> torch.Tensor:
    """Exact cubic step for the model Hessian ``U diag(θ) Uᵀ`` (zero curvature off span U).

    The gradient splits into ``Uᵀg`` and its remainder ``r = g − U Uᵀg``; the model is then a cubic
    problem in k + 1 orthonormal directions with curvatures ``(θ, 0)``, solved by :func:`cubic_step_exact`.
    """
    gh = U.T @ g
    rest = g - U @ gh
    rnorm = torch.linalg.vector_norm(rest)
    lam = torch.cat([theta, theta.new_zeros(1)])
    order = torch.argsort(lam)
    coeffs = torch.cat([gh, rnorm.reshape(1)])[order]
    u = cubic_step_exact(coeffs, None, M, eig=(lam[order], torch.eye(len(lam), dtype=g.dtype, device=g.device)))
    full = torch.empty_like(u)
    full[order] = u
    direction = rest / rnorm if float(rnorm) > 0 else torch.zeros_like(rest)
    return U @ full[:-1] + full[-1] * direction


def cubic_step_lanczos(g: torch.Tensor, hvp: Callable[[torch.Tensor], torch.Tensor], M: float, dim: int = 10,
                       tol: float = 1e-10) -> tuple[torch.Tensor, int]:
    """Cubic step restricted to the Krylov space K_dim(H, g); returns ``(s, number of H·v products)``."""
    if float(torch.linalg.vector_norm(g)) == 0.0:
        return torch.zeros_like(g), 0
    theta, U, products = lanczos_factor(g, hvp, dim, tol)
    return cubic_step_lowrank(g, theta, U, M), products


def cubic_step_separable(a: torch.Tensor, b: torch.Tensor, M: float, bisections: int = 30,
                         lam_start: float = 100.0) -> torch.Tensor:
    """MCN's solver (``fmin3``): minimize ``a_i s + ½ b_i s² + (c/3)|s|³`` per coordinate, c = M/2.

    The root of ``a²/(b+λ)² − λ²/c²`` in λ = c|s| is bracketed by doubling from ``lam_start`` and
    refined by bisection; for ``b < 0`` the bracket starts at −b (the reference code assumes b + λ > 0).
    """
    c = M / 2.0
    out = torch.empty_like(a)
    for i in range(a.numel()):
        ai, bi = float(a[i]), float(b[i])
        if ai == 0.0:  # ½ b s² + (c/3)|s|³: s = 0 if b ≥ 0, else |s| = −b/c
            out[i] = max(0.0, -bi) / c
            continue
        lo = max(0.0, -bi)
        hi = max(lam_start, lo + 1.0)

        def expr(lam, ai=ai, bi=bi):
            return math.inf if bi + lam <= 0 else ai**2 / (bi + lam) ** 2 - lam**2 / c**2

        while expr(hi) >= 0:
            hi *= 2.0
        for _ in range(bisections):
            mid = 0.5 * (lo + hi)
            if expr(mid) > 0:
                lo = mid
            else:
                hi = mid
        out[i] = -ai / (bi + lo) if bi + lo > 0 else -ai / (bi + hi)  # MCN returns the lower end
    return out
