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


#: bytes of gathered sample rows per block of runs in the fused evaluation (:func:`_fused_values`): the
#: gathered rows stay in cache and no large temporary is allocated (measured on one thread, p = d = 100: one
#: gather of the rows of all 10,025 points of a ZOBA step, 24 MiB per variable block, took ~20 ms, most of
#: it ~6,000 page faults of the fresh array; the whole blocked evaluation takes ~3 ms).
VALUES_BLOCK_BYTES = 1 << 20
#: runs of at least this many consecutive points on the same samples are met as one matrix product
RUN_MIN = 8


def _stretches(batch: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(start, length, count)``: the points ``[start, start + length·count)`` are ``count`` runs of
    ``length`` consecutive points, each run on one row of samples. Runs shorter than ``RUN_MIN`` points
    are split into single points (length 1), so a batch of unrelated per-point samples is one stretch."""
    n = batch.shape[0]
    if n < 2 * RUN_MIN:
        return [(0, 1, n)]
    change = (batch[1:] != batch[:-1]).any(1) if batch.shape[1] > 1 else batch[1:, 0] != batch[:-1, 0]
    starts = change.nonzero()[:, 0]
    if starts.numel() > n // RUN_MIN:  # mostly short runs: a few long ones are not worth the bookkeeping
        return [(0, 1, n)]
    bounds = [0, *(starts + 1).tolist(), n]
    out: list[tuple[int, int, int]] = []  # (start, length, count), consecutive runs of one length merged
    for a, z in zip(bounds[:-1], bounds[1:], strict=True):
        length = z - a
        if length < RUN_MIN:
            if out and out[-1][1] == 1:
                out[-1] = (out[-1][0], 1, out[-1][2] + length)
            else:
                out.append((a, 1, length))
        elif out and out[-1][1] == length:
            out[-1] = (out[-1][0], length, out[-1][2] + 1)
        else:
            out.append((a, length, 1))
    return out


def _fused_values(level: _Level):
    """The level's value at B points at once, ``values(xs, ys, batch) -> (B,)``: the problem's optional
    vectorized evaluation (:class:`~bilevel.problems.base.BilevelProblem`, ``vectorized``), which the oracle
    uses instead of ``vmap(value)``. The same terms in the same order as :meth:`_Level.value`, so the same
    numbers up to the summation order of the dot products.

    ``batch`` is None (all samples) or a 1-D index tensor shared by every point (matrix products with the
    selected rows), or (B, b) per-point indices. Per point, the value needs the dot products of y with
    the three y-rows (s, e, a) and of x with the three x-rows (t, c, b) of each of its samples, stacked
    here once per level. Consecutive points on the same samples (a zeroth-order method's directions
    around one sample) form runs (:func:`_stretches`); the m runs of length L of a stretch are met with
    their samples' rows by one batched product ``(m, L, p) @ (m, p, 3b)`` that reads the points in
    place; single points gather their rows (``VALUES_BLOCK_BYTES`` of rows per block).
    """
    y_rows = torch.stack([level.s_yy, level.c_y, level.lin_y], 1)  # (N, 3, p): s, e, a of every sample
    x_rows = torch.stack([level.s_xx, level.c_x, level.lin_x], 1)  # (N, 3, d): t, c, b

    def shared(xs, ys, idx):
        s_yy, s_xx, c_x, c_y = level.s_yy[idx], level.s_xx[idx], level.c_x[idx], level.c_y[idx]
        lin_y, lin_x = level.lin_y[idx], level.lin_x[idx]
        n = xs.shape[0]
        block = max(1, min(n, max(256, VALUES_BLOCK_BYTES // (6 * s_yy.shape[0] * ys.element_size()))))
        out = torch.empty(n, dtype=ys.dtype, device=ys.device)
        for start in range(0, n, block):
            x, y = xs[start:start + block], ys[start:start + block]
            sy, tx = y @ s_yy.T, x @ s_xx.T
            cross = (x @ c_x.T) * (y @ c_y.T)
            lin = y @ lin_y.T + x @ lin_x.T
            out[start:start + block] = (0.5 * sy * sy + 0.5 * tx * tx + cross + lin).mean(1)
        return out

    def values(xs: torch.Tensor, ys: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        if batch is None or batch.ndim == 1:
            return shared(xs, ys, slice(None) if batch is None else batch)
        n, b = batch.shape
        p, d = ys.shape[1], xs.shape[1]
        dots_y = torch.empty(n, 3 * b, dtype=ys.dtype, device=ys.device)  # per sample of a point: s·y, e·y, a·y
        dots_x = torch.empty(n, 3 * b, dtype=xs.dtype, device=xs.device)  # t·x, c·x, b·x
        per_run = max(16, VALUES_BLOCK_BYTES // (3 * b * max(p, d) * ys.element_size()))
        for start, length, count in _stretches(batch):
            for first in range(0, count, per_run):
                m = min(per_run, count - first)
                lo = start + first * length
                hi = lo + m * length
                rows = batch[lo:hi:length].reshape(-1)  # the m runs' samples
                gy = y_rows.index_select(0, rows).view(m, 3 * b, p)
                gx = x_rows.index_select(0, rows).view(m, 3 * b, d)
                if length == 1:  # single points: (m, 3b, p) @ (m, p, 1), the faster shape for these
                    torch.bmm(gy, ys[lo:hi, :, None], out=dots_y[lo:hi, :, None])
                    torch.bmm(gx, xs[lo:hi, :, None], out=dots_x[lo:hi, :, None])
                else:
                    torch.bmm(ys[lo:hi].view(m, length, p), gy.transpose(1, 2), out=dots_y[lo:hi].view(m, length, 3 * b))
                    torch.bmm(xs[lo:hi].view(m, length, d), gx.transpose(1, 2), out=dots_x[lo:hi].view(m, length, 3 * b))
        sy, ey, ay = dots_y.view(n, b, 3).unbind(2)
        tx, cx, bx = dots_x.view(n, b, 3).unbind(2)
        per_sample = 0.5 * sy * sy + 0.5 * tx * tx + cx * ey + (ay + bx)
        return per_sample[:, 0] if b == 1 else per_sample.mean(1)

    return values


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


#: the declared limits of :func:`make_quadratic`'s parameters (:mod:`bilevel.limits`)
LIMITS = {**dict.fromkeys(("dim_inner", "dim_outer", "n_samples_inner", "n_samples_outer", "max_trials"), "at_least_one"),
          **dict.fromkeys(("mu_inner", "L_inner_inner", "L_outer_inner", "L_cross_inner", "L_inner_outer",
                           "L_outer_outer", "L_cross_outer"), "positive"),
          "x0_value": "number", "seed": "counts"}


@register("quadratic", limits=LIMITS)
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
    p, d = int(dim_inner), int(dim_outer)
    inner, outer, _, _, trial = _draw_instance(
        n_samples_inner, n_samples_outer, p, d, (L_inner_inner, L_outer_inner, L_cross_inner),
        (L_inner_outer, L_outer_outer, L_cross_outer), mu_inner, seed, max_trials)

    info = {"dim_inner": p, "dim_outer": d, "seed": int(seed), "trials": trial}
    return quadratic_from_levels(inner, outer, torch.full((d,), float(x0_value), dtype=torch.float64),
                                 torch.zeros(p, dtype=torch.float64), "quadratic", info, dtype, device)


def quadratic_from_levels(inner: _Level, outer: _Level, x0: torch.Tensor, y0: torch.Tensor, name: str, info: dict,
                          dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> BilevelProblem:
    """The finite-sum quadratic of two levels' per-sample factors (§6.1), with its closed forms (§6.4)."""
    to = dict(dtype=dtype, device=device)
    mi = {k: v.to(**to) for k, v in inner.means().items()}  # in the factors' precision, then cast
    mo = {k: v.to(**to) for k, v in outer.means().items()}
    inner = _Level(*(t.to(**to) for t in vars(inner).values()))
    outer = _Level(*(t.to(**to) for t in vars(outer).values()))

    def g(x, y, batch=None):
        return inner.value(x, y, batch)

    def f(x, y, batch=None):
        return outer.value(x, y, batch)

    eig = torch.linalg.eigvalsh(mi["yy"])
    if eig[0] <= 0:
        raise ValueError(f"{name}: the inner problem is not strongly convex (smallest eigenvalue of the mean "
                         f"y-y block {float(eig[0]):.3g})")
    return BilevelProblem(
        f=f,
        g=g,
        x0=x0.to(**to),
        y0=y0.to(**to),
        n_samples={"f": outer.s_yy.shape[0], "g": inner.s_yy.shape[0]},
        closed_form=_closed_form(f, mi, mo),
        vectorized={"f": _fused_values(outer), "g": _fused_values(inner)},
        name=name,
        info={**info, "inner_mu": float(eig[0]), "inner_L": float(eig[-1]),
              "inner_condition_number": float(eig[-1] / eig[0])},
    )


#: the per-level arrays of a stored quadratic (:func:`load_quadratic`), in :class:`_Level`'s order
FACTOR_FIELDS = ("s_yy", "s_xx", "c_x", "c_y", "lin_y", "lin_x")


@register("quadratic_file", limits={"path": "string"})
def load_quadratic(path: str, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> BilevelProblem:
    """A §6 quadratic stored as per-sample factors in an ``.npz`` file: arrays ``in_<field>`` (lower level g)
    and ``out_<field>`` (upper level f) for the fields of :data:`FACTOR_FIELDS`, shapes (n, p) or (n, d),
    and the start ``x0`` (d,), ``y0`` (p,). The layout of ``shared/reference/zoba_authors`` (the ZOBA
    authors' benchopt generator, random state 2442); any other generator's instance can be stored alike."""
    import numpy as np

    path = str(path)
    try:
        arrays = np.load(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"quadratic_file: cannot read {path}: {err}") from err
    needed = [f"{lv}_{name}" for lv in ("in", "out") for name in FACTOR_FIELDS] + ["x0", "y0"]
    missing = [k for k in needed if k not in arrays.files]
    if missing:
        raise ValueError(f"quadratic_file: {path} lacks the arrays {', '.join(missing)}")
    levels = {lv: _Level(*(torch.from_numpy(arrays[f"{lv}_{name}"]).to(torch.float64) for name in FACTOR_FIELDS))
              for lv in ("in", "out")}
    x0, y0 = (torch.from_numpy(arrays[k]).to(torch.float64) for k in ("x0", "y0"))
    p, d = y0.numel(), x0.numel()
    for lv, level in levels.items():
        for name, t in vars(level).items():
            width = d if name in ("s_xx", "c_x", "lin_x") else p
            if t.ndim != 2 or t.shape[1] != width or t.shape[0] != level.s_yy.shape[0]:
                raise ValueError(f"quadratic_file: {path}: {lv}_{name} has shape {tuple(t.shape)}, expected "
                                 f"({level.s_yy.shape[0]}, {width})")
    from pathlib import Path

    info = {"dim_inner": p, "dim_outer": d, "file": Path(path).name}
    return quadratic_from_levels(levels["in"], levels["out"], x0, y0, "quadratic_file", info, dtype, device)
