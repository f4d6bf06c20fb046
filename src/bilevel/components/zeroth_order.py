"""Zeroth-order estimators: random directions, finite differences, Stein second-order products.

Every estimator here is a pure function of function VALUES already computed (plus the directions),
so that a method can lay out all the points of one step, evaluate them in one vectorized oracle call
(:func:`evaluate_points`) and reuse each value in several estimators (``specs/zoba.md`` §3.4).

Direction laws (all normalised so that ``E[u uᵀ] = I``, hence ``E[(uᵀa) u] = a``):

- ``"gaussian"``: ``u ~ N(0, I_n)``;
- ``"sphere"``: uniform on the sphere of radius ``√n``;
- ``"coordinate"``: ``√n e_i`` with ``i`` uniform; the directions of one row (one sample) are drawn
  without replacement (cycling through a fresh permutation when there are more than ``n``), so
  ``n`` coordinate directions give the exact finite-difference gradient.

Estimators, with ``b`` samples ``ξ_i`` and ``l`` directions per sample, averaged over all pairs:

- forward difference ``(1/bl) Σ (h(p + h u_ij; ξ_i) − h(p; ξ_i))/h · u_ij``  → ∇h (bias O(h));
- central difference ``(1/bl) Σ (h(p + h u_ij) − h(p − h u_ij))/(2h) · u_ij`` → ∇h (bias O(h²));
- Stein Hessian-vector product (Gaussian only)
  ``(1/bl) Σ (h(p + h w) + h(p − h w) − 2 h(p))/(2h²) · ((wᵀv) w − v)`` → ∇²h v,
  since ``E[(wᵀHw)(wwᵀ − I)] = 2H`` for ``w ~ N(0, I)`` (``specs/zoba.md`` §3.5);
- Stein cross product (Gaussian only), joint perturbation ``(z ± h w, x ± h u)``:
  ``(1/bl) Σ (h(z + hw, x + hu) + h(z − hw, x − hu) − 2h(z, x))/(2h²) · (wᵀv) u`` → ∇²_xz h v;
- the PZOBO response-Jacobian product from two optimisation paths (``specs/pzobo.md`` §3):
  ``(1/Q) Σ_q u_q ⟨(y_q − y)/μ, a⟩`` → (∂y/∂x)ᵀ a.

The Stein identities hold for Gaussian directions only (for the sphere law ``E[(uᵀHu)(uuᵀ − I)]``
also contains ``tr(H)``), so the second-order estimators refuse other laws.
"""

from __future__ import annotations

import math

import torch

from ..oracle import Oracle

DIRECTION_LAWS = ("gaussian", "sphere", "coordinate")
EVALUATION_MODES = ("batched", "per-direction", "per-point")


def directions(law: str, shape: tuple[int, ...], dim: int, generator: torch.Generator,
               dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Directions of shape ``(*shape, dim)`` with ``E[u uᵀ] = I`` (drawn on the CPU, then moved)."""
    if law not in DIRECTION_LAWS:
        raise ValueError(f"unknown direction law {law!r}; choose one of {', '.join(DIRECTION_LAWS)}")
    if law == "gaussian":
        out = torch.randn(*shape, dim, generator=generator, dtype=dtype)
    elif law == "sphere":
        out = torch.randn(*shape, dim, generator=generator, dtype=dtype)
        out = out * (math.sqrt(dim) / torch.linalg.vector_norm(out, dim=-1, keepdim=True))
    else:
        rows, per_row = math.prod(shape[:-1]) if len(shape) > 1 else 1, shape[-1] if shape else 1
        rounds = -(-per_row // dim)
        keys = torch.rand(rows, rounds, dim, generator=generator)
        index = keys.argsort(dim=-1).reshape(rows, rounds * dim)[:, :per_row]  # permutations, cycled
        out = torch.zeros(rows, per_row, dim, dtype=dtype)
        out.scatter_(-1, index[..., None], math.sqrt(dim))
        out = out.reshape(*shape, dim)
    return out.to(device)


def _mean_outer(coeff: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``mean over all leading indices of coeff[...] · vectors[..., :]``."""
    return torch.einsum("...,...n->n", coeff, vectors) / coeff.numel()


def forward_difference(values: torch.Tensor, base: torch.Tensor, h: float, dirs: torch.Tensor) -> torch.Tensor:
    """Gradient estimate ``mean (values − base)/h · u``; ``values`` (b, l), ``base`` (b,), ``dirs`` (b, l, n)."""
    return _mean_outer((values - base[:, None]) / h, dirs)


def central_difference(plus: torch.Tensor, minus: torch.Tensor, h: float, dirs: torch.Tensor) -> torch.Tensor:
    """Gradient estimate ``mean (plus − minus)/(2h) · u``; ``plus``, ``minus`` (b, l), ``dirs`` (b, l, n)."""
    return _mean_outer((plus - minus) / (2 * h), dirs)


def second_difference(plus: torch.Tensor, minus: torch.Tensor, base: torch.Tensor, h: float) -> torch.Tensor:
    """``(plus + minus − 2 base)/(2h²)`` per (sample, direction): ≈ ½ uᵀ∇²h u (exact for quadratics)."""
    return (plus + minus - 2 * base[:, None]) / (2 * h * h)


def _require_gaussian(law: str, what: str) -> None:
    if law != "gaussian":
        raise ValueError(f"{what}: the Stein identity E[(wᵀHw)(wwᵀ − I)] = 2H needs Gaussian directions, got {law!r}")


def stein_hessian_vector(second: torch.Tensor, w: torch.Tensor, v: torch.Tensor, law: str = "gaussian") -> torch.Tensor:
    """``∇²_zz h · v`` from second differences ``second`` (b, l) along ``w`` (b, l, p): mean ``second·((wᵀv)w − v)``."""
    _require_gaussian(law, "stein_hessian_vector")
    wv = w @ v
    return _mean_outer(second * wv, w) - second.mean() * v


def stein_cross(second_joint: torch.Tensor, w: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                law: str = "gaussian") -> torch.Tensor:
    """``∇²_xz h · v`` (a d-vector) from joint second differences along ``(w, u)``: mean ``second·(wᵀv)·u``."""
    _require_gaussian(law, "stein_cross")
    return _mean_outer(second_joint * (w @ v), u)


def response_jacobian_product(perturbed: torch.Tensor, main: torch.Tensor, mu: float, dirs: torch.Tensor,
                              adjoint: torch.Tensor) -> torch.Tensor:
    """PZOBO: ``(1/Q) Σ_q u_q ⟨(y_q − y)/μ, a⟩ ≈ (∂y/∂x)ᵀ a``; ``perturbed`` (Q, p), ``dirs`` (Q, d)."""
    deltas = (perturbed - main) / mu
    return dirs.T @ (deltas @ adjoint) / dirs.shape[0]


def evaluate_points(oracle: Oracle, level: str, xs: torch.Tensor, ys: torch.Tensor, samples: torch.Tensor | None,
                    mode: str = "batched", groups: torch.Tensor | None = None) -> torch.Tensor:
    """Values of ``level`` at the N points ``(xs[k], ys[k])``, point k on sample ``samples[k]`` (None: full data).

    ``mode="batched"``: ONE vectorized oracle call for all N points (the ZOBA way; a handful of points,
    N <= ``Oracle.direct_up_to``, is evaluated by direct calls, the same points in the same order). The two
    reference implementations of a sequential code path, for benchmarks: ``"per-point"`` is a Python
    loop of N single evaluations; ``"per-direction"`` loops over the distinct ``groups`` ids (one
    direction index each) and evaluates that group's points in one call. Counts N values in every mode.
    """
    if mode not in EVALUATION_MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; choose one of {', '.join(EVALUATION_MODES)}")
    batch = None if samples is None else samples[:, None]
    if mode == "batched":
        return oracle.values(level, xs, ys, batch)
    if mode == "per-point":
        return torch.stack([oracle.value(level, xs[k], ys[k], None if batch is None else batch[k])
                            for k in range(xs.shape[0])])
    if groups is None:
        raise ValueError("evaluate_points(mode='per-direction') needs the group (direction) id of every point")
    out = torch.empty(xs.shape[0], dtype=xs.dtype, device=xs.device)
    for gid in torch.unique(groups).tolist():
        sel = (groups == gid).nonzero().squeeze(1)
        out[sel] = oracle.values(level, xs[sel], ys[sel], None if batch is None else batch[sel])
    return out


class PointSet:
    """The points of one step, laid out segment by segment, evaluated together, split back by name.

    >>> points = PointSet(x, y)
    >>> points.add("g0", dx=None, dy=None, samples=xi)                    # (b,) base points
    >>> points.add("plus", dy=h * w, samples=xi[:, None].expand(b, l))   # (b, l) perturbed points
    >>> values = points.evaluate(oracle, "g")                              # {"g0": (b,), "plus": (b, l)}

    A segment is the base point ``(x, y)`` shifted by ``dx`` / ``dy`` (tensors ``(*shape, d)`` /
    ``(*shape, p)`` or None); ``samples`` gives each point's sample index (same leading shape, or
    None for full data in every segment). Direction ids for the ``per-direction`` mode are the last
    index of a 2-D segment (base points form their own group).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self._segments: list[tuple[str, tuple[int, ...], torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def add(self, name: str, dx: torch.Tensor | None = None, dy: torch.Tensor | None = None,
            samples: torch.Tensor | None = None, shape: tuple[int, ...] | None = None) -> None:
        lead = next((tuple(t.shape[:-1]) for t in (dx, dy) if t is not None), None)
        lead = lead or (tuple(samples.shape) if samples is not None else shape)
        if lead is None:
            raise ValueError(f"PointSet.add({name!r}): give a shift, samples or a shape")
        xs = self.x.expand(*lead, -1) if dx is None else self.x + dx
        ys = self.y.expand(*lead, -1) if dy is None else self.y + dy
        if samples is not None and tuple(samples.shape) != lead:
            samples = samples.expand(*lead)
        self._segments.append((name, lead, xs.reshape(-1, xs.shape[-1]), ys.reshape(-1, ys.shape[-1]),
                               None if samples is None else samples.reshape(-1)))

    def __len__(self) -> int:
        return sum(seg[2].shape[0] for seg in self._segments)

    def evaluate(self, oracle: Oracle, level: str, mode: str = "batched") -> dict[str, torch.Tensor]:
        """Evaluate every point of every segment (one oracle call in ``batched`` mode)."""
        xs = torch.cat([s[2] for s in self._segments])
        ys = torch.cat([s[3] for s in self._segments])
        has_samples = [s[4] is not None for s in self._segments]
        if any(has_samples) and not all(has_samples):
            raise ValueError("PointSet: either every segment has sample indices or none has")
        samples = torch.cat([s[4] for s in self._segments]) if all(has_samples) else None
        groups = None
        if mode == "per-direction":
            groups = torch.cat([_direction_ids(s[1], xs.device) for s in self._segments])
        values = evaluate_points(oracle, level, xs, ys, samples, mode, groups)
        out, start = {}, 0
        for name, lead, seg_xs, _, _ in self._segments:
            out[name] = values[start:start + seg_xs.shape[0]].reshape(lead)
            start += seg_xs.shape[0]
        return out


def _direction_ids(lead: tuple[int, ...], device) -> torch.Tensor:
    """Direction id of each point of a segment: its last index for (…, l) segments, −1 for base points."""
    if len(lead) < 2:
        return torch.full((math.prod(lead),), -1, device=device)
    return torch.arange(lead[-1], device=device).expand(*lead).reshape(-1)
