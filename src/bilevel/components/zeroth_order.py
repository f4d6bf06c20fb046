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
import threading
from typing import NamedTuple

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
        out = standard_normal((*shape, dim), generator, dtype)
    elif law == "sphere":
        out = standard_normal((*shape, dim), generator, dtype)
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


#: float64 draws of at least this many numbers take the vectorized path of :func:`standard_normal`
FAST_NORMAL_MIN = 1024
#: numbers per block of its transform (a multiple of 16; 512 KiB: the passes stay in a core's cache. Measured
#: on one thread: 250k numbers in 4.6 ms against 6.1 ms in one block and 6.7 ms for torch.randn)
NORMAL_BLOCK = 1 << 16
_FAST_NORMAL: list[bool] = []  # [whether the vectorized path reproduces torch.randn], filled on first use


def standard_normal(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``torch.randn(*shape, generator=generator, dtype=dtype)``: the same numbers up to float rounding, and the
    generator left in the same state.

    torch's CPU kernel for float64 draws its n uniforms first (one per number, 16 more when n is not a
    multiple of 16), then applies the Box–Muller transform block by block of 16 with scalar ``log``,
    ``cos`` and ``sin`` calls: ~31 ns a number on one thread, the largest single cost of a ZOBA step
    (2·25·100·p numbers). Here the same uniforms (``torch.rand``, the same consumption of the generator)
    go through the same transform, vectorized, block by block: ~19 ns a number. Whether this reproduces ``torch.randn``
    (to 1e-12) is checked once per process on a fixed seed; where it does not (another torch), where the
    draw is not float64 on the CPU, or for fewer than ``FAST_NORMAL_MIN`` numbers, ``torch.randn`` itself.
    """
    n = math.prod(shape)
    if dtype != torch.float64 or n < FAST_NORMAL_MIN or generator.device.type != "cpu" or not _fast_normal_ok():
        return torch.randn(*shape, generator=generator, dtype=dtype)
    return _box_muller_draw(n, generator).view(shape)


def _box_muller_draw(n: int, generator: torch.Generator) -> torch.Tensor:
    out = torch.rand(n, generator=generator, dtype=torch.float64)
    full = n - n % 16
    for start in range(0, full, NORMAL_BLOCK):  # block by block, so that the passes run in cache
        _box_muller_16(out[start:min(full, start + NORMAL_BLOCK)])
    if n % 16:  # torch redraws the last 16 numbers from 16 fresh uniforms
        tail = torch.rand(16, generator=generator, dtype=torch.float64)
        _box_muller_16(tail)
        out[n - 16:] = tail
    return out


def _box_muller_16(u: torch.Tensor) -> None:
    """In place, per block of 16 uniforms ``(u1, u2)`` = (first 8, last 8): ``r = √(−2 log(1 − u1))``,
    ``θ = 2π u2``, then ``(r cos θ, r sin θ)`` — torch's ``normal_fill_16``, with its operation order."""
    blocks = u.view(-1, 2, 8)
    radius = torch.rsub(blocks[:, 0], 1).log_().mul_(-2).sqrt_()
    theta = blocks[:, 1] * (2.0 * math.pi)
    cos = torch.cos(theta)
    torch.mul(radius, cos, out=blocks[:, 0])
    torch.mul(radius, theta.sin_(), out=blocks[:, 1])


def _fast_normal_ok() -> bool:
    if not _FAST_NORMAL:
        ok = True
        for n in (48, 40):  # a multiple of 16, and one with the redrawn tail
            ours, theirs = torch.Generator().manual_seed(12345), torch.Generator().manual_seed(12345)
            want = torch.randn(n, generator=theirs, dtype=torch.float64)
            got = _box_muller_draw(n, ours)
            ok = ok and bool((got - want).abs().max() <= 1e-12) and torch.equal(ours.get_state(), theirs.get_state())
        _FAST_NORMAL.append(ok)
    return _FAST_NORMAL[0]


def _mean_outer(coeff: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``mean over all leading indices of coeff[...] · vectors[..., :]``."""
    return coeff.reshape(-1) @ vectors.reshape(-1, vectors.shape[-1]) / coeff.numel()


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


def stein_hessian_vector(second: torch.Tensor, w: torch.Tensor, v: torch.Tensor, law: str = "gaussian",
                         wv: torch.Tensor | None = None) -> torch.Tensor:
    """``∇²_zz h · v`` from second differences ``second`` (b, l) along ``w`` (b, l, p): mean ``second·((wᵀv)w − v)``.

    ``wv``: the products ``w @ v`` (b, l) when the caller has them (ZOBA shares them with :func:`stein_cross`)."""
    _require_gaussian(law, "stein_hessian_vector")
    wv = w @ v if wv is None else wv
    return _mean_outer(second * wv, w) - second.mean() * v


def stein_cross(second_joint: torch.Tensor, w: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                law: str = "gaussian", wv: torch.Tensor | None = None) -> torch.Tensor:
    """``∇²_xz h · v`` (a d-vector) from joint second differences along ``(w, u)``: mean ``second·(wᵀv)·u``."""
    _require_gaussian(law, "stein_cross")
    return _mean_outer(second_joint * (w @ v if wv is None else wv), u)


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
    >>> points.add("plus", dy=w, dy_scale=h, samples=xi[:, None].expand(b, l))  # (b, l) points y + h w
    >>> values = points.evaluate(oracle, "g")                              # {"g0": (b,), "plus": (b, l)}

    A segment is the base point ``(x, y)`` shifted by ``dx_scale·dx`` / ``dy_scale·dy`` (tensors
    ``(*shape, d)`` / ``(*shape, p)`` or None; the scales default to 1); ``samples`` gives each point's
    sample index (same leading shape, or None for full data in every segment). Direction ids for the
    ``per-direction`` mode are the last index of a 2-D segment (base points form their own group).

    The points are laid out only in :meth:`evaluate`, each segment written in place into one (N, d) and
    one (N, p) array (``torch.add(x, dx, alpha=dx_scale, out=...)``: no per-segment temporary, no
    concatenation). On the CPU these arrays are a per-thread workspace kept from one evaluation to the
    next (``WORKSPACE_MAX_BYTES``): a fresh 8 MiB array (one ZOBA step at p = d = 100) costs ~2,000 page
    faults, several milliseconds on one thread.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self._segments: list[_Segment] = []

    def add(self, name: str, dx: torch.Tensor | None = None, dy: torch.Tensor | None = None,
            samples: torch.Tensor | None = None, shape: tuple[int, ...] | None = None, *,
            dx_scale: float = 1.0, dy_scale: float = 1.0) -> None:
        lead = next((tuple(t.shape[:-1]) for t in (dx, dy) if t is not None), None)
        lead = lead or (tuple(samples.shape) if samples is not None else shape)
        if lead is None:
            raise ValueError(f"PointSet.add({name!r}): give a shift, samples or a shape")
        if samples is not None and tuple(samples.shape) != lead:
            samples = samples.expand(*lead)
        self._segments.append(_Segment(name, tuple(lead), math.prod(lead), dx, float(dx_scale), dy, float(dy_scale),
                                       None if samples is None else samples.reshape(-1)))

    def __len__(self) -> int:
        return sum(seg.count for seg in self._segments)

    def points(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The N points ``(xs (N, d), ys (N, p), samples (N,) or None)``, segment after segment (new arrays)."""
        xs, ys = self._layout(len(self), None)
        return xs, ys, self._samples()

    def evaluate(self, oracle: Oracle, level: str, mode: str = "batched") -> dict[str, torch.Tensor]:
        """Evaluate every point of every segment (one oracle call in ``batched`` mode)."""
        n = len(self)
        samples = self._samples()
        buffer = self._workspace(n)
        xs, ys = self._layout(n, buffer)
        groups = None
        if mode == "per-direction":
            groups = torch.cat([_direction_ids(seg.lead, xs.device) for seg in self._segments])
        if buffer is None:
            values = evaluate_points(oracle, level, xs, ys, samples, mode, groups)
        else:
            _WORKSPACE.busy = True  # a nested evaluation (a function built on one) gets new arrays
            try:
                values = evaluate_points(oracle, level, xs, ys, samples, mode, groups)
            finally:
                _WORKSPACE.busy = False
            if values.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr():
                values = values.clone()  # a function that returns a view of its point: off the workspace
        out, start = {}, 0
        for seg in self._segments:
            out[seg.name] = values[start:start + seg.count].reshape(seg.lead)
            start += seg.count
        return out

    def _samples(self) -> torch.Tensor | None:
        has_samples = [seg.samples is not None for seg in self._segments]
        if any(has_samples) and not all(has_samples):
            raise ValueError("PointSet: either every segment has sample indices or none has")
        return torch.cat([seg.samples for seg in self._segments]) if all(has_samples) else None

    def _dtypes(self) -> tuple[torch.dtype, torch.dtype]:
        """The dtypes of the x- and y-points (``x + dx`` promotes as torch does)."""
        dx, dy = self.x.dtype, self.y.dtype
        for seg in self._segments:
            dx = dx if seg.dx is None else torch.promote_types(dx, seg.dx.dtype)
            dy = dy if seg.dy is None else torch.promote_types(dy, seg.dy.dtype)
        return dx, dy

    def _workspace(self, n: int) -> torch.Tensor | None:
        """This thread's workspace for the points, or None (new arrays): off the CPU, mixed dtypes, a nested
        evaluation, too large, or points that need gradients (``out=`` writes are not differentiable)."""
        dx, dy = self._dtypes()
        if (self.x.device.type != "cpu" or dx != dy or getattr(_WORKSPACE, "busy", False)
                or (torch.is_grad_enabled() and any(t.requires_grad for t in self._tensors()))):
            return None
        return _workspace_buffer(n * (self.x.shape[-1] + self.y.shape[-1]), dx)

    def _tensors(self):
        yield self.x
        yield self.y
        for seg in self._segments:
            yield from (t for t in (seg.dx, seg.dy) if t is not None)

    def _layout(self, n: int, buffer: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The points, segment after segment: written into ``buffer`` (flat, at least n(d + p) entries) or
        into new arrays; concatenated differentiable pieces where they need gradients."""
        x, y = self.x, self.y
        d, p = x.shape[-1], y.shape[-1]
        if buffer is None and torch.is_grad_enabled() and any(t.requires_grad for t in self._tensors()):
            return (torch.cat([_shift(x, seg.dx, seg.dx_scale, seg.lead).reshape(-1, d) for seg in self._segments]),
                    torch.cat([_shift(y, seg.dy, seg.dy_scale, seg.lead).reshape(-1, p) for seg in self._segments]))
        if buffer is None:
            dtype_x, dtype_y = self._dtypes()
            xs = torch.empty(n, d, dtype=dtype_x, device=x.device)
            ys = torch.empty(n, p, dtype=dtype_y, device=y.device)
        else:
            xs, ys = buffer[:n * d].view(n, d), buffer[n * d:n * (d + p)].view(n, p)
        start = 0
        for seg in self._segments:
            _shifted(x, seg.dx, seg.dx_scale, xs[start:start + seg.count].view(*seg.lead, d))
            _shifted(y, seg.dy, seg.dy_scale, ys[start:start + seg.count].view(*seg.lead, p))
            start += seg.count
        return xs, ys


class _Segment(NamedTuple):
    name: str
    lead: tuple[int, ...]
    count: int
    dx: torch.Tensor | None
    dx_scale: float
    dy: torch.Tensor | None
    dy_scale: float
    samples: torch.Tensor | None


#: the largest per-thread workspace of :meth:`PointSet.evaluate` (bytes); larger layouts get fresh arrays
WORKSPACE_MAX_BYTES = 1 << 28
_WORKSPACE = threading.local()


def _workspace_buffer(numel: int, dtype: torch.dtype) -> torch.Tensor | None:
    """This thread's flat CPU workspace of at least ``numel`` entries of ``dtype`` (grown, never shrunk), or
    None above ``WORKSPACE_MAX_BYTES``."""
    if numel * torch.empty(0, dtype=dtype).element_size() > WORKSPACE_MAX_BYTES:
        return None
    buffers = getattr(_WORKSPACE, "buffers", None)
    if buffers is None:
        buffers = _WORKSPACE.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.numel() < numel:
        buf = buffers[dtype] = torch.empty(numel, dtype=dtype)
    return buf


def _shift(base: torch.Tensor, shift: torch.Tensor | None, scale: float, lead: tuple[int, ...]) -> torch.Tensor:
    """``base + scale·shift`` broadcast to ``(*lead, n)`` (a new tensor, or an expanded view of ``base``)."""
    if shift is None:
        return base.expand(*lead, -1)
    return base + shift if scale == 1.0 else torch.add(base, shift, alpha=scale)


def _shifted(base: torch.Tensor, shift: torch.Tensor | None, scale: float, out: torch.Tensor) -> None:
    """``out[...] = base + scale·shift`` in place (``out = base`` broadcast when there is no shift)."""
    if shift is None:
        out.copy_(base)
    elif scale == 1.0:
        torch.add(base, shift, out=out)
    else:
        torch.add(base, shift, alpha=scale, out=out)


def _direction_ids(lead: tuple[int, ...], device) -> torch.Tensor:
    """Direction id of each point of a segment: its last index for (…, l) segments, −1 for base points."""
    if len(lead) < 2:
        return torch.full((math.prod(lead),), -1, device=device)
    return torch.arange(lead[-1], device=device).expand(*lead).reshape(-1)
