"""Stochastic quadratic bilevel problem with controlled conditioning and closed forms.

Re-creation of the finite-sum quadratic of ``benchopt/benchmark_bilevel`` (``specs/zoba.md`` §6)
in the library's notation (x = outer, y = inner = ZOBA's z):

    g(x, y) = (1/n) Σ_i [½ yᵀA_i y + ½ xᵀB_i x + xᵀC_i y + a_iᵀy + b_iᵀx]          (§6.1)
    f(x, y) = (1/m) Σ_j [½ yᵀF_j y + ½ xᵀH_j x + xᵀK_j y + f_jᵀy + h_jᵀx]

Every ``A_i, B_i`` is rank one (``A_i = s_i s_iᵀ``) and every cross matrix is rank one
(``C_i = c_i e_iᵀ``, d×p), so a sample is stored as vectors and a minibatch costs O(b(p+d)).
In expectation the y-y block has spectrum ``logspace(μ, L_yy)``, the x-x block the same with an extra
zero eigenvalue, and the cross block singular values ``logspace(μ, L_cross)`` (§6.2).

Differences from the reference generator, by design: the acceptance test uses the exact
value-function Hessian ``JᵀFJ + H + KJ + (KJ)ᵀ`` (the reference uses ½(KJ + (KJ)ᵀ)), each retry draws
new matrices (the reference re-splits the same key, so its retries repeat), and the number of
trials is recorded in ``problem.info["trials"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import BilevelProblem, ClosedForm
from .registry import register


@dataclass
class _Level:
    """The five arrays of one level (§6.2): rows of the rank-one factors and linear terms."""

    s_yy: torch.Tensor  # (N, p): y-y block A_i = s_i s_iᵀ
    s_xx: torch.Tensor  # (N, d): x-x block B_i = t_i t_iᵀ
    c_x: torch.Tensor  # (N, d): cross block C_i = c_i e_iᵀ (d×p)
    c_y: torch.Tensor  # (N, p)
    lin_y: torch.Tensor  # (N, p)
    lin_x: torch.Tensor  # (N, d)

    def value(self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        """Mean over the selected samples of ½(s·y)² + ½(t·x)² + (c·x)(e·y) + a·y + b·x."""
        idx = slice(None) if batch is None else batch
        sy = self.s_yy[idx] @ y
        tx = self.s_xx[idx] @ x
        cross = (self.c_x[idx] @ x) * (self.c_y[idx] @ y)
        lin = self.lin_y[idx] @ y + self.lin_x[idx] @ x
        return (0.5 * sy * sy + 0.5 * tx * tx + cross + lin).mean()

    def means(self) -> dict[str, torch.Tensor]:
        """Full-batch matrices: yy (p×p), xx (d×d), xy (d×p, the mean cross matrix), linear terms."""
        n = self.s_yy.shape[0]
        return {
            "yy": self.s_yy.T @ self.s_yy / n,
            "xx": self.s_xx.T @ self.s_xx / n,
            "xy": self.c_x.T @ self.c_y / n,
            "lin_y": self.lin_y.mean(0),
            "lin_x": self.lin_x.mean(0),
        }


def _sqrt_spectrum(low: float, high: float, count: int, dtype) -> torch.Tensor:
    """``logspace(log10(low)/2, log10(high)/2, count)``: square roots of a log-spaced spectrum."""
    return torch.logspace(math.log10(low) / 2, math.log10(high) / 2, count, dtype=dtype)


def _generate_level(n, p, d, L_yy, L_xx, L_cross, mu, gen: torch.Generator) -> _Level:
    """One call of the §6.2 generator for a level with ``n`` samples."""
    dt = torch.float64
    u1 = torch.linalg.svd(torch.randn(p, 1, generator=gen, dtype=dt), full_matrices=True)[0]
    s1 = u1 @ torch.diag(_sqrt_spectrum(mu, L_yy, p, dt)) @ u1.T
    s_yy = torch.randn(n, p, generator=gen, dtype=dt) @ s1

    u2 = torch.linalg.svd(torch.randn(d, 1, generator=gen, dtype=dt), full_matrices=True)[0]
    spec_xx = torch.cat([torch.zeros(1, dtype=dt), _sqrt_spectrum(mu, L_xx, d - 1, dt)])
    s2 = u2 @ torch.diag(spec_xx) @ u2.T
    s_xx = torch.randn(n, d, generator=gen, dtype=dt) @ s2

    u, _, vh = torch.linalg.svd(torch.randn(d, p, generator=gen, dtype=dt), full_matrices=True)
    diag = torch.zeros(d, p, dtype=dt)
    k = min(d, p)
    diag[range(k), range(k)] = torch.logspace(math.log10(mu), math.log10(L_cross), k, dtype=dt)
    r = torch.randn(n, p, generator=gen, dtype=dt)
    c_x = r @ (u @ diag).T  # rows (U D r_iᵀ)ᵀ
    c_y = r @ vh.T  # rows r_i V_hᵀ

    lin_y = torch.randn(n, p, generator=gen, dtype=dt)
    lin_x = torch.randn(n, d, generator=gen, dtype=dt)
    return _Level(s_yy, s_xx, c_x, c_y, lin_y, lin_x)


def _value_hessian(inner: dict, outer: dict) -> torch.Tensor:
    """Exact ∇²Ψ = JᵀFJ + H + KJ + (KJ)ᵀ with J = −A⁻¹Cᵀ (§6.2, [derived])."""
    jac = -torch.linalg.solve(inner["yy"], inner["xy"].T)  # p×d
    kj = outer["xy"] @ jac
    return jac.T @ outer["yy"] @ jac + outer["xx"] + kj + kj.T


def _check_arguments(sizes: dict[str, int], constants: dict[str, float]) -> None:
    for name, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"quadratic problem: {name} must be >= 1, got {value}")
    for name, value in constants.items():
        if not value > 0:
            raise ValueError(f"quadratic problem: {name} must be > 0, got {value}")


def _draw_instance(n_inner: int, n_outer: int, p: int, d: int, inner_L: tuple, outer_L: tuple, mu: float,
                   seed: int, max_trials: int):
    """The first accepted draw of the two levels (§6.2, strongly convex inner problem and positive definite
    value Hessian): ``(inner, outer, inner means, outer means, number of trials)``."""
    gen = torch.Generator().manual_seed(int(seed))
    for trial in range(1, max_trials + 1):
        inner = _generate_level(n_inner, p, d, *inner_L, mu, gen)
        outer = _generate_level(n_outer, p, d, *outer_L, mu, gen)
        mi, mo = inner.means(), outer.means()
        if torch.linalg.eigvalsh(mi["yy"])[0] <= 0:
            continue
        hess = _value_hessian(mi, mo)
        if torch.linalg.eigvalsh(0.5 * (hess + hess.T))[0] >= 1e-12:
            return inner, outer, mi, mo, trial
    raise ValueError(
        f"quadratic problem: no instance with a strongly convex inner problem and a positive definite "
        f"value Hessian in {max_trials} trials (dim_inner={p}, n_samples_inner={n_inner}, seed={seed})"
    )


def _closed_form(f, mi: dict, mo: dict) -> ClosedForm:
    """y*, ∇Ψ and Ψ from the full-batch matrices (§6.4)."""
    chol = torch.linalg.cholesky(mi["yy"])

    def y_star(x):  # §6.4: y*(x) = −A⁻¹(a + Cᵀx)
        return -torch.cholesky_solve((mi["lin_y"] + mi["xy"].T @ x)[:, None], chol)[:, 0]

    def hypergradient(x):  # ∇Ψ = ∇_x f + C v*, v* = −A⁻¹∇_y f at (x, y*(x))
        ys = y_star(x)
        grad_y = mo["yy"] @ ys + mo["xy"].T @ x + mo["lin_y"]
        grad_x = mo["xx"] @ x + mo["xy"] @ ys + mo["lin_x"]
        v = -torch.cholesky_solve(grad_y[:, None], chol)[:, 0]
        return grad_x + mi["xy"] @ v

    def value(x):
        return f(x, y_star(x))

    return ClosedForm(y_star=y_star, hypergradient=hypergradient, value=value)


@register("quadratic")
def make_quadratic(
    dim_inner: int = 100,
    dim_outer: int = 100,
    n_samples_inner: int = 1024,
    n_samples_outer: int = 1024,
    mu_inner: float = 0.1,
    L_inner_inner: float = 1.0,
    L_outer_inner: float = 1.0,
    L_cross_inner: float = 0.1,
    L_inner_outer: float = 1.0,
    L_outer_outer: float = 1.0,
    L_cross_outer: float = 0.1,
    seed: int = 2442,
    x0_value: float = -2.0,
    max_trials: int = 20,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> BilevelProblem:
    """Build the §6 stochastic quadratic; defaults are the reference dataset's (§6.3).

    The initial point is ``x0 = x0_value·1`` (reference: −2) and ``y0 = 0``. Raises ``ValueError``
    when no accepted instance is found in ``max_trials`` draws (e.g. ``n_samples_inner < dim_inner``
    makes the inner problem singular).
    """
    _check_arguments({"dim_inner": dim_inner, "dim_outer": dim_outer, "n_samples_inner": n_samples_inner,
                      "n_samples_outer": n_samples_outer},
                     {"mu_inner": mu_inner, "L_inner_inner": L_inner_inner, "L_outer_inner": L_outer_inner,
                      "L_cross_inner": L_cross_inner, "L_inner_outer": L_inner_outer, "L_outer_outer": L_outer_outer,
                      "L_cross_outer": L_cross_outer})
    p, d = int(dim_inner), int(dim_outer)
    inner, outer, mi, mo, trial = _draw_instance(
        n_samples_inner, n_samples_outer, p, d, (L_inner_inner, L_outer_inner, L_cross_inner),
        (L_inner_outer, L_outer_outer, L_cross_outer), mu_inner, seed, max_trials)

    to = dict(dtype=dtype, device=device)
    inner = _Level(*(t.to(**to) for t in vars(inner).values()))
    outer = _Level(*(t.to(**to) for t in vars(outer).values()))
    mi = {k: v.to(**to) for k, v in mi.items()}
    mo = {k: v.to(**to) for k, v in mo.items()}

    def g(x, y, batch=None):
        return inner.value(x, y, batch)

    def f(x, y, batch=None):
        return outer.value(x, y, batch)

    eig = torch.linalg.eigvalsh(mi["yy"])
    return BilevelProblem(
        f=f,
        g=g,
        x0=torch.full((d,), float(x0_value), **to),
        y0=torch.zeros(p, **to),
        n_samples={"f": int(n_samples_outer), "g": int(n_samples_inner)},
        closed_form=_closed_form(f, mi, mo),
        name="quadratic",
        info={
            "dim_inner": p,
            "dim_outer": d,
            "seed": int(seed),
            "trials": trial,
            "inner_mu": float(eig[0]),
            "inner_L": float(eig[-1]),
            "inner_condition_number": float(eig[-1] / eig[0]),
        },
    )
