"""The counting oracle: the only way a method touches a problem.

Every derivative comes from autograd: gradients and second-order products by reverse mode
(``torch.autograd``, double backward for Hessian-vector products), batched values and full
Hessians by ``torch.func`` (``vmap``, ``hessian``). Design choice, measured: on CPU for the
quadratic problem (n = 1024, p = d = 100) ``torch.func``'s forward-over-reverse HVP took 3.7 ms
against 0.6 ms for double backward, and ``torch.func.grad`` 0.74 ms against 0.40 ms.
Every call is counted by kind:

========== ==================================================================================
kind        what one count is
========== ==================================================================================
value       one function value at one point (a batched call of B points counts B)
grad        one gradient with respect to (x, y) or a block of it, at one point
hvp         one second-order product: a Hessian-vector product of any block, a mixed
            Jacobian-vector product (∇²_xy h·v) or a vector-Jacobian product through a gradient
hessian     one full Hessian (all four blocks) at one point
========== ==================================================================================

Counts are kept per level (``f`` upper, ``g`` lower) as ``"<level>_<kind>"``. Figures read the
counts from here; nothing else in the package may hard-code oracle costs.

The one accounting of the package (:mod:`bilevel.accounting`, re-exported here: :func:`totals`; the run
loops, the result rows, the budgets and the figures' axes all use it):

- ``oracle_calls`` = gradients + second-order products + ``HESSIAN_WEIGHT`` × full Hessians, both levels
  (``specs/fsba.md`` F-3: MCN's K + 3 calls per iteration read as K inner gradients + 1 gradient + 2 for
  the second-order information);
- ``function_evals`` = function values, both levels (the zeroth-order cost).

Mini-batches of a finite-sum level come from :meth:`Oracle.sample`, under the run's ``sampler``
(:data:`SAMPLERS`; one choice per run, hence the same for every method of a figure):

- ``"replacement"`` (default): i.i.d. uniform indices, with replacement, within and across batches —
  the unbiased stochastic oracle that the convergence analyses of ZOBA, SOBA, SOGD and FSBA assume, and
  the law under which this artifact's figures were tuned;
- ``"epoch"``: random reshuffling — per (level, batch size), a fresh permutation of the n samples every
  epoch, cut into consecutive batches (a remainder shorter than a batch is skipped, the next epoch
  starts); no sample repeats within an epoch;
- ``"blocks"``: benchopt's ``benchmark_bilevel`` practice (the ZOBA authors' code): the ⌊n/b⌋ fixed
  blocks of b consecutive samples ``[j b, (j + 1) b)``, visited in an order reshuffled every epoch
  (``shared/reference/zoba_authors``; the last n mod b samples are never drawn).

Both epoch samplers draw their permutations from the generator passed to :meth:`Oracle.sample` (the
run's), so a run stays a function of its seed; their cursors are part of a checkpoint
(:meth:`Oracle.sampler_state`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import func as tf

from .accounting import COUNT_KEYS, HESSIAN_WEIGHT, KINDS, LEVELS, TOTAL_KEYS, derivative_calls, totals
from .problems.base import BilevelProblem

__all__ = ["COUNT_KEYS", "HESSIAN_WEIGHT", "KINDS", "LEVELS", "SAMPLERS", "TOTAL_KEYS", "Oracle", "derivative_calls",
           "totals"]

#: the mini-batch laws of :meth:`Oracle.sample` (module docstring)
SAMPLERS = ("replacement", "epoch", "blocks")


def _zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """autograd returns None for a block the output does not depend on: that derivative is zero."""
    return torch.zeros_like(like) if grad is None else grad


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be 'f' (upper) or 'g' (lower), got {level!r}")


class Oracle:
    """Counted access to the values and derivatives of a :class:`BilevelProblem`.

    Examples
    --------
    >>> oracle = Oracle(problem)
    >>> gx, gy = oracle.grad("g", x, y)           # counts g_grad += 1
    >>> hx, hy = oracle.hvp("g", x, y, dy=v)      # ∇²_xy g·v and ∇²_yy g·v, counts g_hvp += 1
    """

    #: points per vectorized chunk of :meth:`values` / :meth:`grads_y` (None: all at once). One call
    #: still evaluates every point; chunks of ~2k points keep the working set in cache (measured on
    #: the attack problem: 10k points in 148 ms unchunked, 57 ms in chunks of 2048; quadratic unchanged).
    chunk_size: int | None = 2048
    #: :meth:`values` of at most this many points calls the function directly, point after point: the
    #: same points in the same order, only the path differs (measured, one thread: 2 points in 0.23 ms
    #: direct against 0.59 ms through ``vmap`` on the quadratic, 0.65 against 1.04 ms on the attack; the
    #: paths break even at 3-4 points). A sequential loop of small evaluations (ZMDSBA's inner loop)
    #: then costs what its function values cost.
    direct_up_to: int = 3
    #: :meth:`values` of more points uses the problem's fused evaluation of the level when it offers one
    #: (``BilevelProblem.vectorized``: the same numbers up to float rounding, the same counts) instead of
    #: ``vmap``; False forces ``vmap`` (tests compare the two paths). Measured, one thread, the 10,025
    #: g-points of one ZOBA step (per-point samples) on the quadratic: ~1.3 / 2.5 ms fused against ~5 / 15 ms
    #: through ``vmap`` at p = d = 20 / 100 (``benchmarks/zoba_step.py --iteration``).
    fused: bool = True

    def __init__(self, problem: BilevelProblem, sampler: str = "replacement"):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        self.problem = problem
        self.sampler = sampler
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self._fn = {lv: self._objective(lv) for lv in LEVELS}
        #: the epoch samplers' streams: "<level>:<batch size>" -> {"order": indices of the epoch, "cursor": next}
        self._epochs: dict[str, dict] = {}

    def _objective(self, level: str) -> Callable:
        problem = self.problem

        def fn(x, y, batch):
            return problem.call(level, x, y, batch)

        return fn

    def _count(self, level: str, kind: str, n: int = 1) -> None:
        self.counts[f"{level}_{kind}"] += int(n)

    # ----------------------------------------------------------------------------------- counts
    def snapshot(self) -> dict[str, int]:
        """A copy of the per-kind counts."""
        return dict(self.counts)

    def totals(self) -> dict[str, int]:
        """Both totals of the counts so far (:func:`totals`)."""
        return totals(self.counts)

    @property
    def oracle_calls(self) -> int:
        """Derivative oracle calls, a full Hessian counted ``HESSIAN_WEIGHT`` (:func:`totals`)."""
        return self.totals()["oracle_calls"]

    @property
    def function_evals(self) -> int:
        """Function values, both levels (the zeroth-order cost; :func:`totals`)."""
        return self.totals()["function_evals"]

    # ----------------------------------------------------------------------------------- values
    def value(self, level: str, x, y, batch=None) -> torch.Tensor:
        """``h(x, y[, batch])`` for ``h = f`` or ``g``; counts one value."""
        _check_level(level)
        self._count(level, "value")
        return self._fn[level](x, y, batch)

    def values(self, level: str, xs, ys, batch=None) -> torch.Tensor:
        """Values at B points in ONE vectorized call (B > ``direct_up_to``; else direct calls); counts B values.

        The vectorized call is the problem's fused evaluation of the level where it has one (``fused``),
        else ``vmap`` of the level's function in chunks of ``chunk_size`` points.

        ``xs`` (B, d) and ``ys`` (B, p) are the points; ``batch`` is ``None`` (full data), a 1-D
        index tensor shared by all points, or a 2-D (B, b) tensor giving each point its own samples.
        """
        _check_level(level)
        if xs.ndim != 2 or ys.ndim != 2 or xs.shape[0] != ys.shape[0]:
            raise ValueError(f"values() needs xs (B, d) and ys (B, p) with the same B, got {tuple(xs.shape)}, {tuple(ys.shape)}")
        per_point = batch is not None and batch.ndim == 2
        if per_point and batch.shape[0] != xs.shape[0]:
            raise ValueError(f"per-point batch has {batch.shape[0]} rows for {xs.shape[0]} points")
        self._count(level, "value", xs.shape[0])
        if 0 < xs.shape[0] <= self.direct_up_to:
            fn = self._fn[level]
            return torch.stack([fn(xs[k], ys[k], batch[k] if per_point else batch) for k in range(xs.shape[0])])
        fused = self.problem.vectorized.get(level) if self.fused else None
        if fused is not None:
            return fused(xs, ys, batch)
        return tf.vmap(self._fn[level], in_dims=(0, 0, 0 if per_point else None), chunk_size=self.chunk_size)(
            xs, ys, batch)

    # -------------------------------------------------------------------------------- gradients
    def _autograd(self, level, x, y, batch, wrt: str, create_graph: bool = False, track: str | None = None):
        """Reverse-mode gradient of h w.r.t. the blocks in ``wrt`` (``"x"``, ``"y"`` or ``"xy"``).

        ``track`` (default ``wrt``) names the blocks made graph leaves, so that a later backward
        through the returned gradients can reach them. Returns ``((x_leaf, y_leaf), grads)``.
        """
        track = wrt if track is None else track
        xx = x.detach().requires_grad_("x" in track)
        yy = y.detach().requires_grad_("y" in track)
        out = self._fn[level](xx, yy, batch)
        inputs = [t for t, name in ((xx, "x"), (yy, "y")) if name in wrt]
        if not out.requires_grad:  # h does not depend on the tracked blocks (e.g. f independent of x)
            return (xx, yy), [torch.zeros_like(t) for t in inputs]
        grads = torch.autograd.grad(out, inputs, create_graph=create_graph, allow_unused=True)
        return (xx, yy), [_zeros_if_none(g, t) for t, g in zip(inputs, grads, strict=True)]

    def grad(self, level: str, x, y, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(∇_x h, ∇_y h)`` at ``(x, y)``; counts one gradient."""
        _check_level(level)
        self._count(level, "grad")
        with torch.enable_grad():
            _, (gx, gy) = self._autograd(level, x, y, batch, "xy")
        return gx, gy

    def grad_y(self, level: str, x, y, batch=None) -> torch.Tensor:
        """``∇_y h`` only (one gradient)."""
        _check_level(level)
        self._count(level, "grad")
        with torch.enable_grad():
            return self._autograd(level, x, y, batch, "y")[1][0]

    def grad_x(self, level: str, x, y, batch=None) -> torch.Tensor:
        """``∇_x h`` only (one gradient)."""
        _check_level(level)
        self._count(level, "grad")
        with torch.enable_grad():
            return self._autograd(level, x, y, batch, "x")[1][0]

    def grad_y_with_pullback(self, level: str, x, y, batch=None):
        """``∇_y h`` at ``(x, y)`` and a pullback through it, built on ONE retained graph.

        ``pullback(a)`` returns ``(∇²_xy h·a, ∇²_yy h·a)``; ``pullback(a, "y")`` only ``∇²_yy h·a``
        and ``pullback(a, "x")`` only ``∇²_xy h·a`` (cheaper backward passes). Unrolled
        differentiation (ITD) keeps one per inner step; implicit differentiation (AID) reuses one
        for all the products of its linear solve, instead of rebuilding the gradient graph per
        product. Counts one gradient now and one second-order product per pullback call.
        """
        _check_level(level)
        self._count(level, "grad")
        with torch.enable_grad():
            leaves, (gy,) = self._autograd(level, x, y, batch, "y", create_graph=True, track="xy")
        index = {"x": (0,), "y": (1,), "xy": (0, 1)}

        def pullback(adjoint: torch.Tensor, blocks: str = "xy"):
            self._count(level, "hvp")
            inputs = [leaves[i] for i in index[blocks]]
            with torch.enable_grad():
                out = torch.autograd.grad(gy, inputs, adjoint, retain_graph=True, allow_unused=True)
            out = tuple(_zeros_if_none(g, t) for t, g in zip(inputs, out, strict=True))
            return out if blocks == "xy" else out[0]

        return gy.detach(), pullback

    # ------------------------------------------------------------------------ second order
    def grads_y(self, level: str, xs, ys, batch=None) -> torch.Tensor:
        """``∇_y h`` at the B points ``(xs[k], ys[k])`` in ONE vectorized call; counts B gradients.

        ``batch`` as in :meth:`values` (None, shared 1-D indices, or per-point 2-D indices). Used by
        methods that run several inner optimisation paths side by side (PZOBO).
        """
        _check_level(level)
        if xs.ndim != 2 or ys.ndim != 2 or xs.shape[0] != ys.shape[0]:
            raise ValueError(f"grads_y() needs xs (B, d) and ys (B, p) with the same B, got {tuple(xs.shape)}, {tuple(ys.shape)}")
        per_point = batch is not None and batch.ndim == 2
        self._count(level, "grad", xs.shape[0])
        grad = tf.grad(self._fn[level], argnums=1)
        return tf.vmap(grad, in_dims=(0, 0, 0 if per_point else None), chunk_size=self.chunk_size)(xs, ys, batch)

    def hvp(self, level: str, x, y, dx=None, dy=None, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint Hessian-vector product along ``(dx, dy)`` (zeros where omitted); one count.

        Returns ``(∇²_xx h·dx + ∇²_xy h·dy, ∇²_yx h·dx + ∇²_yy h·dy)`` (double backward).
        """
        _check_level(level)
        self._count(level, "hvp")
        dx = torch.zeros_like(x) if dx is None else dx
        dy = torch.zeros_like(y) if dy is None else dy
        with torch.enable_grad():
            leaves, (gx, gy) = self._autograd(level, x, y, batch, "xy", create_graph=True)
            dot = (gx * dx).sum() + (gy * dy).sum()
            out = torch.autograd.grad(dot, leaves, allow_unused=True)
        return tuple(_zeros_if_none(g, t) for t, g in zip((x, y), out, strict=True))

    def _through_grad_y(self, level: str, x, y, v, batch, block: str, batched: bool = False) -> torch.Tensor:
        """Backward of ``⟨∇_y h, v⟩`` into ``block`` (``"y"``: ∇²_yy h·v, ``"x"``: ∇²_xy h·v)."""
        with torch.enable_grad():
            track = "xy" if block == "x" else "y"  # x enters the graph only when its block is asked for
            leaves, (gy,) = self._autograd(level, x, y, batch, "y", create_graph=True, track=track)
            target = leaves[0] if block == "x" else leaves[1]
            (out,) = torch.autograd.grad(gy, target, v, is_grads_batched=batched, allow_unused=True)
        if out is None:  # h is linear in that block along v
            shape = (v.shape[0], *target.shape) if batched else target.shape
            return torch.zeros(shape, dtype=target.dtype, device=target.device)
        return out

    def hvp_yy(self, level: str, x, y, v, batch=None) -> torch.Tensor:
        """``∇²_yy h·v`` (p-vector); one second-order product."""
        _check_level(level)
        self._count(level, "hvp")
        return self._through_grad_y(level, x, y, v, batch, "y")

    def cross_xy(self, level: str, x, y, v, batch=None) -> torch.Tensor:
        """``∇²_xy h·v`` (d-vector: derivative in x of ⟨∇_y h, v⟩); one second-order product."""
        _check_level(level)
        self._count(level, "hvp")
        return self._through_grad_y(level, x, y, v, batch, "x")

    def cross_xy_sum(self, level: str, x, ys, vs, batch=None) -> torch.Tensor:
        """``Σ_t ∇²_xy h(x, y_t)·v_t`` for the T rows of ``ys``, ``vs`` (T, p) in ONE reverse pass over x;
        counts T second-order products.

        The T points share x, so ``h`` is evaluated once with the T inner points vectorized
        (``torch.func``: ∇_x of ⟨vmap(∇_y h)(x, ys), vs⟩): whatever ``h`` computes from x alone (e.g. the
        features of a network) is computed and differentiated once, not T times. Used by ITD's
        ``reverse="split"``.
        """
        _check_level(level)
        if ys.ndim != 2 or vs.shape != ys.shape:
            raise ValueError(f"cross_xy_sum() needs ys and vs of the same shape (T, p), got {tuple(ys.shape)}, "
                             f"{tuple(vs.shape)}")
        self._count(level, "hvp", ys.shape[0])
        grad_y = tf.vmap(tf.grad(self._fn[level], argnums=1), in_dims=(None, 0, None))

        def pairing(xv):
            return (grad_y(xv, ys, batch) * vs).sum()

        return tf.grad(pairing)(x.detach())

    def hvps_yy(self, level: str, x, y, vs, batch=None) -> torch.Tensor:
        """``∇²_yy h·v`` for the K rows of ``vs`` (K, p) in one vectorized backward; counts K."""
        _check_level(level)
        self._count(level, "hvp", vs.shape[0])
        return self._through_grad_y(level, x, y, vs, batch, "y", batched=True)

    def hessian(self, level: str, x, y, batch=None) -> dict[str, torch.Tensor]:
        """All blocks ``{"xx", "xy", "yx", "yy"}`` of the Hessian at one point; one count."""
        _check_level(level)
        self._count(level, "hessian")
        blocks = tf.hessian(self._fn[level], argnums=(0, 1))(x, y, batch)
        return {"xx": blocks[0][0], "xy": blocks[0][1], "yx": blocks[1][0], "yy": blocks[1][1]}

    # -------------------------------------------------------------------------------- sampling
    def sample(self, level: str, batch_size: int | None, generator: torch.Generator) -> torch.Tensor | None:
        """Sample indices of a finite-sum level under the oracle's ``sampler``; ``None`` = full batch."""
        _check_level(level)
        n = self.problem.n_samples.get(level)
        if batch_size is None or n is None:
            return None
        size = int(batch_size)
        if self.sampler == "replacement":
            idx = torch.randint(n, (size,), generator=generator)
        else:
            idx = self._next_batch(level, n, size, generator)
        return idx.to(self.problem.device)

    def _next_batch(self, level: str, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """The next batch of an epoch sampler's stream ``(level, size)``; a new epoch when this one is spent."""
        if size > n:
            raise ValueError(f"sampler {self.sampler!r}: a batch of {size} samples from a level of {n} cannot be "
                             f"drawn without replacement; use sampler='replacement' or a smaller batch")
        stream = self._epochs.setdefault(f"{level}:{size}", {"order": torch.empty(0, dtype=torch.long), "cursor": 0})
        if stream["cursor"] + size > stream["order"].numel():
            if self.sampler == "epoch":
                stream["order"] = torch.randperm(n, generator=generator)
            else:  # blocks: the fixed blocks [j b, (j+1) b) in a fresh order
                blocks = torch.randperm(n // size, generator=generator)
                stream["order"] = (blocks[:, None] * size + torch.arange(size)).reshape(-1)
            stream["cursor"] = 0
        start = stream["cursor"]
        stream["cursor"] = start + size
        return stream["order"][start:start + size]

    def sampler_state(self) -> dict:
        """The epoch samplers' streams (a copy), for a checkpoint; :meth:`load_sampler_state` restores them."""
        return {key: {"order": s["order"].clone(), "cursor": s["cursor"]} for key, s in self._epochs.items()}

    def load_sampler_state(self, state: dict) -> None:
        self._epochs = {key: {"order": s["order"].clone(), "cursor": int(s["cursor"])} for key, s in state.items()}
